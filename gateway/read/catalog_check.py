"""``kiteline check``: the configuration against the stores behind it."""

from __future__ import annotations

from connectors import ConnectorError
from gateway.config import Config, ConfigError
from gateway.read.stores import build_connector, table_of
from gateway.transforms.generalization import GeneralizationError, check_rule


def check_stores(config: Config) -> list[str]:
    """Every dataset's columns against its store: each problem names its location."""
    problems: list[str] = []
    connectors = {}
    for name in config.stores:
        try:
            connectors[name] = build_connector(config, name)
        except (ConfigError, ConnectorError) as exc:
            problems.append(f"stores.{name}: cannot open the store: {exc}")
    try:
        for name, dataset in config.datasets.items():
            connector = connectors.get(dataset.store)
            if connector is None:
                continue
            where = f"datasets.{name}"
            try:
                schema = connector.schema(table_of(dataset))
            except ConnectorError as exc:
                problems.append(f"{where}.location: {exc}")
                continue
            in_store = set(schema.names)
            for column in schema.names:
                if column not in dataset.columns:
                    problems.append(
                        f"{where}.columns: store column {column!r} is not classified "
                        "(it is treated as internal and never returned)"
                    )
            for column, spec in dataset.columns.items():
                if column not in in_store:
                    problems.append(
                        f"{where}.columns.{column}: classified column is missing from the store"
                    )
                elif spec.generalize:
                    try:
                        check_rule(spec.generalize, schema.field(column).type)
                    except GeneralizationError as exc:
                        problems.append(f"{where}.columns.{column}.generalize: {exc}")
    finally:
        for connector in connectors.values():
            connector.close()
    return problems
