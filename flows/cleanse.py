"""The flow ``cleanse-contacts``: one thin task per pipeline stage."""

import dataclasses
import datetime as dt
import json
import os
from collections.abc import Callable
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.client.schemas.objects import State, TaskRun
from prefect.runtime import flow_run, task_run
from prefect.states import Completed

from cleansing.errors import CleansingError, InternalError, TransientError
from cleansing.pipeline import STAGES, Progress, RunContext, RunRequest, prepare, run_stage
from cleansing.state import DEFAULT_STATE
from flows.alerts import emit_warning

PresetName = Literal["auto", "mailchimp", "hubspot", "salesforce", "brevo", "klaviyo", "generic"]
IO_STAGES = {"read", "domains", "write"}
# No stage of a run this machine can hold takes an hour; one that does is stuck, and the run fails
# (publishing nothing) rather than holding the deployment's one slot forever.
STAGE_TIMEOUT_S = float(os.environ.get("CLEANSE_STAGE_TIMEOUT_S", "3600"))
# Set by the command line to show progress on the terminal; counts and timings only.
terminal_progress: Progress | None = None
# The flow run and run id of the run in progress in this process, for the command line to tell what a
# signal stopped.
current: dict[str, str] = {}


def _transient_only(_task: Any, _run: TaskRun, state: State[Any]) -> bool:
    return isinstance(state.result(raise_on_failure=False), TransientError)


def safe_error(exc: BaseException) -> BaseException:
    """The exception as Prefect may keep it (logs, the run's state): this package's errors are built
    masked; any other error keeps its type's name and a masked first line, and loses its chain, whose
    messages may quote the data."""
    if isinstance(exc, CleansingError):
        return exc
    return InternalError.of(exc)


def _stage_task(name: str, stage: Callable[[RunContext], RunContext]) -> Any:
    retries = 2 if name in IO_STAGES else 0

    def run(ctx: RunContext) -> RunContext:
        logger = get_run_logger()
        attempt = task_run.run_count or 1
        ctx = dataclasses.replace(ctx, final_attempt=attempt > retries)
        try:
            ctx = run_stage(name, stage, ctx, terminal_progress)
        except Exception as exc:
            safe = safe_error(exc)
            if safe is exc:
                raise
            raise safe from None
        logger.info(
            "stage %s: %d rows in %.2f s", name, ctx.rows if name != "read" else ctx.read.rows_in, ctx.timings[name]
        )
        return ctx

    run.__name__ = f"stage_{name}"
    return task(
        name=name,
        cache_policy=NONE,
        persist_result=False,
        retries=retries,
        retry_delay_seconds=2,
        retry_condition_fn=_transient_only if retries else None,
        timeout_seconds=STAGE_TIMEOUT_S,
    )(run)


TASKS = [(name, _stage_task(name, stage)) for name, stage in STAGES]


@flow(name="cleanse-contacts", persist_result=False, log_prints=False)
def cleanse_contacts(
    sources: list[str] | None = None,
    preset: PresetName = "auto",
    policy: str | None = None,
    as_of: dt.date | None = None,
    out_dir: str = "out",
    check_domains: bool = True,
    mapping: str | None = None,
    state: str = str(DEFAULT_STATE),
    dns_servers: list[str] | None = None,
    set_latest: bool = False,
) -> str:
    """Read contact exports, classify every record as keep / reconfirm / discard by its consent
    evidence, and publish a run folder. Returns the run folder's path.

    Args:
        sources: Export files or folders on the machine that serves the flow; empty runs the bundled sample.
        preset: The tool the exports come from, or auto to detect it per file.
        policy: A policy TOML file; empty uses the bundled default policy.
        as_of: The date the rules count ages from; empty is today (UTC).
        out_dir: Where run folders are published.
        check_domains: Look up every email domain in DNS (off: every record is not_checked).
        mapping: A TOML mapping of source headers to canonical fields, for files no preset knows.
        state: The state database: suppression list, domain cache, run history.
        dns_servers: Resolvers to ask, as HOST or HOST:PORT; empty uses the system's.
        set_latest: Point out_dir/latest at this run even if it reads other sources than the run latest
            points at. Off: an ad-hoc run over other sources is published but moves neither latest nor the
            nightly's comparison with its previous run.
    """
    request = RunRequest(
        sources=tuple(sources or ()),
        preset=preset,
        mapping=mapping or None,
        policy=policy or None,
        as_of=as_of,
        out_dir=out_dir,
        state=state,
        check_mx=check_domains,
        dns_servers=tuple(dns_servers or ()),
        set_latest=set_latest,
    )
    current["flow_run_id"] = str(flow_run.id)
    try:
        ctx = prepare(request)
        current["run_id"] = ctx.run_id
    except Exception as exc:
        safe = safe_error(exc)
        if safe is exc:
            raise
        raise safe from None
    for _name, stage_task in TASKS:
        ctx = stage_task(ctx)
    logger = get_run_logger()
    logger.info("published run %s: %s", ctx.run_id, ctx.counts)
    publish_artifacts(ctx)
    warnings = run_warnings(ctx)
    if warnings:
        message = " ".join(warnings)
        logger.warning(message)
        emit_warning(message, ctx.run_id)
        return Completed(name="Warning", message=message, data=str(ctx.run_dir))  # type: ignore[return-value]
    return str(ctx.run_dir)


def run_warnings(ctx: RunContext) -> list[str]:
    """What makes a published run end in a warning state rather than a plain success."""
    warnings = []
    if ctx.dns.checked and not ctx.dns.healthy:
        warnings.append(ctx.dns.detail + ".")
    rows = ctx.read.rows_in
    quarantined = ctx.counts.get("quarantine", 0)
    limit = ctx.policy.policy.report.quarantine_warn_share
    if rows and quarantined / rows > limit:
        warnings.append(
            f"{quarantined / rows:.1%} of the rows were quarantined (more than {limit:.1%}): "
            "see section 9 of the report."
        )
    return warnings


def publish_artifacts(ctx: RunContext) -> None:
    """What an operator needs, in the artifacts themselves: a markdown summary (counts per class, DNS
    health, the change since the previous run, the run folder as text) and a table of reasons. Counts
    only, nothing personal. The UI does not open ``file://`` links, so the report's path is given as text."""
    assert ctx.run_dir is not None
    report = json.loads((ctx.run_dir / "report.json").read_text(encoding="utf-8"))
    create_markdown_artifact(
        markdown=summary_markdown(report, ctx), key="cleanse-summary", description="Counts per class"
    )
    create_table_artifact(
        table=[{k: r[k] for k in ("reason", "rule", "class", "count", "what_to_do")} for r in report["by_reason"]],
        key="cleanse-reasons",
        description="Records per reason, with what to do",
    )


def summary_markdown(report: dict[str, Any], ctx: RunContext) -> str:
    assert ctx.run_dir is not None
    rows = report["rows_in"]
    dns = report["domains"]
    check = {"trusted": "ran", "untrusted": "ran, **not trusted**", "off": "did not run"}[dns.get("check", "off")]
    lines = [
        f"# Contact cleansing {ctx.run_id}",
        f"As of **{ctx.as_of.isoformat()}**, policy `{ctx.policy.policy.version}`, {rows:,} input rows.",
        "",
        "| class | records | share |",
        "|---|---:|---:|",
        *[f"| {k} | {n:,} | {100 * n / rows if rows else 0:.1f} % |" for k, n in report["by_class"].items()],
        "",
        f"**Domain check** {check}: {ctx.dns.detail}.",
        "",
    ]
    change = report["change"]
    if change["previous_run"]:
        lines += [
            f"**Change since run {change['previous_run']}** (as of {change['previous_as_of']}):",
            "",
            "| class | previous | now | change |",
            "|---|---:|---:|---:|",
            *[f"| {r['class']} | {r['previous']:,} | {r['now']:,} | {r['delta']:+,} |" for r in change["by_class"]],
            "",
            *[
                f"- {r['reason']}: {r['previous']:,} → {r['now']:,} ({r['delta']:+,})"
                for r in change["by_reason"]
                if r["delta"]
            ],
            "",
        ]
    else:
        lines += ["No earlier run over the same sources to compare with.", ""]
    lines += [
        f"Run folder (on the machine that ran it): `{ctx.run_dir}`",
        "",
        f"Report: `{ctx.run_dir / 'report.html'}`",
    ]
    return "\n".join(lines)
