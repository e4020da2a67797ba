"""A labelled synthetic corpus for the free-text scrubber, and how well the scrubber does on it.

Sentences come from Chinese and English templates whose slots are filled with Faker
(``zh_CN`` and ``en_US``) and with generated identifiers that carry correct check digits:
resident IDs (ISO 7064 MOD 11-2) and card numbers (Luhn). Hard negatives sit in the same
sentences: order numbers, dates, prices, 18-digit numbers with a wrong check character,
version strings, times, postcodes, parcel numbers.

Every sentence is generated together with the text it should scrub to, so the score is
counted per kind: a placeholder of kind K in the output is a true positive while there are
inserted values of kind K left to account for, and a false positive after that. A value
whose raw text survives in the output is counted as leaked.

Run it as ``.venv/bin/python bench/scrub_corpus.py`` (``--size``, ``--seed``, ``--repeat``).
The tests import ``generate_corpus``, ``scrub_samples`` and ``evaluate`` from here.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from faker import Faker
from faker.providers.ssn.zh_CN import Provider as ChineseSsnProvider

try:
    from gateway.transforms.scrubbing import scrub
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from gateway.transforms.scrubbing import scrub

KINDS = ("EMAIL", "PHONE", "NATIONAL_ID", "BANK_CARD", "IP", "NAME")
STRUCTURED_KINDS = ("EMAIL", "PHONE", "NATIONAL_ID", "BANK_CARD", "IP")

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


@dataclass(frozen=True)
class Sample:
    text: str
    expected: str
    pii: tuple[tuple[str, str], ...]  # (kind, value) for every value that must go
    negatives: tuple[tuple[str, str], ...]  # (slot, value) for look-alikes that must stay
    name: str | None  # the row's own direct identifiers, as the name columns hold them
    contact_name: str | None


class Rates:
    """Recall and precision from a score's counts, 1.0 where there is nothing to count."""

    def counts(self) -> tuple[int, int, int, int]:
        """Found, to be found, flagged rightly, flagged."""
        raise NotImplementedError

    @property
    def recall(self) -> float:
        found, wanted, _, _ = self.counts()
        return found / wanted if wanted else 1.0

    @property
    def precision(self) -> float:
        _, _, right, flagged = self.counts()
        return right / flagged if flagged else 1.0


@dataclass
class Score(Rates):
    support: int = 0
    true_positives: int = 0
    false_negatives: int = 0
    false_positives: int = 0
    leaked: int = 0

    def counts(self) -> tuple[int, int, int, int]:
        tp = self.true_positives
        return tp, tp + self.false_negatives, tp, tp + self.false_positives


# --- identifiers with correct (or deliberately wrong) check digits -------------------


def id_check_char(body: str) -> str:
    return _ID_CHECK[sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=True)) % 11]


def national_id(rng: random.Random) -> str:
    region = rng.choice(ChineseSsnProvider.area_codes)
    year = rng.randint(1940, 2012)
    birth = f"{year}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    body = f"{region}{birth}{rng.randint(0, 999):03d}"
    return body + id_check_char(body)


def bad_national_id(rng: random.Random) -> str:
    good = national_id(rng)
    wrong = rng.choice([c for c in "0123456789X" if c != good[-1]])
    return good[:-1] + wrong


def luhn_complete(partial: str) -> str:
    """Append the digit that makes ``partial`` pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:  # these get doubled once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return partial + str((10 - total % 10) % 10)


def unionpay_card(rng: random.Random) -> str:
    length = rng.choice((16, 16, 19))
    head = rng.choice(("622202", "622848", "621700", "622588", "623058", "625000"))
    partial = head + "".join(rng.choice("0123456789") for _ in range(length - len(head) - 1))
    return luhn_complete(partial)


# --- slot values -----------------------------------------------------------------------


class Seeded:
    """A random generator and Chinese and English fakers, all from one seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.zh = Faker("zh_CN")
        self.en = Faker("en_US")
        self.zh.seed_instance(seed)
        self.en.seed_instance(seed + 1)


class Slots(Seeded):
    """Fills template slots; one instance per corpus so that everything is seeded."""

    # PII -------------------------------------------------------------------------------

    def email(self, lang: str) -> str:
        rng, fake = self.rng, self.zh if lang == "zh" else self.en
        roll = rng.random()
        if roll < 0.55:
            return str(fake.email())
        if roll < 0.75:
            return str(fake.free_email())
        if roll < 0.85:  # a phone number as the mailbox, common on Chinese providers
            mobile = self.zh.phone_number()
            return f"{mobile}@{rng.choice(('163.com', 'qq.com', '126.com'))}"
        if roll < 0.93:
            user = f"{fake.user_name()}.{rng.randint(1, 99)}+{rng.choice(('work', 'news'))}"
            return f"{user}@{fake.domain_name()}"
        return str(fake.email()).upper()

    def phone(self, lang: str) -> str:
        rng = self.rng
        roll = rng.random()
        if lang == "en" and roll < 0.6:
            return str(self.en.phone_number())
        if lang == "en" or roll < 0.08:
            return rng.choice(
                (
                    f"+44 20 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
                    "+33 1 {} {} {} {}".format(*(rng.randint(10, 99) for _ in range(4))),
                    f"+49 30 {rng.randint(1000000, 99999999)}",
                    f"+81 3-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
                    f"+65 {rng.randint(6000, 9999)} {rng.randint(1000, 9999)}",
                    f"+61 2 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
                    f"+86 10 {rng.randint(20000000, 89999999)}",
                )
            )
        if roll < 0.25:
            area = rng.choice(("010", "020", "021", "022", "025", "027", "028", "029"))
            local = str(rng.randint(20000000, 89999999))
            if rng.random() < 0.3:
                area = rng.choice(("0755", "0571", "0512", "0731", "0871", "0591", "0311"))
                local = str(rng.randint(2000000, 8999999)) if rng.random() < 0.5 else local
            style = rng.randrange(4)
            if style == 0:
                return f"{area}-{local}"
            if style == 1:
                return f"({area}){local}"
            if style == 2:
                return f"{area} {local}"
            return f"{area}-{local}转{rng.randint(100, 999)}"
        mobile = str(self.zh.phone_number())
        style = rng.randrange(8)
        spaced = f"{mobile[:3]} {mobile[3:7]} {mobile[7:]}"
        dashed = f"{mobile[:3]}-{mobile[3:7]}-{mobile[7:]}"
        return (
            mobile,
            mobile,
            spaced,
            dashed,
            f"+86 {spaced}",
            f"+86-{mobile}",
            f"0086 {mobile}",
            f"(+86){mobile}",
        )[style]

    def national_id(self) -> str:
        value = national_id(self.rng)
        roll = self.rng.random()
        if value.endswith("X") and roll < 0.3:
            return value[:-1] + "x"
        if roll > 0.95:
            return f"{value[:6]} {value[6:14]} {value[14:]}"
        return value

    def bank_card(self) -> str:
        rng = self.rng
        if rng.random() < 0.4:
            number = unionpay_card(rng)
        else:
            kind = rng.choice(
                ("visa16", "visa13", "visa19", "mastercard", "amex")
                + ("discover", "diners", "jcb15", "jcb16")
            )
            number = str(self.en.credit_card_number(card_type=kind))
        roll = rng.random()
        if roll < 0.6:
            return number
        sep = " " if roll < 0.85 else "-"
        if len(number) == 15:
            return sep.join((number[:4], number[4:10], number[10:]))
        return sep.join(number[i : i + 4] for i in range(0, len(number), 4))

    def ip(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.45:
            return str(self.en.ipv4_public())
        if roll < 0.7:
            return str(self.en.ipv4_private())
        address = ipaddress.IPv6Address(self.en.ipv6())
        if roll < 0.8:
            return address.exploded
        if roll < 0.9:
            return str(address)
        return rng.choice(("fe80::1", "::1", f"2001:db8::{rng.randint(1, 0xFFFF):x}"))

    def person(self, lang: str) -> tuple[str, str]:
        """A full name and the form used when addressing the person by given name."""
        if lang == "zh":
            full = str(self.zh.name())
            surname = 2 if len(full) > 2 and full[:2] in _ZH_COMPOUND else 1
            given = full[surname:]
            return full, given if len(given) >= 2 else full
        first, last = str(self.en.first_name()), str(self.en.last_name())
        return f"{first} {last}", first

    # Hard negatives ----------------------------------------------------------------------

    def order(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.3:
            return f"{rng.randint(2019, 2025)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}" + (
                "".join(rng.choice("0123456789") for _ in range(rng.randint(6, 10)))
            )
        if roll < 0.6:
            length = rng.randint(6, 20)
            return rng.choice("123456789") + "".join(
                rng.choice("0123456789") for _ in range(length - 1)
            )
        if roll < 0.8:
            return f"SO-{rng.randint(2019, 2025)}-{rng.randint(0, 999999):06d}"
        return f"DD{rng.randint(10**15, 10**16 - 1)}"

    def date(self) -> str:
        rng = self.rng
        y, m, d = rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)
        return rng.choice(
            (
                f"{y}-{m:02d}-{d:02d}",
                f"{y}年{m}月{d}日",
                f"{m:02d}/{d:02d}/{y}",
                f"{y}.{m:02d}.{d:02d}",
            )
            + (f"{y}{m:02d}{d:02d}", f"{d} {self.en.month_name()} {y}")
        )

    def price(self) -> str:
        rng = self.rng
        amount = rng.randint(1, 2_000_000) / 100
        return rng.choice(
            (f"¥{amount:,.2f}", f"${amount:,.2f}", f"{int(amount)}元", f"USD {int(amount):,}")
            + (f"€{amount:.2f}", f"RMB {amount:.2f}")
        )

    def version(self) -> str:
        rng = self.rng
        parts = [str(rng.randint(0, 20)) for _ in range(rng.choice((3, 3, 4, 5, 5, 6)))]
        return rng.choice(("", "v", "V")) + ".".join(parts)

    def clock(self) -> str:
        hour, minute, second = (self.rng.randint(0, top) for top in (23, 59, 59))
        return f"{hour:02d}:{minute:02d}:{second:02d}"

    def postcode(self) -> str:
        return str(self.rng.choice((self.zh.postcode(), self.en.zipcode())))

    def tracking(self) -> str:
        rng = self.rng
        digits = "".join(rng.choice("0123456789") for _ in range(12))
        return rng.choice((f"SF{digits}", f"YT{digits}0", f"1Z{rng.randint(10**15, 10**16 - 1)}"))

    def quantity(self) -> str:
        return str(self.rng.randint(1, 5000))


_ZH_COMPOUND = frozenset(
    ("欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒")
)

ZH_TEMPLATES = (
    "客户{name}的手机号是{phone}，请尽快回访。",
    "请联系{contact}，电话{phone}，邮箱{email}",
    "身份证号{id}，开户银行卡号{card}。",
    "用户{name}（身份证：{id}）于{date}下单，订单号{order}，金额{price}。",
    "登录IP为{ip}，客户端版本{version}。",
    "{given}说他的新号码是{phone}。",
    "退款{price}已退回卡号{card}，请{name}查收。",
    "联系电话{phone}请{contact}回电",
    "经办人{contact}，工单号{order}，邮件{email}",
    "报修单{order}：用户在{date} {clock}从{ip}访问失败",
    "订单{order}金额{price}，快递单号{tracking}，邮编{postcode}。",
    "身份证号码{badid}校验失败，请重新输入。",
    "系统版本{version}发布于{date}，共{quantity}项更新。",
    "{name}的银行卡{card}绑定手机{phone}",
    "患者{name}，身份证{id}，邮编{postcode}，联系人{contact}（{phone}）。",
    "服务器{ip}与{ip}之间延迟{quantity}毫秒。",
    "客户邮箱：{email}；备用邮箱：{email}",
    "请把发票寄给{name}，座机{phone}，订单{order}",
    "我的号码是{phone}，微信同号，身份证{id}",
    "打款账户：{card}（{name}），金额{price}",
    "{date}{clock}，{given}在{ip}上登录，版本{version}",
    "编号{badid}的申请已于{date}退回，订单{order}金额{price}。",
)

EN_TEMPLATES = (
    "Please call {name} at {phone} about order {order}.",
    "Contact {contact} via {email} or {phone}.",
    "Customer {name} (ID {id}) paid {price} with card {card} on {date}.",
    "Login from {ip} at {clock} using client {version}.",
    "{given} said the new number is {phone}.",
    "Refund of {price} sent to card {card}; ask {name} to confirm.",
    "Ticket {order}: user {name} cannot reach {ip}.",
    "Order {order} shipped on {date}, tracking {tracking}, zip {postcode}.",
    "ID {badid} failed validation, please retry.",
    "Release {version} has been out since {date}; build {order}.",
    "Email to {email} bounced; fallback address {email}.",
    "{name}'s card {card} is linked to {email}.",
    "Servers {ip} and {ip} had {quantity} ms latency.",
    "Reach me on {phone} or at {email}. {given}",
    "Wire {price} to account {card}, beneficiary {name}.",
    "The patient {name}, national ID {id}, phone {phone}.",
    "Invoice {order} for {price}, due {date}.",
    "Our office number is {phone}, ask for {contact}.",
    "Firewall blocked {ip}; ruleset {version}, {quantity} hits.",
    "Meeting at {clock} on {date} with {contact}, room {quantity}.",
    "Applicant {given} gave {badid} as ID number; order {order} is on hold.",
)

_SLOT = re.compile(r"\{(\w+)\}")


def _sample(slots: Slots, lang: str, template: str) -> Sample:
    name, given = slots.person(lang)
    contact, _ = slots.person(lang)
    pii_slots: dict[str, tuple[str, Callable[[], str]]] = {
        "email": ("EMAIL", lambda: slots.email(lang)),
        "phone": ("PHONE", lambda: slots.phone(lang)),
        "id": ("NATIONAL_ID", slots.national_id),
        "card": ("BANK_CARD", slots.bank_card),
        "ip": ("IP", slots.ip),
        "name": ("NAME", lambda: name),
        "given": ("NAME", lambda: given),
        "contact": ("NAME", lambda: contact),
    }
    negatives: dict[str, Callable[[], str]] = {
        "order": slots.order,
        "date": slots.date,
        "price": slots.price,
        "badid": lambda: bad_national_id(slots.rng),
        "version": slots.version,
        "clock": slots.clock,
        "postcode": slots.postcode,
        "tracking": slots.tracking,
        "quantity": slots.quantity,
    }
    text: list[str] = []
    expected: list[str] = []
    pii: list[tuple[str, str]] = []
    kept: list[tuple[str, str]] = []
    last = 0
    for m in _SLOT.finditer(template):
        text.append(template[last : m.start()])
        expected.append(template[last : m.start()])
        slot = m.group(1)
        if slot in pii_slots:
            kind, make = pii_slots[slot]
            value = make()
            pii.append((kind, value))
            expected.append(f"[{kind}]")
        else:
            value = negatives[slot]()
            kept.append((slot, value))
            expected.append(value)
        text.append(value)
        last = m.end()
    text.append(template[last:])
    expected.append(template[last:])
    uses_name = any(s in template for s in ("{name}", "{given}"))
    uses_contact = "{contact}" in template
    return Sample(
        text="".join(text),
        expected="".join(expected),
        pii=tuple(pii),
        negatives=tuple(kept),
        # Rows carry a name even when the sentence does not mention it, as real rows do.
        name=name if uses_name or slots.rng.random() < 0.5 else None,
        contact_name=contact if uses_contact else None,
    )


def generate_corpus(size: int = 6000, seed: int = 20240611) -> list[Sample]:
    """``size`` labelled sentences, half Chinese and half English, the same for one seed."""
    slots = Slots(seed)
    samples = []
    for i in range(size):
        lang = "zh" if i % 2 == 0 else "en"
        template = slots.rng.choice(ZH_TEMPLATES if lang == "zh" else EN_TEMPLATES)
        samples.append(_sample(slots, lang, template))
    return samples


def _columns(samples: list[Sample]) -> tuple[pa.Array, list[pa.Array]]:
    texts = pa.array([s.text for s in samples], pa.string())
    names = [
        pa.array([s.name for s in samples], pa.string()),
        pa.array([s.contact_name for s in samples], pa.string()),
    ]
    return texts, names


def scrub_samples(samples: list[Sample]) -> list[str]:
    texts, names = _columns(samples)
    return [str(v) for v in scrub(texts, names).to_pylist()]


def evaluate(samples: list[Sample], outputs: list[str]) -> dict[str, Score]:
    scores = {kind: Score() for kind in KINDS}
    for sample, output in zip(samples, outputs, strict=True):
        for kind in KINDS:
            score = scores[kind]
            inserted = [value for k, value in sample.pii if k == kind]
            flagged = output.count(f"[{kind}]")
            hits = min(len(inserted), flagged)
            score.support += len(inserted)
            score.true_positives += hits
            score.false_negatives += len(inserted) - hits
            score.false_positives += flagged - hits
            score.leaked += sum(1 for value in inserted if value in output)
    return scores


def false_alarms(samples: list[Sample], outputs: list[str]) -> dict[str, tuple[int, int]]:
    """Per kind of hard negative: (values that did not survive scrubbing, values inserted)."""
    counts: dict[str, list[int]] = {}
    for sample, output in zip(samples, outputs, strict=True):
        for slot, value in sample.negatives:
            count = counts.setdefault(slot, [0, 0])
            count[0] += value not in output
            count[1] += 1
    return {slot: (lost, total) for slot, (lost, total) in sorted(counts.items())}


def _throughput(samples: list[Sample], repeat: int) -> tuple[float, float]:
    """Rows per second with and without the name columns, best of three runs."""
    texts, names = _columns(samples * repeat)
    rates = []
    for columns in (names, []):
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            scrub(texts, columns)
            best = min(best, time.perf_counter() - started)
        rates.append(len(texts) / best)
    return rates[0], rates[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=6000, help="sentences to generate")
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument(
        "--repeat", type=int, default=1, help="repeat the corpus for the throughput run"
    )
    parser.add_argument("--show", type=int, default=0, help="print N mismatching sentences")
    args = parser.parse_args(argv)

    samples = generate_corpus(args.size, args.seed)
    outputs = scrub_samples(samples)
    scores = evaluate(samples, outputs)

    print(f"corpus: {len(samples)} sentences (seed {args.seed}), Chinese and English")
    print(f"{'kind':<12} {'support':>8} {'recall':>8} {'precision':>10} {'FP':>5} {'leaked':>7}")
    for kind, s in scores.items():
        print(
            f"{kind:<12} {s.support:>8} {s.recall:>8.4f} {s.precision:>10.4f}"
            f" {s.false_positives:>5} {s.leaked:>7}"
        )
    alarms = false_alarms(samples, outputs)
    print(
        "hard negatives scrubbed by mistake: "
        + ", ".join(f"{slot} {lost}/{total}" for slot, (lost, total) in alarms.items())
    )
    exact = sum(1 for sample, out in zip(samples, outputs, strict=True) if out == sample.expected)
    print(f"sentences scrubbed exactly as labelled: {exact}/{len(samples)}")
    with_names, without_names = _throughput(samples, args.repeat)
    print(
        f"throughput ({len(samples) * args.repeat} rows, all distinct when --repeat 1): "
        f"{with_names:,.0f} rows/s with 2 name columns, {without_names:,.0f} rows/s without"
    )
    shown = 0
    for sample, out in zip(samples, outputs, strict=True):
        if shown >= args.show:
            break
        if out != sample.expected:
            print(f"- input:    {sample.text}\n  expected: {sample.expected}\n  got:      {out}")
            shown += 1
    failing = [k for k in STRUCTURED_KINDS if scores[k].recall < 0.99]
    if failing:
        print(f"recall below 0.99 for: {', '.join(failing)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
