"""A labelled corpus of person names in Chinese and English free text, and how well the
scrubber finds them.

Notes are clinical notes, support tickets and chat messages written from templates whose
name slots are filled with Faker's ``zh_CN`` and ``en_US`` names, plus hard cases: names
that are also common words (高明, Will, Rose), names with titles (王医生, Dr. 李,
Nurse Brown), transliterations (约翰·史密斯, Zhang Wei) and names split by punctuation
(Smith, John / J. Smith / 张 伟). Hard negatives sit in the same notes: words that begin
with a surname character (高血压, 方案, 金额), capitalised words that are not names
(Monday, Chrome, London, Emergency Department).

The detector never reads Faker's name lists or the hard-case lists below: what it knows
comes from jieba's model and from context words. The templates come in two sets: ``dev``
ones were visible while the detector's context words and thresholds were chosen,
``heldout`` ones were written before most of that work and their errors are never
shown (``--show`` lists dev notes only), so their score is the honest one. Both sets
were enlarged together, each new held-out template written before any new dev one was
tuned on; context words that occur only in held-out templates are kept out of the
detector. The templates' own words are still in view in this file, so the held-out
score is honest about errors, less so about vocabulary.

Scoring is per name span: a name counts as found when every letter of it is inside a
``[NAME]`` the scrubber put in (a half-scrubbed name is a miss), and a ``[NAME]`` counts as
right when it covers part of some name. The spans scrubbed are recovered by aligning the
output with the input, so today's scrubber and the new one are scored the same way.

Run it as ``.venv/bin/python bench/names.py`` (``--size``, ``--seed``, ``--show``).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from faker import Faker

try:
    from gateway.transforms.scrubbing import NAME, scrub
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from gateway.transforms.scrubbing import NAME, scrub
try:
    from bench import scrub_corpus
except ImportError:  # run as a script: bench/ itself is on the path
    import scrub_corpus  # type: ignore[no-redef]

_Span = tuple[int, int]


@dataclass(frozen=True)
class Note:
    text: str
    names: tuple[_Span, ...]  # where the names are
    lang: str  # "zh" or "en"
    split: str  # "dev" or "heldout"
    row_name: str | None  # the row's own name column


@dataclass
class NameScore:
    names: int = 0
    found: int = 0
    flagged: int = 0
    right: int = 0

    @property
    def recall(self) -> float:
        return self.found / self.names if self.names else 1.0

    @property
    def precision(self) -> float:
        return self.right / self.flagged if self.flagged else 1.0


# --- hard cases (evaluation only) ------------------------------------------------------

ZH_WORD_NAMES = ("高明", "王平", "金星", "方正", "白云", "林海", "马力", "张扬", "常青", "江南",
                 "石磊", "文静", "安宁", "向阳", "高峰", "李想", "周全", "夏天")  # fmt: skip
EN_WORD_NAMES = ("Will", "Rose", "Mark", "Grant", "Hope", "Faith", "Bill", "Amber", "Daisy",
                 "Frank", "Lily", "Jack", "Summer", "Joy", "Drew", "Guy")  # fmt: skip
ZH_TRANSLITERATED = ("约翰·史密斯", "玛丽亚·加西亚", "彼得·帕克", "安娜·科娃", "穆罕默德·阿里",
                     "迈克尔·布朗", "伊丽莎白·泰勒", "买买提·艾力", "热依拉·吐尔逊")  # fmt: skip
ZH_TITLES = ("医生", "主任", "护士", "老师", "经理", "师傅", "大夫", "院长", "律师", "女士", "先生")
EN_TITLES = ("Dr.", "Dr", "Mr.", "Mrs.", "Ms.", "Miss", "Prof.", "Nurse", "Doctor")
ZH_COMPOUND = frozenset(("欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容"))

# --- templates -------------------------------------------------------------------------
# Slots: {p} a person in some form (full, given, titled, word-like, split ...), {full} a
# full name, {t} a titled surname (王医生 / Dr. Smith), {x} a Chinese surname after an
# English title (Dr. 李). Everything else is literal text, hard negatives included.

ZH_DEV = (
    "患者{full}，男，58岁，高血压病史十年，今日由{t}接诊，建议调整用药方案。",
    "家属{p}代诉患者夜间咳嗽加重，已告知{t}，明早复查血常规。",
    "主治医生{full}查房：白细胞计数偏高，黄疸未退，继续观察。",
    "客户{p}来电反映订单金额有误，已转交{full}处理，预计周末前回复。",
    "工单已分配给{p}，问题描述：华为手机无法登录，安排明天上门。",
    "{p}：我明天下午到，麻烦跟{t}说一声，谢谢！",
    "今天和{p}一起去王府井吃饭，{full}也来了。",
    "护士{full}记录：体温37.8度，石膏固定良好，马上安排换药。",
    "请{t}审批这份文件，联系人{p}，平安保险报销方案附后。",
    "经办人：{full}；复核：{p}；备注：江苏分公司常规检查。",
    "术后第二天，{p}的女儿{full}前来探视，情绪稳定。",
    "据{t}介绍，患者既往有糖尿病，黄金周期间未按时服药。",
    "感谢{p}耐心解答，我的问题已经解决，五星好评！",
    "周一例会：{full}汇报了方案进度，{p}负责测试，林区项目暂停。",
    "转诊记录：原接诊医师{full}，现由{t}负责，病情平稳。",
    "@{p} 文件发你邮箱了，{full}说下周再改。",
    "投诉人{full}称快递员态度差，已联系{p}核实，高度重视。",
    "会诊意见（{t}）：建议完善检查，白天多饮水，由{p}随访。",
    "病程记录：{full}今日精神好，{t}查房后同意出院。",
    "{p}你好，你的快递放在门卫室了，{full}代收。",
    "会议纪要：{full}主持，{p}记录，{t}列席。",
    "接{t}通知，{full}明天调休，{p}顶班。",
    "学生{full}的家长{p}来电请假。",
    "刚才{p}在电梯里碰到{full}，聊了几句。",
    "请假条：{full}因病请假两天，由{p}代课。",
    "{full}和{p}是这次项目的负责人，有问题找{t}。",
    "电话回访{full}，本人表示满意，{p}已登记。",
    "维修记录：{p}报修空调漏水，{full}下午处理完毕。",
    "系统提示：{p}的账号已锁定，请联系信息科处理。",
    "{full}在微信上说，顺丰快递还没到，让{t}帮忙查一下。",
    "新版本上线后，{p}反映页面很卡，技术部正在排查。",
    "药房通知：{full}的阿司匹林已停用，{t}同意。",
    "本月优秀员工：{full}，推荐人{p}。",
    "{full}来电咨询医保报销，{p}已解答。",
    "出差申请：{full}赴上海参加培训，{t}审批。",
    "投诉：{p}购买的美的空调漏水，售后部门跟进。",
)
ZH_HELDOUT = (
    "凌晨两点{full}因胸闷入院，值班的{t}给予吸氧，心电图未见异常。",
    "{p}反馈发票抬头写错了，请财务部重新开具，金额不变。",
    "哈哈{p}你太逗了，周六和{full}去爬山吗？",
    "随访电话：{full}接听，自述食欲好转，体重增加两公斤，{t}嘱继续服药。",
    "售后单：{p}的冰箱不制冷，维修师傅{full}已上门，更换压缩机。",
    "{full}请假三天，工作由{p}代理，紧急事项请找{t}。",
    "产妇{full}顺产一女婴，体重3.2公斤，陪护人{p}。",
    "群公告：{p}负责收集报名表，{full}统计人数，截止到周五。",
    # Written with the corpus's second batch of dev templates, before any of them was
    # tuned on.
    "门诊病历：{full}，女，34岁，主诉头痛三天，{t}建议做头颅CT。",
    "快递到了吗？{p}刚才打电话问，我让她找{t}。",
    "本周值班安排：周一{full}，周二{p}，周三{t}。",
    "{full}同学的作业已批改，请转告{p}明天交补充材料。",
    "入职手续由{p}办理，{full}负责带新人熟悉环境。",
    "老人{full}独居，社区网格员{p}每周上门两次。",
    "微信群里{p}说今晚加班，{full}帮忙点了外卖。",
    "退款申请已通过，审批人{full}，如有疑问请联系{t}。",
)
EN_DEV = (
    "Patient {full} was seen by {t} on Monday; blood pressure stable, continue Aspirin.",
    "Spoke with the patient's wife, {p}, who asked that {t} call her back.",
    "Ticket escalated to {full} in Customer Service: Chrome crashes on login.",
    "Hi {p}, thanks for reaching out. {full} will ship the iPhone case by Friday.",
    "{p} said the Windows update broke Excel again, please ask {t} to check.",
    "Admitted via the Emergency Department; {t} on call. Contact: {p}.",
    "Meeting with {full} and {p} moved to March 3 in the London office.",
    "Nurse note: {full} reports pain 4/10 after physiotherapy; seen by {x}.",
    "Per {t}, the Visa refund was approved. Regards, {full}",
    "Can you cc {p} on the Zoom invite? {full} is out until Christmas.",
    "Discharge summary: {full} tolerated the procedure well; follow up with {t} in Boston.",
    "The daughter ({p}) brought the medication list; {x} reviewed it.",
    "Thanks {p}! Your Amazon order is on its way. Best, {full}",
    "Escalation: {full} from Billing could not reach {p}; Outlook keeps bouncing.",
    "{full} here, I've been waiting since Tuesday for {t} to reply.",
    "Referral from {t} at Mercy General for {full}, History of asthma.",
    "lol {p} just told me {full} got the Tesla",
    "Handover: bed 12, {full}, family contact {p}, Spanish speaker.",
    "Progress note: {full} alert and oriented, {t} agreed to discharge.",
    "Hey {p}, your parcel is at the front desk, {full} signed for it.",
    "Minutes: {full} chaired, {p} took notes, {t} attended.",
    "Per {t}, {full} is off tomorrow and {p} covers the shift.",
    "Student {full}'s parent {p} called to report an absence.",
    "Ran into {full} in the elevator with {p} this morning.",
    "Leave request: {full} is sick for two days, {p} will teach the class.",
    "{full} and {p} lead this project; questions go to {t}.",
    "Callback to {full}: satisfied with the repair, logged by {p}.",
    "Maintenance: {p} reported a leaking AC unit, {full} fixed it in the afternoon.",
    "Update: the Outlook plugin keeps crashing for {p}; IT Support is aware.",
    "Shift report: {full} covered Ward 5, Pharmacy reviewed the Warfarin dose.",
    "Reminder for {p}: the Quarterly Review is on Thursday in Room B.",
    "Customer {full} wants the Premium Plan; Sales will call back, says {t}.",
    "Lab results for {full} are back; Haemoglobin low, {t} informed.",
    "Sent the Dropbox link to {p} and the Legal team, FYI {full}.",
    "Flight to Chicago booked for {full}; Uber receipts go to Finance.",
    "Complaint: {p} says the Samsung TV arrived broken, Warehouse to investigate.",
)
EN_HELDOUT = (
    "At 2am {full} presented with chest pain; {t} ordered an ECG, results normal.",
    "{p} reports the invoice header is wrong, please reissue from Accounts Payable.",
    "haha {p} you're hilarious, hiking with {full} on Saturday?",
    "Follow-up call: {full} answered, appetite improved, {t} advised to continue Metformin.",
    "RMA opened: {p}'s fridge stopped cooling, technician {full} replaced the compressor.",
    "{full} is on leave until Wednesday, {p} covers; urgent items go to {t}.",
    "Delivered a healthy girl to {full}, 3.2 kg, partner {p} present, {x} attending.",
    "Group notice: {p} collects the sign-up sheets, {full} counts heads by Friday.",
    # Written with the corpus's second batch of dev templates, before any of them was
    # tuned on.
    "Clinic note: {full}, 34F, headache for three days; {t} requested a CT scan.",
    "Did the parcel arrive? {p} phoned earlier, I told her to ask {t}.",
    "Rota this week: Monday {full}, Tuesday {p}, Wednesday {t}.",
    "{full} has been marked present; please remind {p} to bring the forms tomorrow.",
    "Onboarding is handled by {p}, and {full} will show the new hire around.",
    "Elderly resident {full} lives alone; the community worker {p} visits twice a week.",
    "In the group chat {p} said she is working late, so {full} ordered takeout.",
    "Refund approved by {full}; for questions contact {t} at the Help Desk.",
)

_SLOT = re.compile(r"\{(\w+)\}")


class _People:
    """Names in the forms people write them; seeded so a corpus is reproducible."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.zh = Faker("zh_CN")
        self.en = Faker("en_US")
        self.zh.seed_instance(seed)
        self.en.seed_instance(seed + 1)

    def zh_surname_given(self) -> tuple[str, str]:
        full = str(self.zh.name())
        cut = 2 if full[:2] in ZH_COMPOUND else 1
        return full[:cut], full[cut:]

    def full(self, lang: str) -> list[str]:
        """The parts of one name with what goes between them: [name, gap, name ...]."""
        if lang == "zh":
            surname, given = self.zh_surname_given()
            return [surname + given]
        return [str(self.en.first_name()), " ", str(self.en.last_name())]

    def person(self, lang: str) -> list[str]:
        rng, roll = self.rng, self.rng.random()
        if lang == "zh":
            surname, given = self.zh_surname_given()
            if roll < 0.45:
                return [surname + given]
            if roll < 0.6 and len(given) >= 2:
                return [given]
            if roll < 0.72:
                return [rng.choice(ZH_WORD_NAMES)]
            if roll < 0.84:
                return [rng.choice(ZH_TRANSLITERATED)]
            if roll < 0.92:  # spaced out, as some forms print names
                return [surname, " ", given] if rng.random() < 0.5 else [" ".join(surname + given)]
            return ["小" + given[-1]] if rng.random() < 0.5 else ["老" + surname]
        first, last = str(self.en.first_name()), str(self.en.last_name())
        if roll < 0.35:
            return [first, " ", last]
        if roll < 0.5:
            return [first]
        if roll < 0.65:
            return [rng.choice(EN_WORD_NAMES)] + ([" ", last] if rng.random() < 0.5 else [])
        if roll < 0.75:
            return [last, ", ", first]
        if roll < 0.83:
            return [first[0], ". ", last]
        if roll < 0.93:  # a Chinese name in pinyin, as English notes write them
            return (
                str(self.zh.romanized_name()).split(" ", 1)[:1]
                + [" "]
                + str(self.zh.romanized_name()).split(" ")[-1:]
            )
        return [first, " ", rng.choice(("O'Brien", "McDonald", "Smith-Jones", "van Dyke"))]

    def titled(self, lang: str) -> list[str]:
        if lang == "zh":
            surname, given = self.zh_surname_given()
            name = surname if self.rng.random() < 0.7 else surname + given
            return [name, "\0" + self.rng.choice(ZH_TITLES)]
        title = self.rng.choice(EN_TITLES)
        last = str(self.en.last_name())
        if self.rng.random() < 0.3:
            return ["\0" + title + " ", str(self.en.first_name()), " ", last]
        return ["\0" + title + " ", last]

    def zh_after_en_title(self) -> list[str]:
        surname, given = self.zh_surname_given()
        name = surname if self.rng.random() < 0.6 else surname + given
        return ["\0" + self.rng.choice(("Dr. ", "Dr ", "Nurse ", "Mr. ", "Ms. ")), name]


def _note(people: _People, lang: str, split: str, template: str) -> Note:
    makers: dict[str, Callable[[], list[str]]] = {
        "p": lambda: people.person(lang),
        "full": lambda: people.full(lang),
        "t": lambda: people.titled(lang),
        "x": people.zh_after_en_title,
    }
    text: list[str] = []
    spans: list[_Span] = []
    at = 0
    row_name = None
    last = 0
    for m in _SLOT.finditer(template):
        literal = template[last : m.start()]
        text.append(literal)
        at += len(literal)
        parts = makers[m.group(1)]()
        for part in parts:
            # A leading "\0" marks a title, which is text and not a name; the gaps
            # between the parts of a name hold no letters.
            if part.startswith("\0"):
                part = part[1:]
            elif any(ch.isalpha() for ch in part):
                spans.append((at, at + len(part)))
            text.append(part)
            at += len(part)
        if row_name is None and m.group(1) == "full":
            row_name = "".join(parts)
        last = m.end()
    text.append(template[last:])
    return Note("".join(text), tuple(spans), lang, split, row_name)


def generate_notes(size: int = 4000, seed: int = 20261206) -> list[Note]:
    """``size`` notes, half Chinese and half English, dev and held-out templates alike."""
    people = _People(seed)
    notes = []
    for i in range(size):
        lang = "zh" if i % 2 == 0 else "en"
        split = "heldout" if (i // 2) % 2 else "dev"
        pool = {
            ("zh", "dev"): ZH_DEV,
            ("zh", "heldout"): ZH_HELDOUT,
            ("en", "dev"): EN_DEV,
            ("en", "heldout"): EN_HELDOUT,
        }[lang, split]
        notes.append(_note(people, lang, split, people.rng.choice(pool)))
    return notes


# --- scoring ---------------------------------------------------------------------------


_PLACEHOLDER = re.compile(r"\[(?:EMAIL|PHONE|NATIONAL_ID|BANK_CARD|IP|NAME)\]")


def scrubbed_spans(text: str, output: str) -> list[_Span]:
    """The spans of ``text`` that became ``[NAME]`` in ``output``.

    The scrubber only replaces spans with placeholders, so the output with each
    placeholder read as "some text" is a pattern that the input matches."""
    pieces = _PLACEHOLDER.split(output)
    kinds = _PLACEHOLDER.findall(output)
    pattern = "(.+?)".join(re.escape(piece) for piece in pieces)
    m = re.fullmatch(pattern, text, re.DOTALL)
    if m is None:
        raise ValueError(f"output does not line up with its input: {output!r}")
    return [m.span(g + 1) for g, kind in enumerate(kinds) if kind == NAME]


def _letters(text: str, span: _Span) -> list[int]:
    return [i for i in range(*span) if text[i].isalpha()]


def score(notes: list[Note], outputs: list[str]) -> dict[tuple[str, str], NameScore]:
    """Per (language, split): names found and ``[NAME]`` placeholders that were right."""
    scores: dict[tuple[str, str], NameScore] = {}
    for note, output in zip(notes, outputs, strict=True):
        s = scores.setdefault((note.lang, note.split), NameScore())
        flagged = scrubbed_spans(note.text, output)
        covered = {i for span in flagged for i in range(*span)}
        s.names += len(note.names)
        s.found += sum(1 for span in note.names if set(_letters(note.text, span)) <= covered)
        s.flagged += len(flagged)
        s.right += sum(
            1 for a, b in flagged if any(a < end and start < b for start, end in note.names)
        )
    return scores


def scrub_notes(notes: list[Note], *, detect_names: bool = True) -> list[str]:
    texts = pa.array([n.text for n in notes], pa.string())
    rows = pa.array([n.row_name for n in notes], pa.string())
    return [str(v) for v in scrub(texts, [rows], detect_names=detect_names).to_pylist()]


def notes_of_about(chars: int, notes: list[Note]) -> list[Note]:
    """Consecutive notes joined until each holds about ``chars`` characters."""
    joined: list[Note] = []
    texts: list[str] = []
    for note in notes:
        texts.append(note.text)
        if sum(map(len, texts)) + len(texts) - 1 >= chars * 0.9:
            joined.append(Note(" ".join(texts), (), note.lang, note.split, note.row_name))
            texts = []
    return joined


def _throughput(notes: list[Note]) -> tuple[float, float]:
    """Notes per second for today's scrubber and the new one, all notes distinct.

    The two are timed in turns, best of seven each, so that a busy moment of the
    machine weighs on both alike, and in the processor time of this process: on a
    machine shared with other work, wall-clock time counts theirs too."""
    texts = pa.array([n.text for n in notes], pa.string())
    rows = pa.array([n.row_name for n in notes], pa.string())
    best = {False: float("inf"), True: float("inf")}
    for _ in range(7):
        for detect in (False, True):
            started = time.process_time()
            scrub(texts, [rows], detect_names=detect)
            best[detect] = min(best[detect], time.process_time() - started)
    return len(notes) / best[False], len(notes) / best[True]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=20261206)
    parser.add_argument("--show", type=int, default=0, help="print N notes with a miss")
    args = parser.parse_args(argv)

    if hasattr(os, "sched_setaffinity"):  # one core, as the target is stated
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    notes = generate_notes(args.size, args.seed)
    scrub_notes(notes[:10])  # load the segmenter before anything is timed
    mean = sum(len(n.text) for n in notes) / len(notes)
    print(f"corpus: {len(notes)} notes (seed {args.seed}), mean {mean:.0f} characters")
    print(f"{'scrubber':<8} {'lang':<4} {'split':<8} {'names':>6} {'recall':>7} {'precision':>9}")
    results = {}
    for label, detect in (("today", False), ("new", True)):
        outputs = scrub_notes(notes, detect_names=detect)
        results[label] = outputs
        for (lang, split), s in sorted(score(notes, outputs).items()):
            print(
                f"{label:<8} {lang:<4} {split:<8} {s.names:>6} {s.recall:>7.3f} {s.precision:>9.3f}"
            )
    structured = scrub_corpus.generate_corpus(4000, args.seed)
    texts, columns = scrub_corpus._columns(structured)
    for label, detect in (("today", False), ("new", True)):
        outputs = [str(v) for v in scrub(texts, columns, detect_names=detect).to_pylist()]
        scores = scrub_corpus.evaluate(structured, outputs)
        print(
            f"structured kinds, {label}: "
            + ", ".join(
                f"{kind} recall {scores[kind].recall:.3f} precision {scores[kind].precision:.3f}"
                for kind in scrub_corpus.STRUCTURED_KINDS
            )
        )
    more = generate_notes(4 * args.size, args.seed + 1)
    for lang in ("zh", "en"):
        padded = notes_of_about(200, [n for n in more if n.lang == lang])
        size = sum(len(n.text) for n in padded) / len(padded)
        today, new = _throughput(padded)
        print(
            f"throughput {lang} ({len(padded)} distinct notes of {size:.0f} chars, one core): "
            f"today {today:,.0f} notes/s, new {new:,.0f} notes/s ({new / today:.2f}x)"
        )
    shown = 0
    for note, out in zip(notes, results["new"], strict=True):
        if shown >= args.show:
            break
        if note.split != "dev":
            continue
        flagged = {i for span in scrubbed_spans(note.text, out) for i in range(*span)}
        missed = [s for s in note.names if not set(_letters(note.text, s)) <= flagged]
        wrong = [
            s
            for s in scrubbed_spans(note.text, out)
            if not any(s[0] < e and b < s[1] for b, e in note.names)
        ]
        if missed or wrong:
            print(f"- {note.text}\n  {out}")
            print(f"  missed {[note.text[a:b] for a, b in missed]}")
            print(f"  wrong {[note.text[a:b] for a, b in wrong]}")
            shown += 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
