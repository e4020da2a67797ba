"""Masks for direct identifiers under the pseudonymized profile.

A mask keeps just enough of a value for a person to recognise which record they are
looking at (``138****5678``, ``z***@example.com``, ``张*``) and hides the rest. Every mask
takes an Arrow array and returns a ``pa.string()`` array of the same length in which a null
stays null. The string work runs once per distinct value: the column is dictionary-encoded,
the dictionary is masked, and the result is rebuilt with ``take``. A small batch is masked
from a Python list instead, with a dict for the distinct values: the same result without
the fixed cost of the Arrow calls. The email mask of a large batch runs as Arrow string
kernels over the dictionary (``_email_kernel``), held to the per-value ``_email`` by a
property test.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from gateway.transforms import distinct

Mask = Callable[[pa.Array], pa.Array]

# Two-character surnames. Without this list 欧阳娜娜 would keep only 欧 and the masked
# value would read as a different family name.
COMPOUND_SURNAMES = frozenset(
    {
        "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙",
        "宇文", "司徒", "夏侯", "轩辕", "令狐", "钟离", "司空", "端木", "南宫", "西门",
        "独孤", "呼延", "澹台", "公冶", "宗政", "濮阳", "太史", "申屠", "闻人", "万俟",
        "赫连", "拓跋", "百里", "东郭", "左丘", "第五", "闾丘", "公羊", "梁丘", "仲孙",
    }
)  # fmt: skip

_NON_DIGIT = re.compile(r"\D")
_WHITESPACE = re.compile(r"\s+")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
# "Zhang, Wei" puts the surname first; the comma is the only signal of that order.
_SURNAME_FIRST = re.compile(r"^\s*([^,]+?)\s*,\s*(.+?)\s*$")


# Up to this many values a column is masked from a Python list.
SMALL_BATCH_ROWS = 2_048


def _per_distinct(
    arr: pa.Array | pa.ChunkedArray,
    fn: Callable[[str], str],
    kernel: Callable[[pa.Array], pa.Array] | None = None,
) -> pa.Array:
    """Apply ``fn`` to each distinct non-null value and spread the results back to rows;
    ``kernel``, when given, is ``fn`` as Arrow compute over an array of distinct values,
    used for batches above ``SMALL_BATCH_ROWS``."""
    values = distinct.as_strings(arr)
    if len(values) <= SMALL_BATCH_ROWS:
        return distinct.map_list(values.to_pylist(), fn, pa.string())
    if kernel is not None:
        return distinct.map_array_with(values, kernel)
    return distinct.map_array(values, fn, pa.string())


def _stars(n: int) -> str:
    return "*" * n


def _phone(value: str) -> str:
    digits = _NON_DIGIT.sub("", value)
    # Drop the country code so that +86 138 1234 5678 and 13812345678 mask the same way.
    if len(digits) == 15 and digits.startswith("0086") and digits[4] == "1":
        digits = digits[4:]
    elif len(digits) == 13 and digits.startswith("86") and digits[2] == "1":
        digits = digits[2:]
    if len(digits) >= 8:
        return digits[:3] + _stars(len(digits) - 7) + digits[-4:]
    # Too short to keep anything without giving most of it away.
    return _stars(len(digits) if digits else len(value))


def _email(value: str) -> str:
    value = value.strip()
    local, at, domain = value.rpartition("@")
    if not at:
        # Not an address at all: treat the whole value as the local part.
        local, domain = value, ""
    # A fixed three stars, so the mask does not tell how long the local part was.
    head = local[:1] + "***" if local else "***"
    return f"{head}@{domain}" if at else head


# What ``str.strip()`` removes: every code point for which ``str.isspace()`` holds (Arrow's
# own whitespace trim draws the line elsewhere, e.g. at U+001C..U+001F).
# Spelled out: computing it scans every code point (50 ms at import); a test checks it.
_PY_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
    "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _email_kernel(values: pa.Array) -> pa.Array:
    """``_email`` over an array of non-null strings, as Arrow string kernels."""
    text = pc.utf8_trim(values, characters=_PY_WHITESPACE)
    # Split at the last "@" only: [local, domain], or [text] when there is none.
    parts = pc.split_pattern(text, "@", max_splits=1, reverse=True)
    starts = parts.offsets.slice(0, len(parts))
    ends = parts.offsets.slice(1)
    local = pc.take(parts.values, starts)
    domain = pc.take(parts.values, pc.subtract(ends, 1))
    has_at = pc.equal(pc.subtract(ends, starts), 2)
    first = pc.utf8_slice_codeunits(local, 0, 1)  # code points, as str[:1]
    with_at = pc.binary_join_element_wise(first, "***@", domain, "")
    without = pc.binary_join_element_wise(first, "***", "")
    return pc.if_else(has_at, with_at, without)


def _national_id(value: str) -> str:
    value = value.strip().upper()
    if len(value) < 8:
        return _stars(len(value))
    return _stars(len(value) - 4) + value[-4:]


def _chinese_name(value: str) -> str:
    value = _WHITESPACE.sub("", value)
    if len(value) <= 1:
        return value
    keep = 2 if len(value) > 2 and value[:2] in COMPOUND_SURNAMES else 1
    return value[:keep] + _stars(len(value) - keep)


def _latin_name(value: str) -> str:
    surname_first = _SURNAME_FIRST.match(value)
    if surname_first:
        surname, given = surname_first.groups()
        return f"{surname}, " + " ".join("*" for _ in given.split())
    tokens = value.split()
    if not tokens:
        return value
    if len(tokens) == 1:
        # A lone token may be a given name as easily as a surname: hide it.
        return _generic(tokens[0])
    return " ".join(["*"] * (len(tokens) - 1) + [tokens[-1]])


def _name(value: str) -> str:
    if _CJK.search(value):
        return _chinese_name(value)
    return _latin_name(value.strip())


def _generic(value: str) -> str:
    if len(value) <= 2:
        return _stars(len(value))
    return value[0] + _stars(len(value) - 2) + value[-1]


def mask_phone(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``13812345678`` and ``+86 138-1234-5678`` -> ``138****5678``."""
    return _per_distinct(arr, _phone)


def mask_email(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``zhang.wei@example.com`` -> ``z***@example.com``."""
    return _per_distinct(arr, _email, _email_kernel)


def mask_national_id(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``11010519491231123X`` -> ``**************123X``."""
    return _per_distinct(arr, _national_id)


def mask_name(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Keep the surname and hide the rest.

    ``张伟`` -> ``张*``, ``欧阳娜娜`` -> ``欧阳**`` (compound surnames stay whole),
    ``Wei Zhang`` -> ``* Zhang``, ``Zhang, Wei`` -> ``Zhang, *`` (the comma puts it first).
    """
    return _per_distinct(arr, _name)


def mask_generic(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Keep the first and last character: ``secret`` -> ``s****t``."""
    return _per_distinct(arr, _generic)


MASKS: dict[str, Mask] = {
    "phone": mask_phone,
    "email": mask_email,
    "national_id": mask_national_id,
    "name": mask_name,
    "generic": mask_generic,
}


def mask_for(kind: str) -> Mask:
    """The mask for a column's declared kind; an unknown kind is a configuration error."""
    try:
        return MASKS[kind]
    except KeyError:
        known = ", ".join(sorted(MASKS))
        raise ValueError(f"unknown mask kind {kind!r}; expected one of: {known}") from None
