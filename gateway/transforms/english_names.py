"""English person names, found from context (see ``names``): a title before a capitalised
word, a capitalised word next to a context word, or a run of capitalised words that does
not name an organisation or a place."""

from __future__ import annotations

import re

from gateway.transforms.chinese_lexicon import CJK, CJK_CHAR

_Span = tuple[int, int]

# The class in front lets the engine pass a position with one test (see chinese_names).
_EN_TITLE = re.compile(
    r"(?=[DMNPSF])\b"
    r"(?:Dr|Mr|Mrs|Ms|Mx|Miss|Prof|Professor|Doctor|Nurse|Sister|Father|Sir|Dame|Madam)"
    r"\b\.?[ ]+"
)
_CAPITAL = re.compile("[A-Z]")
_EN_WORD = re.compile(
    r"(?:Mc|Mac|O')[A-Z][a-z]+|[A-Z](?:[a-z]+(?:['\u2019\-](?!s\b)[A-Z]?[a-z]+)*|\.)"
)
_EN_CUE_BEFORE = frozenset(
    """with by to ask asked call called contact cc hi hello hey dear thanks thank regards best
    cheers sincerely patient wife husband daughter son mother father brother sister friend
    colleague manager contact per from for and or told tell ping @ nurse doctor dr reach
    reached meet met see saw visit visited email emailed message messaged text texted
    assigned escalated forward forwarded page paged notify notified inform informed remind
    reminded through of surgeon assistant anaesthetist anesthetist candidate panel client
    respondent agent grandson granddaughter grandma grandpa son-in-law daughter-in-law aunt
    uncle nephew niece cousin neighbour neighbor""".split()
)
_EN_CUE_AFTER = frozenset(
    """said says told asked called reports reported will is was has had here wrote replied
    thinks just got brought took signed fixed covers covered attended chaired lead leads led
    logged noted agreed approved confirmed joined please saying""".split()
)
# Capitalised words that are not names even where a name could stand.
_EN_NOT_NAMES = frozenset(
    """I I'm I've I'll The A An This That These Those It We You He She They My Our Your His Her
    Their Please Thanks Thank Hi Hello Dear Regards Best Cheers Per Can Could Would Is
    Are Was Were Do Does Did Has Have Had If When Where What Who Why How And Or But So Not
    No Yes Ok OK Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February
    March April May June July August September October November December Patient Ticket
    Order Customer Meeting Contact Nurse Doctor Admitted Discharge Referral Escalation
    Handover History Per Mr Mrs Ms Dr Prof Sir Sales Finance Legal Pharmacy Warehouse
    Marketing Payroll Reception Radiology Procurement Logistics IT HR""".split()
)
_EN_PLACE_CUES = frozenset(("to", "for", "from", "of", "through"))
# Context words that open a sentence before a name: "Hey Lily", "Thanks Grant".
_EN_GREETINGS = frozenset(
    ("hi", "hello", "hey", "dear", "thanks", "thank", "cheers", "ask", "call", "sweetheart")
)
_EN_MONTH_NAMES = frozenset(("April", "May", "June", "August"))
# A run of capitalised words ending in one of these names an organisation or a place.
_EN_ORG_HEADS = frozenset(
    """Service Services Department Dept General Hospital Clinic Center Centre Office Team
    Support Billing Street St Road Avenue Inc Ltd LLC Corp Company Group Bank University
    College School Airport Station City County State Park Unit Ward""".split()
)


# A run of capitalised words: one space or hyphen between two, or lower-case particles
# inside a surname (Dana van Dyke, Ana de la Cruz); group 1 is its first word.
_EN_PARTICLES = "van|von|de|da|del|der|di|du|la|le|bin|ibn|al|ter"
_EN_RUN = re.compile(
    f"(?=[A-Z])({_EN_WORD.pattern})(?:(?:[ \\-]| (?:(?:{_EN_PARTICLES}) )+)(?:{_EN_WORD.pattern}))*"
)
_LAST_WORD = re.compile(r"[@A-Za-z'](?:[A-Za-z'\-]*[A-Za-z])?$")
# What follows a name: 's, "here", or a word from _EN_CUE_AFTER, whole.
_CUE_AFTER = re.compile(
    "'s|\u2019s| here|[ ]+(?:"
    + "|".join(sorted(_EN_CUE_AFTER, key=len, reverse=True))
    + ")(?![a-z])"
)
_SPACES = re.compile(r"[ ]+")
# A verb after a run of capitalised words that opens a sentence makes the run its subject,
# a person ("Sarah Baldwin booked the room", "Yong Xie owns this case").
_VERB_AFTER = re.compile(r" [a-z]{2,}(?:ed|s)\b")
_ARTICLE_BEFORE = re.compile(r"(?:^|[^A-Za-z])(?:the|a|an|our|your|their|this|that)[ ]+$")


def english_spans(text: str) -> list[_Span]:
    if not _CAPITAL.search(text):
        return []
    found: list[_Span] = []
    for m in _EN_TITLE.finditer(text):
        titled = _capitalised_run(text, m.end())
        if titled is not None:
            found.append(titled)
        elif CJK_CHAR.match(text, m.end()):
            cjk = re.match(f"[{CJK}]{{1,3}}", text[m.end() :])
            assert cjk is not None
            found.append((m.end(), m.end() + len(cjk.group())))
    for m in _EN_RUN.finditer(text):
        if m.end() - m.start() == len(m.group(1)):  # one word, the common case
            word = m.group(1)
            if word in _EN_NOT_NAMES or (
                word.lower() in _EN_GREETINGS and _sentence_start(text, m.start())
            ):
                continue
            run = named = [m]
        else:
            run = list(_EN_WORD.finditer(text, m.start(), m.end()))
            named = _named_words(text, run)
            if not named:
                continue
        span = _person(text, run, named)
        if span is not None:
            found.append(span)
    return found


def _person(text: str, run: list[re.Match[str]], named: list[re.Match[str]]) -> _Span | None:
    """The span of the name a capitalised run holds, if what stands around it says so."""
    first, last = named[0], named[-1]
    end = _inverted_end(text, last.end())
    # "Burke, Jessica" is two names written surname first, as "Jessica Burke" is two.
    words = len(named) + (end != last.end())
    cued_after = _cue_after(text, end)
    # "Mercy General" is a place, but "Joy Ward lead the project" is a person.
    if last.group() in _EN_ORG_HEADS and not (cued_after and len(named) >= 2):
        return None
    if not (
        (
            words >= 2
            and (
                not _sentence_start(text, first.start()) or _VERB_AFTER.match(text, end) is not None
            )
        )
        or cued_after
        or _cue_before(text, first.start(), single=words == 1 and not _listed(text, last))
    ):
        return None
    if _not_a_person(text, run, named):
        return None
    return _inverted_start(text, first.start()), end


def _named_words(text: str, run: list[re.Match[str]]) -> list[re.Match[str]]:
    """The words of a capitalised run that may be a name: not the words that never are,
    and not a context word that opens the run because it opens the sentence ("Hey Lily",
    "Thanks Grant"); that word then counts as the context before the name. A month that
    is also a given name counts when a name follows it in the run (April Craig)."""
    named = [
        w
        for k, w in enumerate(run)
        if w.group() not in _EN_NOT_NAMES
        or (w.group() in _EN_MONTH_NAMES and k + 1 < len(run) and run[k + 1].group()[1:].islower())
    ]
    if named and _sentence_start(text, named[0].start()):
        while named and named[0].group().lower() in _EN_GREETINGS:
            named.pop(0)
    return named


def _capitalised_run(text: str, at: int) -> _Span | None:
    m = _EN_WORD.match(text, at)
    if m is None:
        return None
    end = m.end()
    while True:
        nxt = _SPACES.match(text, end)
        if nxt is None:
            break
        follow = _EN_WORD.match(text, nxt.end())
        if follow is None or follow.group() in _EN_NOT_NAMES:
            break
        end = follow.end()
    return at, end


_EN_GIVEN_AFTER_COMMA = re.compile(r", ([A-Z][a-z]+)\b(?![ ]?[A-Z])")
_EN_SURNAME_BEFORE_COMMA = re.compile(r"(?:^|(?<=[ (]))([A-Z][a-z]+), $")


def _inverted_start(text: str, start: int) -> int:
    """Where a name written surname first starts: "Turner, Kim said" takes in Turner."""
    if not text.startswith(", ", start - 2):
        return start
    m = _EN_SURNAME_BEFORE_COMMA.search(text, max(0, start - 30), start)
    if m is None or m.group(1) in _EN_NOT_NAMES or m.group(1) in _EN_ORG_HEADS:
        return start
    return m.start(1)


def _inverted_end(text: str, end: int) -> int:
    """Where a name written surname first ends: "Smith, David" goes on past the comma."""
    m = _EN_GIVEN_AFTER_COMMA.match(text, end)
    if m is None or m.group(1) in _EN_NOT_NAMES or m.group(1) in _EN_ORG_HEADS:
        return end
    return m.end()


def _sentence_start(text: str, at: int) -> bool:
    j = at - 1
    while j >= 0 and text[j] in " \"'(":
        j -= 1
    return j < 0 or text[j] in ".!?:;\n"


def _cue_before(text: str, at: int, *, single: bool = False) -> bool:
    """Whether a context word stands before ``at``. A word that as often leads to a
    place or a department (to, for, from) does not make a single word a name."""
    before = text[max(0, at - 24) : at].rstrip(" ,:(")
    word = _LAST_WORD.search(before)
    if word is None:
        return False
    cue = word.group().lower()
    return cue in _EN_CUE_BEFORE and not (single and cue in _EN_PLACE_CUES)


def _listed(text: str, word: re.Match[str]) -> bool:
    """Whether a word is followed by what follows a person in a list or an address
    ("for Alex:", "to Amber and the team"), not by the rest of a sentence."""
    return text.startswith((",", ";", ":", " and ", " or "), word.end())


def _not_a_person(text: str, run: list[re.Match[str]], named: list[re.Match[str]]) -> bool:
    """What a capitalised run shows by its shape: "the Quarterly Review" (a person takes
    no article), "Room B." (an initial opens a name, it does not close one)."""
    if named[-1].group().endswith(".") and len(named) > 1:
        return True
    before = text[max(0, run[0].start() - 8) : run[0].start()]
    article = _ARTICLE_BEFORE.search(before)
    return article is not None


def _cue_after(text: str, at: int) -> bool:
    return _CUE_AFTER.match(text, at) is not None
