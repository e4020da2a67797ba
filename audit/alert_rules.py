"""Alert rules over audit events: parsing the rules file and evaluating events.

Pure logic: events in, alerts out. The gateway feeds every committed event to an
`AlertEvaluator`, records each alert as an audit event of its own and posts it to
webhooks. Rule kinds:

- ``repeated_denials``: ``threshold`` denials for one principal (or one client address
  when no principal is known) within ``window_s`` seconds.
- ``outside_hours``: a data read by a principal of ``principal_kinds`` outside
  ``hours`` (``HH:MM-HH:MM`` in ``timezone``; ``weekdays_only`` adds weekends).
- ``row_volume``: a read returning at least ``min_rows`` rows and more than ``factor``
  times the principal's own running mean (after ``min_history`` reads).
- ``first_module_access``: the first data read by a principal from a module.
- ``actions``: any event whose action matches one of ``actions`` (shell patterns),
  e.g. ``grant.break_glass`` (a separation exception took effect) or ``trace.hit`` (a
  leaked extract was attributed to a recipient).
"""

from __future__ import annotations

import fnmatch
import re
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from audit.errors import AuditError

RuleKind = Literal[
    "repeated_denials", "outside_hours", "row_volume", "first_module_access", "actions"
]
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class AlertRulesInvalid(AuditError):
    """The alert rules file is unreadable or invalid."""


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")
    kind: RuleKind
    severity: Literal["low", "medium", "high", "critical"] = "high"
    threshold: int = Field(5, ge=1)
    window_s: float = Field(60.0, gt=0)
    principal_kinds: list[str] = Field(default_factory=lambda: ["alumni", "partner"])
    hours: str = "08:00-20:00"
    timezone: str = "UTC"
    weekdays_only: bool = False
    factor: float = Field(10.0, gt=1)
    min_rows: int = Field(1000, ge=1)
    min_history: int = Field(5, ge=1)
    actions: list[str] = Field(default_factory=list)
    cooldown_s: float = Field(300.0, ge=0)

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        if not _HOURS.match(value):
            raise ValueError("must be HH:MM-HH:MM, e.g. 08:00-20:00")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class Webhook(BaseModel):
    """A receiver of alerts. Every delivery is signed (Standard Webhooks) with the
    ``whsec_...`` secret that ``secret`` references (``env:NAME`` or ``file:PATH``), and
    retried with doubling waits up to ``max_backoff_s`` until the receiver accepts it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^https?://")
    secret: str = Field(pattern=r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$")
    timeout_s: float = Field(2.0, gt=0, le=30)
    max_backoff_s: float = Field(300.0, ge=1, le=86_400)


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[Rule] = Field(default_factory=list)
    webhooks: list[Webhook] = Field(default_factory=list)


def parse_rules(text: str, source: str = "alert rules") -> RulesFile:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise AlertRulesInvalid(f"{source}: not valid YAML: {exc}") from exc
    try:
        parsed = RulesFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise AlertRulesInvalid(f"{source}: {problems}") from exc
    names = [rule.name for rule in parsed.rules]
    if len(set(names)) != len(names):
        raise AlertRulesInvalid(f"{source}: two rules share a name")
    return parsed


@dataclass(frozen=True, slots=True)
class Alert:
    rule: str
    kind: str
    severity: str
    subject: str | None
    message: str
    seqs: tuple[int, ...]
    details: Mapping[str, Any] = field(default_factory=dict)


def _moment(event: Mapping[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(event.get("ts")))
    except ValueError:
        return None


def _parse_hours(text: str) -> tuple[time, time]:
    start, end = text.split("-")
    sh, sm = (int(x) for x in start.split(":"))
    eh, em = (int(x) for x in end.split(":"))
    return time(sh, sm), (time(23, 59, 59, 999999) if eh == 24 else time(eh, em))


class AlertEvaluator:
    """Keeps the per-principal state that the rules need and turns events into alerts."""

    def __init__(
        self,
        rules: Iterable[Rule],
        *,
        seen_modules: Iterable[tuple[str, str]] = (),
        baselines: Mapping[str, tuple[int, float]] | None = None,
    ) -> None:
        self.rules = list(rules)
        self._denials: dict[tuple[str, str], deque[tuple[datetime, int]]] = defaultdict(deque)
        self._cooldown: dict[tuple[str, str], datetime] = {}
        self._seen = set(seen_modules)
        self._baselines: dict[str, tuple[int, float]] = dict(baselines or {})

    def observe(self, event: Mapping[str, Any]) -> list[Alert]:
        action = str(event.get("action") or "")
        if action.startswith("alert."):
            return []  # alerts never trigger alerts
        moment = _moment(event)
        if moment is None:
            return []
        alerts = []
        for rule in self.rules:
            alert = getattr(self, f"_{rule.kind}")(rule, event, action, moment)
            if alert is not None:
                alerts.append(alert)
        # State that outlives one rule is updated once, after every rule has looked.
        if action == "data.read" and event.get("decision") == "allow" and event.get("actor"):
            rows = event.get("rows")
            if isinstance(rows, int) and rows >= 0:
                actor = str(event["actor"])
                count, mean = self._baselines.get(actor, (0, 0.0))
                self._baselines[actor] = (count + 1, mean + (rows - mean) / (count + 1))
        if action == "data.query" and event.get("decision") == "allow":
            if event.get("actor") and event.get("module"):
                self._seen.add((str(event["actor"]), str(event["module"])))
        return alerts

    def _cooling(self, rule: Rule, subject: str, moment: datetime) -> bool:
        key = (rule.name, subject)
        until = self._cooldown.get(key)
        if until is not None and moment < until:
            return True
        self._cooldown[key] = moment + timedelta(seconds=rule.cooldown_s)
        return False

    def _alert(
        self, rule: Rule, subject: str | None, message: str, seqs: Iterable[int], **details: Any
    ) -> Alert:
        return Alert(rule.name, rule.kind, rule.severity, subject, message, tuple(seqs), details)

    def _repeated_denials(
        self, rule: Rule, event: Mapping[str, Any], _action: str, moment: datetime
    ) -> Alert | None:
        if event.get("decision") != "deny":
            return None
        subject = (
            str(event["actor"]) if event.get("actor") else f"client:{event.get('client') or '?'}"
        )
        window = self._denials[(rule.name, subject)]
        window.append((moment, int(event.get("seq") or 0)))
        horizon = moment - timedelta(seconds=rule.window_s)
        while window and window[0][0] < horizon:
            window.popleft()
        if len(window) < rule.threshold or self._cooling(rule, subject, moment):
            return None
        seqs = [seq for _, seq in window]
        window.clear()
        return self._alert(
            rule,
            subject,
            f"{subject} was denied {len(seqs)} times within {rule.window_s:g} s",
            seqs,
            denials=len(seqs),
        )

    def _outside_hours(
        self, rule: Rule, event: Mapping[str, Any], action: str, moment: datetime
    ) -> Alert | None:
        if action != "data.query" or event.get("actor_kind") not in rule.principal_kinds:
            return None
        local = moment.astimezone(ZoneInfo(rule.timezone))
        start, end = _parse_hours(rule.hours)
        inside = start <= local.time() < end if start <= end else not end <= local.time() < start
        if rule.weekdays_only and local.weekday() >= 5:
            inside = False
        if inside:
            return None
        subject = str(event.get("actor"))
        return self._alert(
            rule,
            subject,
            f"{event.get('actor_kind')} {subject} read {event.get('dataset')} at "
            f"{local.strftime('%a %H:%M')} {rule.timezone}, outside {rule.hours}",
            [int(event.get("seq") or 0)],
            dataset=event.get("dataset"),
        )

    def _row_volume(
        self, rule: Rule, event: Mapping[str, Any], action: str, _moment: datetime
    ) -> Alert | None:
        rows = event.get("rows")
        if action != "data.read" or not isinstance(rows, int) or not event.get("actor"):
            return None
        subject = str(event["actor"])
        count, mean = self._baselines.get(subject, (0, 0.0))
        if count < rule.min_history or rows < rule.min_rows or rows <= rule.factor * mean:
            return None
        return self._alert(
            rule,
            subject,
            f"{subject} received {rows} rows of {event.get('dataset')}, "
            f"{rows / max(mean, 1.0):.0f}x its usual {mean:.0f}",
            [int(event.get("seq") or 0)],
            rows=rows,
            baseline=round(mean, 1),
        )

    def _first_module_access(
        self, rule: Rule, event: Mapping[str, Any], action: str, _moment: datetime
    ) -> Alert | None:
        if action != "data.query" or event.get("decision") != "allow":
            return None
        actor, module = event.get("actor"), event.get("module")
        if not actor or not module or (str(actor), str(module)) in self._seen:
            return None
        return self._alert(
            rule,
            str(actor),
            f"{actor} read module {module} for the first time ({event.get('dataset')})",
            [int(event.get("seq") or 0)],
            module=module,
        )

    def _actions(
        self, rule: Rule, event: Mapping[str, Any], action: str, _moment: datetime
    ) -> Alert | None:
        if not any(fnmatch.fnmatchcase(action, pattern) for pattern in rule.actions):
            return None
        subject = str(event.get("actor")) if event.get("actor") else None
        return self._alert(
            rule,
            subject,
            f"{action} by {subject or 'an unknown caller'}",
            [int(event.get("seq") or 0)],
            action=action,
        )
