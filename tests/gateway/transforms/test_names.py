"""Other people's names in free text: the doctor, the relative, the colleague a note names."""

from __future__ import annotations

import io
import re

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from bench import names as names_bench
from gateway.demo.workspace import SURGICAL_PURPOSE, Workspace
from gateway.transforms.names import NameFinder, default_finder
from gateway.transforms.scrubbing import scrub
from tests.conftest import bearer


def _scrub(text: str, *names: str | None) -> str:
    columns = [pa.array([n], pa.string()) for n in names]
    return str(scrub(pa.array([text], pa.string()), columns).to_pylist()[0])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # titles and roles, in both languages and across them
        ("Patient referred by Dr. 李; call back.", "Patient referred by Dr. [NAME]; call back."),
        ("今日由王医生接诊，李主任会诊。", "今日由[NAME]医生接诊，[NAME]主任会诊。"),
        ("主治医生张海燕查房：白细胞偏高。", "主治医生[NAME]查房：白细胞偏高。"),
        ("家属丽丽说患者夜间咳嗽。", "家属[NAME]说患者夜间咳嗽。"),
        ("工单已分配给覃玉兰，明天上门。", "工单已分配给[NAME]，明天上门。"),
        ("Ask Nurse Brown to call Mrs. O'Neil.", "Ask Nurse [NAME] to call Mrs. [NAME]."),
        ("Spoke with his wife, Rose, today.", "Spoke with his wife, [NAME], today."),
        # names that are also words, after a role word, 由 or 的 and a relative
        ("家属安宁代诉患者夜间咳嗽。", "家属[NAME]代诉患者夜间咳嗽。"),
        ("客户夏天来电反映订单有误。", "客户[NAME]来电反映订单有误。"),
        ("感谢向阳耐心解答。", "感谢[NAME]耐心解答。"),
        ("白天多饮水，由常青随访。", "白天多饮水，由[NAME]随访。"),
        ("术后第二天，夏天的女儿前来探视。", "术后第二天，[NAME]的女儿前来探视。"),
        # a role word after the name is not swallowed, a title after three characters
        # keeps the third
        ("家属丽丽代诉患者夜间咳嗽。", "家属[NAME]代诉患者夜间咳嗽。"),
        ("请郑建国大夫审批这份文件。", "请[NAME]大夫审批这份文件。"),
        # transliterations, spaced and inverted names, speaker labels
        ("家属刘 秀珍代诉患者夜间咳嗽。", "家属[NAME]代诉患者夜间咳嗽。"),
        ("已联系约翰·史密斯核实。", "已联系[NAME]核实。"),
        ("联系人：张 伟，电话稍后给。", "联系人：[NAME]，电话稍后给。"),
        ("Could not reach Smith, David; retry.", "Could not reach [NAME]; retry."),
        ("Meeting with Dana van Dyke moved.", "Meeting with [NAME] moved."),
        ("唐娟：我明天下午到", "[NAME]：我明天下午到"),
        # what is not a name stays
        ("高血压病史十年，建议调整用药方案，金额不变，马上安排。", None),
        ("经办人：备注江苏分公司常规检查，华为手机无法登录。", None),
        ("Chrome crashes on Windows in London on Monday.", None),
        ("Escalated to Customer Service via the Emergency Department.", None),
        ("Please retry later. Thanks!", None),
        ("客户服务中心已告知患者家属，联系电话稍后给，联系方式见附件，谢谢配合。", None),
    ],
)
def test_names_that_no_column_lists(text: str, expected: str | None) -> None:
    assert _scrub(text) == (text if expected is None else expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a name that is also a word, or a given name alone, where a clause opens before
        # what a person does
        ("会议纪要：张伟主持，马力记录。", "会议纪要：[NAME]主持，[NAME]记录。"),
        ("本人表示满意，建华已登记。", "本人表示满意，[NAME]已登记。"),
        ("刚才金星在电梯里碰到我。", "刚才[NAME]在电梯里碰到我。"),
        ("学生的家长高明来电请假。", "学生的家长[NAME]来电请假。"),
        ("今天和老张一起去吃饭。", "今天和[NAME]一起去吃饭。"),
        ("安宁：我明天下午到", "[NAME]：我明天下午到"),
        # a surname jieba does not know, before a title
        ("有问题找鞠医生。", "有问题找[NAME]医生。"),
        # English: a greeting that opens the sentence, a month that is a given name, what a
        # person does after a lone given name, a surname that is also a place word, a
        # name in a list after "to"
        (
            "Hey Lily, your parcel is at the front desk.",
            "Hey [NAME], your parcel is at the front desk.",
        ),
        ("Contact: April Craig.", "Contact: [NAME]."),
        ("Minutes: Michael took notes.", "Minutes: [NAME] took notes."),
        ("Joy Ward lead this project.", "[NAME] lead this project."),
        # words that were taken for names: a label that is no name, what follows a title
        # after a name, a word that goes on past a surname, a verb after one
        ("请假条：病假两天。", None),
        ("会议纪要：王医生列席。", "会议纪要：[NAME]医生列席。"),
        ("请联系信息科处理。", None),
        ("药房通知：阿司匹林已停用。", None),
        ("让王大夫帮忙查一下。", "让[NAME]大夫帮忙查一下。"),
        # a three-character name the dictionary lists, a name before a title after a
        # verb, a word that is a name after 被 or 轮到, a relative after the name, a
        # relative or role word before it, spaced names after a character that ends a
        # clause, a given name alone before 已
        ("我是张建国的妈妈。", "我是[NAME]的妈妈。"),
        ("面试官刘建华和李畅先生下午到。", "面试官[NAME]和[NAME]先生下午到。"),
        ("接张旭大夫通知，明天调休。", "接[NAME]大夫通知，明天调休。"),
        ("会议室被文静订了。", "会议室被[NAME]订了。"),
        ("明天轮到安宁，后天张主任。", "明天轮到[NAME]，后天[NAME]主任。"),
        ("术后第二天，刘璐的女儿前来探视。", "术后第二天，[NAME]的女儿前来探视。"),
        ("女婿覃雷陪同。", "女婿[NAME]陪同。"),
        ("备注：此单由刘 波跟进。", "备注：此单由[NAME]跟进。"),
        ("廖磊来电咨询，秀兰已解答。", "[NAME]来电咨询，[NAME]已解答。"),
        ("刚才淑华在电梯里碰到我。", "刚才[NAME]在电梯里碰到我。"),
        ("你和他换到三楼吧。", None),
        # 老 and a surname the dictionary lists as a word, legal and other role words
        ("备注：此单由老张跟进。", "备注：此单由[NAME]跟进。"),
        ("老天保佑，一切顺利。", None),
        (
            "委托人张秀荣与被申请人王平之间的纠纷。",
            "委托人[NAME]与被申请人[NAME]之间的纠纷。",
        ),
        # a word tagged as a name before a verb, mid-clause, but not before 的 (an
        # adjective as often); a role noun ending in 人 or 员; a second role word after
        # the first; 小 and a given name's character, without what follows
        ("上次向阳帮我改的地址又错了。", "上次[NAME]帮我改的地址又错了。"),
        ("考虑周全的方案已通过。", None),
        ("早高峰的时候很堵。", None),
        ("工作人员高明已登记。", "工作人员[NAME]已登记。"),
        ("有问题联系客服金琴。", "有问题联系客服[NAME]。"),
        ("孙子小欣常来看她。", "孙子[NAME]常来看她。"),
        # a given name alone before 的 and a relative, or after 让 before a verb; the
        # whole of a role noun (工作人员, not 工作人) before what is no name
        ("我是秀云的妈妈。", "我是[NAME]的妈妈。"),
        ("上次借的书让秀英带给你了。", "上次借的书让[NAME]带给你了。"),
        ("工作人员表示满意。", None),
        ("让大家知道一下。", None),
        # English: a run that opens a sentence before a verb, a name written surname
        # first, after a relative or a role
        ("Sarah Baldwin booked the meeting room.", "[NAME] booked the meeting room."),
        ("Burke, Jessica booked the room.", "[NAME] booked the room."),
        (
            "I am the mother of Turner, Sandra; she has a fever.",
            "I am the mother of [NAME]; she has a fever.",
        ),
        ("Her son-in-law Mary escorted her.", "Her son-in-law [NAME] escorted her."),
        ("Her grandson Kimberly visits often.", "Her grandson [NAME] visits often."),
        ("Tracking number sent, Jack please check.", "Tracking number sent, [NAME] please check."),
        ("Sweetheart Andrew Cruz did great today.", "Sweetheart [NAME] did great today."),
        ("Customer Service called back.", None),
        ("Emergency Department admitted him.", None),
        # a place or a department after "to", capitalised words after an article, an
        # initial that closes a run
        ("Flight to Chicago booked; receipts go to Finance.", None),
        ("Reminder: the Quarterly Review is on Thursday in Room B.", None),
        ("The customer wants the Premium Plan; Sales will call back.", None),
        # Chinese: a given name that would open a word, a verb after a character that is
        # no surname, a character of the role word after it, a noun that does not end
        # as given names do; a role noun ending in 者, brackets that end a clause, 把
        ("明天去问过情况再说。", None),
        ("家长群通知：周五放假。", None),
        ("被申请方代理人刘洋出庭。", "被申请方代理人[NAME]出庭。"),
        ("门诊记录：咳嗽三天。", None),
        ("请带好雨伞和水壶。", None),
        ("来访者老周，首次咨询。", "来访者[NAME]，首次咨询。"),
        ("【回访】秀兰购买的冰箱有异响。", "【回访】[NAME]购买的冰箱有异响。"),
        ("谁把秀英的书拿走了？", "谁把[NAME]的书拿走了？"),
        # English: a relative named by the word for them, a place of care, a modal or an
        # adverb after a run that opens a sentence, a context word that opens it, a role
        ("Dad is doing well after the op.", None),
        ("Go to Urgent Care tonight.", None),
        ("Ticket 4411: Megan Hart can't log in.", "Ticket 4411: [NAME] can't log in."),
        ("Rota: Omar Price now covers nights.", "Rota: [NAME] now covers nights."),
        ("Called Kendra twice, no answer.", "Called [NAME] twice, no answer."),
        (
            "Their representative, Priya, sent the forms.",
            "Their representative, [NAME], sent the forms.",
        ),
        # a role written with a capital before the name is not part of it; an English
        # title right after a Chinese character, with or without a space
        ("Tenant Jessica Smith reports a leak.", "Tenant [NAME] reports a leak."),
        ("Student Paula Simon's parent called.", "Student [NAME]'s parent called."),
        ("会诊请Dr. 李，明早查房。", "会诊请Dr. [NAME]，明早查房。"),
        ("已转交Mr.王。", "已转交Mr.[NAME]。"),
        # "and", "of" and a possessive make no name of a lone capitalised word on their
        # own: a name joined to a person, a relative's, a person's belongings are found
        ("Mark the date: Chrome and Outlook updates on Friday.", None),
        ("Ordered a box of Kleenex, for the ward.", None),
        ("Meet at Macy's after work.", None),
        (
            "Cake by Mia Cole and Tessa, drinks by Sam Reed.",
            "Cake by [NAME] and [NAME], drinks by [NAME].",
        ),
        (
            "I am the mother of Zachary; he has a cough.",
            "I am the mother of [NAME]; he has a cough.",
        ),
        ("Someone took Lisa's charger.", "Someone took [NAME]'s charger."),
        # what the rules above must leave alone: a given name that is also a role word,
        # a join to a person found before the last one, a shape that is no name after a
        # join, an organisation before a modal, a curly apostrophe, "of" after a role that
        # is no relative, a possessive after "for", a role that is also a given name
        ("周树人是鲁迅的本名。", "[NAME]是鲁迅的本名。"),
        ("患者李立人来电。", "患者[NAME]来电。"),
        ("Dr. Smith and Tessa met Dr. Jones.", "Dr. [NAME] and [NAME] met Dr. [NAME]."),
        ("Ask Sam Reed and Room B.", "Ask [NAME] and Room B."),
        ("Urgent Care can see you today.", None),
        ("Megan Hart won\u2019t attend.", "[NAME] won\u2019t attend."),
        ("Ask the director of Operations.", None),
        ("Waiting for Tom's reply.", "Waiting for [NAME]'s reply."),
        ("Porter Smith will call.", "[NAME] will call."),
        ("Text Messages are delayed.", None),
    ],
)
def test_names_found_from_what_a_person_does_and_words_that_are_not_names(
    text: str, expected: str | None
) -> None:
    assert _scrub(text) == (text if expected is None else expected)


def test_structured_placeholders_are_not_names() -> None:
    assert _scrub("Mr. Li at 13812345678, IP 10.0.0.1") == "Mr. [NAME] at [PHONE], IP [IP]"


def test_detection_can_be_left_to_the_deny_list() -> None:
    texts = pa.array(["李医生说张伟来了"])
    names = [pa.array(["张伟"])]
    assert scrub(texts, names, detect_names=False).to_pylist() == ["李医生说[NAME]来了"]
    assert scrub(texts, names).to_pylist() == ["[NAME]医生说[NAME]来了"]


def test_the_rows_own_name_takes_in_what_the_finder_left_of_it() -> None:
    # Alone, the finder stops before 强 (强记 is a word); the row's name column knows better.
    assert _scrub("护士赵志强记录：体温正常") == "护士[NAME]强记录：体温正常"
    assert _scrub("护士赵志强记录：体温正常", "赵志强") == "护士[NAME]记录：体温正常"


def test_the_finder_is_built_once_and_from_the_package_alone() -> None:
    assert default_finder() is default_finder()
    # A second finder is independent and finds the same: nothing is fetched or trained.
    text = "患者李秀英由王医生接诊"
    assert NameFinder().spans(text) == default_finder().spans(text) == [(2, 5), (6, 7)]


def test_the_demo_no_longer_leaks_the_referring_doctor(client: TestClient, workspace: Workspace):
    """The note that started this: "Dr. 李" came back verbatim in an anonymized read."""
    doctor = re.compile(r"Dr\. [\u4e00-\u9fff]")
    source = pq.read_table(workspace.root / "data/imaging/patients.parquet")
    assert sum(bool(doctor.search(n)) for n in source.column("notes").to_pylist()) > 1000
    response = client.post(
        "/v1/datasets/patients/query",
        headers={**bearer(workspace, "mei"), "Accept": "application/vnd.apache.arrow.stream"},
        content=orjson.dumps({"limit": 10_000, "purpose": SURGICAL_PURPOSE}),
    )
    assert response.status_code == 200, response.text
    notes = pa.ipc.open_stream(io.BytesIO(response.content)).read_all().column("notes")
    assert not [n for n in notes.to_pylist() if doctor.search(n)]
    assert sum("Dr. [NAME]" in n for n in notes.to_pylist()) > 1000


# --- the labelled corpus ----------------------------------------------------------------


# Floors a little under what a 1000-note corpus of seed 5 measures (the corpus and the
# detector are deterministic): a change that loses names, or takes words for names,
# fails here. "heldout" templates were not used to choose the detector's rules.
FLOORS = {
    ("zh", "dev"): (0.97, 0.98),
    ("zh", "heldout"): (0.93, 0.98),
    ("en", "dev"): (0.98, 0.98),
    ("en", "heldout"): (0.96, 0.94),
}


# The later template sets are scored on notes of their own. "reviewed" ones were written
# blind, then their errors were read; "heldout2" and "blind" ones were written by someone
# who had read neither the detector nor these tests, and say more about unseen text.
# Their floors hold today's level, which misses the target: precision most of all.
LATER_FLOORS = {
    "reviewed": {("zh", "reviewed"): (0.95, 0.84), ("en", "reviewed"): (0.94, 0.98)},
    "heldout2": {("zh", "heldout2"): (0.94, 0.83), ("en", "heldout2"): (0.88, 0.93)},
    "blind": {("zh", "blind"): (0.95, 0.75), ("en", "blind"): (0.92, 0.81)},
}


@pytest.mark.parametrize("split", [None, "reviewed", "heldout2", "blind"])
def test_corpus_recall_and_precision(split: str | None) -> None:
    notes = names_bench.generate_notes(1000, seed=5, split=split)
    floors = FLOORS if split is None else LATER_FLOORS[split]
    today = names_bench.score(notes, names_bench.scrub_notes(notes, detect_names=False))
    new = names_bench.score(notes, names_bench.scrub_notes(notes))
    assert set(new) == set(floors)
    for key, (recall, precision) in floors.items():
        assert new[key].names > 300, key
        assert new[key].recall >= recall, (key, new[key])
        assert new[key].precision >= precision, (key, new[key])
        # The deny list alone finds only the row's own names.
        assert today[key].recall < 0.5, (key, today[key])


def test_corpus_is_reproducible_and_labels_line_up() -> None:
    notes = names_bench.generate_notes(200, seed=3)
    assert notes == names_bench.generate_notes(200, seed=3)
    for note in notes:
        assert note.names and all(note.text[a:b].strip() for a, b in note.names)
    # Scoring the input itself: nothing scrubbed, nothing found.
    untouched = names_bench.score(notes, [n.text for n in notes])
    assert all(s.found == 0 and s.flagged == 0 for s in untouched.values())
