from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import scrub_corpus
from gateway.transforms import scrubbing
from gateway.transforms.scrubbing import is_luhn_valid, is_valid_national_id, scrub


def _scrub_one(text: str, *names: str | None, detect_names: bool = True) -> str | None:
    columns = [pa.array([n], pa.string()) for n in names]
    texts = pa.array([text], pa.string())
    result: str | None = scrub(texts, columns, detect_names=detect_names).to_pylist()[0]
    return result


_EMAIL = [
    ("邮箱zhang.wei@example.com。", "邮箱[EMAIL]。"),
    ("mail Li.Na+work@mail.example.co.uk, thanks", "mail [EMAIL], thanks"),
    ("手机号13812345678@163.com", "手机号[EMAIL]"),  # the larger reading wins
    ("联系：ＺＨＡＮＧ＠example.com", "联系：ＺＨＡＮＧ＠example.com"),  # full-width letters
    ("no address in user@localhost", "no address in user@localhost"),
]


_PHONE = [
    ("联系电话13812345678请回电", "联系电话[PHONE]请回电"),
    ("手机：138 1234 5678。", "手机：[PHONE]。"),
    ("手机：138-1234-5678", "手机：[PHONE]"),
    ("+86 138 1234 5678", "[PHONE]"),
    ("+8613812345678", "[PHONE]"),
    ("0086-13812345678", "[PHONE]"),
    ("(+86)13812345678", "[PHONE]"),
    ("电话１３８１２３４５６７８", "电话[PHONE]"),  # full-width digits
    ("座机010-12345678转801", "座机[PHONE]"),
    ("传真0755-1234567，", "传真[PHONE]，"),
    ("(021)87654321", "[PHONE]"),
    ("call +44 20 7946 0958 now", "call [PHONE] now"),
    ("Tel: +1 (415) 555-2671", "Tel: [PHONE]"),
    ("(415)555-2671x123 or 415.555.2671", "[PHONE] or [PHONE]"),
    ("001-725-963-4168", "[PHONE]"),
    ("phone 8305620278", "phone [PHONE]"),
    # negatives
    ("order 8305620278", "order 8305620278"),  # ten bare digits need a phone cue
    ("订单号2023138123456789", "订单号2023138123456789"),  # mobile inside a longer number
    ("12812345678", "12812345678"),  # 12x is not a mobile prefix
    ("共1381234567件", "共1381234567件"),  # ten digits
    ("SF057811135433", "SF057811135433"),  # parcel number, not a landline
    ("+5 points", "+5 points"),
]


_NATIONAL_ID = [
    ("身份证号11010519491231002X请核对", "身份证号[NATIONAL_ID]请核对"),
    ("身份证号11010519491231002x", "身份证号[NATIONAL_ID]"),
    ("ID: 110105199003071239.", "ID: [NATIONAL_ID]."),
    ("证件110105 19900307 1239", "证件[NATIONAL_ID]"),
    ("老身份证110105900307123", "老身份证[NATIONAL_ID]"),  # 15-digit legacy form
    ("订单202209030415996", "订单202209030415996"),  # 20 is no province: not legacy
    # wrong check character, and not Luhn-valid either: left alone
    ("身份证号110105199003071234", "身份证号110105199003071234"),
    # wrong check character with a 1x region: Luhn-valid, but no card starts like that
    ("身份证号110105199003071231", "身份证号110105199003071231"),
    # wrong check character but Luhn-valid with a card-like prefix: a card number
    ("ID 511524197307212156 failed", "ID [BANK_CARD] failed"),
    ("编号53252519790811247X", "编号53252519790811247X"),  # bad check, ends in X
]


_BANK_CARD = [
    ("卡号6222020200112233445", "卡号6222020200112233445"),  # not Luhn-valid
    ("卡号6212345678901232请查收", "卡号[BANK_CARD]请查收"),
    ("card 4111 1111 1111 1111 exp 12/27", "card [BANK_CARD] exp 12/27"),
    ("card 4111-1111-1111-1111", "card [BANK_CARD]"),
    ("amex 3782 822463 10005", "amex [BANK_CARD]"),
    ("visa13 4222222222222", "visa13 [BANK_CARD]"),
    ("5555555555554444,", "[BANK_CARD],"),
    ("4111 1111 1111 1111 2023", "[BANK_CARD] 2023"),
    ("卡号4111 1111 1111 1111 100元", "卡号[BANK_CARD] 100元"),
    ("2023 4111 1111 1111 1111", "2023 [BANK_CARD]"),
    # negatives
    ("card 4111111111111112", "card 4111111111111112"),  # Luhn fails
    ("0000000000000000", "0000000000000000"),  # Luhn-valid, no issuer starts with 0
    ("订单20240512123456789", "订单20240512123456789"),  # date-prefixed order number
    ("订单DD5555555555554444", "订单DD5555555555554444"),  # glued to letters
    ("ts 1700000000000", "ts 1700000000000"),  # millisecond timestamp
]


_IP = [
    ("IP是192.168.1.1，请检查", "IP是[IP]，请检查"),
    ("from 8.8.8.8:53 and 10.0.0.255/24.", "from [IP]:53 and [IP]/24."),
    ("ipv6 2001:db8:85a3::8a2e:370:7334 ok", "ipv6 [IP] ok"),
    ("地址fe80::1。", "地址[IP]。"),
    ("mapped ::ffff:192.168.1.1", "mapped [IP]"),
    ("[2001:db8::1]:8080", "[[IP]]:8080"),
    ("full 2001:0db8:0000:0000:0000:ff00:0042:8329", "full [IP]"),
    # negatives
    ("999.1.1.1", "999.1.1.1"),
    ("256.1.1.1 and 1.2.3.300", "256.1.1.1 and 1.2.3.300"),
    ("version 1.2.3.4.5", "version 1.2.3.4.5"),
    ("release v1.2.3.4", "release v1.2.3.4"),
    ("登录ip192.168.1.1失败", "登录ip[IP]失败"),
    ("at 12:30:45", "at 12:30:45"),
    ("MAC 00:1A:2B:3C:4D:5E", "MAC 00:1A:2B:3C:4D:5E"),
    ("std::vector", "std::vector"),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(text, expected, id=f"{kind}-{n}")
        for kind, cases in (
            ("email", _EMAIL),
            ("phone", _PHONE),
            ("national_id", _NATIONAL_ID),
            ("bank_card", _BANK_CARD),
            ("ip", _IP),
        )
        for n, (text, expected) in enumerate(cases)
    ],
)
def test_structured_kinds(text: str, expected: str) -> None:
    assert _scrub_one(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "订单号2024051212345678于2024-05-12支付¥1,299.00",
        "Order #SO-2024-000123 on 05/12/2024 for $45.99",
        "版本1.2.3.4.5发布，耗时12:30:45，共1024条",
        "邮编100080，数量12345，价格99.5元",
        "",
        "没有任何数字的中文句子。",
    ],
)
def test_hard_negatives_are_left_alone(text: str) -> None:
    assert _scrub_one(text) == text


@pytest.mark.parametrize(
    ("text", "names", "expected"),
    [
        ("张伟来电说明天到", ("张伟", None), "[NAME]来电说明天到"),
        ("欧阳娜娜说娜娜很好", ("欧阳娜娜", None), "[NAME]说[NAME]很好"),
        ("王小明，小明在吗", ("王小明", None), "[NAME]，[NAME]在吗"),
        ("联系人张 伟", (None, "张伟"), "联系人[NAME]"),
        ("张伟说伟大的事", ("张伟", None), "[NAME]说伟大的事"),  # 伟 alone stays
        ("买买提·艾力来了", ("买买提·艾力", None), "[NAME]来了"),
        ("客户张伟联系了李娜", ("张伟", "李娜"), "客户[NAME]联系了[NAME]"),
        ("Wei Zhang called", ("Wei Zhang", None), "[NAME] called"),
        ("Zhang, Wei and ZHANG WEI", ("Wei Zhang", None), "[NAME] and [NAME]"),
        ("zhang wei said hi", ("Wei Zhang", None), "[NAME] said hi"),
        ("Mr Zhang said Wei is fine", ("Wei Zhang", None), "Mr [NAME] said [NAME] is fine"),
        ("Weird Zhangs", ("Wei Zhang", None), "Weird Zhangs"),  # whole words only
        ("I will ask Will", ("Will Smith", None), "I will ask [NAME]"),
        ("Dr. John Smith's note", ("Dr. John Smith", None), "Dr. [NAME]'s note"),
        ("Ask O'Brien", ("Pat O'Brien", None), "Ask [NAME]"),
        ("客户张伟", (None, None), "客户张伟"),  # not a name of the row's
        ("Ip Man logged in from 10.0.0.1", ("Ip Man", None), "[NAME] logged in from [IP]"),
        ("Card Bank: 4111111111111111", ("Bank Card", None), "[NAME]: [BANK_CARD]"),
        ("mail 张伟 at zw@example.com", ("张伟", ""), "mail [NAME] at [EMAIL]"),
        # letters outside ASCII, also where lower-casing changes the text's length (İ)
        ("Zoë Ærø signed", ("Zoë Ærø", None), "[NAME] signed"),
        ("İstanbul: Çelik, İlker wrote", ("İlker Çelik", None), "İstanbul: [NAME] wrote"),
        ("Wei met Weiwei and weI", ("Wei Zhang", None), "[NAME] met Weiwei and weI"),
    ],
)
def test_names(text: str, names: tuple[str | None, ...], expected: str) -> None:
    """The row's own names as a deny list, with the detection of other names off."""
    assert _scrub_one(text, *names, detect_names=False) == expected


def test_names_are_per_row() -> None:
    # Lower-case names are found only by the deny list, so each row loses only its own.
    texts = pa.array(["zhang wei and li na"] * 3 + [None])
    names = pa.array(["Zhang Wei", "Li Na", None, "Zhang Wei"])
    assert scrub(texts, [names]).to_pylist() == [
        "[NAME] and li na",
        "zhang wei and [NAME]",
        "zhang wei and li na",
        None,
    ]


def test_nulls_and_types() -> None:
    out = scrub(pa.array([None, "", "13812345678", None], pa.large_string()))
    assert out.type == pa.string()
    assert out.to_pylist() == [None, "", "[PHONE]", None]
    assert scrub(pa.array([], pa.string())).to_pylist() == []
    assert scrub(pa.array([None, None])).to_pylist() == [None, None]
    chunked = pa.chunked_array([["13812345678"], [None, "张伟"]])
    name_column = pa.chunked_array([[None], [None, "张伟"]], pa.string())
    assert scrub(chunked, [name_column]).to_pylist() == [
        "[PHONE]",
        None,
        "[NAME]",
    ]
    dictionary = pa.array(["a@b.cn", "a@b.cn", None]).dictionary_encode()
    assert scrub(dictionary).to_pylist() == ["[EMAIL]", "[EMAIL]", None]


def test_name_columns_must_line_up() -> None:
    with pytest.raises(ValueError, match="name column has 1 rows"):
        scrub(pa.array(["a", "b"]), [pa.array(["x"])])


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts the scrubber works on, in order, as the tests' scrubs run."""
    texts: list[str] = []
    original = scrubbing._scrub_text

    def counting(text: str, detect_names: bool = True) -> str:
        texts.append(text)
        return original(text, detect_names)

    monkeypatch.setattr(scrubbing, "_scrub_text", counting)
    return texts


def test_structured_work_is_done_once_per_distinct_text(seen: list[str]) -> None:
    out = scrub(pa.array(["call 13812345678", "hello", None] * 500))
    assert sorted(seen) == ["call 13812345678", "hello"]
    assert out.to_pylist()[:3] == ["call [PHONE]", "hello", None]


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("11010519491231002X", True),
        ("110105199003071239", True),
        ("44030419851201567X", True),
        ("110105199003071234", False),
        ("11010519491231002", False),
        ("1101051949123100２X", False),
    ],
)
def test_is_valid_national_id(value: str, valid: bool) -> None:
    assert is_valid_national_id(value) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [("4111111111111111", True), ("79927398713", True), ("4111111111111112", False)],
)
def test_is_luhn_valid(value: str, valid: bool) -> None:
    assert is_luhn_valid(value) is valid


# --- properties -------------------------------------------------------------------------

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


@st.composite
def national_ids(draw: st.DrawFn) -> str:
    region = draw(st.integers(110000, 829999))
    year = draw(st.integers(1900, 2024))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, 28))
    sequence = draw(st.integers(0, 999))
    body = f"{region}{year}{month:02d}{day:02d}{sequence:03d}"
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=True)) % 11]
    lower = draw(st.booleans())
    return body + (check.lower() if lower else check)


@st.composite
def mobiles(draw: st.DrawFn) -> str:
    digits = (
        "1" + draw(st.sampled_from("3456789")) + draw(st.text("0123456789", min_size=9, max_size=9))
    )
    prefix = draw(st.sampled_from(["", "+86 ", "+86-", "0086 ", "(+86)"]))
    layout = draw(st.sampled_from(["plain", "spaced", "dashed"]))
    if layout == "spaced":
        digits = f"{digits[:3]} {digits[3:7]} {digits[7:]}"
    elif layout == "dashed":
        digits = f"{digits[:3]}-{digits[3:7]}-{digits[7:]}"
    return prefix + digits


@st.composite
def bank_cards(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(["4", "51", "55", "2221", "34", "37", "6011", "62", "35"]))
    length = draw(st.sampled_from([13, 15, 16, 19] if prefix == "4" else [15, 16, 19]))
    body = prefix + draw(st.text("0123456789", min_size=length - len(prefix) - 1, max_size=18))
    body = body[: length - 1]
    # The Luhn digit: double every second digit counting from the right of the full number.
    total = sum(
        (2 * int(d) - 9 if int(d) > 4 else 2 * int(d)) if i % 2 == 0 else int(d)
        for i, d in enumerate(reversed(body))
    )
    number = body + str(-total % 10)
    if draw(st.booleans()):
        separator = draw(st.sampled_from([" ", "-"]))
        number = separator.join(number[i : i + 4] for i in range(0, len(number), 4))
    return number


ipv4s = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))

_LOCAL = st.text("abcdefghijklmnopqrstuvwxyz0123456789._+-", min_size=1, max_size=20)
_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_TLD = st.from_regex(r"[a-z]{2,6}", fullmatch=True)


@st.composite
def emails(draw: st.DrawFn) -> str:
    labels = draw(st.lists(_LABEL, min_size=1, max_size=3))
    return f"{draw(_LOCAL)}@{'.'.join(labels)}.{draw(_TLD)}"


# Surrounding text may hold anything, digits and addresses included; a separator keeps it
# from running into the value (a digit glued to a phone number makes a different number).
_NOISE = st.text(
    st.sampled_from(list("abcXYZ 你好电话请联系号码，。：0123456789@.-+()\n")), max_size=30
)
_SEPARATOR = st.sampled_from([" ", "，", "。", "：", "、", "\n", "（", "）", "; "])


@settings(max_examples=300, deadline=None, database=None)
@given(
    value=st.one_of(national_ids(), mobiles(), emails(), bank_cards(), ipv4s),
    before=_NOISE,
    after=_NOISE,
    left=_SEPARATOR,
    right=_SEPARATOR,
)
def test_no_generated_identifier_survives(
    value: str, before: str, after: str, left: str, right: str
) -> None:
    text = f"{before}{left}{value}{right}{after}"
    out = _scrub_one(text)
    assert out is not None
    assert value not in out


# --- the labelled corpus ----------------------------------------------------------------


def test_corpus_recall_for_structured_kinds() -> None:
    samples = scrub_corpus.generate_corpus(size=2000, seed=7)
    assert len({s.text for s in samples}) > 1900
    scores = scrub_corpus.evaluate(samples, scrub_corpus.scrub_samples(samples))
    for kind in scrub_corpus.STRUCTURED_KINDS:
        assert scores[kind].support > 100, kind
        assert scores[kind].recall >= 0.99, (kind, scores[kind])
        assert scores[kind].leaked == 0, (kind, scores[kind])
    assert scores["NAME"].recall >= 0.99


def test_corpus_is_reproducible() -> None:
    assert scrub_corpus.generate_corpus(size=50, seed=3) == scrub_corpus.generate_corpus(
        size=50, seed=3
    )


def test_cache_answers_a_repeated_page_without_scrubbing_again(seen: list[str]) -> None:
    cache = scrubbing.ScrubCache()
    texts = pa.array(["call 13812345678", "王小明来了", None])
    names = [pa.array(["Li Na", "王小明", "x"])]
    first = scrub(texts, names, cache=cache)
    second = scrub(texts, names, cache=cache)
    assert first.to_pylist() == second.to_pylist() == ["call [PHONE]", "[NAME]来了", None]
    assert sorted(seen) == ["call 13812345678", "王小明来了"]


def test_cache_keeps_each_rows_names_to_that_row() -> None:
    cache = scrubbing.ScrubCache()
    text = "wang xiaoming met li lei"
    scrub(pa.array([text]), [pa.array(["Wang Xiaoming"])], cache=cache)
    # The same text with other names, and with none, is not answered with the first
    # row's result.
    assert scrub(pa.array([text]), [pa.array(["Li Lei"])], cache=cache).to_pylist() == [
        "wang xiaoming met [NAME]"
    ]
    assert scrub(pa.array([text]), cache=cache).to_pylist() == [text]


def test_cache_is_bounded_and_drops_the_least_recently_used() -> None:
    cache = scrubbing.ScrubCache(max_entries=3, max_chars=1_000, max_text_chars=20)
    for text in ("a1", "b2", "c3"):
        scrub(pa.array([text]), cache=cache)
    assert cache.lookup([("a1", ())]) == ["a1"]  # a1 is now the most recently used
    scrub(pa.array(["d4"]), cache=cache)
    assert len(cache) == 3
    assert cache.lookup([("b2", ()), ("a1", ()), ("d4", ())]) == [None, "a1", "d4"]
    scrub(pa.array(["x" * 21]), cache=cache)  # longer than max_text_chars: not kept
    assert cache.lookup([("x" * 21, ())]) == [None]
    small = scrubbing.ScrubCache(max_chars=10)
    scrub(pa.array(["abcd", "efgh", "ijkl"]), cache=small)
    assert small.chars <= 10 and len(small) == 1


def test_large_batches_leave_the_cache_alone() -> None:
    cache = scrubbing.ScrubCache()
    rows = scrubbing.SMALL_BATCH_ROWS + 1
    out = scrub(pa.array([f"row {i}" for i in range(rows)]), cache=cache)
    assert len(out) == rows and len(cache) == 0
