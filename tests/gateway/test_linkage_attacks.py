"""Linkage and membership inference, run as an attacker would against the gateway's answers.

1. Linkage (Sweeney): the attacker holds a public table with the names and the full
   quasi-identifiers (birth date, gender, postcode) of a tenth of the population, and
   joins it to a released table on those quasi-identifiers, coarsened the way the release
   coarsens them. A released row that exactly one known person matches is re-identified.
2. Membership inference: the attacker knows everything about one customer, including
   that its contract value sits at the top of the bounds, and asks the aggregate endpoint
   for the total to tell whether that customer is in the dataset.

Each attack succeeds against an unprotected control (the raw profile, exact sums) and is
held to what the protection promises against every anonymized profile: at most one
released row in k re-identified; an advantage no larger than differential privacy allows.
The measured rates are logged (``pytest --log-cli-level=INFO``).
"""

from __future__ import annotations

import io
import logging
import math
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from fastapi.testclient import TestClient

from gateway.demo.workspace import ALUMNI_PURPOSE, MARKET_PURPOSE, SURGICAL_PURPOSE, Workspace
from gateway.state.database import create_state_engine
from tests.conftest import add_test_grant, bearer, client_for, copy_workspace

ARROW = "application/vnd.apache.arrow.stream"
QUASI_IDENTIFIERS = ("birth_date", "gender", "zip")
CARE_PURPOSE = "direct patient care"

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)


def released(client: TestClient, ws: Workspace, who: str, purpose: str) -> pa.Table:
    response = client.post(
        "/v1/datasets/patients/query",
        headers={**bearer(ws, who), "Accept": ARROW},
        content=orjson.dumps({"limit": 10_000, "purpose": purpose}),
    )
    assert response.status_code == 200, response.text
    return pa.ipc.open_stream(io.BytesIO(response.content)).read_all()


# -- 1. linkage with an auxiliary table --------------------------------------------------


def auxiliary(source: pa.Table, fraction: float = 0.1, seed: int = 26) -> list[dict]:
    """A public list of a tenth of the population: name and full quasi-identifiers.

    The patient id is kept only to score the attack; the attacker links without it."""
    rows = source.select(["patient_id", "name", *QUASI_IDENTIFIERS]).to_pylist()
    return random.Random(seed).sample(rows, round(len(rows) * fraction))


_BAND = re.compile(r"^(\d{4})-(\d{4})$")


def coarsener(release: pa.Table, column: str):
    """How the release writes a column, read off its values: a band of years
    (1950-1959), a kept prefix (6*****), or the value itself."""
    sample = next(v for v in release.column(column).to_pylist() if v is not None)
    if isinstance(sample, str) and (band := _BAND.match(sample)):
        width = int(band.group(2)) - int(band.group(1)) + 1

        def to_band(value: date) -> str:
            low = value.year - value.year % width
            return f"{low}-{low + width - 1}"

        return to_band
    if isinstance(sample, str) and sample.endswith("*"):
        kept = len(sample.rstrip("*"))
        return lambda value: value[:kept] + "*" * (len(value) - kept)
    return lambda value: value


@dataclass(frozen=True)
class Linkage:
    released_rows: int
    targets: int
    unique_rows: int  # released rows that exactly one known person matches
    unique_targets: int  # known people who match exactly one released row
    correct: int | None  # of those, how many are the right row (when the release shows it)
    guess_rate: float  # the chance a known person is found by guessing among their matches

    @property
    def unique_row_rate(self) -> float:
        return self.unique_rows / self.released_rows

    @property
    def unique_target_rate(self) -> float:
        return self.unique_targets / self.targets


def link(release: pa.Table, known: list[dict]) -> Linkage:
    coarsen = {c: coarsener(release, c) for c in QUASI_IDENTIFIERS}
    by_key: dict[tuple, list[int]] = defaultdict(list)
    columns = [release.column(c).to_pylist() for c in QUASI_IDENTIFIERS]
    for row, key in enumerate(zip(*columns, strict=True)):
        by_key[key].append(row)
    ids = release.column("patient_id").to_pylist()
    unique_rows: set[int] = set()
    unique_targets = correct = 0
    guess = 0.0
    for person in known:
        key = tuple(coarsen[c](person[c]) for c in QUASI_IDENTIFIERS)
        matches = by_key.get(key, [])
        if matches:
            guess += 1 / len(matches)
        if len(matches) == 1:
            unique_targets += 1
            unique_rows.add(matches[0])
            correct += ids[matches[0]] == person["patient_id"]
    shows_ids = any(i == known[0]["patient_id"] for i in ids)
    return Linkage(
        release.num_rows,
        len(known),
        len(unique_rows),
        unique_targets,
        correct if shows_ids else None,
        guess / len(known),
    )


@pytest.fixture(scope="module")
def linkage_workspace(demo_template: Workspace, tmp_path_factory: pytest.TempPathFactory):
    """The demo, plus the grants of an unprotected control: raw rows for a clinician."""
    ws = copy_workspace(demo_template, tmp_path_factory.mktemp("linkage") / "ws")
    engine = create_state_engine(ws.config.state_url)
    add_test_grant(
        engine,
        ws.config,
        "alice",
        "raw",
        dataset="patients",
        purpose=CARE_PURPOSE,
        days=1,
        approvals=2,
    )
    engine.dispose()
    with client_for(ws) as client:
        source = pq.read_table(ws.root / "data/imaging/patients.parquet")
        yield ws, client, auxiliary(source)


def test_linkage_reidentifies_the_raw_release(linkage_workspace):
    ws, client, known = linkage_workspace
    result = link(released(client, ws, "alice", CARE_PURPOSE), known)
    log.info("linkage, raw profile: %s", result)
    # Full birth date, gender and postcode single out nearly everyone, correctly.
    assert result.unique_target_rate > 0.9
    assert result.correct == result.unique_targets
    assert result.unique_row_rate > 0.09  # about the tenth of the rows that are known


@pytest.mark.parametrize(
    ("who", "purpose"), [("mei", SURGICAL_PURPOSE), ("lin", ALUMNI_PURPOSE)], ids=["mei", "lin"]
)
def test_linkage_reidentifies_no_anonymized_row(linkage_workspace, who: str, purpose: str):
    ws, client, known = linkage_workspace
    release = released(client, ws, who, purpose)
    assert release.column("patient_id")[0].as_py().startswith("p1_")  # it is anonymized
    result = link(release, known)
    k = ws.config.datasets["patients"].k
    log.info("linkage, %s's anonymized profile (k=%d): %s", who, k, result)
    assert result.unique_row_rate <= 1 / k
    assert result.unique_target_rate <= 1 / k
    assert result.guess_rate <= 1 / k
    # Stronger than the bound: no class of the release is smaller than k, so no row
    # is ever matched by one known person alone.
    assert result.unique_rows == 0


# -- 2. membership inference on aggregates -----------------------------------------------

TOP = 5_000_000  # the upper bound of contract_value in the demo's configuration
TOTAL = {"aggregates": [{"fn": "sum", "column": "contract_value", "as": "total"}]}


def membership_worlds(demo: Workspace, root: Path) -> tuple[Workspace, Workspace, float]:
    """Two copies of the demo that differ in one customer, and the others' exact total.

    The budget caps are raised so that many independent attackers, each spending one
    query's epsilon, can be simulated on one grant; the per-query epsilon is the one
    configured."""
    worlds = []
    for name in ("with", "without"):
        ws = copy_workspace(demo, root / name)
        config = yaml.safe_load(ws.config_path.read_text())
        config.setdefault("budgets", {}).update(epsilon_per_grant=1e9, epsilon_per_org=1e9)
        ws.config_path.write_text(yaml.safe_dump(config, allow_unicode=True))
        worlds.append(ws)
    path = "data/crm/customers.parquet"
    customers = pq.read_table(demo.root / path)
    others = customers.slice(1)
    target = customers.slice(0, 1).set_column(
        customers.schema.get_field_index("contract_value"),
        "contract_value",
        pa.array([TOP], customers.schema.field("contract_value").type),
    )
    pq.write_table(pa.concat_tables([target, others]), worlds[0].root / path)
    pq.write_table(others, worlds[1].root / path)
    return worlds[0], worlds[1], float(pc.sum(others.column("contract_value")).as_py())


def ask_total(client: TestClient, ws: Workspace, epsilon: float) -> float:
    body = {**TOTAL, "purpose": MARKET_PURPOSE, "epsilon": epsilon}
    response = client.post(
        "/v1/datasets/customers/query", content=orjson.dumps(body), headers=bearer(ws, "sam")
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-kiteline-epsilon-spent"] == f"{epsilon:g}"
    return float(response.json()["rows"][0]["total"])


def advantage(answers_in: list[float], answers_out: list[float], others: float) -> float:
    """The attacker's best single test on the total: "in" when it is nearer to the total
    with the customer than without. Advantage = true-positive rate - false-positive rate."""
    cut = others + TOP / 2
    hits = sum(a > cut for a in answers_in) / len(answers_in)
    false_alarms = sum(a > cut for a in answers_out) / len(answers_out)
    return hits - false_alarms


def dp_bound(epsilon: float, delta: float) -> float:
    """The most any test can gain from an (epsilon, delta)-DP answer, prior one half."""
    return (math.exp(epsilon) - 1 + 2 * delta) / (math.exp(epsilon) + 1)


def test_membership_of_one_customer_is_hidden_as_dp_promises(
    demo_template: Workspace, tmp_path: Path
):
    with_target, without_target, others = membership_worlds(demo_template, tmp_path)
    # Control: exact totals tell the two worlds apart every time.
    customers = pq.read_table(with_target.root / "data/crm/customers.parquet")
    exact_in = float(pc.sum(customers.column("contract_value")).as_py())
    assert advantage([exact_in], [others], others) == 1.0

    configured = demo_template.config.budgets
    attackers = [  # (what the attacker spends, per query, queries averaged)
        ("one query at the default epsilon", configured.epsilon_per_query, 1),
        ("one query at the largest epsilon", configured.max_epsilon_per_query, 1),
        ("the grant's whole budget", configured.max_epsilon_per_query, 5),
    ]
    trials = 150
    with client_for(with_target) as inside, client_for(without_target) as outside:
        for what, epsilon, queries in attackers:
            spent = epsilon * queries
            assert spent <= min(configured.epsilon_per_grant, configured.epsilon_per_org)
            averaged = {
                name: [
                    sum(ask_total(client, ws, epsilon) for _ in range(queries)) / queries
                    for _ in range(trials)
                ]
                for name, client, ws in (
                    ("in", inside, with_target),
                    ("out", outside, without_target),
                )
            }
            measured = advantage(averaged["in"], averaged["out"], others)
            bound = dp_bound(spent, configured.delta * queries)
            log.info(
                "membership, %s (epsilon %g): advantage %.3f, DP bound %.3f",
                what,
                spent,
                measured,
                bound,
            )
            assert measured <= bound
