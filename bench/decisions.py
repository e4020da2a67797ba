"""Decision latency: cached, uncached (as served), through rego-cpp, and OPA over HTTP.

Subject: ``Decider.decide`` for the demo partner ``mei`` reading ``patients``, 10,000
decisions per mode (2,000 through an engine; the note says how many).

- cached: the same request again and again; the state versions come with the caller,
  as they do on a real request (read in the same query as its API key).
- uncached embedded: every decision misses the cache (a fresh cache each time), so it
  runs the coarse check and the house rules, the way a serving gateway's embedded
  engine does: the packaged policy answered in Python (policies.fast_path).
- uncached with basis: the same, also building the decision basis the gateway records
  in audit events (filter literals hashed), as a serving gateway's decider does.
- uncached rego-cpp: the same decisions with every document handed to the embedded
  Rego engine (the path every decision took before the Python rules; still the path of
  any policy other than the packaged one).
- opa: the Rego half answered by an OPA-compatible server over loopback HTTP. No OPA
  binary can be installed here: the server is the test suite's OPA Data API stand-in,
  backed by the embedded engine, so this measures the HTTP round trip plus evaluation.

Each mode also reports its p99 in CPU time of the deciding thread: on a machine shared
with other work, wall-clock p99 is mostly the time the thread waited for a core.

Baseline for the ratios: the rego-cpp mode. Targets: cached p50 <= 20 us, uncached
p50 <= 150 us and p99 <= 500 us.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from audit import Redactor
from bench.common import DATA_DIR, Result, Target
from gateway.access.decisions import Decider
from gateway.access.policy_files import POLICY_DIR
from gateway.access.policy_runtime import PolicyRuntime
from gateway.access.principals import Caller, authenticate
from gateway.demo.workspace import SURGICAL_PURPOSE, create_workspace
from gateway.state.database import create_state_engine

DECISIONS = 10_000
ENGINE_DECISIONS = 2_000
HTTP_DECISIONS = 2_000


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered), p99


def _time(decide: Callable[[], object], count: int) -> tuple[list[float], list[float]]:
    """Wall-clock and thread CPU seconds of each decision."""
    walls, cpus = [], []
    for _ in range(count):
        cpu = time.thread_time()
        started = time.perf_counter()
        decide()
        walls.append(time.perf_counter() - started)
        cpus.append(time.thread_time() - cpu)
    return walls, cpus


def run() -> list[Result]:
    workspace = create_workspace(Path(DATA_DIR) / "decisions", port=8787, reset=True)
    config = workspace.config
    engine = create_state_engine(config.state_url)
    caller = authenticate(engine, workspace.tokens["mei"])
    assert isinstance(caller, Caller)
    runtime = PolicyRuntime(config)
    at = datetime.now(UTC)

    def decider_for(evaluator: object) -> Decider:
        return Decider(engine, config, evaluator)  # type: ignore[arg-type]

    cached = decider_for(runtime.evaluator)
    cached.decide(caller=caller, dataset="patients", at=at, purpose=SURGICAL_PURPOSE)
    modes: dict[str, tuple[list[float], list[float]]] = {
        "cached": _time(
            lambda: cached.decide(
                caller=caller, dataset="patients", at=at, purpose=SURGICAL_PURPOSE
            ),
            DECISIONS,
        )
    }
    uncached = decider_for(runtime.evaluator)

    def fresh() -> object:
        uncached._cache.clear()  # every decision runs both checks
        return uncached.decide(caller=caller, dataset="patients", at=at, purpose=SURGICAL_PURPOSE)

    fresh()
    modes["uncached embedded"] = _time(fresh, DECISIONS)
    recording = Decider(engine, config, runtime.evaluator, redact=Redactor(bytes(32)).hash)

    def fresh_with_basis() -> object:
        recording._cache.clear()
        return recording.decide(caller=caller, dataset="patients", at=at, purpose=SURGICAL_PURPOSE)

    fresh_with_basis()
    modes["uncached with basis"] = _time(fresh_with_basis, DECISIONS)
    engine_only = decider_for(getattr(runtime.evaluator, "rego", runtime.evaluator))

    def through_rego() -> object:
        engine_only._cache.clear()
        return engine_only.decide(
            caller=caller, dataset="patients", at=at, purpose=SURGICAL_PURPOSE
        )

    through_rego()
    modes["uncached rego-cpp"] = _time(through_rego, ENGINE_DECISIONS)

    notes: dict[str, str] = {}
    over_http, notes["opa over http"] = _over_http(decider_for, caller, at)
    if over_http is not None:
        modes["opa over http"] = over_http
    engine.dispose()

    base_p50, _ = _percentiles(modes["uncached rego-cpp"][0])
    results = []
    for mode, (walls, cpus) in modes.items():
        results.extend(_mode_results(mode, walls, cpus, base_p50, notes.get(mode)))
    return results


def _over_http(
    decider_for: Callable[[object], Decider], caller: Caller, at: datetime
) -> tuple[tuple[list[float], list[float]] | None, str]:
    """The Rego half through OPA's Data API over loopback HTTP, and the mode's note."""
    try:
        from policies.opa import OpaEngine
        from tests.policies.opa_stub_server import OpaStub
    except ImportError as exc:  # the stand-in server lives with the tests
        return None, f"skipped: {exc}"
    with OpaStub() as stub:
        remote = OpaEngine(stub.url, timeout_s=2.0)
        remote.push_policies(POLICY_DIR)
        over_http = decider_for(remote)

        def via_opa() -> object:
            over_http._cache.clear()
            return over_http.decide(
                caller=caller, dataset="patients", at=at, purpose=SURGICAL_PURPOSE
            )

        via_opa()
        samples = _time(via_opa, HTTP_DECISIONS)
        remote.close()
    return samples, (
        f"{HTTP_DECISIONS} decisions against a loopback OPA Data API stand-in backed "
        "by the embedded engine (no OPA binary is installable here)"
    )


def _mode_results(
    mode: str, walls: list[float], cpus: list[float], base_p50: float, note: str | None
) -> list[Result]:
    p50, p99 = _percentiles(walls)
    _, cpu_p99 = _percentiles(cpus)
    name = f"decisions.{mode.replace(' ', '_')}"
    served = mode == "uncached embedded"
    p50_target = {"cached": 20.0, "uncached embedded": 150.0}.get(mode)
    return [
        Result(
            f"{name}.p50",
            p50 * 1e6,
            "us",
            baseline=base_p50 * 1e6,
            target=Target("value", "<=", p50_target, "us") if p50_target else None,
            note=note if note is not None else f"{len(walls)} decisions",
            row="decision" if served else "",
        ),
        Result(
            f"{name}.p99",
            p99 * 1e6,
            "us",
            target=Target("value", "<=", 500.0, "us") if served else None,
            row="decision" if served else "",
        ),
        Result(f"{name}.p99_cpu", cpu_p99 * 1e6, "us", note="CPU time of the deciding thread"),
    ]


if __name__ == "__main__":
    from bench.common import print_table

    print_table(run())
