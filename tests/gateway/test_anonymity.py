"""The class index cache: one index per data version of a dataset and grant row filters."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from connectors import Filter
from gateway.demo.workspace import Workspace
from gateway.read.anonymity import data_location, data_version
from gateway.read.plan import ReadPlan
from gateway.read.stores import table_of
from gateway.transforms.kanonymity import QiSpec
from tests.conftest import client_for

SPEC = QiSpec((("birth_date", "band:10"), ("gender", "keep"), ("zip", "prefix:1")), k=5)


def plan_of(gateway: Any, granted: tuple[Filter, ...] = ()) -> ReadPlan:
    """A plan of the demo's patients read under a grant with ``granted`` row filters."""
    dataset = gateway.config.datasets["patients"]
    return ReadPlan(
        dataset="patients",
        module=dataset.module,
        store=dataset.store,
        table=table_of(dataset),
        principal="mei",
        org=None,
        recipient="principal:mei",
        key_version=1,
        grant_id=1,
        profile="anonymized",
        purpose=None,
        reasons=(),
        view=gateway.chokepoint.views.view("patients", "anonymized"),
        media_type="application/json",
        columns=tuple(SPEC.source_columns),
        filters=granted,
        grant_filters=granted,
    )


def test_an_index_is_kept_until_its_file_changes(workspace: Workspace):
    with client_for(workspace) as client:
        gateway = client.app.state.gateway  # type: ignore[attr-defined]
        cache, plan = gateway.class_indexes, plan_of(gateway)
        first = cache.index(plan, SPEC)
        assert cache.index(plan, SPEC) is first
        path = data_location(workspace.config, "patients")
        assert path is not None and path.endswith("patients.parquet")
        before = data_version(path)
        stat = os.stat(path)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        assert data_version(path) != before
        again = cache.index(plan, SPEC)
        assert again is not first
        assert again.releasable_classes == first.releasable_classes


def test_a_grant_with_row_filters_gets_the_index_of_its_own_rows(workspace: Workspace):
    with client_for(workspace) as client:
        gateway = client.app.state.gateway  # type: ignore[attr-defined]
        cache = gateway.class_indexes
        whole = cache.index(plan_of(gateway), SPEC)
        few = plan_of(gateway, (Filter("patient_id", "<", "P000200"),))
        filtered = cache.index(few, SPEC)
        assert filtered is not whole and cache.index(few, SPEC) is filtered
        # About 200 rows over some 160 classes: few classes reach k among them.
        assert filtered.releasable_classes < whole.releasable_classes


def test_versions_of_folders_missing_files_and_remote_stores(tmp_path: Path):
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "a.parquet").write_bytes(b"1")
    one = data_version(str(folder))
    (folder / "b.parquet").write_bytes(b"22")
    assert data_version(str(folder)) != one
    assert data_version(str(tmp_path / "missing")) == "[]"
    assert data_version(None).startswith("ttl:")
