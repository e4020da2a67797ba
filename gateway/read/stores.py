"""Builds one connector per declared store, resolving credential references."""

from __future__ import annotations

from connectors import Connector, LocalConnector, Table
from gateway.config import (
    Config,
    ConfigError,
    Dataset,
    LocalStore,
    PostgresStore,
    S3Store,
    SparkStore,
    resolve_secret,
)


def build_connector(config: Config, name: str) -> Connector:
    store = config.stores[name]
    if isinstance(store, LocalStore):
        return LocalConnector(config.resolve_path(store.root))
    if isinstance(store, S3Store):
        from connectors import S3Connector

        return S3Connector(
            endpoint_url=store.endpoint_url,
            bucket=store.bucket,
            prefix=store.prefix,
            region=store.region,
            path_style=store.path_style,
            access_key_id=resolve_secret(store.access_key_id, config.base_dir),
            secret_access_key=resolve_secret(store.secret_access_key, config.base_dir),
            verify_tls=store.verify_tls,
            ca_bundle=str(config.resolve_path(store.ca_bundle)) if store.ca_bundle else None,
        )
    if isinstance(store, PostgresStore):
        from connectors import PostgresConnector

        return PostgresConnector(
            resolve_secret(store.url, config.base_dir),
            statement_timeout_ms=store.statement_timeout_ms,
        )
    if isinstance(store, SparkStore):
        from connectors import SparkConnector

        return SparkConnector(
            store.url,
            token=resolve_secret(store.token, config.base_dir) if store.token else None,
            tls=store.tls,
            ca_bundle=_read_ca_bundle(config, store.ca_bundle) if store.ca_bundle else None,
            root=store.root,
            timeout_s=store.timeout_s,
        )
    raise TypeError(f"unknown store kind for {name!r}")


def _read_ca_bundle(config: Config, path: str) -> bytes:
    try:
        return config.resolve_path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"ca_bundle {path!r}: {exc.strerror}") from exc


def build_connectors(config: Config) -> dict[str, Connector]:
    return {name: build_connector(config, name) for name in config.stores}


def table_of(dataset: Dataset) -> Table:
    return Table(location=dataset.location, format=dataset.format, options=dict(dataset.options))
