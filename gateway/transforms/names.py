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

from gateway.transforms.chinese_lexicon import CJK_CHAR
from gateway.transforms.chinese_names import ChineseNames
from gateway.transforms.english_names import english_spans

_Span = tuple[int, int]


class NameFinder:
    """Finds person-name spans in a text; build once, use from any thread."""

    def __init__(self) -> None:
        self._chinese = ChineseNames()

    def spans(self, text: str) -> list[_Span]:
        found = english_spans(text)
        # An ASCII text is known to be one without a scan.
        if not text.isascii() and CJK_CHAR.search(text):
            found += self._chinese.spans(text)
        return _merge(found)


def _merge(spans: list[_Span]) -> list[_Span]:
    """The spans in order, overlapping or touching ones joined."""
    if len(spans) < 2:
        return spans
    ordered = sorted(spans)
    merged = [ordered[0]]
    for start, end in ordered[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            if end > last_end:
                merged[-1] = (last_start, end)
        else:
            merged.append((start, end))
    return merged


@functools.cache
def default_finder() -> NameFinder:
    """The process's finder, built on first use (loading jieba's model takes a second)."""
    return NameFinder()
