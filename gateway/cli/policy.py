"""``kiteline policy test|reload`` and ``kiteline explain``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from gateway.cli.common import config_of, emit, fail, json_option


@click.group()
def policy() -> None:
    """Test and reload the policy set (casbin model + Rego)."""


@policy.command("test")
@click.option(
    "--directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Policy folder (default: policy.directory of the configuration, or the "
    "packaged policies when there is no configuration file).",
)
@json_option
@click.pass_context
def policy_test(ctx: click.Context, directory: Path | None, as_json: bool) -> None:
    """Run the Rego unit tests and the casbin decision table, with coverage."""
    from gateway.access.policy_files import POLICY_DIR
    from gateway.access.policy_runtime import policy_directory
    from policies import PolicyError, RegoEngine, run_cases

    timeout_s = 0.5
    if directory is None:
        settings = ctx.obj
        if settings.config.exists():
            config = config_of(ctx)
            directory, timeout_s = policy_directory(config), config.policy.timeout_s
        else:
            directory = POLICY_DIR
    if not as_json:
        click.echo(f"policy directory {directory}")
    lines: list[str] = []
    try:
        engine = RegoEngine.from_directory(directory, timeout_s=timeout_s)
        report = engine.run_tests()
    except PolicyError as exc:
        click.echo(f"rego: {exc}", err=True)
        raise SystemExit(2) from exc
    lines += [f"  PASS  {name}" for name in report.passed]
    lines += [f"  FAIL  {name}" for name in report.failed]
    coverage = getattr(report, "coverage", None)
    suffix = f", rule coverage {coverage:.0%}" if isinstance(coverage, float) else ""
    lines.append(f"rego: {len(report.passed)} passed, {len(report.failed)} failed{suffix}")
    result: dict[str, Any] = {
        "directory": str(directory),
        "rego": {"passed": list(report.passed), "failed": list(report.failed)},
    }
    if isinstance(coverage, float):
        result["rego"]["coverage"] = coverage
    failures = len(report.failed)
    table = directory / "model_test.yaml"
    if table.exists():
        results, line_coverage = run_cases(table)
        failed = [str(r.case) for r in results if not r.passed]
        lines += [f"  FAIL  casbin case {case}" for case in failed]
        failures += len(failed)
        lines.append(
            f"casbin: {len(results) - len(failed)} passed, {len(failed)} failed, "
            f"line coverage {line_coverage:.0%}"
        )
        result["casbin"] = {
            "passed": len(results) - len(failed),
            "failed": failed,
            "coverage": line_coverage,
        }
    emit(result, as_json, "\n".join(lines))
    if failures:
        raise SystemExit(1)


@policy.command("reload")
@json_option
@click.pass_context
def policy_reload(ctx: click.Context, as_json: bool) -> None:
    """Check the policy directory, then make every gateway sharing the state database
    load it on its next request (admins, with their key in KITELINE_TOKEN; audited). A
    policy that fails to compile or to pass its tests is refused and the running one
    stays."""
    from gateway.access.policy_files import policy_version
    from gateway.access.policy_runtime import compile_and_test, policy_directory
    from gateway.cli.operator import ADMINS, operator_session
    from gateway.state.database import bump_version
    from policies import PolicyError

    config, engine, operator = operator_session(ctx, "policy reload", ADMINS)
    directory = policy_directory(config)
    try:
        compile_and_test(directory, timeout_s=config.policy.timeout_s)
    except PolicyError as exc:
        operator.record("policy.reload_refused", decision="deny", reasons=[str(exc)[:500]])
        click.echo(f"refused: {exc}", err=True)
        raise SystemExit(2) from exc
    with engine.begin() as conn:
        bump_version(conn, "policy")
    operator.record(
        "policy.reload_requested", decision="allow", policy_version=policy_version(directory)
    )
    version = policy_version(directory)
    emit(
        {"policy_version": version, "reload": "requested"},
        as_json,
        f"policy version {version} will be loaded on the next request",
    )


@click.command()
@click.argument("principal", required=False)
@click.argument("dataset", required=False)
@click.option(
    "--event",
    type=int,
    default=None,
    help="Replay the decision of this audit event under the policy version it recorded "
    "(asks the gateway at KITELINE_URL with the officer token in KITELINE_TOKEN).",
)
@click.option("--purpose", default=None)
@click.option(
    "--profile",
    default=None,
    type=click.Choice(["raw", "pseudonymized", "anonymized", "aggregate"]),
)
@click.option("--json", "as_json", is_flag=True, help="Print the full explanation as JSON.")
@click.pass_context
def explain(
    ctx: click.Context,
    principal: str | None,
    dataset: str | None,
    event: int | None,
    purpose: str | None,
    profile: str | None,
    as_json: bool,
) -> None:
    """Explain whether PRINCIPAL may read DATASET, and why (officers, with their key in
    KITELINE_TOKEN; audited as decision.explain, as the API's explain of another
    principal is); or, with --event SEQ, replay a past audited decision."""
    if event is not None:
        replay_event(event, as_json)
        return
    if principal is None or dataset is None:
        raise click.UsageError("name a PRINCIPAL and a DATASET, or --event SEQ")
    result, version = explain_now(ctx, principal, dataset, purpose, profile)
    emit(
        explanation_document(result),
        as_json,
        lambda: print_explanation(result, principal, dataset, version),
    )


def explain_now(
    ctx: click.Context,
    principal: str,
    dataset: str,
    purpose: str | None,
    profile: str | None,
) -> tuple[Any, str]:
    """The decision engine's explanation of ``principal`` reading ``dataset`` now, as an
    officer's audited act; with the policy version it was decided under."""
    from gateway.access.decisions import Decider
    from gateway.access.policy_runtime import PolicyRuntime
    from gateway.access.principals import caller_by_name
    from gateway.cli.operator import OFFICERS, operator_session

    config, engine, operator = operator_session(ctx, "explain", OFFICERS)
    caller = caller_by_name(engine, principal)
    missing = (
        f"no dataset named {dataset!r}"
        if dataset not in config.datasets
        else (f"no principal named {principal!r}" if caller is None else None)
    )
    if missing is not None or caller is None:
        operator.record(
            "decision.explain", decision="deny", subject=principal, reasons=[str(missing)]
        )
        fail(str(missing), 2)
    assert caller is not None
    runtime = PolicyRuntime(config)
    # Filter literals of the recorded basis are hashed, as the gateway's own are.
    decider = Decider(engine, config, runtime.evaluator, redact=operator.audit.redactor.hash)
    result = decider.explain(
        caller=caller,
        dataset=dataset,
        at=datetime.now(UTC),
        purpose=purpose,
        profile=profile,  # type: ignore[arg-type]
    )
    decision = result.decision
    operator.record(
        "decision.explain",
        decision="allow",
        dataset=dataset,
        module=config.datasets[dataset].module,
        subject=caller.name,
        outcome="allow" if decision.allowed else "deny",
        decision_basis=decision.basis,
    )
    return result, runtime.version


def explanation_document(result: Any) -> dict[str, Any]:
    decision = result.decision
    return {
        "allowed": decision.allowed,
        "reasons": list(decision.reasons),
        "casbin": {"allowed": result.casbin_allowed, "matched": list(result.casbin_lines)},
        "rego": {
            "allowed": result.rego_allowed,
            "reasons": list(result.rego_reasons),
            "obligations": result.rego_obligations,
        },
    }


def print_explanation(result: Any, principal: str, dataset: str, version: str) -> None:
    decision = result.decision
    verdict = "ALLOW" if decision.allowed else "DENY"
    click.echo(f"{verdict}: {principal} reading {dataset} (policy {version})")
    click.echo(
        f"  casbin: {'allow' if result.casbin_allowed else 'deny'}"
        + (f"  [{'; '.join(result.casbin_lines)}]" if result.casbin_lines else "")
    )
    click.echo(f"  rego:   {'allow' if result.rego_allowed else 'deny'}")
    for reason in decision.reasons:
        click.echo(f"  - {reason}")
    if decision.obligations is not None:
        o = decision.obligations
        click.echo(
            f"  obligations: profile={o.profile} grant={o.grant_id} row_cap={o.row_cap} "
            f"purpose={o.purpose!r}"
        )


def replay_event(seq: int, as_json: bool) -> None:
    from gateway.cli.admin import call

    result = call("POST", "/v1/decisions/explain", {"event": seq})
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    recorded, replayed = result["recorded"], result["replayed"]
    click.echo(
        f"event {seq}: {result['action']} by {result['actor']} on {result['dataset']} "
        f"at {result['ts']} (policy {result['policy_version']}, now "
        f"{result['current_policy_version']})"
    )
    click.echo(f"  recorded: {'ALLOW' if recorded.get('allowed') else 'DENY'}")
    click.echo(f"  replayed: {'ALLOW' if replayed['allowed'] else 'DENY'}")
    for reason in replayed["reasons"]:
        click.echo(f"  - {reason}")
    click.echo(
        "  the replay matches the record"
        if result["matches"]
        else "  the replay DIFFERS from the record"
    )
