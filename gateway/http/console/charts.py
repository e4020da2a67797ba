"""Small server-side SVG charts of the audit log: every bar is a count of events that
an officer can find in the explorer with the filters shown under the chart."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from html import escape
from typing import Any

import orjson
from sqlalchemy import Engine

from gateway.auditing.search import EventFilter, iter_bodies

PALETTE = ("#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#57606a")
WIDTH, HEIGHT, PAD = 640, 220, 36


@dataclass(frozen=True, slots=True)
class Series:
    """Values per day (oldest first) per group."""

    days: tuple[date, ...]
    groups: dict[str, list[float]]

    @property
    def total(self) -> float:
        return sum(sum(v) for v in self.groups.values())


def _days(span: int, today: date) -> tuple[date, ...]:
    return tuple(today - timedelta(days=span - 1 - i) for i in range(span))


def per_day(
    events: Iterable[Mapping[str, Any]],
    *,
    span: int,
    group: str,
    value: str | None = None,
    today: date | None = None,
) -> Series:
    """Sum ``value`` (or count events) per day and per ``group`` field."""
    days = _days(span, today or datetime.now(UTC).date())
    index = {d: i for i, d in enumerate(days)}
    groups: dict[str, list[float]] = defaultdict(lambda: [0.0] * span)
    for event in events:
        ts = event.get("ts")
        if not isinstance(ts, str):
            continue
        position = index.get(datetime.fromisoformat(ts).astimezone(UTC).date())
        if position is None:
            continue
        name = str(event.get(group) or event.get("actor") or "(none)")
        amount = event.get(value) if value else 1
        groups[name][position] += float(amount) if isinstance(amount, int | float) else 0.0
    return Series(days, dict(groups))


def events_since(engine: Engine, where: EventFilter, *, upto: int) -> Iterable[dict[str, Any]]:
    for body in iter_bodies(engine, where, upto=upto):
        yield orjson.loads(body)


def denial_rule(event: Mapping[str, Any]) -> str:
    return str(event.get("rule") or event.get("attempted") or event.get("action"))


def bar_chart(series: Series, *, title: str, unit: str) -> str:
    """Stacked bars, one per day, with a legend; an accessible SVG string."""
    names = sorted(series.groups, key=lambda n: -sum(series.groups[n]))[: len(PALETTE)]
    totals = [sum(series.groups[n][i] for n in names) for i in range(len(series.days))]
    top = max(totals, default=0.0) or 1.0
    slot = (WIDTH - 2 * PAD) / max(len(series.days), 1)
    plot = HEIGHT - 2 * PAD
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT + 20 * len(names)}"'
        f' role="img" aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
        f'<text x="{PAD}" y="20" class="chart-title">{escape(title)}</text>',
        f'<text x="{PAD - 4}" y="{PAD + 4}" text-anchor="end" class="axis">{_short(top)}</text>',
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}"'
        ' class="axis-line"/>',
    ]
    for i, day in enumerate(series.days):
        x = PAD + i * slot + slot * 0.15
        base = float(HEIGHT - PAD)
        for colour, name in zip(PALETTE, names, strict=False):
            amount = series.groups[name][i]
            if not amount:
                continue
            h = amount / top * plot
            base -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}"'
                f' fill="{colour}"><title>{escape(name)} {day.isoformat()}: '
                f"{_short(amount)} {escape(unit)}</title></rect>"
            )
        if i % max(1, len(series.days) // 7) == 0 or i == len(series.days) - 1:
            parts.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{HEIGHT - PAD + 14}" text-anchor="middle"'
                f' class="axis">{day.strftime("%m-%d")}</text>'
            )
    for row, (colour, name) in enumerate(zip(PALETTE, names, strict=False)):
        y = HEIGHT + row * 20
        parts.append(f'<rect x="{PAD}" y="{y - 10}" width="12" height="12" fill="{colour}"/>')
        parts.append(
            f'<text x="{PAD + 18}" y="{y}" class="legend">{escape(name)}: '
            f"{_short(sum(series.groups[name]))} {escape(unit)}</text>"
        )
    if not names:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="axis">'
            "no events in this period</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _short(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value:.0f}"


def approval_latency(
    requested: Iterable[Mapping[str, Any]], activated: Iterable[Mapping[str, Any]]
) -> list[tuple[str, float, float | None]]:
    """Hours from each grant's request to its activation, from the two audit events."""
    asked = {e.get("grant_id"): e.get("ts") for e in requested if e.get("grant_id") is not None}
    rows: list[tuple[str, float, float | None]] = []
    for event in activated:
        start, end = asked.get(event.get("grant_id")), event.get("ts")
        if isinstance(start, str) and isinstance(end, str):
            hours = (
                datetime.fromisoformat(end) - datetime.fromisoformat(start)
            ).total_seconds() / 3600
            rows.append((f"grant {event['grant_id']}", hours, None))
    return sorted(rows)


def bar_list(rows: list[tuple[str, float, float | None]], *, title: str, unit: str) -> str:
    """Horizontal bars, one per row: a value, against its cap when it has one."""
    height = 40 + 24 * max(len(rows), 1)
    label_w, bar_w = 160, WIDTH - 160 - 2 * PAD - 80
    top = max((cap if cap else value for _, value, cap in rows), default=0.0) or 1.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img"'
        f' aria-label="{escape(title)}" class="chart"><title>{escape(title)}</title>',
        f'<text x="{PAD}" y="20" class="chart-title">{escape(title)}</text>',
    ]
    for i, (label, value, cap) in enumerate(rows):
        y = 36 + i * 24
        scale = cap if cap else top
        width = min(value / scale, 1.0) * bar_w if scale else 0.0
        parts.append(
            f'<text x="{PAD}" y="{y + 13}" class="legend">{escape(label)}</text>'
            f'<rect x="{PAD + label_w}" y="{y}" width="{bar_w}" height="16" class="track"/>'
            f'<rect x="{PAD + label_w}" y="{y}" width="{width:.1f}" height="16"'
            f' fill="{PALETTE[0] if not cap or value < cap else PALETTE[1]}"/>'
            f'<text x="{PAD + label_w + bar_w + 6}" y="{y + 13}" class="legend">'
            f"{_short_or_fraction(value)}{' of ' + _short(cap) if cap else ''} {escape(unit)}"
            "</text>"
        )
    if not rows:
        parts.append(f'<text x="{PAD}" y="52" class="axis">nothing to show yet</text>')
    parts.append("</svg>")
    return "".join(parts)


def _short_or_fraction(value: float) -> str:
    return f"{value:.2f}" if 0 < value < 10 and value != int(value) else _short(value)
