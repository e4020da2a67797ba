"""Each dataset's schema, as the store reports it, and the views built on it, cached."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from connectors import Connector
from gateway.config import Config
from gateway.read.stores import table_of
from gateway.read.views import DatasetView, build_view
from policies import Profile

SCHEMA_TTL_S = 30.0
# Views differ by dataset, profile and granted columns: few in practice; the bound only
# keeps a pathological grant set from growing the cache without end.
MAX_CACHED_VIEWS = 1024


class ViewCache:
    def __init__(self, config: Config, connectors: Mapping[str, Connector]) -> None:
        self.config = config
        self.connectors = connectors
        self._schemas: dict[str, tuple[float, pa.Schema]] = {}
        self._lock = threading.Lock()
        self._views: dict[tuple[Any, ...], tuple[pa.Schema, DatasetView]] = {}

    def schema(self, name: str) -> pa.Schema:
        now = time.monotonic()
        cached = self._schemas.get(name)
        if cached is not None and now - cached[0] < SCHEMA_TTL_S:
            return cached[1]
        dataset = self.config.datasets[name]
        schema = self.connectors[dataset.store].schema(table_of(dataset))
        with self._lock:
            self._schemas[name] = (now, schema)
        return schema

    def view(
        self, name: str, profile: Profile, columns: tuple[str, ...] | None = None
    ) -> DatasetView:
        # A view is a function of the configuration (fixed for this object), the store's
        # schema and the grant's profile and columns: rebuilt only when the schema is.
        schema = self.schema(name)
        key = (name, profile, columns)
        cached = self._views.get(key)
        if cached is not None and cached[0] is schema:
            return cached[1]
        view = build_view(name, self.config.datasets[name], schema, profile, columns)
        with self._lock:
            if len(self._views) >= MAX_CACHED_VIEWS:
                self._views.clear()
            self._views[key] = (schema, view)
        return view
