"""English person names, found from context (see ``names``): a title before a capitalised
word, a capitalised word next to a context word, or a run of capitalised words that does
not name an organisation or a place."""

from __future__ import annotations

import re

from gateway.transforms.chinese_lexicon import CJK, CJK_CHAR

_Span = tuple[int, int]

# The class in front lets the engine pass a position with one test (see chinese_names).
# Not after a letter, rather than after a word boundary: in Chinese text a title follows
# a Chinese character directly (由Dr. 李), and may precede the name without a space.
_EN_TITLE = re.compile(
    r"(?=[DMNPSF])(?<![A-Za-z])"
    r"(?:Dr|Mr|Mrs|Ms|Mx|Miss|Prof|Professor|Doctor|Nurse|Sister|Father|Sir|Dame|Madam)"
    f"\\b(?:\\.?[ ]+|\\.(?=[{CJK}]))"
)
_CAPITAL = re.compile("[A-Z]")
_EN_WORD = re.compile(
    r"(?:Mc|Mac|O')[A-Z][a-z]+|[A-Z](?:[a-z]+(?:['\u2019\-](?!s\b)[A-Z]?[a-z]+)*|\.)"
)
# Relatives, and what else a person is: before a name, context (her grandson Kimberly,
# Tenant Jessica Smith).
_EN_KIN = frozenset(
    """wife husband daughter son mother father brother sister parent guardian grandson
    granddaughter grandma grandpa aunt uncle nephew niece cousin son-in-law
    daughter-in-law""".split()
)
_EN_ROLES = _EN_KIN | frozenset(
    """patient friend colleague manager nurse doctor surgeon assistant anaesthetist
    anesthetist candidate panel client respondent agent neighbour neighbor representative
    claimant caller customer user engineer technician tenant landlord landlady owner
    teacher student pupil carer caregiver driver courier counsellor counselor therapist
    officer lawyer solicitor attorney pharmacist physician midwife paramedic receptionist
    supervisor director coordinator coworker co-worker partner member visitor resident
    applicant employee intern boss mentor coach trainee volunteer buyer seller sender
    recipient witness defendant plaintiff detective constable sergeant inspector worker
    caseworker advocate interpreter translator cleaner caretaker concierge accountant
    auditor analyst developer designer tester administrator secretary clerk cashier chef
    dentist radiographer sonographer physio""".split()
)
_EN_CUE_BEFORE = _EN_ROLES | frozenset(
    """with by to ask asked call called contact cc hi hello hey dear thanks thank regards best
    cheers sincerely per from for and or told tell ping @ dr reach reached
    meet met see saw visit visited email emailed message messaged text texted assigned
    escalated forward forwarded page paged notify notified inform informed remind reminded
    through of""".split()
)
# What follows a person: what people do, and (in _EN_CUE_AFTER) modals, which follow
# organisations as well ("Urgent Care can see you").
_EN_PERSON_AFTER = frozenset(
    """said says told asked called reports reported will is was has had here wrote replied
    thinks just got brought took signed fixed covers covered attended chaired lead leads led
    logged noted agreed approved confirmed joined please saying""".split()
)
_EN_CUE_AFTER = _EN_PERSON_AFTER | frozenset(
    """can can't cannot could couldn't would wouldn't should shouldn't won't didn't doesn't
    isn't wasn't hasn't hadn't must mustn't might""".split()
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
    Marketing Payroll Reception Radiology Procurement Logistics IT HR Dad Daddy Mom Mommy
    Mum Mummy Mama Papa Grandma Grandpa Granny Grandad Nana Someone Somebody Anyone
    Anybody Everyone Everybody Nobody Nothing Everything Something Anything""".split()
)
_EN_PLACE_CUES = frozenset(("to", "for", "from", "of", "through"))
# Before a possessive: at Macy's, the Children's (but "for Tom's reply" is a person's).
_EN_PLACE_WORDS = frozenset("at in on into via near the a an".split())
# Context words that open a sentence before a name: "Hey Lily", "Thanks Grant", "Called
# Kendra twice".
_EN_GREETINGS = frozenset(
    """hi hello hey dear thanks thank cheers ask asked call called sweetheart contact
    contacted emailed messaged texted phoned rang pinged tell told remind reminded paged
    notify notified inform informed met reached visited""".split()
)
_EN_MONTH_NAMES = frozenset(("April", "May", "June", "August"))
# A run of capitalised words ending in one of these names an organisation or a place.
_EN_ORG_HEADS = frozenset(
    """Service Services Department Dept General Hospital Clinic Center Centre Office Team
    Support Billing Street St Road Avenue Inc Ltd LLC Corp Company Group Bank University
    College School Airport Station City County State Park Unit Ward Care Surgery Practice
    Pharmacy Lab Laboratory Institute Foundation Trust Council Tribunal Agency
    Authority Ministry Committee Board Store Shop Mall Market Plaza Hotel Restaurant Cafe
    Club Museum Library Gallery Theatre Theater Square Drive Boulevard Building Campus
    Desk Division Health Medical Hospice Partners Associates Holdings Systems Solutions
    Technologies Airlines Motors""".split()
)


# A run of capitalised words: one space or hyphen between two, or lower-case particles
# inside a surname (Dana van Dyke, Ana de la Cruz); group 1 is its first word.
_EN_PARTICLES = "van|von|de|da|del|der|di|du|la|le|bin|ibn|al|ter"
# Group 2 is the run's last word when it has more than one: a run of two words (most of
# them) is read off the match without looking for its words again.
_EN_RUN = re.compile(
    f"(?=[A-Z])({_EN_WORD.pattern})(?:(?:[ \\-]| (?:(?:{_EN_PARTICLES}) )+)({_EN_WORD.pattern}))*"
)
_LAST_WORD = re.compile(r"[@A-Za-z'](?:[A-Za-z'\-]*[A-Za-z])?$")
# What follows a name: 's, "here", or a word from _EN_CUE_AFTER, whole (the word after
# the spaces is looked up in the set, not tried against each word in turn).
_CUE_AFTER_MARKS = ("'s", "\u2019s", " here")
_WORD_AFTER = re.compile("[ ]+([a-z]+(?:['\u2019]t)?)")
_SPACES = re.compile(r"[ ]+")
# Words that may stand between a name and what the person did ("Diane now takes").
_EN_ADVERBS = frozenset("now also just still then already never always often usually".split())
# A verb after a run of capitalised words that opens a sentence makes the run its subject,
# a person ("Sarah Baldwin booked the room", "Yong Xie now owns this case").
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
        start, end = m.span()
        if m.start(2) < 0:  # one word, the common case
            word = m.group(1)
            if word in _EN_NOT_NAMES or (
                word.lower() in _EN_GREETINGS and _sentence_start(text, start)
            ):
                continue
            named = [(start, end)]
        else:
            first_end, last_start = m.end(1), m.start(2)
            if last_start == first_end + 1:  # two words and one character between them
                run = [(start, first_end), (last_start, end)]
            else:
                run = [w.span() for w in _EN_WORD.finditer(text, start, end)]
            named = _named_words(text, run)
            if not named:
                continue
        span = _person(text, start, named)
        if (
            span is None
            and text.endswith(_JOINS, 0, named[0][0])
            and any(text[end : named[0][0]] in _JOINS for _, end in found)
        ):
            span = _joined(text, start, named)
        if span is not None:
            found.append(span)
    return found


# A capitalised run joined to a person by one of these is a person too (Ann Lee and Joy).
_JOINS = (" and ", " or ")


def _joined(text: str, run_start: int, named: list[_Span]) -> _Span | None:
    """The run joined to a person, unless it names an organisation or a place, or its
    shape says it is none (see ``_not_a_name_by_shape``)."""
    last = text[named[-1][0] : named[-1][1]]
    if last in _EN_ORG_HEADS or _not_a_name_by_shape(text, run_start, named, last):
        return None
    return named[0][0], named[-1][1]


def _person(text: str, run_start: int, named: list[_Span]) -> _Span | None:
    """The span of the name a capitalised run holds, if what stands around it says so.
    ``named`` are the words of the run that may be a name, as spans."""
    first_start, last_end = named[0][0], named[-1][1]
    last = text[named[-1][0] : last_end]
    end = _inverted_end(text, last_end) if text.startswith(", ", last_end) else last_end
    # "Burke, Jessica" is two names written surname first, as "Jessica Burke" is two.
    words = len(named) + (end != last_end)
    # "Mercy General" is a place, but "Joy Ward lead the project" is a person.
    if last in _EN_ORG_HEADS and not (len(named) >= 2 and _person_acts_after(text, end)):
        return None
    if not (
        (words >= 2 and (not _sentence_start(text, first_start) or _acts_after(text, end)))
        or _cue_after(text, end, lone_word_at=first_start if words == 1 else None)
        or _cue_before(text, first_start, alone=words == 1, listed=_listed(text, last_end))
    ):
        return None
    if _not_a_name_by_shape(text, run_start, named, last):
        return None
    if first_start >= 2 and text.startswith(", ", first_start - 2):
        return _inverted_start(text, first_start), end
    return first_start, end


def _not_a_name_by_shape(text: str, run_start: int, named: list[_Span], last: str) -> bool:
    """What the run shows by its shape: "Room B." (an initial opens a name, it does not
    close one), "the Quarterly Review" (a person takes no article, and an article stands
    before a space)."""
    return (last.endswith(".") and len(named) > 1) or bool(
        run_start
        and text[run_start - 1] == " "
        and _ARTICLE_BEFORE.search(text[max(0, run_start - 8) : run_start])
    )


def _named_words(text: str, run: list[_Span]) -> list[_Span]:
    """The words of a capitalised run that may be a name: not the words that never are,
    and not a context word that opens the run because it opens the sentence ("Hey Lily",
    "Thanks Grant"); that word then counts as the context before the name. A month that
    is also a given name counts when a name follows it in the run (April Craig)."""
    words = [text[start:end] for start, end in run]
    if _EN_NOT_NAMES.isdisjoint(words):
        named = run
    else:
        named = [
            span
            for k, (span, word) in enumerate(zip(run, words, strict=True))
            if word not in _EN_NOT_NAMES
            or (word in _EN_MONTH_NAMES and k + 1 < len(run) and words[k + 1][1:].islower())
        ]
    if named and text[named[0][0] : named[0][1]].lower() in _EN_GREETINGS:
        if _sentence_start(text, named[0][0]):
            named = named[1:]
            while named and text[named[0][0] : named[0][1]].lower() in _EN_GREETINGS:
                named.pop(0)
    # A role written with a capital before a name (Tenant Jessica Smith, Tenant Jessica)
    # is context, not part of the name. (Before one word that is no name, as in Student
    # Union, this takes the word for one: over-scrubbing rather than a leak.)
    roles = 0
    while len(named) - roles > 1 and text[slice(*named[roles])].lower() in _EN_ROLES:
        roles += 1
    return named[roles:] if roles else named


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
    """Where a name written surname first starts, after ", ": "Turner, Kim said" takes
    in Turner."""
    m = _EN_SURNAME_BEFORE_COMMA.search(text, max(0, start - 30), start)
    if m is None or m.group(1) in _EN_NOT_NAMES or m.group(1) in _EN_ORG_HEADS:
        return start
    return m.start(1)


def _inverted_end(text: str, end: int) -> int:
    """Where a name written surname first ends, before ", ": "Smith, David" goes on past
    the comma."""
    m = _EN_GIVEN_AFTER_COMMA.match(text, end)
    if m is None or m.group(1) in _EN_NOT_NAMES or m.group(1) in _EN_ORG_HEADS:
        return end
    return m.end()


def _sentence_start(text: str, at: int) -> bool:
    j = at - 1
    while j >= 0 and text[j] in " \"'(":
        j -= 1
    return j < 0 or text[j] in ".!?:;\n"


def _cue_before(text: str, at: int, *, alone: bool = False, listed: bool = False) -> bool:
    """Whether a context word stands before ``at``. Before a name of one word
    (``alone``), a word that as often leads to a place or a department (to, for, from)
    counts only when a list follows (for Alex:); "and" and "or" do not count (Chrome and
    Outlook: a name joined to a person is found from the person), and "of" counts only
    after a relative (the mother of Zachary, not a box of Kleenex nor the director of
    Operations)."""
    before = text[max(0, at - 24) : at].rstrip(" ,:(")
    # The word is inside the last piece between spaces: searching only that piece spares
    # the pattern a try at every character of the rest.
    word = _LAST_WORD.search(before.rpartition(" ")[2])
    if word is None:
        return False
    cue = word.group().lower()
    if cue not in _EN_CUE_BEFORE or not alone:
        return cue in _EN_CUE_BEFORE
    if cue == "of":
        kin = _LAST_WORD.search(before[: -len(cue)].rstrip())
        return kin is not None and kin.group().lower() in _EN_KIN
    if cue in ("and", "or"):
        return False
    return listed or cue not in _EN_PLACE_CUES


def _listed(text: str, end: int) -> bool:
    """Whether the word ending at ``end`` is followed by what follows a person in a list
    or an address ("for Alex:", "to Amber and the team"), not by the rest of a sentence."""
    return text.startswith((",", ";", ":", " and ", " or "), end)


def _acts_after(text: str, at: int) -> bool:
    """Whether a verb follows ``at``, perhaps after an adverb ("Sarah Baldwin booked the
    room", "Omar Price now covers nights")."""
    word = _WORD_AFTER.match(text, at)
    if word is not None and word.group(1) in _EN_ADVERBS:
        at = word.end()
    return _VERB_AFTER.match(text, at) is not None


def _place_before(text: str, at: int) -> bool:
    """Whether a word that leads to a place, or an article, stands right before ``at``."""
    before = text[max(0, at - 12) : at].rstrip()
    return before.rpartition(" ")[2].lower() in _EN_PLACE_WORDS


def _cue_after(text: str, at: int, *, lone_word_at: int | None = None) -> bool:
    """Whether what follows ``at`` follows a person. A possessive does not follow a lone
    word (starting at ``lone_word_at``) after a word that leads to a place (at Macy's,
    the Children's)."""
    if text.startswith(_CUE_AFTER_MARKS, at):
        return (
            lone_word_at is None
            or not text.startswith(("'s", "\u2019s"), at)
            or not _place_before(text, lone_word_at)
        )
    return _word_after_in(text, at, _EN_CUE_AFTER)


def _person_acts_after(text: str, at: int) -> bool:
    """Whether what follows ``at`` is what a person does (Joy Ward lead the project)."""
    return text.startswith(_CUE_AFTER_MARKS, at) or _word_after_in(text, at, _EN_PERSON_AFTER)


def _word_after_in(text: str, at: int, words: frozenset[str]) -> bool:
    word = _WORD_AFTER.match(text, at)
    return word is not None and word.group(1).replace("\u2019", "'") in words
