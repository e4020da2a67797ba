from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.transforms import masking
from gateway.transforms.masking import (
    mask_email,
    mask_for,
    mask_generic,
    mask_name,
    mask_national_id,
    mask_phone,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("13812345678", "138****5678"),
        ("+86 138 1234 5678", "138****5678"),
        ("+86-138-1234-5678", "138****5678"),
        ("0086 13812345678", "138****5678"),
        ("8613812345678", "138****5678"),
        ("138-1234-5678", "138****5678"),
        ("010-12345678", "010****5678"),  # 11 digits, same shape as a mobile
        ("0755-1234567", "075****4567"),
        ("+44 20 7946 0958", "442*****0958"),
        ("12345678", "123*5678"),  # 8 digits: the shortest that keeps both ends
        ("1234567", "*******"),
        ("12345", "*****"),
        ("n/a", "***"),
        ("", ""),
    ],
)
def test_mask_phone(value: str, expected: str) -> None:
    assert mask_phone(pa.array([value])).to_pylist() == [expected]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("zhang.wei@example.com", "z***@example.com"),
        ("a@b.cn", "a***@b.cn"),
        ("  Li.Na@Example.COM ", "L***@Example.COM"),
        ("weird@name@example.com", "w***@example.com"),
        ("@example.com", "***@example.com"),
        ("not-an-email", "n***"),
        ("", "***"),
    ],
)
def test_mask_email(value: str, expected: str) -> None:
    assert mask_email(pa.array([value])).to_pylist() == [expected]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("11010519491231123X", "**************123X"),
        ("11010519491231123x", "**************123X"),
        ("110105194912310", "***********2310"),  # 15-digit legacy form
        ("1234567", "*******"),
        ("", ""),
    ],
)
def test_mask_national_id(value: str, expected: str) -> None:
    assert mask_national_id(pa.array([value])).to_pylist() == [expected]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("张伟", "张*"),
        ("王小明", "王**"),
        ("欧阳娜娜", "欧阳**"),
        ("司马懿", "司马*"),
        ("诸葛亮", "诸葛*"),
        ("欧阳", "欧*"),  # two characters: a surname and a given name, not a compound
        ("张 伟", "张*"),
        ("张", "张"),
        ("Wei Zhang", "* Zhang"),
        ("John Ronald Tolkien", "* * Tolkien"),
        ("Zhang, Wei", "Zhang, *"),
        ("Madonna", "M*****a"),
        ("", ""),
    ],
)
def test_mask_name(value: str, expected: str) -> None:
    assert mask_name(pa.array([value])).to_pylist() == [expected]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("secret", "s****t"),
        ("abc", "a*c"),
        ("ab", "**"),
        ("a", "*"),
        ("", ""),
        ("北京市海淀区", "北****区"),
    ],
)
def test_mask_generic(value: str, expected: str) -> None:
    assert mask_generic(pa.array([value])).to_pylist() == [expected]


@pytest.mark.parametrize(
    "mask", [mask_phone, mask_email, mask_national_id, mask_name, mask_generic]
)
def test_nulls_stay_null_and_output_is_string(mask: masking.Mask) -> None:
    out = mask(pa.array(["13812345678", None, "", None], pa.string()))
    assert out.type == pa.string()
    assert out.null_count == 2
    assert out.to_pylist()[1] is None and out.to_pylist()[3] is None
    assert len(mask(pa.array([], pa.string()))) == 0
    assert mask(pa.array([None, None])).to_pylist() == [None, None]


@pytest.mark.parametrize(
    "column",
    [
        pa.array(["13812345678", None], pa.large_string()),
        pa.array(["13812345678", None]).dictionary_encode(),
        pa.chunked_array([["13812345678"], [None]]),
        pa.array([13812345678, None], pa.int64()),
    ],
)
def test_accepts_other_string_like_columns(column: pa.Array) -> None:
    out = mask_phone(column)
    assert out.type == pa.string()
    assert out.to_pylist() == ["138****5678", None]


def test_work_is_done_once_per_distinct_value(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    original = masking._phone

    def counting(value: str) -> str:
        seen.append(value)
        return original(value)

    monkeypatch.setattr(masking, "_phone", counting)
    out = mask_phone(pa.array(["13812345678", "13912345678", None] * 1000))
    assert sorted(seen) == ["13812345678", "13912345678"]
    assert out.to_pylist()[:3] == ["138****5678", "139****5678", None]


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("phone", "13812345678", "138****5678"),
        ("email", "zhang.wei@example.com", "z***@example.com"),
        ("national_id", "11010519491231002X", "**************002X"),
        ("name", "欧阳娜娜", "欧阳**"),
        ("generic", "secret", "s****t"),
    ],
)
def test_mask_for(kind: str, value: str, expected: str) -> None:
    assert mask_for(kind)(pa.array([value])).to_pylist() == [expected]


def test_mask_for_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown mask kind 'ssn'"):
        mask_for("ssn")


# -- the email kernel against the per-value reference ----------------------------------

# Text without lone surrogates (they cannot be UTF-8, so no Arrow string holds them),
# weighted towards the characters that matter to the mask: "@", whitespace (also the
# kinds Python strips and Arrow's own trim would not), and non-ASCII letters.
_EMAILISH = st.text(
    alphabet=st.one_of(
        st.sampled_from("@@@ .\t\n\x1c\x1f\x85\u00a0\u2028\u3000éü张"),
        st.characters(exclude_categories=("Cs",)),
    ),
    max_size=24,
)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.one_of(st.none(), _EMAILISH), max_size=40))
def test_email_kernel_matches_the_per_value_mask(values: list[str | None]) -> None:
    distinct = sorted({v for v in values if v is not None})
    assert masking._email_kernel(pa.array(distinct, pa.string())).to_pylist() == [
        masking._email(v) for v in distinct
    ]


@settings(max_examples=50, deadline=None, database=None)
@given(st.lists(st.one_of(st.none(), _EMAILISH), min_size=1, max_size=20))
def test_mask_email_large_batch_matches_small_batch(values: list[str | None]) -> None:
    rows = (values * (masking.SMALL_BATCH_ROWS // len(values) + 1))[: masking.SMALL_BATCH_ROWS + 1]
    expected = [None if v is None else masking._email(v) for v in rows]
    assert mask_email(pa.array(rows, pa.string())).to_pylist() == expected


@pytest.mark.parametrize(
    "value",
    ["", "@", "@@", "@@x", "a@", "@a", "  @ ", "x@y@z", "\x1ca@b\x85", "\u3000张@例子.中国", "é"],
)
def test_email_kernel_edges(value: str) -> None:
    assert masking._email_kernel(pa.array([value])).to_pylist() == [masking._email(value)]


def test_email_kernel_trims_what_str_strip_trims() -> None:
    assert set(masking._PY_WHITESPACE) == {chr(c) for c in range(0x110000) if chr(c).isspace()}
