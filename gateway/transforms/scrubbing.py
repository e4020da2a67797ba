"""Scrubbing of personal data out of free text.

``scrub`` replaces what it finds with a typed placeholder: ``[EMAIL]``, ``[PHONE]``,
``[NATIONAL_ID]``, ``[BANK_CARD]``, ``[IP]`` and ``[NAME]``.

Structured kinds are found by pattern and then checked, so that a number is only called an
ID or a card when it would pass the issuer's own validation: the ISO 7064 MOD 11-2 check
character of a resident ID, the Luhn digit of a card, the octets of an address. Each kind
collects candidate spans over the whole text and overlapping candidates are settled
afterwards (the longest wins), so a phone number inside an e-mail address or an IPv4 tail
inside an IPv6 address is replaced once, as the larger thing.

Chinese text has no spaces between words, so boundaries are never ``\\b``: a number ends
where the digits end, whatever script surrounds it (``联系电话13812345678请`` matches).
Full-width digits and signs, common in Chinese input, are folded to ASCII before matching.

Other people's names (a doctor, a relative) are found in the text itself by
``gateway.transforms.names``. That and the structured work are done once per distinct
text. The row's own names are per row (its direct identifiers are a deny list), so that
part runs only on rows with a name and is memoized per (text, names) pair. Small batches
(a page of a few hundred rows) are scrubbed from Python lists, which costs less than a
dozen Arrow kernel calls, and may share a ``ScrubCache`` of recent results across reads;
large batches stay columnar.
"""

from __future__ import annotations

import ipaddress
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from gateway.transforms.names import default_finder

EMAIL = "[EMAIL]"
PHONE = "[PHONE]"
NATIONAL_ID = "[NATIONAL_ID]"
BANK_CARD = "[BANK_CARD]"
IP = "[IP]"
NAME = "[NAME]"

# Full-width forms map one character to one character, so a span found in the folded
# text is the same span in the original and the original can be cut by it.
_FOLD = str.maketrans(
    "０１２３４５６７８９＠．－＋（）：\u3000\u00a0ｘＸ",
    "0123456789@.-+():  xX",
)

_EMAIL = re.compile(
    r"[A-Za-z0-9._%+\-]+@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}"
)

# Mainland mobile: 1[3-9] and nine more digits, in 3-4-4 groups or not, with an optional
# +86 / 0086 / 86 / (+86) prefix. Digits on either side make it part of a longer number.
_MOBILE = re.compile(
    r"(?<![0-9])(?:(?:\+|00)?86[ \-]?|\(\+?86\)[ ]?)?"
    r"1[3-9][0-9](?:[ \-]?[0-9]{4}){2}(?![0-9])"
)

# Mainland landline: area code 010 / 02x or 0xxx, then a 7-8 digit local number that
# never starts with 0 (that is the trunk prefix), an optional extension after it. Not glued
# to Latin letters: SF057811135433 is a parcel number.
_AREA_CODE = r"(?:010|02[0-9]|0[3-9][0-9]{2})"
_LANDLINE = re.compile(
    rf"(?<![0-9A-Za-z])(?:\({_AREA_CODE}\)[ ]?|{_AREA_CODE}[ \-]?)"
    r"[1-9][0-9]{2,3}[ \-]?[0-9]{4}(?:[ ]?(?:-|转|分机|ext\.?|x)[ ]?[0-9]{1,5})?(?![0-9])"
)

# E.164-like: a + and a country code, then digit groups; the digit count is checked after.
_INTERNATIONAL = re.compile(r"(?<![0-9A-Za-z+])\+[1-9][0-9]{0,3}(?:[ .\-]?\(?[0-9]{1,5}\)?){1,6}")

# North American numbers as people write them: 3-3-4 with separators or parentheses,
# optionally +1 / 001 / 1 before and an extension after.
_NANP = re.compile(
    r"(?<![0-9A-Za-z\-])(?:(?:\+1|001|1)[ .\-]?)?"
    r"(?:\([2-9][0-9]{2}\)[ ]?|[2-9][0-9]{2}[ .\-])[2-9][0-9]{2}[ .\-][0-9]{4}"
    r"(?:[ ]?(?:x|ext\.?|#)[ ]?[0-9]{1,5})?(?![0-9])"
)

# Ten bare digits are too common (order numbers, timestamps) to be a phone on their own:
# they count only with a +1 / 001 prefix or when the words around them say so.
_NANP_BARE = re.compile(
    r"(?<![0-9A-Za-z])(\+1[ \-]?|001[ \-]?)?[2-9][0-9]{2}[2-9][0-9]{6}(?:x[0-9]{1,5})?(?![0-9])"
)
# The nearest cue before the number decides: "call me on" says phone, "order" says not,
# and a bare "number" says phone only when nothing in the window says otherwise.
_CUE = re.compile(
    r"(?P<phone>(?<![A-Za-z])(?:phone|tel|call|mobile|cell|fax|contact|reach|text|sms|whatsapp"
    r"|dial|ring)|电话|手机|联系|致电|热线|座机|来电|微信)"
    r"|(?P<number>(?<![A-Za-z])number|号码)"
    r"|(?P<other>(?<![A-Za-z])(?:order|invoice|ticket|tracking|account|build|ref|id|no)"
    r"(?![A-Za-z])|订单|单号|编号|账号|卡号|工号|流水)",
    re.IGNORECASE,
)
_CUE_BEFORE = 96
_CUE_AFTER = 24

# Resident ID: region (6), birth date (8), sequence (3), check character; the date is
# checked by shape only, the check character by ISO 7064 MOD 11-2 afterwards.
_NATIONAL_ID_18 = re.compile(
    r"(?<![0-9])[1-9][0-9]{5}[ \-]?(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
    r"[ \-]?[0-9]{3}[0-9Xx](?![0-9])"
)
# The 15-digit form issued before 1999: two-digit year, no check character, so it is held
# to stricter edges than the checked form and must open with a real province code (which
# also keeps out order numbers that open with a date, 2023...).
_PROVINCE = r"(?:1[1-5]|2[1-3]|3[1-7]|4[1-6]|5[0-4]|6[1-5]|71|8[1-3])"
_NATIONAL_ID_15 = re.compile(
    rf"(?<![0-9A-Za-z]){_PROVINCE}[0-9]{{4}}[0-9]{{2}}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
    r"[0-9]{3}(?![0-9A-Za-z])"
)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

# Card numbers: 13-19 digits together, or in the groupings printed on cards and receipts
# (4-4-4-4[-3], 4-6-5 / 4-6-4, 6-13). Runs of four-digit groups may be longer than a card:
# the check picks the card out of them. Digits glued to Latin letters are order or parcel
# numbers (DD4188..., YT2785...), and 17 digits and an X are an ID with a bad check.
_BANK_CARD = re.compile(
    r"(?<![0-9A-Za-z])(?:[0-9]{13,19}"
    r"|[0-9]{4}(?:[ \-][0-9]{4}){2,5}(?:[ \-][0-9]{1,3})?"
    r"|[0-9]{4}[ \-][0-9]{6}[ \-][0-9]{4,5}"
    r"|[0-9]{6}[ \-][0-9]{13})(?![0-9A-Za-z])"
)

# A dotted quad not inside a longer dotted run (1.2.3.4.5 is a version, not an address)
# and not after a "v" (v1.2.3.4). Other letters may touch it: "ip192.168.1.1" is common.
_IPV4 = re.compile(r"(?<![0-9.vV])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9]|\.[0-9])")
# A loose run of hex digits and colons, or one ending in a dotted quad (::ffff:10.0.0.1,
# tried first so the quad is not cut off); the stdlib parser decides whether it is an
# address. The lookahead wants a colon early, so ordinary words are never candidates.
_IPV6 = re.compile(
    r"(?<![0-9A-Za-z:.])(?=[0-9A-Fa-f]{0,4}:)"
    r"(?:[0-9A-Fa-f:]{1,30}:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f:]{2,39})"
)

_DIGIT_OR_SIGN = re.compile(r"[0-9@:]")
# The characters _FOLD changes: most texts hold none, and then folding is skipped.
_FOLDABLE = re.compile("[０-９＠．－＋（）：\u3000\u00a0ｘＸ]")
_DIGIT_RUN = re.compile(r"[0-9]+")

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

# A check returns the span that really holds the value (it may trim the match), or None to
# reject the match.
_Span = tuple[int, int]
_Check = Callable[[str, "re.Match[str]"], _Span | None]


def is_valid_national_id(value: str) -> bool:
    """True for an 18-character resident ID whose check character is right."""
    body, check = value[:17], value[17:].upper()
    if len(value) != 18 or not body.isascii() or not body.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == check


def is_luhn_valid(digits: str) -> bool:
    """True when the Luhn check digit of a string of ASCII digits is right."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _plausible_issuer(digits: str) -> bool:
    """Leading digits that a payment network issues.

    Luhn alone passes one random number in ten; order numbers that start with a date
    (2024...), millisecond timestamps (17...) and 1x region codes are kept out this way.
    """
    first = digits[0]
    if first in "3456":
        return True
    if first == "9":  # national assignments, e.g. China's older 95xx debit cards
        return True
    if first == "8":  # UnionPay 81, RuPay 82, UzCard 86
        return digits[:2] in ("81", "82", "86")
    if first == "2":  # Mir, Mastercard's 2-series, JCB's 15-digit 2131
        head = int(digits[:4])
        return 2200 <= head <= 2204 or 2221 <= head <= 2720 or head == 2131
    if first == "1":  # JCB's 15-digit 1800
        return digits.startswith("1800")
    return False


def _accept(_text: str, m: re.Match[str]) -> _Span | None:
    return m.span()


def _check_national_id(_text: str, m: re.Match[str]) -> _Span | None:
    compact = m.group().replace(" ", "").replace("-", "")
    return m.span() if is_valid_national_id(compact) else None


def _check_bank_card(_text: str, m: re.Match[str]) -> _Span | None:
    # Grouped digits may have run into a neighbouring number ("2023 4111 1111 1111 1111",
    # "4111 1111 1111 1111 100元"): take the longest run of whole groups that validates,
    # rather than let the card through because its neighbour spoiled the check.
    groups = list(_DIGIT_RUN.finditer(m.group()))
    for count in range(len(groups), 0, -1):
        for first in range(len(groups) - count + 1):
            chosen = groups[first : first + count]
            digits = "".join(g.group() for g in chosen)
            if not 13 <= len(digits) <= 19:
                continue
            if _plausible_issuer(digits) and is_luhn_valid(digits):
                return m.start() + chosen[0].start(), m.start() + chosen[-1].end()
    return None


def _check_international(_text: str, m: re.Match[str]) -> _Span | None:
    # E.164 allows at most 15 digits. If the groups ran on into a following number, keep
    # the leading groups that fit rather than letting the whole phone number through.
    count, end = 0, 0
    for run in _DIGIT_RUN.finditer(m.group()):
        if count + len(run.group()) > 15:
            break
        count += len(run.group())
        end = run.end()
    return (m.start(), m.start() + end) if count >= 8 else None


def _check_bare_nanp(text: str, m: re.Match[str]) -> _Span | None:
    if m.group(1):
        return m.span()
    cues = [c.lastgroup for c in _CUE.finditer(text, max(0, m.start() - _CUE_BEFORE), m.start())]
    if cues:
        nearest = cues[-1]
        if nearest == "phone" or (nearest == "number" and "other" not in cues):
            return m.span()
        return None
    after = _CUE.search(text, m.end(), m.end() + _CUE_AFTER)
    return m.span() if after is not None and after.lastgroup == "phone" else None


def _check_ipv4(_text: str, m: re.Match[str]) -> _Span | None:
    return m.span() if all(int(octet) <= 255 for octet in m.group().split(".")) else None


def _check_ipv6(_text: str, m: re.Match[str]) -> _Span | None:
    candidate = m.group()
    if candidate.count(":") < 2 or not candidate.strip(":"):
        return None
    # A sentence may put a colon straight after the address ("地址是fe80::1:").
    for trimmed in (candidate, candidate[:-1] if candidate.endswith(":") else ""):
        if not trimmed:
            continue
        try:
            ipaddress.IPv6Address(trimmed)
        except ValueError:
            continue
        return m.start(), m.start() + len(trimmed)
    return None


# (placeholder, rank, pattern, check, cheap precondition on the folded text, fewest ASCII
# digits any match holds). On equal spans the lower rank wins: a checksummed ID beats a
# Luhn-valid card, a +86 mobile beats a card that happens to start with 86, and a
# Luhn-valid card beats the unchecked 15-digit ID. The digit counts let a text with a
# short number skip the patterns for long ones without running them.
_DETECTORS: tuple[tuple[str, int, re.Pattern[str], _Check, str, int], ...] = (
    (NATIONAL_ID, 0, _NATIONAL_ID_18, _check_national_id, "digit", 17),
    (NATIONAL_ID, 3, _NATIONAL_ID_15, _accept, "digit", 15),
    (PHONE, 1, _MOBILE, _accept, "digit", 11),
    (PHONE, 1, _LANDLINE, _accept, "digit", 10),
    (PHONE, 1, _INTERNATIONAL, _check_international, "+", 8),
    (PHONE, 1, _NANP, _accept, "digit", 10),
    (PHONE, 1, _NANP_BARE, _check_bare_nanp, "digit", 10),
    (BANK_CARD, 2, _BANK_CARD, _check_bank_card, "digit", 13),
    (IP, 4, _IPV4, _check_ipv4, ".", 4),
    (IP, 4, _IPV6, _check_ipv6, ":", 0),
    (EMAIL, 5, _EMAIL, _accept, "@", 0),
)
# Every pattern that needs digits starts at most two characters before its first digit
# ("(+86)", "+1 ", "(010)") and ends at most one character after its last ("X" of an ID,
# ")" of a grouped number), and its closing lookahead reads one more. So scanning from two
# characters before the text's first digit to two after its last finds the same matches
# as scanning the whole text, and the lookbehinds still see the characters before.
_LEAD = 2
_TRAIL = 2


def find_pii(text: str) -> list[tuple[int, int, str]]:
    """Non-overlapping ``(start, end, placeholder)`` spans of structured PII, in order."""
    folded = text.translate(_FOLD) if _FOLDABLE.search(text) else text
    if not _DIGIT_OR_SIGN.search(folded):
        return []
    digit_runs = list(_DIGIT_RUN.finditer(folded))
    digits = sum(run.end() - run.start() for run in digit_runs)
    first = last = 0
    if digit_runs:
        first = max(0, digit_runs[0].start() - _LEAD)
        last = min(len(folded), digit_runs[-1].end() + _TRAIL)
    candidates: list[tuple[int, int, int, str]] = []
    for placeholder, rank, pattern, check, needs, min_digits in _DETECTORS:
        if digits < min_digits:
            continue
        if needs == "digit":
            matches = pattern.finditer(folded, first, last)
        elif needs in folded:
            matches = pattern.finditer(folded)
        else:
            continue
        for m in matches:
            span = check(folded, m)
            if span is not None and span[1] > span[0]:
                candidates.append((span[0], span[1], rank, placeholder))
    if not candidates:
        return []
    # Longest first, then by rank: the larger reading of overlapping text is the right
    # one (an e-mail address containing a phone number is an e-mail address).
    candidates.sort(key=lambda c: (c[0] - c[1], c[2], c[0]))
    taken: list[tuple[int, int, str]] = []
    for start, end, _rank, placeholder in candidates:
        if all(end <= s or start >= e for s, e, _ in taken):
            taken.append((start, end, placeholder))
    taken.sort()
    return taken


def _scrub_text(text: str, detect_names: bool = True) -> str:
    """What depends on the text alone: structured kinds, then names no column lists."""
    spans = find_pii(text)
    if spans:
        text = _replace(text, spans)
    if detect_names:
        names = default_finder().spans(text)
        if names:
            text = _replace(
                text, [(a, b, NAME) for a, b in names if not _in_placeholder(text, a, b)]
            )
    return text


def _replace(text: str, spans: Sequence[tuple[int, int, str]]) -> str:
    parts: list[str] = []
    last = 0
    for start, end, placeholder in spans:
        parts.append(text[last:start])
        parts.append(placeholder)
        last = end
    parts.append(text[last:])
    return "".join(parts)


class _NameScrubber:
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
        for m in _LATIN_WORD.finditer(text):
            word = m.group()
            if _in_placeholder(text, m.start(), m.end()):
                continue  # the IP of [IP] is not Mr Ip
            strong = word in self.exact
            if not strong and word.lower() not in self.folded:
                continue
            if runs and _NAME_GAP.fullmatch(text, runs[-1][1], m.start()):
                run = runs[-1]
                run[1], run[2], run[3] = m.end(), run[2] + 1, run[3] + strong
            else:
                runs.append([m.start(), m.end(), 1, int(strong)])
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


def _in_placeholder(text: str, start: int, end: int) -> bool:
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
    surname = 2 if len(run) > 2 and run[:2] in _COMPOUND_SURNAMES else 1
    given = run[surname:]
    if len(given) >= 2:
        literals.append(given)
    return literals


def _as_strings(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    return arr


# Up to this many rows a batch is scrubbed from Python lists: a 100-row page would
# otherwise spend more in the fixed cost of the columnar path's Arrow calls than in
# scrubbing. Larger batches take the columnar path, which scrubs each distinct text once
# and leaves the cache alone (a big scan would only push out what repeated pages reuse).
SMALL_BATCH_ROWS = 2_048

# (text, the row's names as they came: nulls, blanks, duplicates and all)
_CacheKey = tuple[str, tuple[str | None, ...]]


class ScrubCache:
    """Recent scrubbing results, keyed by the text and the names it was scrubbed against.

    A result depends on nothing else (not on the recipient, the dataset or the time), so
    one cache serves every read in the process: a page read again, by anyone, is not
    scrubbed again. The names are part of the key, so one row's names never reach
    another row's text. Bounded in entries and in characters held, least recently used
    first out; a text longer than ``max_text_chars`` is not kept at all.
    """

    def __init__(
        self,
        *,
        max_entries: int = 16_384,
        max_chars: int = 4_000_000,
        max_text_chars: int = 2_000,
    ) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self.max_text_chars = max_text_chars
        self._entries: OrderedDict[_CacheKey, str] = OrderedDict()
        self._chars = 0
        # Reads run on worker threads; one lock taken once per batch, not per row.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def chars(self) -> int:
        """Characters held, texts and results together."""
        return self._chars

    def lookup(self, keys: Sequence[_CacheKey]) -> list[str | None]:
        """The cached result for each key, None where there is none."""
        entries = self._entries
        found: list[str | None] = []
        with self._lock:
            for key in keys:
                value = entries.get(key)
                if value is not None:
                    entries.move_to_end(key)
                found.append(value)
        return found

    def store(self, results: Sequence[tuple[_CacheKey, str]]) -> None:
        entries = self._entries
        with self._lock:
            for key, value in results:
                if len(key[0]) > self.max_text_chars or key in entries:
                    continue
                entries[key] = value
                self._chars += len(key[0]) + len(value)
            while entries and (len(entries) > self.max_entries or self._chars > self.max_chars):
                (text, _names), value = entries.popitem(last=False)
                self._chars -= len(text) + len(value)


def _names_key(names: Sequence[str | None]) -> tuple[str, ...]:
    """One row's names as the scrubber sees them: stripped, distinct, in a fixed order."""
    return tuple(sorted({n.strip() for n in names if n and n.strip()}))


def _scrub_rows(
    values: pa.Array,
    name_columns: Sequence[pa.Array],
    cache: ScrubCache | None,
    detect_names: bool,
) -> pa.Array:
    """The small-batch path: the same results as the columnar one, from Python lists.

    Rows are keyed by their names as they came, not by the normalized set of names:
    the result is a function of either, and the raw tuple costs nothing to build.
    """
    texts = values.to_pylist()
    keys: list[_CacheKey]
    if name_columns:
        rows = zip(*(column.to_pylist() for column in name_columns), strict=True)
        keys = [(t, r) for t, r in zip(texts, rows, strict=True) if t is not None]
    else:
        keys = [(t, ()) for t in texts if t is not None]
    hits = cache.lookup(keys) if cache is not None else [None] * len(keys)
    structured: dict[str, str] = {}
    scrubbers: dict[tuple[str, ...], _NameScrubber] = {}
    fresh: dict[_CacheKey, str] = {}
    done: list[str] = []
    for key, hit in zip(keys, hits, strict=True):
        if hit is None:
            hit = fresh.get(key)
        if hit is None:
            text, row_names = key
            hit = structured.get(text)
            if hit is None:
                hit = structured[text] = _scrub_text(text, detect_names)
            names = _names_key(row_names)
            if names:
                scrubber = scrubbers.get(names)
                if scrubber is None:
                    scrubber = scrubbers[names] = _NameScrubber(names)
                if scrubber:
                    hit = scrubber(hit)
            fresh[key] = hit
        done.append(hit)
    if cache is not None and fresh:
        cache.store(list(fresh.items()))
    if len(done) < len(texts):
        # Null texts stay null.
        filled = iter(done)
        return pa.array([None if t is None else next(filled) for t in texts], pa.string())
    return pa.array(done, pa.string())


def scrub(
    texts: pa.Array | pa.ChunkedArray,
    names: Sequence[pa.Array | pa.ChunkedArray] = (),
    *,
    cache: ScrubCache | None = None,
    detect_names: bool = True,
) -> pa.Array:
    """Replace personal data in free text with typed placeholders.

    ``names`` are columns aligned with ``texts`` (the row's ``name``, ``contact_name``...);
    each row's own names are scrubbed from that row's text. Other people's names are
    found by ``gateway.transforms.names`` unless ``detect_names`` is false (a cache is
    then not used: its entries hold the full scrub). Null texts stay null. A small batch
    reuses and fills ``cache`` when one is given.
    """
    values = _as_strings(texts)
    name_columns = [_as_strings(n) for n in names]
    for column in name_columns:
        if len(column) != len(values):
            raise ValueError(
                f"name column has {len(column)} rows, the text column has {len(values)}"
            )
    if len(values) <= SMALL_BATCH_ROWS:
        return _scrub_rows(values, name_columns, cache if detect_names else None, detect_names)

    encoded = pc.dictionary_encode(values)
    scrubbed = pa.array(
        [_scrub_text(v, detect_names) for v in encoded.dictionary.to_pylist()], pa.string()
    )
    result = pc.take(scrubbed, encoded.indices)
    if not name_columns:
        return result

    any_name = pc.is_valid(name_columns[0])
    for column in name_columns[1:]:
        any_name = pc.or_(any_name, pc.is_valid(column))
    needs_names = pc.and_(any_name, pc.is_valid(values))
    rows = pc.indices_nonzero(needs_names)
    if len(rows) == 0:
        return result

    row_texts = pc.take(encoded.indices, rows).to_pylist()
    row_names = [pc.take(column, rows).to_pylist() for column in name_columns]
    distinct_texts = scrubbed.to_pylist()
    scrubbers: dict[tuple[str, ...], _NameScrubber] = {}
    memo: dict[tuple[int, tuple[str, ...]], str] = {}
    replaced: list[str] = []
    for index, *row in zip(row_texts, *row_names, strict=True):
        key = _names_key(row)
        done = memo.get((index, key))
        if done is None:
            scrubber = scrubbers.get(key)
            if scrubber is None:
                scrubber = scrubbers[key] = _NameScrubber(key)
            text = distinct_texts[index]
            done = scrubber(text) if scrubber else text
            memo[(index, key)] = done
        replaced.append(done)
    return pc.replace_with_mask(result, needs_names, pa.array(replaced, pa.string()))
