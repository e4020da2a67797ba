"""Leak tracing: which recipient's pseudonyms appear in a leaked extract, with evidence.

A pseudonym is ``p<version>_<tag>_<digest>``. The tag is derived from the master key and
the recipient, so an officer first narrows every pseudonym in the file to the handful
of recipients whose tag it carries (one HKDF per recipient and key version, no stored
list of issued values). The tag alone proves nothing (it can be copied), so each
candidate is then proven by recomputing the digests of the source identifiers under
that recipient's keys: a leaked pseudonym matches only if it was computed with that
recipient's key, which only the gateway holds. An extract made for someone else, or
random strings, match nothing and are never attributed.
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
from sqlalchemy import Engine, select

from connectors import Connector, Scan
from gateway.access.keyring import Keyring
from gateway.config import Config
from gateway.read.stores import table_of
from gateway.state.models import Org, Principal
from gateway.transforms import pseudonyms

PATTERN = r"^p([0-9]{1,6})_([a-z2-7]{7})_([a-z2-7]{24})$"
_PARSE = re.compile(PATTERN)
FORMATS = ("csv", "parquet", "jsonl")


class TraceError(ValueError):
    """The extract cannot be read; the message says why."""


@dataclass(frozen=True, slots=True)
class Evidence:
    recipient: str
    key_version: int
    matched_values: int  # distinct pseudonyms of the file proven to be this recipient's
    matched_rows: int  # rows holding at least one of them
    domains: dict[str, int]  # identifier domain -> distinct values matched
    columns: list[str]  # the file's columns they were found in

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TraceReport:
    rows: int
    pseudonyms: int  # distinct values in the file that look like pseudonyms
    tag_candidates: list[str]  # recipients whose tag appears, before any proof
    attributed: list[Evidence] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if not self.attributed:
            return "not attributed"
        return "attributed to " + ", ".join(e.recipient for e in self.attributed)

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, **asdict(self)}


def detect_format(name: str | None, content_type: str | None = None) -> str:
    media = (content_type or "").split(";")[0].strip().lower()
    by_media = {
        "text/csv": "csv",
        "application/vnd.apache.parquet": "parquet",
        "application/x-parquet": "parquet",
        "application/x-ndjson": "jsonl",
        "application/jsonl": "jsonl",
        "application/json-lines": "jsonl",
    }
    if media in by_media:
        return by_media[media]
    lowered = (name or "").lower()
    for suffix, kind in ((".csv", "csv"), (".parquet", "parquet"), (".jsonl", "jsonl")):
        if lowered.endswith(suffix):
            return kind
    if lowered.endswith(".ndjson") or lowered.endswith(".json"):
        return "jsonl"
    raise TraceError("cannot tell the extract's format: use CSV, Parquet or JSON lines")


def read_extract(data: bytes, kind: str) -> pa.Table:
    try:
        if kind == "parquet":
            return pq.read_table(io.BytesIO(data))
        if kind == "csv":
            return pacsv.read_csv(io.BytesIO(data))
        if kind == "jsonl":
            return pajson.read_json(io.BytesIO(data))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise TraceError(f"the extract is not readable as {kind}: {exc}") from None
    raise TraceError(f"unknown extract format {kind!r}; use one of {', '.join(FORMATS)}")


def _found(table: pa.Table) -> dict[tuple[int, str], dict[str, set[int]]]:
    """(version, tag) -> pseudonym -> row numbers holding it."""
    found: dict[tuple[int, str], dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for name in table.column_names:
        column = table.column(name)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        values = column.combine_chunks()
        hits = pc.fill_null(pc.match_substring_regex(values, PATTERN), False)
        rows = pc.indices_nonzero(hits).to_pylist()
        for row, value in zip(rows, pc.filter(values, hits).to_pylist(), strict=True):
            match = _PARSE.match(value)
            assert match is not None
            found[(int(match.group(1)), match.group(2))][value].add(row)
    return found


def _columns_of(table: pa.Table, values: set[str]) -> list[str]:
    out = []
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            if pc.any(pc.is_in(column, value_set=pa.array(sorted(values)))).as_py():
                out.append(name)
    return out


def trace(
    table: pa.Table,
    *,
    keyring: Keyring,
    recipients: Iterable[str],
    versions: Iterable[int],
    domains: Iterable[str],
    source_values: Callable[[str], pa.Array],
) -> TraceReport:
    """Name the recipients whose pseudonyms ``table`` holds.

    ``source_values(domain)`` returns the distinct source identifiers of a domain."""
    found = _found(table)
    report = TraceReport(
        rows=table.num_rows,
        pseudonyms=sum(len(v) for v in found.values()),
        tag_candidates=[],
    )
    if not found:
        return report
    wanted_versions = {version for version, _ in found}
    by_tag: dict[tuple[int, str], list[str]] = defaultdict(list)
    for version in sorted(set(versions) & wanted_versions):
        for recipient in recipients:
            tag = pseudonyms.prefix_for(version, keyring.recipient_tag(recipient, version))
            by_tag[(version, tag.split("_")[1])].append(recipient)
    domain_list = list(domains)
    sources: dict[str, pa.Array] = {}
    for (version, tag), leaked in sorted(found.items()):
        for recipient in by_tag.get((version, tag), []):
            report.tag_candidates.append(recipient)
            matched: dict[str, int] = {}
            proven: set[str] = set()
            prefix = pseudonyms.prefix_for(version, keyring.recipient_tag(recipient, version))
            leaked_set = set(leaked)
            for domain in domain_list:
                if domain not in sources:
                    sources[domain] = source_values(domain)
                key = keyring.pseudonym_key(recipient, domain, version)
                issued = pseudonyms.pseudonymize(sources[domain], key=key, prefix=prefix)
                hits = leaked_set.intersection(issued.to_pylist())
                if hits:
                    matched[domain] = len(hits)
                    proven |= hits
                    leaked_set -= hits
                if not leaked_set:
                    break
            if proven:
                rows = set().union(*(leaked[p] for p in proven))
                report.attributed.append(
                    Evidence(
                        recipient=recipient,
                        key_version=version,
                        matched_values=len(proven),
                        matched_rows=len(rows),
                        domains=matched,
                        columns=_columns_of(table, proven),
                    )
                )
    return report


def known_recipients(engine: Engine) -> list[str]:
    """Everyone pseudonyms can have been derived for: each principal and each org."""
    with engine.connect() as conn:
        users = [f"user:{n}" for n in conn.scalars(select(Principal.name))]
        orgs = [f"org:{n}" for n in conn.scalars(select(Org.name))]
    return orgs + users


def identifier_domains(config: Config) -> dict[str, list[tuple[str, str]]]:
    """Identifier domain -> the (dataset, column) pairs that hold its values."""
    domains: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for name, dataset in config.datasets.items():
        for column, spec in dataset.columns.items():
            if spec.classification == "identifier":
                domains[spec.domain or f"{name}.{column}"].append((name, column))
    return dict(domains)


def source_reader(
    config: Config, connectors: dict[str, Connector]
) -> tuple[list[str], Callable[[str], pa.Array]]:
    """The domains to try and a function reading a domain's distinct source values."""
    domains = identifier_domains(config)

    def values(domain: str) -> pa.Array:
        parts = []
        for name, column in domains[domain]:
            dataset = config.datasets[name]
            batches = connectors[dataset.store].scan(table_of(dataset), Scan(columns=(column,)))
            for batch in batches:
                parts.append(pseudonyms.as_text(batch.column(0)))
        if not parts:
            return pa.array([], pa.string())
        return pc.unique(pa.chunked_array(parts, pa.string()).combine_chunks())

    return list(domains), values
