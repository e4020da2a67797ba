"""The partner story through kiteline-client against a real `kiteline serve` process."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from kiteline_client import (
    AccessDenied,
    BudgetExhausted,
    Client,
    InvalidRequest,
    NotFound,
    Receipt,
    ReceiptInvalid,
    Retry,
    TransportFailed,
    Unauthenticated,
    read_info,
    verify_receipt,
)

from gateway.demo.workspace import MARKET_PURPOSE, SURGICAL_PURPOSE, Workspace
from tests.client.conftest import BIG_STUDIES, Server
from tests.gateway.test_anonymized_reads import set_limits

pytestmark = pytest.mark.slow


def client_for(server: Server, workspace: Workspace, who: str = "mei", **options) -> Client:
    return Client(server.url, workspace.tokens[who], **options)


def test_a_query_returns_an_arrow_table_and_frames(served: Server, workspace: Workspace):
    with client_for(served, workspace) as client:
        table = client.query(
            "patients", columns=["patient_id", "birth_date", "diagnosis"], purpose=SURGICAL_PURPOSE
        )
        assert isinstance(table, pa.Table)
        assert table.column_names == ["patient_id", "birth_date", "diagnosis"]
        # The whole grant-sized extract: k-suppression drops some of the 10,000 patients.
        assert 1000 < table.num_rows <= 10_000
        info = read_info(table)
        assert info.profile == "anonymized" and info.pages >= 1
        assert len(info.audit_seqs) == info.pages
        frame = table.to_pandas()
        assert list(frame.columns) == table.column_names and len(frame) == table.num_rows
        polars_frame = client.query_polars(
            "patients", columns=["diagnosis"], limit=50, purpose=SURGICAL_PURPOSE
        )
        assert polars_frame.shape == (50, 1)


def test_iterating_100k_rows_follows_cursors_in_pages(served: Server, workspace: Workspace):
    with client_for(served, workspace) as client:
        seen = 0
        ids: set[str] = set()
        biggest = 0
        for batch in client.iter_batches(
            "studies", columns=["study_id", "modality"], purpose=SURGICAL_PURPOSE
        ):
            seen += batch.num_rows
            biggest = max(biggest, batch.num_rows)
            ids.update(batch.column("study_id").to_pylist())
        assert seen == BIG_STUDIES
        # Pseudonyms are per recipient but stable: every row is a distinct study.
        assert len(ids) == BIG_STUDIES
        assert biggest <= client.page_rows


def test_a_limit_smaller_than_the_extract_stops_there(served: Server, workspace: Workspace):
    with client_for(served, workspace, page_rows=7_000) as client:
        table = client.query(
            "studies", columns=["modality"], limit=25_000, purpose=SURGICAL_PURPOSE
        )
        assert table.num_rows == 25_000
        assert read_info(table).pages == 4


def test_the_client_learns_a_lower_per_request_cap(served: Server, workspace: Workspace):
    # The gateway caps a request at 10,000 rows; a larger page is refused with the cap.
    with client_for(served, workspace, page_rows=50_000) as client:
        table = client.query(
            "studies", columns=["modality"], limit=30_000, purpose=SURGICAL_PURPOSE
        )
        assert table.num_rows == 30_000 and client.page_rows == 10_000


def test_an_aggregate_reports_the_privacy_budget_left(served: Server, workspace: Workspace):
    with client_for(served, workspace, who="sam") as client:
        first = client.aggregate(
            "customers",
            group_by=["city"],
            aggregates=[{"fn": "count"}],
            epsilon=1.0,
            purpose=MARKET_PURPOSE,
        )
        assert "city" in first.table.column_names and first.table.num_rows > 0
        assert first.budget.epsilon is not None
        second = client.aggregate(
            "customers", aggregates=[{"fn": "count"}], epsilon=1.0, purpose=MARKET_PURPOSE
        )
        assert second.budget.epsilon == pytest.approx(first.budget.epsilon - 1.0)
        left = second.budget.epsilon
        with pytest.raises(BudgetExhausted) as exhausted:
            for _ in range(10):
                left = client.aggregate(
                    "customers", aggregates=[{"fn": "count"}], epsilon=1.5, purpose=MARKET_PURPOSE
                ).budget.epsilon
        assert exhausted.value.remaining == pytest.approx(left)
        assert exhausted.value.budget and exhausted.value.needed == pytest.approx(1.5)
        assert exhausted.value.status == 429
        # A grant's epsilon is spent once: it never resets, and nothing is worth a wait.
        assert exhausted.value.problem["resets_at"] is None
        assert exhausted.value.resets_at is None and exhausted.value.retry_after is None


def test_an_exhausted_daily_row_budget_says_when_it_resets(served: Server, workspace: Workspace):
    set_limits(workspace, rows_per_day=300)
    calls: list[float] = []
    with client_for(served, workspace, sleep=calls.append) as client:
        assert client.query("patients", limit=300, purpose=SURGICAL_PURPOSE).num_rows == 300
        with pytest.raises(BudgetExhausted) as exhausted:
            client.query("patients", limit=10, purpose=SURGICAL_PURPOSE)
    error = exhausted.value
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    assert (error.budget, error.remaining) == ("rows today", 0)
    assert error.problem["resets_at"] == midnight.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert error.resets_at == midnight
    # Retry-After names the same instant; hours away, so the client does not wait.
    assert error.retry_after is not None
    assert abs(error.retry_after - (midnight - now).total_seconds()) < 30
    assert calls == []


def test_refusals_raise_typed_errors_at_once(served: Server, workspace: Workspace):
    calls: list[float] = []
    with client_for(served, workspace, who="sam", sleep=calls.append) as client:
        with pytest.raises(AccessDenied) as denied:
            client.query("patients", purpose=MARKET_PURPOSE)
        assert denied.value.status == 403 and denied.value.reasons
        assert denied.value.request_id
        with pytest.raises(NotFound):
            client.query("no-such-dataset", purpose=MARKET_PURPOSE)
        with pytest.raises(InvalidRequest) as invalid:
            client.query("customers", filters=[("city", "nope", 1)], purpose=MARKET_PURPOSE)
        assert invalid.value.errors
    with Client(served.url, "not-a-token", sleep=calls.append) as stranger:
        with pytest.raises(Unauthenticated):
            stranger.datasets()
    assert calls == []  # refusals are never retried


def test_a_read_survives_a_server_restart(served: Server, workspace: Workspace):
    # The server stops between two pages and comes back a few seconds later: the
    # client waits it out (connection refused, then 503 while it starts) and goes on.
    retry = Retry(attempts=40, base=0.2, cap=1.0)
    with client_for(served, workspace, retry=retry) as client:
        batches = client.iter_batches("studies", columns=["study_id"], purpose=SURGICAL_PURPOSE)
        seen = next(batches).num_rows
        served.stop()

        def restart() -> None:
            time.sleep(1.0)
            served.start(wait=False)

        restarter = threading.Thread(target=restart)
        restarter.start()
        try:
            seen += sum(batch.num_rows for batch in batches)
        finally:
            restarter.join()
            served.wait_ready()
        assert seen == BIG_STUDIES


def test_a_server_that_stays_down_is_a_transport_failure(served: Server, workspace: Workspace):
    retry = Retry(attempts=3, base=0.01, cap=0.02)
    with client_for(served, workspace, retry=retry) as client:
        served.stop()
        try:
            with pytest.raises(TransportFailed):
                client.me()
        finally:
            served.start()


def test_a_receipt_verifies_offline_and_a_tampered_one_does_not(
    served: Server, workspace: Workspace
):
    with client_for(served, workspace) as client:
        vkey = client.public_key()  # pinned once, out of band, before any read
        table = client.query("patients", columns=["diagnosis"], limit=10, purpose=SURGICAL_PURPOSE)
        seq = read_info(table).audit_seqs[0]
        receipt = client.receipt(seq)
    # From here on, no network: the receipt and the pinned key are enough.
    checkpoint = verify_receipt(Receipt.from_json(receipt.to_json()), vkey)
    assert checkpoint.tree_size >= seq
    assert receipt.event["actor"] == "mei" and receipt.event["dataset"] == "patients"
    edited = receipt.body.replace('"mei"', '"sam"')
    assert edited != receipt.body
    with pytest.raises(ReceiptInvalid):
        verify_receipt(dataclasses.replace(receipt, body=edited), vkey)
    with pytest.raises(ReceiptInvalid):
        verify_receipt(dataclasses.replace(receipt, seq=receipt.seq + 1), vkey)
    node = receipt.proof[0]
    flipped = bytes([node[0] ^ 1]) + node[1:]
    with pytest.raises(ReceiptInvalid):
        verify_receipt(dataclasses.replace(receipt, proof=(flipped, *receipt.proof[1:])), vkey)
    from audit.checkpoints import generate_key_pair

    _, other = generate_key_pair("kiteline/audit")
    with pytest.raises(ReceiptInvalid):
        verify_receipt(receipt, other.vkey())


def test_grants_are_requested_approved_and_explained(served: Server, workspace: Workspace):
    with client_for(served, workspace, who="sam") as partner:
        explained = partner.explain("annotations", purpose=MARKET_PURPOSE)
        assert explained["allowed"] is False
        grant = partner.request_grant(
            "annotations", purpose=MARKET_PURPOSE, profile="anonymized", days=30
        )
        assert grant["status"] == "requested"
        assert any(g["id"] == grant["id"] for g in partner.grants())
    with client_for(served, workspace, who="alice") as custodian:
        pending = custodian.grants(status="requested")
        assert any(g["id"] == grant["id"] for g in pending)
        approved = custodian.approve(grant["id"], "market sizing is in scope")
        assert approved["status"] == "active"
        assert custodian.grant(grant["id"])["id"] == grant["id"]
    with client_for(served, workspace, who="sam") as partner:
        table = partner.query("annotations", columns=["label"], limit=5, purpose=MARKET_PURPOSE)
        assert table.num_rows == 5
