"""What jieba knows about Chinese person names, read once from the files it ships: its
dictionary (words, their frequencies and part-of-speech tags) and its HMM's emission
probabilities for characters that open, continue or end a name."""

from __future__ import annotations

import importlib.resources
import re
import warnings
from dataclasses import dataclass

CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK_CHAR = re.compile(f"[{CJK}]")
NAME_DOT = re.compile("[·•・]")


def is_cjk(ch: str) -> bool:
    """The ranges of ``CJK``, compared rather than matched: this runs per character."""
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or "\uf900" <= ch <= "\ufaff"


ZH_WEAK_BEFORE = (
    "和",
    "跟",
    "与",
    "由",
    "给",
    "找",
    "问",
    "叫",
    "被",
    "让",
    "把",
    "嘱",
    "轮到",
    "刚才",
)
_ZH_NAME_TAGS = frozenset({"nr", "nrfg", "nrt"})
# Log-probabilities in jieba's HMM: a character opening names at least this often is a
# surname; a given name's last character ends names at least this often.
_ZH_FIRST_MIN = -9.0
_ZH_LAST_MIN = -9.0
# A character that ends (or stands in the middle of) this many of the dictionary's names
# may end (or continue) a name.
_ZH_NAME_ENDS_MIN = 20
_NEVER = -100.0
# A dictionary word seen this many times is an ordinary word, not a chance pairing; a
# character this frequent on its own (有, 和, 大) is not taken for a surname.
_ZH_WORD_MIN = 5
_ZH_COMMON_CHAR = 100_000
# A numeral opens a count (三楼, 两天), not a name.
_ZH_NUMERALS = frozenset("一二三四五六七八九十两")
# 老 before a surname calls a person by it (老张, 老高); the dictionary lists many such
# pairs as words: the rarer ones count, with a surname the HMM sees opening names often
# (not 老区, 老本), never a pair naming a relative (老哥, 老太).
_ZH_ELDER_MAX = 300
_ZH_ELDER_SURNAME_MIN = -6.0
_ZH_KIN_CHARS = frozenset("哥姐弟妹母父爷奶太婆公伯叔姑舅嫂老小")
# An ordinary noun (安宁, 夏天, 江南) is taken for a name after a role word only when it is
# no commoner than this, opens with a surname and is followed by what follows a person.
_ZH_WORD_NAME_MAX = 6_000
_ZH_NOUN_TAGS = frozenset({"n", "ns", "nz", "t", "nr", "nrfg", "nrt", "an"})
_ZH_VERB_TAGS = frozenset({"v", "vn", "vd", "a", "ad", "d"})
# Nouns and idioms of two or three characters ending in 人 or 员 name what a person is
# (陪护人, 网格员, 工作人员): a name may follow them.
_ZH_ROLE_TAGS = frozenset({"n", "l"})


@dataclass(frozen=True)
class ChineseModel:
    """What jieba knows about names, read once from the files it ships.

    ``surname`` matches a character that jieba's HMM often sees opening a person name;
    ``middle`` and ``last`` are its log-probabilities that a character continues or ends
    one. ``words`` are the dictionary's common words of two to four characters, whatever
    their tag (its ``nr`` tag is on 谢谢 and 黄金周 too), ``names`` its rarer words
    tagged as person names and ``name_words`` all of those (高明 among them).
    ``three_char_words`` are its three-character words not tagged as names, however
    rare (面试官): a character ending one is not a surname. ``elder_forms`` are its
    words of 老 and a surname that call a person by it (老张), ``role_nouns`` its nouns
    of two or three characters ending in 人 or 员 (工作人员, 陪护人).
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
    nouns: frozenset[str]
    verbs: frozenset[str]
    three_char_words: frozenset[str]
    elder_forms: frozenset[str]
    role_nouns: frozenset[str]

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


def load_chinese_model() -> ChineseModel:
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
    nouns: set[str] = set()
    verbs: set[str] = set()
    three_char_words: set[str] = set()
    elder_candidates: set[str] = set()
    role_nouns: set[str] = set()
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
            if (
                len(word) == 2
                and word[0] == "老"
                and freq <= _ZH_ELDER_MAX
                and tag in _ZH_NOUN_TAGS
                and word[1] not in _ZH_KIN_CHARS
            ):
                elder_candidates.add(word)
            if len(word) == 3 and tag not in _ZH_NAME_TAGS:
                three_char_words.add(word)
            if 2 <= len(word) <= 3 and word[-1] in "人员者" and tag in _ZH_ROLE_TAGS:
                role_nouns.add(word)
            if len(word) <= 2 and tag in _ZH_VERB_TAGS:
                verbs.add(word)
            if len(word) == 2 and tag in _ZH_NOUN_TAGS and freq <= _ZH_WORD_NAME_MAX:
                nouns.add(word)
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
        if p > _ZH_FIRST_MIN
        and c not in common_chars
        and c not in ZH_WEAK_BEFORE
        and c not in _ZH_NUMERALS
    )
    return ChineseModel(
        surname=re.compile("[" + "".join(surnames) + "]"),
        surnames=frozenset(surnames),
        middle=dict(emission[("M", "nr")]),
        last=dict(emission[("E", "nr")]),
        words=frozenset(words),
        names=frozenset(names),
        name_words=frozenset(name_words),
        name_ends=name_ends,
        name_middles=name_middles,
        nouns=frozenset(nouns),
        verbs=frozenset(verbs),
        three_char_words=frozenset(three_char_words),
        role_nouns=frozenset(role_nouns),
        elder_forms=frozenset(
            w
            for w in elder_candidates
            if w[1] in surnames and emission[("B", "nr")][w[1]] >= _ZH_ELDER_SURNAME_MIN
        ),
    )
