"""The console's SVG charts count what the audit events say, and escape every label."""

from __future__ import annotations

from datetime import date

from gateway.http.console.charts import approval_latency, bar_chart, bar_list, per_day

TODAY = date(2026, 12, 6)


def event(ts: str, **fields: object) -> dict[str, object]:
    return {"ts": ts, **fields}


def test_per_day_sums_by_group_and_leaves_out_older_days():
    events = [
        event("2026-12-06T01:00:00+00:00", actor_org="surgibot", rows=50),
        event("2026-12-06T23:59:00+00:00", actor_org="surgibot", rows=5),
        event("2026-12-05T12:00:00+08:00", actor="lin", rows=7),  # 04:00 UTC on the 5th
        event("2026-11-01T00:00:00+00:00", actor_org="stellar", rows=1000),
    ]
    counted = per_day(events, span=3, group="actor_org", today=TODAY)
    assert counted.days == (date(2026, 12, 4), date(2026, 12, 5), TODAY)
    assert counted.groups == {"surgibot": [0, 0, 2], "lin": [0, 1, 0]}
    rows = per_day(events, span=3, group="actor_org", value="rows", today=TODAY)
    assert rows.groups == {"surgibot": [0, 0, 55], "lin": [0, 7, 0]}
    assert rows.total == 62


def test_labels_are_escaped_in_the_svg():
    series = per_day(
        [event("2026-12-06T01:00:00+00:00", actor_org="<script>x</script>")],
        span=1,
        group="actor_org",
        today=TODAY,
    )
    svg = bar_chart(series, title="Reads & rows", unit="reads")
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg and "Reads &amp; rows" in svg
    assert "<script>" not in bar_list([("<b>", 1.0, None)], title="t", unit="u")


def test_approval_latency_pairs_each_activation_with_its_request():
    requested = [
        event("2026-12-06T08:00:00+00:00", grant_id=7),
        event("2026-12-06T09:00:00+00:00", grant_id=8),
    ]
    activated = [event("2026-12-06T10:30:00+00:00", grant_id=7)]
    assert approval_latency(requested, activated) == [("grant 7", 2.5, None)]
