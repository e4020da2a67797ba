"""Alert rules: parsing and evaluation, one rule kind at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from audit.alert_rules import AlertEvaluator, AlertRulesInvalid, parse_rules

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # 11:00 in Asia/Shanghai


def event(seq: int, action: str, at: datetime = T0, **fields: object) -> dict[str, object]:
    return {"seq": seq, "ts": at.isoformat(), "action": action, **fields}


def evaluator(text: str, **kwargs: object) -> AlertEvaluator:
    return AlertEvaluator(parse_rules(text).rules, **kwargs)  # type: ignore[arg-type]


def test_five_denials_in_a_minute_raise_one_alert():
    rules = evaluator("rules: [{name: d, kind: repeated_denials, threshold: 5, window_s: 60}]")
    alerts = []
    for i in range(5):
        alerts += rules.observe(
            event(
                i + 1, "data.denied", T0 + timedelta(seconds=10 * i), actor="lin", decision="deny"
            )
        )
    assert len(alerts) == 1 and alerts[0].subject == "lin" and alerts[0].seqs == (1, 2, 3, 4, 5)
    # Spread over more than the window: nothing.
    slow = evaluator("rules: [{name: d, kind: repeated_denials, threshold: 5, window_s: 60}]")
    assert not [
        a
        for i in range(5)
        for a in slow.observe(
            event(i, "data.denied", T0 + timedelta(seconds=30 * i), actor="lin", decision="deny")
        )
    ]


def test_outside_hours_only_for_the_listed_kinds():
    rules = evaluator(
        "rules: [{name: h, kind: outside_hours, hours: '08:00-20:00', timezone: Asia/Shanghai}]"
    )
    night = T0 + timedelta(hours=14)  # 01:00 in Shanghai
    assert not rules.observe(event(1, "data.query", actor="mei", actor_kind="partner"))
    assert rules.observe(event(2, "data.query", night, actor="mei", actor_kind="partner"))
    assert not rules.observe(event(3, "data.query", night, actor="erin", actor_kind="employee"))


def test_row_volume_far_above_the_principals_own_baseline():
    rules = evaluator(
        "rules: [{name: v, kind: row_volume, factor: 10, min_rows: 1000, min_history: 3}]"
    )
    for i in range(3):
        assert not rules.observe(event(i, "data.read", actor="mei", rows=200, decision="allow"))
    assert not rules.observe(event(4, "data.read", actor="mei", rows=1500, decision="allow"))
    [alert] = rules.observe(event(5, "data.read", actor="mei", rows=9000, decision="allow"))
    assert alert.details["rows"] == 9000


def test_first_module_access_and_actions():
    rules = evaluator(
        "rules: [{name: f, kind: first_module_access}, "
        "{name: b, kind: actions, actions: ['grant.break_glass', 'trace.*']}]",
        seen_modules=[("mei", "imaging")],
    )
    assert not rules.observe(
        event(1, "data.query", actor="mei", module="imaging", decision="allow")
    )
    assert rules.observe(event(2, "data.query", actor="mei", module="labels", decision="allow"))
    assert not rules.observe(event(3, "data.query", actor="mei", module="labels", decision="allow"))
    assert [a.rule for a in rules.observe(event(4, "grant.break_glass", actor="erin"))] == ["b"]
    assert rules.observe(event(5, "trace.hit", actor="victor"))
    assert not rules.observe(event(6, "alert.actions", actor="kiteline"))


@pytest.mark.parametrize(
    "text",
    [
        "rules: [{name: x, kind: nonsense}]",
        "rules: [{name: x, kind: outside_hours, hours: '8-20'}]",
        "rules: [{name: x, kind: outside_hours, timezone: Mars/Olympus}]",
        "rules: [{name: x, kind: actions}, {name: x, kind: actions}]",
        "webhooks: [{url: 'file:///etc/passwd'}]",
        "rules: [",
    ],
)
def test_bad_rule_files_are_refused(text: str):
    with pytest.raises(AlertRulesInvalid):
        parse_rules(text)
