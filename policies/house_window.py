"""window.rego and separation.rego restated in Python (see :mod:`policies.house_rules`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policies.house_terms import Unsupported, is_int, say

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# 1970-01-01, day zero of Unix time, was a Thursday.
EPOCH_WEEK = ("thu", "fri", "sat", "sun", "mon", "tue", "wed")
NS_PER_SECOND = 1_000_000_000
NS_PER_MINUTE = 60 * NS_PER_SECOND
NS_PER_DAY = 1440 * NS_PER_MINUTE
NS_PER_WEEK = 7 * NS_PER_DAY
FIXED_OFFSETS = {
    "UTC": 0,
    "Etc/UTC": 0,
    "GMT": 0,
    "Etc/GMT": 0,
    "Asia/Shanghai": 28800,
    "Asia/Hong_Kong": 28800,
    "Asia/Macau": 28800,
    "Asia/Taipei": 28800,
    "Asia/Singapore": 28800,
    "Asia/Tokyo": 32400,
    "Asia/Seoul": 32400,
    "Asia/Kolkata": 19800,
    "Asia/Dubai": 14400,
}
_DIGITS = frozenset("0123456789")


class Window:
    """A grant's window with its defaults filled in, checked to be what the rules model."""

    __slots__ = ("days", "start", "end", "zone")

    def __init__(self, raw: Mapping[str, Any]) -> None:
        days = raw.get("days", DAY_NAMES)
        if not isinstance(days, Sequence) or isinstance(days, str):
            raise Unsupported("window days are not a list")
        if not all(isinstance(d, str) for d in days):
            raise Unsupported("window days are not names")
        self.days: tuple[str, ...] = tuple(days)
        self.start = raw.get("start", "00:00")
        self.end = raw.get("end", "24:00")
        self.zone = raw.get("timezone", "UTC")
        for value in (self.start, self.end, self.zone):
            if not isinstance(value, str):
                raise Unsupported("window fields are not strings")
        for value in (self.start, self.end):
            # Rego reads the digits with to_number, which fails on anything else.
            if len(value) == 5 and value[2] == ":" and not _digits(value):
                raise Unsupported("window time with non-digits")

    def offset(self, offsets: Mapping[str, Any]) -> int | None:
        seconds = offsets.get(self.zone)
        if isinstance(seconds, int | float) and not isinstance(seconds, bool):
            if not isinstance(seconds, int):
                raise Unsupported("fractional UTC offset")
            return seconds
        return FIXED_OFFSETS.get(self.zone)

    def clock(self, ns: int, offsets: Mapping[str, Any]) -> tuple[str, int] | None:
        """[weekday, minute of the day] on the zone's wall clock (None: zone unknown)."""
        offset = self.offset(offsets)
        if offset is None:
            return None
        local = ns + offset * NS_PER_SECOND
        if local < 0:
            raise Unsupported("an instant before 1970 in the window's zone")
        weekday = ((local % NS_PER_WEEK) - (local % NS_PER_DAY)) // NS_PER_DAY
        return EPOCH_WEEK[weekday], (local % NS_PER_DAY) // NS_PER_MINUTE

    def is_open(self, ns: int, offsets: Mapping[str, Any]) -> bool:
        clock = self.clock(ns, offsets)
        if clock is None or clock[0] not in self.days:
            return False
        first, last = minutes(self.start), minutes(self.end)
        if first is None or last is None:
            return False
        now = clock[1]
        if first < last:
            return first <= now < last
        return first > last and (now >= first or now < last)

    def local_time(self, ns: int, offsets: Mapping[str, Any]) -> str | None:
        clock = self.clock(ns, offsets)
        if clock is None:
            return None
        return f"{clock[0]} {clock[1] // 60:02d}:{clock[1] % 60:02d}"

    def describe(self) -> str:
        return say(",".join(self.days), " ", self.start, "-", self.end, " (", self.zone, ")")


def _digits(hhmm: str) -> bool:
    return all(c in _DIGITS for c in hhmm[:2] + hhmm[3:])


def minutes(hhmm: str) -> int | None:
    """ "08:30" -> 510, "24:00" -> 1440; None for anything but "HH:MM"."""
    if len(hhmm) != 5 or hhmm[2] != ":":
        return None
    return int(hhmm[:2]) * 60 + int(hhmm[3:])


def separation_rules(raw: Mapping[str, Any]) -> tuple[int | None, list[tuple[str, ...]]]:
    limit = raw.get("max_modules_per_principal")
    if limit is not None and not is_int(limit):
        raise Unsupported("a module limit that is not an integer")
    groups = raw.get("exclusive", [])
    if not isinstance(groups, list | tuple):
        groups = []
    checked = []
    for group in groups:
        if not isinstance(group, list | tuple) or not all(isinstance(m, str) for m in group):
            raise Unsupported("an exclusive group that is not a list of modules")
        checked.append(tuple(group))
    return limit, checked


def separation_violations(held: frozenset[str], raw: Mapping[str, Any]) -> set[str]:
    """separation.violations: empty when separation.ok holds."""
    limit, groups = separation_rules(raw)
    found = set()
    if limit is not None and len(held) > limit:
        found.add(
            f"the principal holds grants on {len(held)} modules ({', '.join(sorted(held))}); "
            f"at most {limit} may be held at once"
        )
    for group in groups:
        if len(group) > 1 and held.issuperset(group):
            names = " and ".join(f"'{m}'" for m in sorted(group))
            found.add(f"modules {names} may not be held together (separation of duties)")
    return found
