"""A row's own names (its name columns are a deny list), found in that row's text."""

from __future__ import annotations

import re

from gateway.transforms.pii import NAME

# Looks for names in the row's own columns.
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]+")
_LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u024f]+")
# What may stand between two words of one name: "Wei Zhang", "Zhang, Wei", "O'Brien",
# "Jean-Luc", "J. Smith".
_NAME_GAP = re.compile(r"[\s,.'\u2019\-]{1,3}")
# Titles and suffixes in a name column say nothing about the person, and matching "Dr"
# everywhere would wreck the text.
_NAME_AFFIXES = frozenset(
    {"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "jr", "sr", "ii", "iii", "iv",
     "md", "phd", "dds", "dvm", "esq"}
)  # fmt: skip
# Duplicated from masking.py on purpose: each transform module stands alone.
_COMPOUND_SURNAMES = frozenset(
    {
        "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙",
        "宇文", "司徒", "夏侯", "轩辕", "令狐", "钟离", "司空", "端木", "南宫", "西门",
        "独孤", "呼延", "澹台", "公冶", "宗政", "濮阳", "太史", "申屠", "闻人", "万俟",
        "赫连", "拓跋", "百里", "东郭", "左丘", "第五", "闾丘", "公羊", "梁丘", "仲孙",
    }
)  # fmt: skip


class RowNameScrubber:
    """Finds one row's names in its text without compiling anything per row.

    Chinese names are matched as literal substrings (there are no word boundaries to
    respect): the full name, the same with spaces between the characters, and the given
    name alone when it has two or more characters (小明 for 王小明; a one-character given
    name such as 伟 would match inside countless ordinary words). Names in Latin script
    are matched word by word: a word spelled as in the name column (or capitalised or in
    capitals) is a hit on its own, any casing counts next to another hit, and adjacent
    hits merge, so "Wei Zhang", "Zhang, Wei" and "zhang wei" each become one ``[NAME]``.
    """

    def __init__(self, names: tuple[str, ...]) -> None:
        literals: set[str] = set()
        self.exact: set[str] = set()
        self.folded: set[str] = set()
        for name in names:
            if name.isascii() and name.isdigit():
                continue  # a phone or ID column: no word of a name in it
            if not name.isascii() and _CJK.search(name):
                literals.update(_cjk_literals(name))
            else:
                for word in _LATIN_WORD.findall(name):
                    if word.lower() in _NAME_AFFIXES:
                        continue
                    self.folded.add(word.lower())
                    if len(word) >= 2:
                        self.exact.update((word, word.capitalize(), word.upper()))
        # Longest first, so the full name goes before the given name inside it.
        self.literals = sorted(literals, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self.literals or self.exact)

    def __call__(self, text: str) -> str:
        for literal in self.literals:
            if literal in text:
                text = text.replace(literal, NAME)
        if self.exact:
            text = self._latin(text)
        return text

    def _latin(self, text: str) -> str:
        runs: list[list[int]] = []  # [start, end, words, words spelled as in the column]
        for start, end in self._hits(text):
            strong = text[start:end] in self.exact
            if runs and _NAME_GAP.fullmatch(text, runs[-1][1], start):
                run = runs[-1]
                run[1], run[2], run[3] = end, run[2] + 1, run[3] + strong
            else:
                runs.append([start, end, 1, int(strong)])
        # A run counts with one word spelled as in the column, or with two or more words
        # (a full name in any casing); a lone lower-case "will" for Will does not.
        spans = [(start, end) for start, end, words, strong in runs if strong or words > 1]
        if not spans:
            return text
        parts: list[str] = []
        last = 0
        for start, end in spans:
            parts += (text[last:start], NAME)
            last = end
        parts.append(text[last:])
        return "".join(parts)

    def _hits(self, text: str) -> list[tuple[int, int]]:
        """Where the text holds a whole word of the names, in any casing, in order.

        Each word of the names is looked for with ``str.find`` in the lower-cased text,
        which costs a pass in C per word of the names instead of a Python step per word
        of the text. Where lower-casing changes the text's length (a few letters outside
        Latin script do), positions would not line up, so the text is read word by word.
        """
        lowered = text.lower()
        if len(lowered) != len(text):
            return [
                m.span()
                for m in _LATIN_WORD.finditer(text)
                if m.group().lower() in self.folded and not in_placeholder(text, *m.span())
            ]
        hits = []
        for word in self.folded:
            at = lowered.find(word)
            while at >= 0:
                end = at + len(word)
                if (
                    not (at and _LATIN_WORD.match(text, at - 1))
                    and not _LATIN_WORD.match(text, end)
                    and not in_placeholder(text, at, end)  # the IP of [IP] is not Mr Ip
                ):
                    hits.append((at, end))
                at = lowered.find(word, end)
        hits.sort()
        return hits


def in_placeholder(text: str, start: int, end: int) -> bool:
    return start > 0 and text[start - 1] in "[_" and end < len(text) and text[end] in "]_"


def _cjk_literals(name: str) -> list[str]:
    runs = _CJK_RUN.findall(name)
    literals: list[str] = []
    if len(runs) > 1:
        # Names written with a separator (买买提·艾力): the whole name, each long part.
        literals += [sep.join(runs) for sep in ("·", "•", "・", ".", " ", "")]
        literals += [run for run in runs if len(run) >= 2]
        return literals
    if not runs or len(runs[0]) < 2:
        return literals
    run = runs[0]
    literals += [run, " ".join(run)]
    # What the name finder may have left of it when it took a part for a name
    # (赵志强记录 can become [NAME]强记录): the rest goes into the same placeholder.
    literals += [NAME + run[k:] for k in range(1, len(run))]
    literals += [run[:k] + NAME for k in range(1, len(run))]
    surname = 2 if len(run) > 2 and run[:2] in _COMPOUND_SURNAMES else 1
    given = run[surname:]
    if len(given) >= 2:
        literals.append(given)
    return literals
