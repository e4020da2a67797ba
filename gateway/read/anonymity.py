"""Which rows of a dataset may leave under the anonymized profile, cached per data version.

k is counted over the table a grant releases: the rows its row filters admit, not the
whole dataset (a class of k rows overall may hold one row a filtered grant can see, and
releasing that row would name it). The caller's own filters select rows of that table
and do not change its classes. The class index needs one pass over the quasi-identifier
columns of those rows, built from the decided plan (``plan.class_scan_of``). It is kept
per (dataset, quasi-identifier spec, grant row filters, data version), where the version
is the files' modification times and sizes for local stores, so a 100-row page does not
rescan a million rows; a changed file gets a fresh index on its next read. Stores whose
version cannot be read cheaply (S3, PostgreSQL) are re-indexed after ``OPAQUE_TTL_S``.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections import OrderedDict
from pathlib import Path

from connectors import Connector, Filter, decline_inline
from gateway.config import Config, LocalStore
from gateway.read.plan import ReadPlan, class_scan_of
from gateway.read.views import DatasetView
from gateway.transforms.kanonymity import ClassIndex, QiSpec

log = logging.getLogger(__name__)

OPAQUE_TTL_S = 300.0
# Indexes kept: one per dataset version and distinct set of grant row filters read.
CACHE_ENTRIES = 64

IndexKey = tuple[str, QiSpec, tuple[Filter, ...], str]


def qi_spec(view: DatasetView) -> QiSpec | None:
    """The k-anonymity spec of an anonymized view; None when nothing needs it."""
    if view.profile != "anonymized":
        return None
    columns = tuple(
        (c.name, c.rule)
        for c in view.columns.values()
        if c.spec.classification == "quasi_identifier" and c.treatment == "generalize" and c.rule
    )
    if not columns:
        return None
    ldiv = view.dataset.l_diversity
    if ldiv is not None and ldiv.column in view.columns:
        return QiSpec(columns, view.dataset.k, ldiv.column, ldiv.l)
    return QiSpec(columns, view.dataset.k)


def data_location(config: Config, name: str) -> str | None:
    """The file or folder behind ``name`` when its store is local, else None."""
    dataset = config.datasets[name]
    store = config.stores[dataset.store]
    if isinstance(store, LocalStore):
        return str(config.resolve_path(store.root) / dataset.location)
    return None


def data_version(location: str | None) -> str:
    """The version of the data at ``location`` (from ``data_location``)."""
    if location is None:
        return f"ttl:{int(time.time() // OPAQUE_TTL_S)}"
    try:
        found = os.stat(location)
    except OSError:
        return repr([])
    if stat.S_ISREG(found.st_mode):
        # One file (the common case, checked on every read): one system call.
        return repr([(location, found.st_mtime_ns, found.st_size)])
    files = sorted(p for p in Path(location).rglob("*") if p.is_file())
    stats = [(str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files if _exists(p)]
    return repr(stats)


def _exists(path: Path) -> bool:
    try:
        path.stat()
    except OSError:
        return False
    return True


class ClassIndexCache:
    def __init__(self, config: Config, connectors: dict[str, Connector]) -> None:
        self._config = config
        self._connectors = connectors
        self._entries: OrderedDict[IndexKey, ClassIndex] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[IndexKey, threading.Lock] = {}
        # Dataset -> its location, built once: paths cost more to build than to stat.
        self._locations: dict[str, str | None] = {}

    def index(self, plan: ReadPlan, spec: QiSpec) -> ClassIndex:
        """The classes of the table ``plan`` releases (its grant's rows), under ``spec``."""
        name = plan.dataset
        if name not in self._locations:
            self._locations[name] = data_location(self._config, name)
        key = (name, spec, plan.grant_filters, data_version(self._locations[name]))
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                return found
            decline_inline(f"the class index of {name} is not built")
            building = self._building.setdefault(key, threading.Lock())
        # One build per key at a time; concurrent readers of the same version wait for it.
        with building:
            with self._lock:
                found = self._entries.get(key)
            if found is not None:
                return found
            started = time.perf_counter()
            batches = self._connectors[plan.store].scan(plan.table, class_scan_of(plan, spec))
            index = ClassIndex.build(spec, batches)
            log.info(
                "indexed %d releasable quasi-identifier classes of %s (%d grant row filters)"
                " in %.2fs",
                index.releasable_classes,
                name,
                len(plan.grant_filters),
                time.perf_counter() - started,
            )
            with self._lock:
                self._entries[key] = index
                self._building.pop(key, None)
                while len(self._entries) > CACHE_ENTRIES:
                    self._entries.popitem(last=False)
            return index
