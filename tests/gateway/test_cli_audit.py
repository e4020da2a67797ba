"""The officer's CLI: search, export, verify against saved checkpoints, witness, alerts."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from gateway.cli.main import cli
from gateway.demo.workspace import ALUMNI_PURPOSE, SURGICAL_PURPOSE, Workspace
from tests.conftest import bearer, client_for
from tests.webhooks import Receiver, point_rules_at, receiver


def run(ws: Workspace, *args: str, who: str = "victor") -> tuple[int, str]:
    result = CliRunner(env={"KITELINE_TOKEN": ws.tokens[who]}).invoke(
        cli, ["--config", str(ws.config_path), *args]
    )
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def read(
    client: TestClient, ws: Workspace, who: str, body: dict[str, object], dataset: str = "patients"
) -> int:
    response = client.post(
        f"/v1/datasets/{dataset}/query", content=orjson.dumps(body), headers=bearer(ws, who)
    )
    return response.status_code


def test_the_officer_story_from_the_cli(workspace: Workspace, tmp_path: Path):
    with receiver() as hook:
        point_rules_at(workspace.root, hook)
        _officer_story(workspace, tmp_path, hook)


def _officer_story(workspace: Workspace, tmp_path: Path, hook: Receiver) -> None:
    surgical = {"columns": ["patient_id", "diagnosis"], "limit": 2, "purpose": SURGICAL_PURPOSE}
    with client_for(workspace) as client:
        for _ in range(3):
            assert read(client, workspace, "mei", surgical) == 200
        assert (
            read(client, workspace, "mei", {**surgical, "columns": ["study_id"]}, "studies") == 200
        )
        assert (
            read(
                client,
                workspace,
                "lin",
                {"columns": ["patient_id"], "limit": 1, "purpose": ALUMNI_PURPOSE},
            )
            == 200
        )
        for _ in range(5):
            assert (
                read(client, workspace, "lin", {"columns": ["name"], "purpose": ALUMNI_PURPOSE})
                == 403
            )
        assert client.app.state.audit_trail.alerts.wait_idle(10)  # type: ignore[attr-defined]

    # Every read of patients by surgibot in the last week.
    code, out = run(
        workspace,
        "audit",
        "search",
        "--org",
        "surgibot",
        "--dataset",
        "patients",
        "--action",
        "data.*",
        "--since",
        "7d",
        "--json",
    )
    assert code == 0, out
    found = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(found) == 6  # three data.query and three data.read events
    assert {(e["actor_org"], e["dataset"]) for e in found} == {("surgibot", "patients")}

    # Export them, with the checkpoint the export is consistent with.
    export = tmp_path / "surgibot.jsonl"
    code, out = run(
        workspace,
        "audit",
        "export",
        "--org",
        "surgibot",
        "--dataset",
        "patients",
        "--since",
        "7d",
        "--out",
        str(export),
    )
    assert code == 0, out
    assert len(export.read_text().splitlines()) == 6
    saved = export.with_name("surgibot.jsonl.checkpoint")
    assert saved.read_text().startswith("kiteline/audit\n")

    # Prove the log complete and unedited against that saved checkpoint.
    code, out = run(workspace, "audit", "verify", "--checkpoint", str(saved))
    assert code == 0, out
    assert out.startswith("ok:")

    # The alert raised when lin was denied five times within a minute.
    code, out = run(workspace, "audit", "alerts")
    assert code == 0 and "repeated-denials" in out and "lin was denied 5 times" in out
    assert hook.wait_for(1)
    posted = hook.deliveries[0]
    assert posted["type"] == "alert.repeated_denials"
    assert posted["data"]["subject"] == "lin"


def _prepare(workspace: Workspace, tmp_path: Path, events: int = 6) -> Path:
    with client_for(workspace) as client:
        for _ in range(events):
            client.get("/v1/datasets", headers=bearer(workspace, "mei"))
    saved = tmp_path / "saved.checkpoint"
    code, out = run(workspace, "audit", "checkpoint", "--out", str(saved))
    assert code == 0, out
    return saved


def copy_database(source: Path, target: Path) -> None:
    with closing(sqlite3.connect(source)) as old, closing(sqlite3.connect(target)) as new:
        old.backup(new)


def sql(ws: Workspace, statement: str) -> None:
    with sqlite3.connect(ws.root / "state.db") as conn:
        conn.execute(statement)


@pytest.mark.parametrize(
    ("statement", "code", "message"),
    [
        (
            "UPDATE audit_events SET body = replace(body, 'allow', 'deny') WHERE seq = 3",
            1,
            "event 3 was edited",
        ),
        ("DELETE FROM audit_events WHERE seq = 2", 1, "event 2 is missing"),
        ("UPDATE audit_events SET leaf_hash = hash WHERE seq = 4", 1, "leaf hash"),
        (
            "UPDATE audit_events SET actor_org = 'stellar' WHERE seq = 1",
            1,
            "'actor_org' was edited",
        ),
        ("DELETE FROM audit_events WHERE seq >= 5", 3, "rolled back"),
        (
            "UPDATE audit_checkpoints SET note = replace(note, 'kiteline', 'kitelinf')",
            4,
            "not validly signed",
        ),
    ],
)
def test_verify_names_what_was_found(
    workspace: Workspace, tmp_path: Path, statement: str, code: int, message: str
):
    saved = _prepare(workspace, tmp_path)
    assert run(workspace, "audit", "verify", "--checkpoint", str(saved))[0] == 0
    sql(workspace, statement)
    result, out = run(workspace, "audit", "verify", "--checkpoint", str(saved))
    assert result == code, out
    assert message in out


def test_an_index_that_hides_an_event_fails_verify_until_reindexed(
    workspace: Workspace, tmp_path: Path
):
    _prepare(workspace, tmp_path)

    def found() -> list[int]:
        code, out = run(workspace, "audit", "search", "--actor", "mei", "--json")
        assert code == 0, out
        return [json.loads(line)["seq"] for line in out.splitlines() if line.startswith("{")]

    # Not the newest: an index that merely ends early is only behind, and catches up.
    hidden = min(found())
    sql(workspace, f"DELETE FROM audit_index WHERE seq = {hidden}")
    code, out = run(workspace, "audit", "verify")
    assert code == 1, out
    assert f"search index leaves out or misstates event {hidden}" in out
    code, out = run(workspace, "audit", "reindex")
    assert code == 0 and "indexed" in out, out
    assert run(workspace, "audit", "verify")[0] == 0
    assert hidden in found()


def test_a_database_rolled_back_to_an_older_copy_is_caught(workspace: Workspace, tmp_path: Path):
    with client_for(workspace) as client:
        client.get("/v1/datasets", headers=bearer(workspace, "mei"))
    backup = tmp_path / "old-state.db"
    copy_database(workspace.root / "state.db", backup)
    saved = _prepare(workspace, tmp_path, events=4)
    # The whole database, checkpoints table included, goes back to the older copy.
    copy_database(backup, workspace.root / "state.db")
    code, out = run(workspace, "audit", "verify")
    assert code == 0, out  # consistent with itself ...
    code, out = run(workspace, "audit", "verify", "--checkpoint", str(saved))
    assert code == 3, out  # ... but not with the checkpoint saved earlier
    assert "rolled back" in out


def test_the_witness_appends_consistent_checkpoints_and_refuses_a_fork(
    workspace: Workspace, tmp_path: Path
):
    witness = tmp_path / "witness.jsonl"
    _prepare(workspace, tmp_path, events=3)
    code, out = run(workspace, "audit", "witness", "--out", str(witness))
    assert code == 0 and "witnessed" in out
    with client_for(workspace) as client:
        client.get("/v1/datasets", headers=bearer(workspace, "mei"))
    code, out = run(workspace, "audit", "witness", "--out", str(witness))
    assert code == 0 and "consistent with" in out
    assert len(witness.read_text().splitlines()) == 2
    code, out = run(workspace, "audit", "verify", "--checkpoint", str(witness))
    assert code == 0, out
    # Rewrite history consistently (chain, leaves, head), as an insider with the
    # database would: the witness must refuse the new tree.
    _rewrite_history(workspace)
    with client_for(workspace) as client:
        client.get("/v1/datasets", headers=bearer(workspace, "mei"))
    sql(workspace, "DELETE FROM audit_checkpoints")
    code, out = run(workspace, "audit", "witness", "--out", str(witness))
    assert code == 4, out
    assert "REFUSED" in out
    assert len(witness.read_text().splitlines()) == 2
    code, out = run(workspace, "audit", "verify", "--checkpoint", str(witness))
    assert code == 4 and "fork" in out


def _rewrite_history(ws: Workspace) -> None:
    """Edit event 1 and recompute every hash after it: only checkpoints can tell."""
    from audit.chain import GENESIS, canonical, link
    from audit.merkle import TreeBuilder, leaf_hash

    with sqlite3.connect(ws.root / "state.db") as conn:
        rows = conn.execute("SELECT seq, body FROM audit_events ORDER BY seq").fetchall()
        prev, tree = GENESIS, TreeBuilder()
        for seq, body in rows:
            event = json.loads(body)
            if seq == 1:
                event["reasons"] = ["nothing to see here"]
            data = canonical(event)
            chained = link(prev, data)
            tree.append(leaf_hash(data))
            conn.execute(
                "UPDATE audit_events SET body=?, prev_hash=?, hash=?, leaf_hash=? WHERE seq=?",
                (data.decode(), prev, chained, leaf_hash(data).hex(), seq),
            )
            prev = chained
        conn.execute(
            "UPDATE audit_head SET chain_head=?, frontier=? WHERE id=1",
            (prev, b"".join(tree.frontier).hex()),
        )


def test_tail_renders_control_characters_inert(workspace: Workspace):
    with client_for(workspace) as client:
        client.get(
            "/v1/datasets", headers={**bearer(workspace, "mei"), "User-Agent": "x\x1b[31mred\x07"}
        )
        client.post(
            "/v1/datasets/patients/query", content=b"{", headers={**bearer(workspace, "mei")}
        )
    code, out = run(workspace, "audit", "tail", "-n", "5")
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out
    code, out = run(workspace, "audit", "tail", "-n", "5", "--json")
    assert all(json.loads(line) for line in out.splitlines())
    code, out = run(workspace, "audit", "search", "--since", "nonsense")
    assert code == 2 and "not a time" in out


def test_receipts_verify_offline_with_the_cli(workspace: Workspace, tmp_path: Path):
    with client_for(workspace) as client:
        response = client.post(
            "/v1/datasets/patients/query",
            headers=bearer(workspace, "mei"),
            content=orjson.dumps({"limit": 1, "purpose": SURGICAL_PURPOSE}),
        )
        seq = response.headers["x-kiteline-audit-seq"]
        receipt = client.get(f"/v1/audit/events/{seq}/proof", headers=bearer(workspace, "mei"))
        vkey = client.get("/v1/audit/public-key").json()["vkey"]
    path = tmp_path / "receipt.json"
    path.write_bytes(receipt.content)
    result = CliRunner().invoke(cli, ["audit", "verify-receipt", str(path), "--key", vkey])
    assert result.exit_code == 0, result.output
    forged = receipt.json()
    forged["body"] = forged["body"].replace('"limit":1', '"limit":2')
    path.write_bytes(orjson.dumps(forged))
    result = CliRunner().invoke(cli, ["audit", "verify-receipt", str(path), "--key", vkey])
    assert result.exit_code == 1 and "INVALID" in result.output


@pytest.mark.parametrize(
    ("deleted", "code"),
    [
        ("", 0),
        ("WHERE tree_size = (SELECT MIN(tree_size) FROM audit_checkpoints)", 1),
        ("WHERE tree_size = (SELECT MAX(tree_size) FROM audit_checkpoints)", 1),
        ("WHERE 1 = 1", 1),
    ],
    ids=["untouched", "the oldest", "the newest", "all"],
)
def test_deleted_checkpoints_fail_verify_by_name(workspace: Workspace, deleted: str, code: int):
    # Two serving sessions (each signs a last checkpoint as it stops) and an officer's.
    for _ in range(2):
        with client_for(workspace) as client:
            client.get("/v1/datasets", headers=bearer(workspace, "mei"))
    assert run(workspace, "audit", "checkpoint")[0] == 0
    with sqlite3.connect(workspace.root / "state.db") as conn:
        sizes = [row[0] for row in conn.execute("SELECT tree_size FROM audit_checkpoints")]
    assert len(sizes) >= 3, sizes
    if deleted:
        sql(workspace, f"DELETE FROM audit_checkpoints {deleted}")
    result, out = run(workspace, "audit", "verify")
    assert result == code, out
    if code:
        assert "recorded in the log are missing" in out
        assert "a checkpoint was deleted" in out
    else:
        assert f"{len(sizes)} checkpoint(s) consistent" in out
