"""The class index cache: one index per data version of a dataset."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.demo.workspace import Workspace
from gateway.read.anonymity import data_location, data_version
from gateway.transforms.kanonymity import QiSpec
from tests.conftest import client_for

SPEC = QiSpec((("birth_date", "band:10"), ("gender", "keep"), ("zip", "prefix:1")), k=5)


def test_an_index_is_kept_until_its_file_changes(workspace: Workspace):
    with client_for(workspace) as client:
        cache = client.app.state.gateway.class_indexes  # type: ignore[attr-defined]
        first = cache.index("patients", SPEC)
        assert cache.index("patients", SPEC) is first
        path = data_location(workspace.config, "patients")
        assert path is not None and path.endswith("patients.parquet")
        before = data_version(path)
        stat = os.stat(path)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        assert data_version(path) != before
        again = cache.index("patients", SPEC)
        assert again is not first
        assert again.releasable_classes == first.releasable_classes


def test_versions_of_folders_missing_files_and_remote_stores(tmp_path: Path):
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "a.parquet").write_bytes(b"1")
    one = data_version(str(folder))
    (folder / "b.parquet").write_bytes(b"22")
    assert data_version(str(folder)) != one
    assert data_version(str(tmp_path / "missing")) == "[]"
    assert data_version(None).startswith("ttl:")
