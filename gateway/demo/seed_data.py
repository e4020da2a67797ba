"""The demo's synthetic data: patients, studies, annotations and customers of
Deepview Medical, written as seeded Parquet files.

The data is fake through and through (Faker's zh_CN locale); the same seed gives the
same data.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from faker import Faker

SEED = 20261124
PATIENTS = 10_000
STUDIES = 50_000
ANNOTATIONS = 80_000
CUSTOMERS = 400

DIAGNOSES = [
    "肺结节",
    "肺炎",
    "骨折",
    "脑梗死",
    "乳腺结节",
    "甲状腺结节",
    "肝囊肿",
    "正常",
    "冠状动脉钙化",
    "椎间盘突出",
]
MODALITIES = {
    "CT": ["胸部", "头部", "腹部"],
    "MR": ["头部", "膝关节", "腰椎"],
    "XR": ["胸部", "手部"],
    "US": ["甲状腺", "乳腺", "腹部"],
}
LABELS = ["nodule", "fracture", "normal", "effusion", "mass", "calcification"]


def _patients(fake: Faker, rng: random.Random) -> pa.Table:
    rows: dict[str, list[object]] = {
        k: []
        for k in (
            "patient_id",
            "name",
            "national_id",
            "phone",
            "birth_date",
            "gender",
            "zip",
            "diagnosis",
            "notes",
        )
    }
    for i in range(PATIENTS):
        name = fake.name()
        phone = fake.phone_number()
        birth = fake.date_of_birth(minimum_age=18, maximum_age=90)
        gender = rng.choice(["男", "女"])
        rows["patient_id"].append(f"P{i + 1:06d}")
        rows["name"].append(name)
        rows["national_id"].append(fake.ssn())
        rows["phone"].append(phone)
        rows["birth_date"].append(birth)
        rows["gender"].append(gender)
        rows["zip"].append(fake.postcode())
        diagnosis = rng.choice(DIAGNOSES)
        rows["diagnosis"].append(diagnosis)
        rows["notes"].append(
            rng.choice(
                [
                    f"患者{name}，联系电话{phone}，建议三个月后复查。",
                    f"{diagnosis}，随访。家属邮箱 {fake.email()}",
                    "影像所见未见明显异常。",
                    f"Patient {name} referred by Dr. {fake.last_name()}; call {phone}.",
                ]
            )
        )
    schema = pa.schema(
        [
            ("patient_id", pa.string()),
            ("name", pa.string()),
            ("national_id", pa.string()),
            ("phone", pa.string()),
            ("birth_date", pa.date32()),
            ("gender", pa.string()),
            ("zip", pa.string()),
            ("diagnosis", pa.string()),
            ("notes", pa.string()),
        ]
    )
    return pa.table(rows, schema=schema)


def _studies(rng: random.Random) -> pa.Table:
    start = datetime(2021, 1, 1)
    modality = [rng.choice(list(MODALITIES)) for _ in range(STUDIES)]
    return pa.table(
        {
            "study_id": [f"S{i + 1:07d}" for i in range(STUDIES)],
            "patient_id": [f"P{rng.randint(1, PATIENTS):06d}" for _ in range(STUDIES)],
            "modality": modality,
            "body_part": [rng.choice(MODALITIES[m]) for m in modality],
            "acquired_at": pa.array(
                [
                    start + timedelta(minutes=rng.randint(0, 60 * 24 * 365 * 5))
                    for _ in range(STUDIES)
                ],
                pa.timestamp("us"),
            ),
            "image_uri": [f"s3://deepview-raw/studies/{i + 1:07d}.dcm" for i in range(STUDIES)],
            "finding": [rng.choice(DIAGNOSES) for _ in range(STUDIES)],
        }
    )


def _annotations(rng: random.Random, annotators: list[str]) -> pa.Table:
    start = datetime(2022, 1, 1)
    return pa.table(
        {
            "study_id": [f"S{rng.randint(1, STUDIES):07d}" for _ in range(ANNOTATIONS)],
            "label": [rng.choice(LABELS) for _ in range(ANNOTATIONS)],
            "annotator": [rng.choice(annotators) for _ in range(ANNOTATIONS)],
            "created_at": pa.array(
                [
                    start + timedelta(minutes=rng.randint(0, 60 * 24 * 365 * 4))
                    for _ in range(ANNOTATIONS)
                ],
                pa.timestamp("us"),
            ),
        }
    )


def _customers(fake: Faker, rng: random.Random) -> pa.Table:
    cities = ["北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "南京"]
    return pa.table(
        {
            "customer_id": [f"C{i + 1:05d}" for i in range(CUSTOMERS)],
            "hospital": [
                f"{rng.choice(cities)}{fake.company_prefix()}医院" for _ in range(CUSTOMERS)
            ],
            "contact_name": [fake.name() for _ in range(CUSTOMERS)],
            "contact_phone": [fake.phone_number() for _ in range(CUSTOMERS)],
            "city": [rng.choice(cities) for _ in range(CUSTOMERS)],
            "contract_value": [rng.randint(50_000, 5_000_000) for _ in range(CUSTOMERS)],
        }
    )


def write_data(data_dir: Path, seed: int = SEED) -> None:
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    (data_dir / "imaging").mkdir(parents=True, exist_ok=True)
    (data_dir / "labels").mkdir(parents=True, exist_ok=True)
    (data_dir / "crm").mkdir(parents=True, exist_ok=True)
    # Small row groups so that bounded reads and filters touch little of each file.
    pq.write_table(
        _patients(fake, rng), data_dir / "imaging/patients.parquet", row_group_size=2_000
    )
    pq.write_table(_studies(rng), data_dir / "imaging/studies.parquet", row_group_size=10_000)
    annotators = [fake.name() for _ in range(25)]
    pq.write_table(
        _annotations(rng, annotators),
        data_dir / "labels/annotations.parquet",
        row_group_size=20_000,
    )
    pq.write_table(_customers(fake, rng), data_dir / "crm/customers.parquet")
