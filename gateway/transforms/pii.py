"""Structured personal data in free text: e-mail addresses, phone numbers, resident IDs,
card numbers and IP addresses, found by pattern and then checked.

A number is only called an ID or a card when it would pass the issuer's own validation:
the ISO 7064 MOD 11-2 check character of a resident ID, the Luhn digit of a card, the
octets of an address. Each kind collects candidate spans over the whole text and
overlapping candidates are settled afterwards (the longest wins), so a phone number inside
an e-mail address or an IPv4 tail inside an IPv6 address is replaced once, as the larger
thing.

Chinese text has no spaces between words, so boundaries are never ``\\b``: a number ends
where the digits end, whatever script surrounds it (``联系电话13812345678请`` matches).
Full-width digits and signs, common in Chinese input, are folded to ASCII before matching.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

EMAIL = "[EMAIL]"
PHONE = "[PHONE]"
NATIONAL_ID = "[NATIONAL_ID]"
BANK_CARD = "[BANK_CARD]"
IP = "[IP]"
NAME = "[NAME]"

# Full-width forms map one character to one character, so a span found in the folded
# text is the same span in the original and the original can be cut by it.
_FOLD = dict(
    zip("０１２３４５６７８９＠．－＋（）：\u3000\u00a0ｘＸ", "0123456789@.-+():  xX", strict=True)
)
_FOLDABLE = re.compile("[" + re.escape("".join(_FOLD)) + "]")


def _folded(text: str) -> str:
    """``text`` with full-width forms folded. One ``str.replace`` per distinct character
    to fold: ``str.translate`` looks every character of a Chinese text up in its table,
    and Chinese punctuation (：, （ and ）) puts most Chinese texts on that path."""
    for ch in set(_FOLDABLE.findall(text)):
        text = text.replace(ch, _FOLD[ch])
    return text


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
_DIGIT_RUN = re.compile(r"[0-9]+")

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
    folded = _folded(text)
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
