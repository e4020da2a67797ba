"""Attacks people actually run, written as the attacker would, against what leaves the gateway.

Each attack also runs against a deliberately weak target (unkeyed hashes, exact
aggregates) to show it is a real attack: the same code that fails against kiteline
succeeds there.
"""

from __future__ import annotations

import base64
import hashlib
import io
import random
import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from gateway.access import budgets
from gateway.demo.workspace import ALUMNI_PURPOSE, MARKET_PURPOSE, SURGICAL_PURPOSE, Workspace
from gateway.errors import BudgetExhausted
from gateway.state.database import create_state_engine, migrate
from gateway.transforms.privacy import AggregatePlan, Measure, Output, exact_groups, release
from tests.conftest import bearer

ARROW = "application/vnd.apache.arrow.stream"


def extract(
    client: TestClient,
    ws: Workspace,
    who: str,
    purpose: str,
    limit: int = 10_000,
    dataset: str = "patients",
) -> pa.Table:
    response = client.post(
        f"/v1/datasets/{dataset}/query",
        headers={**bearer(ws, who), "Accept": ARROW},
        content=orjson.dumps({"limit": limit, "purpose": purpose}),
    )
    assert response.status_code == 200, response.text
    return pa.ipc.open_stream(io.BytesIO(response.content)).read_all()


def b32(data: bytes) -> str:
    return base64.b32encode(data).decode().rstrip("=").lower()


def dictionary(values: list[str]) -> set[str]:
    """Everything an attacker without the key can compute from a source value."""
    out: set[str] = set()
    for value in values:
        for algorithm in (
            "md5",
            "sha1",
            "sha256",
            "sha512",
            "sm3" if "sm3" in hashlib.algorithms_available else "sha3_256",
        ):
            digest = hashlib.new(algorithm, value.encode()).digest()
            out |= {digest.hex(), b32(digest), b32(digest[:15]), b32(digest)[:24]}
    return out


def digest_parts(pseudonyms: list[str]) -> set[str]:
    return {p for p in pseudonyms} | {p.rsplit("_", 1)[-1] for p in pseudonyms}


# -- 1. dictionary attack on the pseudonyms -------------------------------------------


def test_hashing_every_source_id_without_the_key_matches_nothing(
    client: TestClient, workspace: Workspace
):
    source = pq.read_table(workspace.root / "data/imaging/patients.parquet")
    leaked = digest_parts(
        extract(client, workspace, "mei", SURGICAL_PURPOSE).column("patient_id").to_pylist()
    )
    candidates = dictionary(
        source.column("national_id").to_pylist() + source.column("patient_id").to_pylist()
    )
    assert not leaked & candidates
    # Control: the same dictionary defeats an unkeyed hash of the same identifiers.
    unkeyed = {
        b32(hashlib.sha256(p.encode()).digest()[:15])
        for p in source.column("patient_id").to_pylist()
    }
    assert len(unkeyed & candidates) == len(unkeyed)


# -- 2. linkage across partners --------------------------------------------------------


def test_two_recipients_extracts_do_not_join(client: TestClient, workspace: Workspace):
    mei = extract(client, workspace, "mei", SURGICAL_PURPOSE)
    lin = extract(client, workspace, "lin", ALUMNI_PURPOSE)
    assert mei.num_rows > 9_000 and lin.num_rows == mei.num_rows
    joined = mei.join(lin, "patient_id", join_type="inner", right_suffix="_lin")
    assert joined.num_rows == 0
    assert not digest_parts(mei.column("patient_id").to_pylist()) & digest_parts(
        lin.column("patient_id").to_pylist()
    )
    # Control: within one recipient the same patients do join across datasets.
    studies = extract(client, workspace, "mei", SURGICAL_PURPOSE, dataset="studies")
    assert mei.join(studies, "patient_id", join_type="inner").num_rows > 0


# -- 3. tracker / differencing on the aggregate endpoint ------------------------------


def test_tracker_filters_are_refused_at_the_endpoint(client: TestClient, workspace: Workspace):
    for where in (
        {"column": "customer_id", "op": "!=", "value": "C00001"},
        {"column": "hospital", "op": "like", "value": "%"},
        {"column": "city", "op": "=", "value": "北京"},
    ):
        response = client.post(
            "/v1/datasets/customers/query",
            headers=bearer(workspace, "sam"),
            content=orjson.dumps(
                {
                    "aggregates": [{"fn": "sum", "column": "contract_value"}],
                    "where": [where],
                    "purpose": MARKET_PURPOSE,
                }
            ),
        )
        assert response.status_code == 403
        assert response.json()["rule"] == "no filters under aggregate"


def ledger(tmp_path: Path, cap: float) -> Callable[[float], None]:
    engine = create_state_engine(f"sqlite:///{tmp_path / 'budget.db'}")
    migrate(engine)

    def pay(epsilon: float) -> None:
        budgets.charge(
            engine, [budgets.Charge("org:attacker:epsilon", "total", epsilon, cap, "org epsilon")]
        )

    return pay


SUM_PLAN = AggregatePlan(
    (),
    (Measure("sum", "contract_value", (0.0, 5_000_000.0)),),
    (Output("total", "sum", "contract_value"),),
    min_group_size=5,
)


def dp_sum(table: pa.Table, epsilon: float) -> float:
    exact = exact_groups(SUM_PLAN, table.to_batches())
    rows = release(SUM_PLAN, exact, epsilon=epsilon, delta=1e-6, group_types=[]).table
    return rows.to_pylist()[0]["total"]


def exact_sum(table: pa.Table, epsilon: float) -> float:  # noqa: ARG001 - same signature
    return float(pc.sum(table.column("contract_value")).as_py())


def differencing_attack(customers: pa.Table, targets: list[int], answer, pay) -> list[float]:
    """Worst case for us: the attacker may filter. sum(all) - sum(all but the target)."""
    estimates = []
    everyone = pa.array([True] * customers.num_rows)
    for target in targets:
        others = pc.not_equal(pa.array(range(customers.num_rows)), target)
        pay(0.5)
        with_target = answer(customers.filter(everyone), 0.5)
        pay(0.5)
        estimates.append(with_target - answer(customers.filter(others), 0.5))
    return estimates


def test_differencing_recovers_no_individual_value(workspace: Workspace, tmp_path: Path):
    customers = pq.read_table(workspace.root / "data/crm/customers.parquet")
    truth = customers.column("contract_value").to_pylist()
    targets = list(range(10))
    # Control: against exact sums, the attack recovers every target exactly.
    exact = differencing_attack(customers, targets, exact_sum, lambda _eps: None)
    assert [round(e) for e in exact] == [truth[t] for t in targets]
    # Against the DP release with a 10-epsilon budget, the budget runs out after these
    # 20 queries and no estimate is usable.
    pay = ledger(tmp_path, cap=10.0)
    noisy = differencing_attack(customers, targets, dp_sum, pay)
    errors = [abs(e - truth[t]) for e, t in zip(noisy, targets, strict=True)]
    assert all(round(e) != truth[t] for e, t in zip(noisy, targets, strict=True))
    assert statistics.median(errors) > 100_000
    with pytest.raises(BudgetExhausted):
        pay(0.5)


# -- 4. reconstruction by many random subset counts ------------------------------------

BIT_PLAN = AggregatePlan(
    (), (Measure("sum", "bit", (0.0, 1.0)),), (Output("ones", "sum", "bit"),), min_group_size=2
)


def reconstruct(bits: list[int], answer, pay, queries: int, seed: int = 9) -> float:
    """Dinur-Nissim: random subsets, their counts of ones, least squares, round.

    Each subset is padded with rows the attacker knows hold zeros, so that every answer
    is large enough to pass the group threshold: only the noise can stop the attack."""
    rng = np.random.default_rng(seed)
    n, padding = len(bits), 1000
    table = pa.table({"bit": pa.array(bits + [0] * padding, pa.float64())})
    spend = 10.0 / queries
    rows, answers = [], []
    for _ in range(queries):
        try:
            pay(spend)
        except BudgetExhausted:
            break
        subset = rng.integers(0, 2, n).astype(bool)
        rows.append(subset.astype(float))
        mask = pa.array(np.concatenate([subset, np.ones(padding, bool)]))
        answers.append(answer(table.filter(mask), spend))
    guess, *_ = np.linalg.lstsq(np.array(rows), np.array(answers), rcond=None)
    return float(np.mean((guess > 0.5).astype(int) == np.array(bits)))


def dp_count_ones(table: pa.Table, epsilon: float) -> float:
    exact = exact_groups(BIT_PLAN, table.to_batches())
    rows = release(BIT_PLAN, exact, epsilon=epsilon, delta=1e-6, group_types=[]).table
    return rows.to_pylist()[0]["ones"] if rows.num_rows else 0.0


def exact_count_ones(table: pa.Table, epsilon: float) -> float:  # noqa: ARG001
    return float(pc.sum(table.column("bit")).as_py() or 0)


def test_reconstruction_fails_before_the_budget_allows_success(tmp_path: Path):
    rng = random.Random(4)
    bits = [rng.randint(0, 1) for _ in range(100)]
    # Control: with exact answers, 150 random subsets reconstruct every secret bit.
    assert reconstruct(bits, exact_count_ones, lambda _eps: None, queries=150) == 1.0
    # Under a budget of 10 the attacker spreads it over as many queries as the attack
    # needs; each answer then carries noise of scale ~30, far above what least squares
    # can undo. Once the budget is spent, every further query is refused.
    pay = ledger(tmp_path, cap=10.0)
    accuracy = reconstruct(bits, dp_count_ones, pay, queries=150)
    assert accuracy < 0.8  # about a coin flip; exact answers gave 1.0
    with pytest.raises(BudgetExhausted):
        pay(0.01)


# -- 5. paging with cursors past the row cap -------------------------------------------


def test_cursors_cannot_page_past_the_row_cap(client: TestClient, workspace: Workspace):
    engine = create_state_engine(workspace.config.state_url)
    with engine.connect() as conn:
        grant = conn.exec_driver_sql(
            "SELECT id FROM grants WHERE subject='surgibot' AND dataset='patients'"
        ).scalar_one()
    budgets.set_limits(engine, int(grant), rows_total=300)
    engine.dispose()

    def page(body: dict) -> object:
        return client.post(
            "/v1/datasets/patients/query",
            headers=bearer(workspace, "mei"),
            content=orjson.dumps({**body, "purpose": SURGICAL_PURPOSE}),
        )

    first = page({"limit": 200})
    cursors = [first.json()["next_cursor"]]
    second = page({"limit": 200, "cursor": cursors[0]})
    assert len(second.json()["rows"]) == 100  # cut at the cap, not 200
    # Replaying an earlier cursor, or asking for a bigger page, gets nothing more.
    assert page({"limit": 200, "cursor": cursors[0]}).status_code == 429
    assert page({"limit": 10_000}).status_code == 429
    assert page({"limit": 1, "cursor": second.json()["next_cursor"]}).status_code == 429
