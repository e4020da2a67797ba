"""Settings from the environment and the declarative ``kiteline.yaml``.

``Settings`` says where the configuration file is and how to log; ``Config`` is the
file itself: gateway, policy engine, stores, modules, separation rules, datasets.
Both are built once by the CLI and handed to ``create_app``; nothing here runs at
import time.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.config_parts.access import Budgets, GrantsSection, Module, Separation
from gateway.config_parts.common import (
    NAME,
    Classification,
    MaskKind,
    Profile,
    ensure_reference,
)
from gateway.config_parts.common import Strict as _Strict
from gateway.config_parts.datasets import Column, Dataset, LDiversity
from gateway.config_parts.locating import line_index, located
from gateway.config_parts.stores import LocalStore, PostgresStore, S3Store, SparkStore, Store

# Where a listener without TLS may listen.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class Settings(BaseSettings):
    """Process-level settings, from ``KITELINE_*`` environment variables or the CLI."""

    model_config = SettingsConfigDict(env_prefix="KITELINE_", extra="ignore")

    config: Path = Field(Path("kiteline.yaml"), description="Path of kiteline.yaml.")
    log_level: str = Field("INFO", description="Operational log level (not the audit log).")
    log_format: Literal["text", "json"] = Field(
        "text", description="Operational log lines: text for people, json for collectors."
    )
    demo: bool = Field(False, description="Set by `kiteline demo`: allows demo-only defaults.")


class RateLimit(_Strict):
    per_s: float = Field(gt=0, description="Requests per second, on average.")
    burst: int = Field(ge=1, description="Requests allowed at once above the average.")


class RateLimits(_Strict):
    # The defaults sit above what one gateway process serves, so that they cut off a
    # flood (a token-guessing loop, a runaway client) and nothing a client could do
    # usefully; deployments with several gateways behind one address lower them.
    per_ip: RateLimit | None = Field(
        default_factory=lambda: RateLimit(per_s=5000, burst=10_000),
        description="Per client address, before authentication; null: no limit.",
    )
    per_principal: RateLimit | None = Field(
        default_factory=lambda: RateLimit(per_s=2000, burst=4000),
        description="Per authenticated principal; null: no limit.",
    )


def checked_listen(value: str, example: str) -> str:
    """``value`` when it is host:port with a port in range, else a ValueError."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"must be host:port, e.g. {example}")
    return value


class _Listening(_Strict):
    """A section with a ``listen`` address (host:port, checked by its validator)."""

    listen: str

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


class GatewaySection(_Listening):
    listen: str = Field("127.0.0.1:8787", description="host:port the API listens on.")
    state_url: str = Field(
        "sqlite:///state.db",
        description="SQLAlchemy URL of the state database; a relative SQLite path is "
        "resolved against the configuration file's folder.",
    )
    key_dir: str = Field("keys", description="Folder for key material (created with mode 0700).")
    master_key: str = Field(
        "file:keys/master.key",
        description="Reference to the 32-byte master key: env:NAME (hex) or file:PATH.",
    )
    max_rows_per_request: int = Field(10_000, ge=1, le=100_000_000)
    default_limit: int = Field(100, ge=1)
    audit_timeout_s: float = Field(2.0, gt=0, description="Bound on one audit append.")
    state_timeout_s: float = Field(
        2.0,
        gt=0,
        le=60,
        description="Bound on a request's waits for the state database together, from "
        "its arrival (a SQLite lock held by another process, a PostgreSQL connection or "
        "lock); past it the request is a 503.",
    )
    rate_limits: RateLimits = Field(
        default_factory=lambda: RateLimits(),
        description="Requests per second per client address and per principal.",
    )
    hr_webhook_secret: str | None = Field(
        None, description="Reference to the HR webhook's HMAC secret; unset disables the hook."
    )
    hr_webhook_max_skew_s: int = Field(
        300, ge=1, le=3600, description="How old a signed HR webhook call may be (replays)."
    )
    audit_origin: str = Field(
        "kiteline/audit",
        pattern=r"^[!-*,-~]{1,128}$",
        description="The log's name in its signed checkpoints (and its signing key's name).",
    )
    checkpoint_interval_s: float = Field(
        10.0, gt=0, le=3600, description="Longest wait between signed checkpoints."
    )
    witness_file: str | None = Field(
        None, description="File that collects every checkpoint after a consistency check."
    )
    alert_rules: str | None = Field(None, description="YAML file of audit alert rules.")
    pseudonym_cache_entries: int = Field(
        300_000,
        ge=0,
        le=100_000_000,
        description="Pseudonyms kept in memory across reads (per recipient, domain and "
        "key version; about 60 bytes each, plus about 175 while a table holds at most "
        "65,536, which it also keeps in a dict for pages); 0 keeps none.",
    )
    read_threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Reads prepared (and small answers built) at once, each in a worker "
        "thread; unset: one per CPU, at least 2. The work is mostly Python, so more "
        "threads than CPUs only add lock hand-offs; raise it for slow remote stores.",
    )
    inline_reads: bool | None = Field(
        None,
        description="Try each small read of a local file on the event loop, with no "
        "thread hand-off; a read that must load a file, build an index, reach a remote "
        "store or stream a large answer moves to a worker thread. While one runs, the "
        "server serves nothing else, and a state database write waiting on a lock holds "
        "every connection. Unset: off.",
    )

    @field_validator("master_key", "hr_webhook_secret")
    @classmethod
    def _master_key_is_reference(cls, value: str | None) -> str | None:
        return ensure_reference(
            value, "must be a reference (env:NAME or file:PATH), never the key itself"
        )

    @field_validator("listen")
    @classmethod
    def _listen_has_port(cls, value: str) -> str:
        return checked_listen(value, "127.0.0.1:8787")


class PolicySection(_Strict):
    engine: Literal["embedded", "opa"] = "embedded"
    opa_url: str | None = None
    timeout_s: float = Field(0.5, gt=0, le=10)
    directory: str | None = Field(
        None, description="Folder of *.rego files (default: the packaged policies/)."
    )

    @model_validator(mode="after")
    def _opa_needs_url(self) -> PolicySection:
        if self.engine == "opa" and not self.opa_url:
            raise ValueError("policy.engine 'opa' needs policy.opa_url")
        return self


class TracingSection(_Strict):
    """OpenTelemetry traces of requests, exported over OTLP/HTTP (the ``otel`` extra)."""

    enabled: bool = Field(False, description="Export spans; off unless asked for.")
    endpoint: str = Field(
        "http://127.0.0.1:4318/v1/traces",
        description="OTLP/HTTP (protobuf) traces URL of the collector.",
    )
    service_name: str = Field("kiteline", min_length=1, description="Resource service.name.")
    sample_ratio: float = Field(
        1.0, ge=0, le=1, description="Share of new traces kept; a caller's traceparent decides."
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_http(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value


class FlightSection(_Listening):
    """The Arrow Flight endpoint for bulk reads, served beside the HTTP API."""

    enabled: bool = Field(False, description="Serve Arrow Flight; off unless asked for.")
    listen: str = Field(
        "127.0.0.1:8815",
        description="host:port the Flight endpoint listens on (plaintext: loopback only).",
    )
    ticket_ttl_s: float = Field(
        60.0, gt=0, le=3600, description="Seconds a Flight ticket may be redeemed after issue."
    )

    @field_validator("listen")
    @classmethod
    def _listen_is_loopback(cls, value: str) -> str:
        host = checked_listen(value, "127.0.0.1:8815").rpartition(":")[0]
        if host.strip("[]") not in LOOPBACK_HOSTS:
            # No TLS yet: tokens and rows would cross the network in the clear.
            raise ValueError(
                "must be a loopback address (127.0.0.1, ::1 or localhost): the Flight "
                "endpoint has no TLS, so it serves this host only"
            )
        return value


class Config(_Strict):
    gateway: GatewaySection = Field(default_factory=GatewaySection)  # type: ignore[arg-type]
    policy: PolicySection = Field(default_factory=PolicySection)  # type: ignore[arg-type]
    stores: dict[str, Store]
    modules: dict[str, Module]
    separation: Separation = Field(default_factory=Separation)  # type: ignore[arg-type]
    budgets: Budgets = Field(default_factory=Budgets)  # type: ignore[arg-type]
    grants: GrantsSection = Field(default_factory=GrantsSection)  # type: ignore[arg-type]
    tracing: TracingSection = Field(default_factory=TracingSection)  # type: ignore[arg-type]
    flight: FlightSection = Field(default_factory=FlightSection)  # type: ignore[arg-type]
    datasets: dict[str, Dataset]
    base_dir: Path = Field(Path("."), exclude=True)

    @field_validator("stores", "modules", "datasets")
    @classmethod
    def _names_are_simple(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not re.match(NAME, name):
                raise ValueError(f"name {name!r} must match {NAME}")
        return value

    def resolve_path(self, path: str) -> Path:
        candidate = Path(path)
        return candidate if candidate.is_absolute() else (self.base_dir / candidate)

    @property
    def state_url(self) -> str:
        url = self.gateway.state_url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.resolve_path(url[len(prefix) :]))
        return url

    @property
    def reads_inline(self) -> bool:
        chosen = self.gateway.inline_reads
        # Off unless asked for: a read on the event loop waits there for the state
        # database, and then the server answers nothing else (/healthz included).
        return bool(chosen)


def semantic_problems(config: Config) -> list[str]:
    """Cross-references that the schema alone cannot check."""
    problems: list[str] = []
    for name, module in config.modules.items():
        if not 2 <= len(module.custodians) <= 3:
            problems.append(
                f"modules.{name}.custodians: a module needs 2 or 3 custodians, "
                f"it has {len(module.custodians)}"
            )
        if len(set(module.custodians)) != len(module.custodians):
            problems.append(f"modules.{name}.custodians: a custodian is listed twice")
        if module.approvals_required > len(module.custodians):
            problems.append(
                f"modules.{name}.approvals_required: {module.approvals_required} approvals "
                f"cannot be met by {len(module.custodians)} custodians"
            )
    for name, dataset in config.datasets.items():
        if dataset.module not in config.modules:
            problems.append(f"datasets.{name}.module: unknown module {dataset.module!r}")
        if dataset.store not in config.stores:
            problems.append(f"datasets.{name}.store: unknown store {dataset.store!r}")
    for index, pair in enumerate(config.separation.exclusive):
        for member in pair:
            if member not in config.modules:
                problems.append(f"separation.exclusive[{index}]: unknown module {member!r}")
        if pair[0] == pair[1]:
            problems.append(f"separation.exclusive[{index}]: a module cannot exclude itself")
    return problems


def load_config(path: Path) -> Config:
    """Read, validate and cross-check ``kiteline.yaml``; every problem is reported at once."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text)
        lines = line_index(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the configuration must be a mapping")
    raw["base_dir"] = path.resolve().parent
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems = [
            located(tuple(str(p) for p in error["loc"]), error["msg"], lines, path)
            for error in exc.errors()
        ]
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems) from exc
    problems = semantic_problems(config)
    if problems:
        placed = [
            located(tuple(p.split(":", 1)[0].split(".")), p.split(": ", 1)[1], lines, path)
            for p in problems
        ]
        raise ConfigError(f"{path}: {len(placed)} problem(s)", placed)
    return config


def resolve_secret(reference: str, base_dir: Path) -> str:
    """Dereference ``env:NAME`` or ``file:PATH``; the value is never logged."""
    kind, _, target = reference.partition(":")
    if kind == "env":
        value = os.environ.get(target)
        if value is None:
            raise ConfigError(f"secret reference {reference!r}: environment variable not set")
        return value
    if kind == "file":
        file = Path(target) if Path(target).is_absolute() else base_dir / target
        try:
            return file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"secret reference {reference!r}: {exc.strerror}") from exc
    raise ConfigError(f"secret reference {reference!r} must start with env: or file:")


__all__ = [
    "Budgets",
    "Classification",
    "Column",
    "Config",
    "ConfigError",
    "Dataset",
    "GatewaySection",
    "GrantsSection",
    "LDiversity",
    "LocalStore",
    "MaskKind",
    "Module",
    "PolicySection",
    "PostgresStore",
    "Profile",
    "RateLimit",
    "RateLimits",
    "S3Store",
    "Separation",
    "Settings",
    "SparkStore",
    "TracingSection",
    "Store",
    "load_config",
    "resolve_secret",
    "semantic_problems",
]
