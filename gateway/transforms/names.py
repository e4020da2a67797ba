"""Person names in Chinese and English free text, found without knowing them beforehand.

The scrubber already removes a row's own names (its name columns are a deny list); this
module finds everybody else a note mentions: the doctor, the relative, the colleague.

Chinese: jieba's part-of-speech tagger, whose dictionary and HMM ship inside the package,
tags person names ``nr`` (``nrt`` for transliterations, ``nrfg``). Tagging every note is
far too slow for a read path, so it runs only on a short window around a character that
jieba's own model says often starts a name (a surname), and only when that character is
not the start or end of an ordinary dictionary word (方案, 紧张, 金额) unless a context word
says a person is meant (患者家属 X, X医生). Transliterated names are joined by a middle dot
(约翰·史密斯) and are taken whole.

English: no English named-entity model is published on the registry by its maintainers,
so names are found from context: a title before a capitalised word (Dr., Mrs., Nurse),
a capitalised word next to a context word (ask X, wife X, X said, Hi X), or a run of two or
more capitalised words that does not end in a word naming an organisation or place
(Customer Service, Mercy General). A Chinese name after an English title (Dr. 李) is a name.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
import warnings
from dataclasses import dataclass

_Span = tuple[int, int]

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_NAME_DOT = re.compile("[·•・]")


def _is_cjk(ch: str) -> bool:
    """The ranges of ``_CJK``, compared rather than matched: this runs per character."""
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or "\uf900" <= ch <= "\ufaff"


_TRANSLITERATED = re.compile(f"[{_CJK}]{{1,6}}(?:[·•・][{_CJK}]{{1,6}})+")

# Words after which a Chinese note names a person (strong: a role; weak: a word that
# often, not always, comes before one), and titles that follow a name.
_ZH_STRONG_BEFORE = (
    "患者", "病人", "家属", "家人", "代诉", "联系人", "客户", "用户", "经办人", "复核", "负责人",
    "医生", "医师", "护士", "主任", "大夫", "同事", "同学", "朋友", "老公", "老婆", "丈夫",
    "妻子", "儿子", "女儿", "父亲", "母亲", "爸爸", "妈妈",
    "投诉人", "申请人", "审批人", "转交", "交给", "分配给", "告知", "感谢", "谢谢", "联系", "@",
)  # fmt: skip
_ZH_WEAK_BEFORE = ("和", "跟", "与", "由", "给", "找", "问", "叫")
_ZH_AFTER = (
    "医生", "医师", "大夫", "护士", "主任", "院长", "老师", "教授", "经理", "总监", "师傅",
    "律师", "先生", "女士", "小姐", "阿姨", "叔叔", "同学", "同志", "总",
)  # fmt: skip
# Separators that may stand between a context word and the name: 联系人：王芳.
_ZH_CUE_GAP = "[ ：:]?"


def _any_of(words: tuple[str, ...] | list[str], after: str = "") -> re.Pattern[str]:
    """One of ``words``, longest first; the class of first characters in front lets the
    engine skip a position with one test instead of trying every word there."""
    heads = "".join(sorted({w[0] for w in words}))
    body = "|".join(sorted(words, key=len, reverse=True))
    return re.compile(f"(?=[{re.escape(heads)}])(?:{body}){after}")


_ZH_STRONG_CUE = _any_of(_ZH_STRONG_BEFORE, _ZH_CUE_GAP)
# Role words after which a name may stand without its surname (家属丽丽); titles such
# as 医生 are left out, since after 李医生 comes a verb, not a name.
_ZH_ROLE = _any_of([c for c in _ZH_STRONG_BEFORE if c not in _ZH_AFTER], _ZH_CUE_GAP)
_ZH_SPEAKER = re.compile(f"(?:^|\n)([{_CJK}]{{2,3}})(?=[：:])")
_ZH_WEAK_CUE = _any_of(_ZH_WEAK_BEFORE, _ZH_CUE_GAP)
# A title, unless it is the first character of a longer word (总结, 工作 are not titles).
_ZH_TITLE = _any_of(_ZH_AFTER, "(?![结是共])")
_ZH_NAME_TAGS = frozenset({"nr", "nrfg", "nrt"})
# Characters that end a name rather than continue it: a given name is never these.
_ZH_STOP = frozenset("的了说在和与是也都就已将把被给向对从于请让叫来去到及或等、，。；：！？")
# Log-probabilities in jieba's HMM: a character opening names at least this often is a
# surname; a given name's last character ends names at least this often.
_ZH_FIRST_MIN = -9.0
_ZH_LAST_MIN = -9.0
_ZH_WEAK_SLACK = 2.0
# A character that ends (or stands in the middle of) this many of the dictionary's names
# may end (or continue) a name.
_ZH_NAME_ENDS_MIN = 20
_NEVER = -100.0
# A dictionary word seen this many times is an ordinary word, not a chance pairing; a
# character this frequent on its own (有, 和, 大) is not taken for a surname.
_ZH_WORD_MIN = 5
_ZH_COMMON_CHAR = 100_000
_WEAK, _STRONG = 1, 2

_EN_TITLE = re.compile(
    r"\b(?:Dr|Mr|Mrs|Ms|Mx|Miss|Prof|Professor|Doctor|Nurse|Sister|Father|Sir|Dame|Madam)"
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
    reminded""".split()
)
_EN_CUE_AFTER = frozenset(
    """said says told asked called reports reported will is was has had here wrote replied
    thinks just got brought""".split()
)
# Capitalised words that are not names even where a name could stand.
_EN_NOT_NAMES = frozenset(
    """I I'm I've I'll The A An This That These Those It We You He She They My Our Your His Her
    Their Please Thanks Thank Hi Hello Dear Regards Best Cheers Per Can Could Would Is
    Are Was Were Do Does Did Has Have Had If When Where What Who Why How And Or But So Not
    No Yes Ok OK Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February
    March April May June July August September October November December Patient Ticket
    Order Customer Meeting Contact Nurse Doctor Admitted Discharge Referral Escalation
    Handover History Per Mr Mrs Ms Dr Prof Sir""".split()
)
# A run of capitalised words ending in one of these names an organisation or a place.
_EN_ORG_HEADS = frozenset(
    """Service Services Department Dept General Hospital Clinic Center Centre Office Team
    Support Billing Street St Road Avenue Inc Ltd LLC Corp Company Group Bank University
    College School Airport Station City County State Park Unit Ward""".split()
)


@dataclass(frozen=True)
class _ChineseModel:
    """What jieba knows about names, read once from the files it ships.

    ``surname`` matches a character that jieba's HMM often sees opening a person name;
    ``middle`` and ``last`` are its log-probabilities that a character continues or ends
    one. ``words`` are the dictionary's common words of two to four characters, whatever
    their tag (its ``nr`` tag is on 谢谢 and 黄金周 too), ``names`` its rarer words
    tagged as person names and ``name_words`` all of those (高明 among them).
    """

    surname: re.Pattern[str]
    surnames: frozenset[str]
    middle: dict[str, float]
    last: dict[str, float]
    words: frozenset[str]
    names: frozenset[str]
    name_words: frozenset[str]
    name_ends: dict[str, int]
    name_middles: dict[str, int]

    def given(self, chars: str, slack: float) -> bool:
        """Whether one or two characters look like a given name.

        jieba's HMM has never seen some common name characters where they stand (娟 at
        the end of a name, 淑 anywhere in one), so its dictionary is asked too: a
        two-character given name it lists as a name (淑英), or characters that stand in
        the middle or at the end of many of its names."""
        limit = _ZH_LAST_MIN - slack
        last = self.last.get(chars[-1], _NEVER)
        if self.name_ends.get(chars[-1], 0) >= _ZH_NAME_ENDS_MIN:
            last = max(last, limit)
        if len(chars) == 1:
            return last >= limit
        if chars in self.name_words:
            return True
        first = self.middle.get(chars[0], _NEVER)
        if self.name_middles.get(chars[0], 0) >= _ZH_NAME_ENDS_MIN:
            first = max(first, limit)
        return first + last >= 2 * limit


def _load_chinese_model() -> _ChineseModel:
    # jieba imports pkg_resources, which warns on newer setuptools; the warning says
    # nothing about what is being loaded.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import jieba
        from jieba.posseg.prob_emit import P as emission

    words: set[str] = set()
    names: set[str] = set()
    name_words: set[str] = set()
    name_ends: dict[str, int] = {}
    name_middles: dict[str, int] = {}
    common_chars: set[str] = set()
    dictionary = importlib.resources.files(jieba).joinpath("dict.txt")
    with dictionary.open(encoding="utf-8") as lines:
        for line in lines:
            word, freq_text, tag = line.split()
            freq = int(freq_text)
            if 2 <= len(word) <= 3 and tag in _ZH_NAME_TAGS:
                name_words.add(word)
                name_ends[word[-1]] = name_ends.get(word[-1], 0) + 1
                if len(word) == 3:
                    name_middles[word[1]] = name_middles.get(word[1], 0) + 1
            if len(word) == 1:
                if freq >= _ZH_COMMON_CHAR and tag not in _ZH_NAME_TAGS:
                    common_chars.add(word)
            elif len(word) <= 4 and freq >= _ZH_WORD_MIN:
                words.add(word)
            elif len(word) <= 3 and tag in _ZH_NAME_TAGS and freq:
                names.add(word)
    # Nor are the words that stand before a name (由, 与) taken for its surname.
    surnames = sorted(
        c
        for c, p in emission[("B", "nr")].items()
        if p > _ZH_FIRST_MIN and c not in common_chars and c not in _ZH_WEAK_BEFORE
    )
    return _ChineseModel(
        surname=re.compile("[" + "".join(surnames) + "]"),
        surnames=frozenset(surnames),
        middle=dict(emission[("M", "nr")]),
        last=dict(emission[("E", "nr")]),
        words=frozenset(words),
        names=frozenset(names),
        name_words=frozenset(name_words),
        name_ends=name_ends,
        name_middles=name_middles,
    )


class NameFinder:
    """Finds person-name spans in a text; build once, use from any thread."""

    def __init__(self) -> None:
        self._zh = _load_chinese_model()

    def spans(self, text: str) -> list[_Span]:
        found = self._english(text)
        if _CJK_CHAR.search(text):
            found += self._chinese(text)
        return _merge(found)

    # Chinese --------------------------------------------------------------------------

    def _chinese(self, text: str) -> list[_Span]:
        zh = self._zh
        words = zh.words
        found = []
        if _NAME_DOT.search(text):
            found = [self._transliterated(text, m) for m in _TRANSLITERATED.finditer(text)]
        inside = {i for a, b in found for i in range(a, b)}
        cues = {m.end(): _STRONG for m in _ZH_STRONG_CUE.finditer(text)}
        cues.update((m.end(), _WEAK) for m in _ZH_WEAK_CUE.finditer(text) if m.end() not in cues)
        titles = {m.start() for m in _ZH_TITLE.finditer(text)}
        for m in _ZH_SPEAKER.finditer(text):
            # A speaker's label opens a chat line (唐娟：我明天到), unless it is a word
            # (备注：, 经办人：).
            label = m.group(1)
            if label not in words or label in zh.name_words:
                found.append(m.span(1))
                inside.update(range(*m.span(1)))
        # Candidates: surname characters, and whatever follows a word naming a role.
        starts = {m.start() for m in zh.surname.finditer(text)}
        starts.update(m.end() for m in _ZH_ROLE.finditer(text) if m.end() < len(text))
        taken = 0
        for i in sorted(starts):
            if i < taken or i in inside:
                continue
            cue = cues.get(i, 0)
            if not cue and text.startswith(" ", i + 1) and not (i and _is_cjk(text[i - 1])):
                cue = _STRONG  # characters spaced out one by one (张 伟) are a name
            if text[i] in _ZH_STOP or (i and text[i - 1 : i + 1] in words and not cue):
                continue  # the end of a word: 紧张, 人马
            if i + 1 in titles:
                found.append((i, i + 1))  # 王医生, 李主任: the surname names the person
                continue
            # The start of a word (方案, 金额, 马上), unless a role word stands before
            # a word that is also a name (家属高明).
            head = text[i : i + 2]
            if head in words and not (cue == _STRONG and head in zh.name_words):
                continue
            span = self._chinese_name_at(text, i, cue, titles)
            if span is not None:
                found.append(span)
                taken = span[1]
        return found

    def _transliterated(self, text: str, m: re.Match[str]) -> _Span:
        """A dotted name without the words the pattern took on either side of it
        (家属彼得·帕克代诉: 彼得·帕克)."""
        start, end = m.span()
        first_dot = _NAME_DOT.search(text, start, end)
        last_dot = max(d.start() for d in _NAME_DOT.finditer(text, start, end))
        assert first_dot is not None
        # What the pattern took on in front: a role word (家属彼得·帕克), or anything up
        # to a character that ends a name (已联系约翰·史密斯).
        head = first_dot.start() - 1
        for pattern in (_ZH_STRONG_CUE, _ZH_WEAK_CUE):
            for cue in pattern.finditer(text, start, head):
                start = max(start, cue.end())
        for j in range(head - 1, start - 1, -1):
            if text[j] in _ZH_STOP:
                start = j + 1
                break
        for j in range(last_dot + 3, end):
            if text[j : j + 2] in self._zh.words or text[j] in _ZH_STOP:
                end = j
                break
        return start, end

    def _chinese_name_at(self, text: str, i: int, cue: int, titles: set[int]) -> _Span | None:
        zh = self._zh
        if not _is_cjk(text[i]):
            return None
        # The given name: up to two CJK characters, single spaces allowed between them
        # (张 伟), never a character that ends a name rather than continuing it.
        chars: list[int] = []
        spaced = text.startswith(" ", i + 1)
        j = i + 1
        while len(chars) < 2 and j < len(text):
            if spaced:
                if text[j] != " ":
                    break
                j += 1
            if j >= len(text) or not _is_cjk(text[j]) or text[j] in _ZH_STOP:
                break
            if j in titles:
                break
            chars.append(j)
            j += 1
        if not chars:
            return None
        compact = text[i] + "".join(text[c] for c in chars)
        # Three characters unless the third one opens a word of its own (王芳负责) or
        # the pair does not look like a given name.
        if (
            len(chars) == 2
            and compact not in zh.names
            and (text[chars[1] : chars[1] + 2] in zh.words or not zh.given(compact[1:], 0.0))
        ):
            chars = chars[:1]
            compact = compact[:2]
        end = chars[-1] + 1
        if compact in zh.names or end in titles:
            return i, end
        if text[i] not in zh.surnames:
            # After a role word, a name whose surname jieba does not know (覃玉兰), or a
            # given name alone (家属丽丽): what follows must look like a given name.
            given = compact[1:] if len(compact) == 3 else compact
            return (i, end) if cue == _STRONG and zh.given(given, 0.0) else None
        if cue == _STRONG:
            return i, end
        # After a word that often comes before a name (和, 由, 跟) the given name may look
        # less like one.
        return (i, end) if zh.given(compact[1:], _ZH_WEAK_SLACK if cue else 0.0) else None

    # English --------------------------------------------------------------------------

    def _english(self, text: str) -> list[_Span]:
        if not _CAPITAL.search(text):
            return []
        found: list[_Span] = []
        for m in _EN_TITLE.finditer(text):
            titled = _capitalised_run(text, m.end())
            if titled is not None:
                found.append(titled)
            elif _CJK_CHAR.match(text, m.end()):
                cjk = re.match(f"[{_CJK}]{{1,3}}", text[m.end() :])
                assert cjk is not None
                found.append((m.end(), m.end() + len(cjk.group())))
        words = list(_EN_WORD.finditer(text))
        i = 0
        while i < len(words):
            run = [words[i]]
            while i + len(run) < len(words) and _joins(text, run[-1], words[i + len(run)]):
                run.append(words[i + len(run)])
            i += len(run)
            named = [w for w in run if w.group() not in _EN_NOT_NAMES]
            if not named:
                continue
            first, last = named[0], named[-1]
            if last.group() in _EN_ORG_HEADS:
                continue
            if (len(named) >= 2 and not _sentence_start(text, first.start())) or (
                _cue_before(text, first.start()) or _cue_after(text, last.end())
            ):
                start = _inverted_start(text, first.start())
                found.append((start, _inverted_end(text, last.end())))
        return found


def _capitalised_run(text: str, at: int) -> _Span | None:
    m = _EN_WORD.match(text, at)
    if m is None:
        return None
    end = m.end()
    while True:
        nxt = re.match(r"[ ]+", text[end:])
        if nxt is None:
            break
        follow = _EN_WORD.match(text, end + nxt.end())
        if follow is None or follow.group() in _EN_NOT_NAMES:
            break
        end = follow.end()
    return at, end


_EN_GIVEN_AFTER_COMMA = re.compile(r", ([A-Z][a-z]+)\b(?![ ]?[A-Z])")
_EN_SURNAME_BEFORE_COMMA = re.compile(r"(?:^|(?<=[ (]))([A-Z][a-z]+), $")
# Lower-case words inside a surname: Dana van Dyke, Ana de la Cruz.
_EN_PARTICLE = re.compile(r" (?:(?:van|von|de|da|del|der|di|du|la|le|bin|ibn|al|ter) )+")


def _inverted_start(text: str, start: int) -> int:
    """Where a name written surname first starts: "Turner, Kim said" takes in Turner."""
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


def _joins(text: str, left: re.Match[str], right: re.Match[str]) -> bool:
    gap = text[left.end() : right.start()]
    return gap in (" ", "-") or _EN_PARTICLE.fullmatch(gap) is not None


def _sentence_start(text: str, at: int) -> bool:
    before = text[:at].rstrip(" \"'(")
    return not before or before[-1] in ".!?:;\n"


def _cue_before(text: str, at: int) -> bool:
    before = text[max(0, at - 24) : at].rstrip(" ,:(")
    word = re.search(r"[@A-Za-z']+$", before)
    return word is not None and word.group().lower() in _EN_CUE_BEFORE


def _cue_after(text: str, at: int) -> bool:
    after = text[at : at + 24]
    if after.startswith(("'s", "\u2019s", " here")):
        return True
    word = re.match(r"[ ]+([a-z]+)", after)
    return word is not None and word.group(1) in _EN_CUE_AFTER


def _merge(spans: list[_Span]) -> list[_Span]:
    merged: list[list[int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


@functools.cache
def default_finder() -> NameFinder:
    """The process's finder, built on first use (loading jieba's model takes a second)."""
    return NameFinder()
