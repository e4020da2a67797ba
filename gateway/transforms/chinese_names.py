"""Chinese person names: where jieba's model says a name may start, decided from the
characters around it and the words that say a person is meant (see ``names``)."""

from __future__ import annotations

import re

from gateway.transforms.chinese_lexicon import (
    CJK,
    CJK_CHAR,
    NAME_DOT,
    ZH_WEAK_BEFORE,
    ChineseModel,
    is_cjk,
    load_chinese_model,
)

_Span = tuple[int, int]

_TRANSLITERATED = re.compile(f"[{CJK}]{{1,6}}(?:[·•・][{CJK}]{{1,6}})+")

# Words after which a Chinese note names a person (strong: a role; weak: a word that
# often, not always, comes before one), and titles that follow a name.
_ZH_STRONG_BEFORE = (
    "患者", "病人", "家属", "家人", "代诉", "联系人", "客户", "用户", "经办人", "复核", "负责人",
    "医生", "医师", "护士", "主任", "大夫", "同事", "同学", "朋友", "老公", "老婆", "丈夫",
    "妻子", "儿子", "女儿", "父亲", "母亲", "爸爸", "妈妈", "家长", "学生", "投诉人",
    "孙子", "孙女", "女婿", "儿媳", "爷爷", "奶奶", "外公", "外婆", "哥哥", "姐姐", "弟弟",
    "妹妹", "邻居", "室友", "宝贝", "委托人", "被申请人", "当事人", "被告", "原告", "证人",
    "候选人", "面试官", "客服", "助手", "主刀", "司机", "快递员", "收件人", "寄件人", "发件人",
    "业主", "租客", "房东", "住户", "病友",
    "申请人", "审批人", "推荐人", "转交", "交给", "分配给", "告知", "感谢", "谢谢", "联系", "@",
)  # fmt: skip
_ZH_AFTER = (
    "医生", "医师", "大夫", "护士", "主任", "院长", "老师", "教授", "经理", "总监", "师傅",
    "律师", "先生", "女士", "小姐", "阿姨", "叔叔", "爷爷", "奶奶", "同学", "同志", "总",
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
_ZH_SPEAKER = re.compile(f"(?:^|\n)([{CJK}]{{2,3}})(?=[：:])")
_ZH_ROLE_WORDS = frozenset(_ZH_STRONG_BEFORE + _ZH_AFTER)
# What shows the word before it names a person: 的 and a relative or role (夏天的女儿).
_ZH_KIN = _any_of([f"的{w}" for w in _ZH_STRONG_BEFORE if len(w) == 2 and w != "联系"])
_ZH_CLAUSE_END = frozenset("，。；：！？、（）【】「」《》“”,.;:!?()\n ")
_ZH_WEAK_CUE = _any_of(ZH_WEAK_BEFORE, _ZH_CUE_GAP)
# The end of the whole word: 工作人员, not 工作人.
_ZH_ROLE_END = re.compile(f"[人员者](?![人员者]){_ZH_CUE_GAP}")
# A title, unless it is the first character of a longer word (总结, 工作 are not titles).
_ZH_TITLE = _any_of(_ZH_AFTER, "(?![结是共])")
# What a person does, said right after a name (高明负责, 文静顶班, 马力记录): after one of
# these, a word or a given name that opens a clause is taken for a name.
_ZH_PREDICATES = (
    "负责", "记录", "主持", "列席", "汇报", "处理", "核实", "代课", "代收", "顶班", "接诊",
    "查房", "签字", "签收", "登记", "随访", "来电", "来访", "表示", "回复", "确认", "同意",
    "认为", "觉得", "一起", "已经", "刚才", "正在", "今天", "明天", "请假", "到场", "你好",
    "您好", "参加", "出席", "发言", "报告", "通知", "报修", "反映", "购买", "解答",
)  # fmt: skip
_ZH_PREDICATE = _any_of(_ZH_PREDICATES)
_ZH_ACT_CHARS = frozenset("已在也说都就是")
_ZH_ACT = _any_of(_ZH_PREDICATES + tuple(_ZH_ACT_CHARS))
# How a chat line opens after its speaker's label (安宁：我明天到).
_ZH_CHAT = frozenset("我你您他她咱大好收谢哈嗯麻明今")
# Characters that end a name rather than continue it: a given name is never these.
_ZH_STOP = frozenset("的了说在和与跟由因是也都就已将把被给向对从于请让叫来去到及或等、，。；：！？")
_ZH_WEAK_SLACK = 2.0
_ZH_BARE_SLACK = -1.5
_WEAK, _STRONG = 1, 2
_CJK_ONE = CJK_CHAR


class ChineseNames:
    """Finds Chinese person-name spans; build once, use from any thread."""

    def __init__(self, model: ChineseModel | None = None) -> None:
        self._zh = model if model is not None else load_chinese_model()

    def spans(self, text: str) -> list[_Span]:
        return self._chinese(text)

    def _chinese(self, text: str) -> list[_Span]:
        zh = self._zh
        found = []
        if NAME_DOT.search(text):
            found = [self._transliterated(text, m) for m in _TRANSLITERATED.finditer(text)]
        inside = {i for a, b in found for i in range(a, b)}
        cues = {
            m.end(): _STRONG
            for m in _ZH_STRONG_CUE.finditer(text)
            if not self._title_after_name(text, m)
        }
        cues.update((m.end(), _WEAK) for m in _ZH_WEAK_CUE.finditer(text) if m.end() not in cues)
        # What a person is, said by a noun ending in 人 or 员 (陪护人, 网格员).
        for m in _ZH_ROLE_END.finditer(text):
            at = m.start()
            if at and (
                text[at - 1 : at + 1] in zh.role_nouns
                or text[max(0, at - 2) : at + 1] in zh.role_nouns
            ):
                cues.setdefault(m.end(), _WEAK)
        titles = {m.start() for m in _ZH_TITLE.finditer(text)}
        for m in _ZH_SPEAKER.finditer(text):
            if self._speaker(text, m):
                found.append(m.span(1))
                inside.update(range(*m.span(1)))
        # Candidates: surname characters, whatever follows a word naming a role, and a
        # clause's first two characters when a person's act follows them (，秀兰已登记).
        starts = {m.start() for m in zh.surname.finditer(text)}
        starts.update(m.end() for m in _ZH_ROLE.finditer(text) if m.end() < len(text))
        # A surname jieba does not know, before a title and after a context word (找鞠医生).
        starts.update(t - 1 for t in titles if t - 1 in cues)
        for m in _ZH_ACT.finditer(text):
            i = m.start() - 2
            if i >= 0 and (_opens_clause(text, i) or cues.get(i) == _WEAK):
                starts.add(i)
        # After a word that often comes before a name, a given name alone (让秀英带给你).
        starts.update(at for at, kind in cues.items() if kind == _WEAK and at < len(text))
        # A given name alone before 的 and a relative (我是秀云的妈妈).
        starts.update(m.start() - 2 for m in _ZH_KIN.finditer(text) if m.start() >= 2)
        taken = 0
        words = zh.words
        three_char_words = zh.three_char_words
        for i in sorted(starts):
            if i < taken or i in inside:
                continue
            cue = cues.get(i, 0)
            # What _candidate would turn down first, without the call: with no context
            # word, the end of a word (紧张), or the start of one (方案) inside a clause,
            # neither before a title nor before 的.
            if (
                not cue
                and i
                and (
                    text[i - 1 : i + 1] in words
                    or (i > 1 and text[i - 2 : i + 1] in three_char_words)
                    or (
                        text[i : i + 2] in words
                        and text[i - 1] not in _ZH_CLAUSE_END
                        and i + 1 not in titles
                        and not (i + 2 in titles and text[i : i + 2] in zh.name_words)
                        and not text.startswith("的", i + 2)
                        and not self._subject(text, i)
                    )
                )
            ):
                continue
            decided = self._candidate(text, i, cue, titles)
            if decided is not None:
                span, takes = decided
                found.append(span)
                if takes:
                    taken = span[1]
        return found

    def _title_after_name(self, text: str, m: re.Match[str]) -> bool:
        """Whether a title that may come before a name (医生, 主任) here follows one
        (王医生列席): then what comes after it is what the person did."""
        start = m.start()
        if m.group().rstrip(" ：:") not in _ZH_AFTER or not start or not is_cjk(text[start - 1]):
            return False
        return text[start - 1] not in _ZH_STOP and text[start - 2 : start] not in self._zh.words

    def _speaker(self, text: str, m: re.Match[str]) -> bool:
        """Whether the label that opens a chat line (唐娟：我明天到) names its speaker.

        It must look like a name: a surname first (老张 too), or a given name alone. A
        label that is also a word (安宁：) counts only when a chat line follows it, so
        备注： and 经办人： are not names."""
        zh = self._zh
        label = m.group(1)
        if label in zh.name_words:
            return True
        if label in _ZH_ROLE_WORDS:
            return False
        surname = label[0] in zh.surnames or (label[0] in "老小" and label[1] in zh.surnames)
        if label in zh.words:
            return surname and label in zh.nouns and text[m.end() + 1 : m.end() + 2] in _ZH_CHAT
        return surname or (len(label) == 2 and zh.given(label, 0.0))

    def _candidate(
        self, text: str, i: int, cue: int, titles: set[int]
    ) -> tuple[_Span, bool] | None:
        """The name starting at ``i``, if any, and whether it takes the characters it
        covers (a surname before a title does not)."""
        zh = self._zh
        words = zh.words
        if (
            not cue
            and text.startswith(" ", i + 1)
            and not (i and is_cjk(text[i - 1]) and text[i - 1] not in _ZH_STOP)
        ):
            cue = _STRONG  # characters spaced out one by one (张 伟) are a name
        if (i and text[i - 1 : i + 1] in words and not cue) or (
            text[i] in _ZH_STOP and not self._word_name(text, i, cue)
        ):
            return None  # the end of a word: 紧张, 人马
        if i + 1 in titles:
            return (i, i + 1), False  # 王医生, 李主任: the surname names the person
        if cue and _ZH_STRONG_CUE.match(text, i):
            return None  # a second role word (联系客服金琴): the name comes after it
        head = text[i : i + 2]
        if self._called_by_surname(text, i, cue):
            return (i, i + 2), True  # 老张, 小李: a person called by the surname
        if i + 2 in titles and head in zh.name_words and head in zh.nouns:
            return (i, i + 2), True  # a rare enough word listed as a name: 张旭大夫
        # The start of a word (方案, 金额, 马上), unless a role word stands before
        # a word that is also a name (家属高明).
        if head in words and not (cue == _STRONG and head in zh.name_words):
            return ((i, i + 2), True) if self._word_name(text, i, cue) else None
        span = self._chinese_name_at(text, i, cue, titles)
        return None if span is None else (span, True)

    def _called_by_surname(self, text: str, i: int, cue: int) -> bool:
        """Whether 老 or 小 and a surname at ``i`` call a person by it, where a person is
        meant: a pair that is no dictionary word (小李), or one of the dictionary's words
        of 老 and a common surname (老张) that does not open a longer word."""
        zh = self._zh
        head = text[i : i + 2]
        if len(head) < 2 or text[i + 1] in _ZH_STOP:
            return False
        if head in zh.words:
            if head not in zh.elder_forms or text[i : i + 3] in zh.words:
                return False
            if text[i : i + 3] in zh.three_char_words:
                return False
        elif not (
            (text[i] in "老小" and text[i + 1] in zh.surnames)
            or (text[i] == "小" and zh.given(text[i + 1], 0.0))
        ):
            return False  # 老 calls by the surname (老张), 小 by either (小李, 小明)
        return bool(
            cue or _opens_clause(text, i) or _acts(text, i + 2) or _ZH_KIN.match(text, i + 2)
        )

    def _word_name(self, text: str, i: int, cue: int) -> bool:
        """Whether the word at ``i`` is a name that is also a word.

        After a role word: a rare enough noun opening with a surname (家属安宁, 客户夏天),
        not the start of a longer word, followed by what follows a person (punctuation,
        a verb or adverb, a role word: 安宁代诉, 夏天来电). After a word that often comes
        before a name (和, 由), or at the start of a clause, only a word jieba tags as a
        name (由常青随访, ，高明负责). Anywhere, a word followed by 的 and a role word
        (夏天的女儿), and a word jieba tags as a name before a verb (高峰麻烦查收)."""
        zh = self._zh
        head = text[i : i + 2]
        if head in _ZH_ROLE_WORDS:
            return False
        kin = _ZH_KIN.match(text, i + 2) is not None
        acts = _acts(text, i + 2)
        if not kin and cue != _STRONG:
            if not (cue or _opens_clause(text, i) or self._subject(text, i)):
                return False
            if head not in zh.name_words and not (
                acts or (cue and _pause_or_verb(zh, text, i + 2))
            ):
                return False
        # A noun is a name only if it ends as given names do (not 门诊, 水壶), or calls a
        # person by the surname (老练).
        if head not in zh.name_words and (
            head not in zh.nouns or not (head[0] in "老小" or zh.given(head[1], 0.0))
        ):
            return False
        if text[i] not in zh.surnames and head not in zh.name_words:
            return False
        if text[i : i + 3] in zh.words or text[i : i + 4] in zh.words:
            return False
        after = text[i + 2 : i + 3]
        return (
            not after
            or not is_cjk(after)
            or after in _ZH_STOP
            or after in zh.verbs
            or text[i + 2 : i + 4] in zh.verbs
            or _ZH_STRONG_CUE.match(text, i + 2) is not None
            or acts
        )

    def _subject(self, text: str, i: int) -> bool:
        """Whether the two characters at ``i`` are a word jieba tags as a name and a verb
        follows them: the subject of a clause (高峰麻烦查收, 上次向阳帮我改). Not before
        的, where the words tagged as names are as often adjectives (周全的方案)."""
        zh = self._zh
        at = i + 2
        return text[i:at] in zh.name_words and (
            _acts(text, at) or text[at : at + 1] in zh.verbs or text[at : at + 2] in zh.verbs
        )

    def _transliterated(self, text: str, m: re.Match[str]) -> _Span:
        """A dotted name without the words the pattern took on either side of it
        (家属彼得·帕克代诉: 彼得·帕克)."""
        start, end = m.span()
        first_dot = NAME_DOT.search(text, start, end)
        last_dot = max(d.start() for d in NAME_DOT.finditer(text, start, end))
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
        if not is_cjk(text[i]):
            return None
        chars = _given_chars(text, i, titles)
        if not chars:
            return None
        if text[i : i + 3] in zh.name_words and text[i] in zh.surnames:
            return i, i + 3  # a name the dictionary lists: 张建国
        # The character belongs to a three-character role word after it (申请方代理人); a
        # two-character one is as often a given name (树人, 佳人).
        if cue != _STRONG and text[i + 1 : i + 4] in zh.role_nouns:
            return None
        if cue != _STRONG and (text[i : i + 3] in zh.words or text[i : i + 4] in zh.words):
            return None  # the start of a longer word: 阿司匹林
        compact = text[i] + "".join(text[c] for c in chars)
        # Three characters unless the third one opens a word of its own (王芳负责) or a
        # role word (丽丽代诉), or
        # the pair does not look like a given name.
        if (
            len(chars) == 2
            and compact not in zh.names
            and (
                (text[chars[1] : chars[1] + 2] in zh.words and chars[1] + 1 not in titles)
                or _ZH_STRONG_CUE.match(text, chars[1]) is not None
                or not zh.given(compact[1:], 0.0)
            )
        ):
            chars = chars[:1]
            compact = compact[:2]
        end = chars[-1] + 1
        if (cue and compact in zh.names) or end in titles:
            return i, end
        if (
            len(compact) == 2
            and cue != _STRONG
            and text[end - 1 : end + 1] in zh.words
            and not (_acts(text, end) or text[end : end + 2] in zh.verbs)
        ):
            return None  # the given name opens a word (问过情况), not before an act (赵峰顶班)
        if len(compact) == 3 and cue != _STRONG and (compact[1:] in zh.verbs or compact[1] == "一"):
            return None  # what follows the surname is a verb or a count: 科处理, 查一下
        if text[i] not in zh.surnames:
            # After a role word, a name whose surname jieba does not know (覃玉兰), or a
            # given name alone (家属丽丽): what follows must look like a given name.
            # A given name alone may also open a clause before a person's act, stand
            # before 的 and a relative (秀云的妈妈), or after a word that often comes
            # before a name, before a verb or a pause (让秀英带给你).
            given = compact[1:] if len(compact) == 3 else compact
            if given in zh.verbs:
                return None  # what follows is a verb, not a given name: 家长群通知
            alone = cue == _STRONG or (
                len(compact) == 2
                and compact not in zh.words
                and (
                    ((cue or _opens_clause(text, i)) and _acts(text, end))
                    or _ZH_KIN.match(text, end) is not None
                    or (cue and _pause_or_verb(zh, text, end))
                )
            )
            if alone and zh.given(given, 0.0):
                return i, end
            # After a role word, a surname jieba does not know and one given character
            # (女婿覃雷).
            strong_surname = cue == _STRONG and len(compact) == 2 and compact not in zh.words
            return (i, end) if strong_surname and zh.given(compact[1:], 0.0) else None
        if cue == _STRONG:
            return i, end
        # After a word that often comes before a name (和, 由, 跟), or before a person's
        # act, the given name may look less like one.
        acting = _opens_clause(text, i) and _acts(text, end)
        kin = _ZH_KIN.match(text, end) is not None
        # Without any of those, a three-character name must look more like one: most
        # ordinary words read as a surname and two characters are taken there (蒙脱石).
        if cue or acting or kin:
            slack = _ZH_WEAK_SLACK
        else:
            slack = _ZH_BARE_SLACK if len(compact) == 3 else 0.0
        return (i, end) if zh.given(compact[1:], slack) else None


def _given_chars(text: str, i: int, titles: set[int]) -> list[int]:
    """Where the given name after the surname at ``i`` may stand: up to two CJK
    characters, single spaces allowed between them (张 伟, 张 秀 英) or after the surname
    only (刘 秀珍), never a character that ends a name rather than continuing it, nor a
    title."""
    chars: list[int] = []
    spaced = text.startswith(" ", i + 1)
    j = i + 1
    if not spaced:  # the common case, without the checks for spaces
        for j in range(i + 1, min(i + 3, len(text))):
            ch = text[j]
            if not _CJK_ONE.match(ch) or ch in _ZH_STOP or j in titles:
                break
            chars.append(j)
    else:
        while len(chars) < 2 and j < len(text):
            if spaced:
                if text[j] != " ":
                    break
                j += 1
            if j >= len(text) or not is_cjk(text[j]) or text[j] in _ZH_STOP:
                break
            if j in titles:
                break
            chars.append(j)
            j += 1
            if spaced and not text.startswith(" ", j):
                spaced = False
    return chars


def _pause_or_verb(zh: ChineseModel, text: str, at: int) -> bool:
    """Whether a clause pauses at ``at`` or a verb stands there (被文静订了, 轮到安宁，)."""
    return (
        text[at : at + 1] in _ZH_CLAUSE_END
        or at >= len(text)
        or text[at] in zh.verbs
        or text[at : at + 2] in zh.verbs
    )


def _opens_clause(text: str, i: int) -> bool:
    return not i or text[i - 1] in _ZH_CLAUSE_END


def _acts(text: str, at: int) -> bool:
    """Whether what stands at ``at`` is something a person does (负责, 已登记)."""
    return text[at : at + 1] in _ZH_ACT_CHARS or _ZH_PREDICATE.match(text, at) is not None
