"""The flow ``cleanse-contacts``: one thin task per pipeline stage."""

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.client.schemas.objects import State, TaskRun
from prefect.futures import as_completed
from prefect.runtime import flow_run, task_run
from prefect.states import Completed

from cleansing.errors import CleansingError, InternalError, TransientError, file_errors, full_disk_told, os_errno
from cleansing.partitions import (
    Classified,
    ClassifySettings,
    InputRead,
    MapSettings,
    Partition,
    apply_to_partition,
    bucket_pairs,
    classify_bucket,
    compare_range,
    map_partition,
    range_pairs,
    read_input,
    weigh_range,
    work_folder,
)
from cleansing.pipeline import (
    STAGES,
    PartitionsDone,
    Progress,
    RunContext,
    RunRequest,
    apply_partitions,
    map_settings,
    partition_local,
    partition_tables,
    prepare,
    run_stage,
    stage_classify,
    stage_dedupe,
    stage_domains,
    unit_bucket_count,
    with_partitions,
)
from cleansing.preflight import local_workers
from cleansing.state import DEFAULT_STATE
from flows.alerts import FLOW_NAME, emit_warning

PresetName = Literal["auto", "mailchimp", "hubspot", "salesforce", "brevo", "klaviyo", "generic"]
IO_STAGES = {"read", "domains", "write"}
# No stage of a run this machine can hold takes an hour; one that does is stuck, and the run fails
# (publishing nothing) rather than holding the deployment's one slot forever.
STAGE_TIMEOUT_S = float(os.environ.get("CLEANSE_STAGE_TIMEOUT_S", "3600"))
# Set by the command line to show progress on the terminal; counts and timings only.
terminal_progress: Progress | None = None
# Likewise for the partition tasks of a run on a cluster: (stage, tasks done, tasks, count done, its unit).
partition_progress: Callable[[str, int, int, int, str], None] | None = None
# The flow run and run id of the run in progress in this process, for the command line to tell what a
# signal stopped.
current: dict[str, str] = {}


def _transient_only(_task: Any, _run: TaskRun, state: State[Any]) -> bool:
    return isinstance(state.result(raise_on_failure=False), TransientError)


def safe_error(exc: BaseException) -> BaseException:
    """The exception as Prefect may keep it (logs, the run's state): this package's errors are built
    masked; an error of the file system keeps only its number; any other error keeps its type's name and a
    masked first line. Both lose their chain, whose messages may quote the data."""
    if isinstance(exc, CleansingError):
        return exc
    number = os_errno(exc)
    if number is not None:  # the file system's error, which a caller may tell (a full disk), without the names
        return OSError(number, os.strerror(number))
    return InternalError.of(exc)


@contextlib.contextmanager
def masked_errors() -> Iterator[None]:
    """Raise any error of the block as ``safe_error`` makes it."""
    try:
        yield
    except Exception as exc:
        safe = safe_error(exc)
        if safe is exc:
            raise
        raise safe from None


def _stage_task(name: str, stage: Callable[[RunContext], RunContext], shown: bool = True) -> Any:
    """``stage`` as a task; ``shown``: its progress shown on the terminal as it ends."""
    retries = 2 if name in IO_STAGES else 0

    def run(ctx: RunContext) -> RunContext:
        logger = get_run_logger()
        attempt = task_run.run_count or 1
        ctx = dataclasses.replace(ctx, final_attempt=attempt > retries)
        with masked_errors():
            ctx = run_stage(name, stage, ctx, terminal_progress if shown else None)
        logger.info(
            "stage %s: %d rows in %.2f s", name, ctx.rows if name != "read" else ctx.read.rows_in, ctx.timings[name]
        )
        return ctx

    run.__name__ = f"stage_{name}"
    return _task(name, retries)(run)


def _task(name: str, retries: int) -> Any:
    """Every task of the flow: nothing cached or persisted (the data is personal), retried only on a
    transient error, stopped after ``STAGE_TIMEOUT_S``."""
    return task(
        name=name,
        cache_policy=NONE,
        persist_result=False,
        retries=retries,
        retry_delay_seconds=2,
        retry_condition_fn=_transient_only if retries else None,
        timeout_seconds=STAGE_TIMEOUT_S,
    )


TASKS = [(name, _stage_task(name, stage)) for name, stage in STAGES]
# On a cluster, the domain check of the partitions' distinct domains, dedupe over the columns it reads of
# them and the units classify needs, in the flow's process; shown once the partitions are classified.
ON_PARTITIONS = [("domains", _stage_task("domains", stage_domains, shown=False))]
ON_PARTITIONS += [("dedupe", _stage_task("dedupe", stage_dedupe, shown=False))]
ON_PARTITIONS += [("classify", _stage_task("classify", stage_classify, shown=False))]
# The stages a run on a cluster does over partitions.
PARTITION_LOCAL = ("read", "map", "validate", "domains", "dedupe", "classify")


def _partition_task(name: str, function: Callable[..., Any], retries: int = 0) -> Any:
    def run(*args: Any) -> Any:
        with masked_errors():
            return function(*args)

    run.__name__ = function.__name__
    return _task(name, retries)(run)


# The task each partition-local function runs as; reading files is worth a retry on a transient error.
PARTITION_TASKS = {
    read_input: _partition_task("read-input", read_input, retries=2),
    map_partition: _partition_task("map-partition", map_partition),
    bucket_pairs: _partition_task("pair-bucket", bucket_pairs),
    range_pairs: _partition_task("pair-range", range_pairs),
    compare_range: _partition_task("compare-range", compare_range),
    weigh_range: _partition_task("weigh-range", weigh_range),
    apply_to_partition: _partition_task("apply-partition", apply_to_partition),
    classify_bucket: _partition_task("classify-bucket", classify_bucket),
}


PAIR_STAGES = ("pairs", "ranges", "compare", "weigh")  # whose tasks count pairs, not rows


def _run_tasks(stage: str, function: Callable[..., Any], arguments: list[tuple[Any, ...]]) -> list[Any]:
    """``function`` as one Prefect task per argument tuple on the flow's task runner (the Dask cluster);
    rows (or pairs) done are logged, and shown on the terminal, as the tasks finish."""
    logger = get_run_logger()
    futures = [PARTITION_TASKS[function].submit(*args) for args in arguments]
    count, unit = 0, "pairs" if stage in PAIR_STAGES else "rows"
    for done, future in enumerate(as_completed(futures), start=1):
        result = future.result()
        count += result.rows_in if isinstance(result, InputRead) else result.rows
        logger.info("stage %s: %d of %d tasks done, %d %s", stage, done, len(futures), count, unit)
        if partition_progress:
            partition_progress(stage, done, len(futures), count, unit)
    return [future.result() for future in futures]


@flow(name="cleanse-partitions", persist_result=False, log_prints=False)
def cleanse_partitions(
    sources: list[str],
    work: str,
    partition_rows: int | None,
    preset: str,
    mapping: str | None,
    local_zone: str,
    region: str,
) -> PartitionsDone:
    """read, map and validate in tasks over partitions, then dedupe's candidate pairs in tasks over buckets
    of a shuffle by blocking key, on the Dask cluster the caller gives as task runner."""
    settings = MapSettings(preset, mapping, local_zone, region)
    return partition_local(sources, Path(work), partition_rows, settings, _run_tasks)


@flow(name="cleanse-partitions-classify", persist_result=False, log_prints=False, validate_parameters=False)
def cleanse_partitions_classify(
    parts: list[Partition], buckets: int, domains: str, persons: str, settings: ClassifySettings
) -> list[Classified]:
    """What the domain check, dedupe and classify found in the flow's process (Parquet files in the work
    folder) applied to every partition in tasks, which send each record to its unit's bucket; then a task
    per bucket classifies it; on the Dask cluster the caller gives as task runner."""
    return apply_partitions(parts, buckets, domains, persons, settings, _run_tasks)


@contextlib.contextmanager
def dask_cluster(cluster: str) -> Iterator[str]:
    """The address of the run's Dask cluster: a local cluster of N single-threaded worker processes for
    ``local:N``, started for the run and closed after it, else the running cluster at the address."""
    workers = local_workers(cluster)
    if workers is None:
        yield cluster
        return
    from distributed import LocalCluster

    with LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # a free port: two runs on one machine do not clash
        silence_logs=logging.ERROR,  # a task cancelled when another failed is no news
    ) as local:
        yield local.scheduler_address


def dask_runner(address: str) -> Any:
    """The task runner of a subflow on the Dask cluster at ``address``."""
    from prefect_dask.task_runners import DaskTaskRunner

    return DaskTaskRunner(address=address)


def _on_cluster(ctx: RunContext, work: Path) -> RunContext:
    """The stages up to classify over partitions on the run's cluster, which live in the ``work`` folder."""
    assert ctx.request.cluster is not None
    with dask_cluster(ctx.request.cluster) as address:
        with masked_errors():
            settings = map_settings(ctx)
            ctx.partitions = cleanse_partitions.with_options(task_runner=dask_runner(address))(
                # Absolute, so that workers on other machines find them on the shared file system.
                sources=[str(Path(source).absolute()) for source in ctx.request.sources],
                work=str(work),
                partition_rows=ctx.request.partition_rows,
                preset=settings.preset,
                mapping=str(Path(settings.mapping).absolute()) if settings.mapping else None,
                local_zone=settings.local_zone,
                region=settings.region,
            )
        for _name, stage_task in ON_PARTITIONS:  # in this process, with the stages' retries
            ctx = stage_task(ctx)
        with masked_errors():
            started = time.perf_counter()
            assert ctx.partitions is not None
            parts, buckets = ctx.partitions.parts, unit_bucket_count(ctx.partitions)
            classified = cleanse_partitions_classify.with_options(task_runner=dask_runner(address))(
                parts, buckets, *partition_tables(ctx)
            )
            ctx.timings["classify"] += time.perf_counter() - started
    ctx = with_partitions(ctx, classified)
    done = [name for name in PARTITION_LOCAL if name in ctx.timings]  # validate is timed with map
    get_run_logger().info("stages %s: %d rows on cluster %s", ", ".join(done), ctx.rows, ctx.request.cluster)
    if terminal_progress:
        for name in done:
            terminal_progress(name, ctx, ctx.timings[name])
    return ctx


@flow(name=FLOW_NAME, persist_result=False, log_prints=False)
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
    cluster: str | None = None,
    partition_rows: int | None = None,
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
        cluster: Run read, map and validate as tasks over partitions on a Dask cluster: local:N for N worker
            processes on this machine, or a scheduler's address (tcp://HOST:8786). Empty: one process.
        partition_rows: Rows per partition on a cluster; empty picks a size from the input's.
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
        cluster=cluster or None,
        partition_rows=partition_rows,
    )
    current["flow_run_id"] = str(flow_run.id)
    with masked_errors():
        ctx = prepare(request)
        current["run_id"] = ctx.run_id
    stages = TASKS
    # On a cluster, the partitions and the classified buckets the write stage streams from are files in a
    # work folder, removed when the run ends, whatever happens.
    work = work_folder(Path(request.out_dir), ctx.run_id) if request.cluster else None
    try:
        if work is not None:
            with (
                file_errors(request.out_dir, "writing the run's partitions into its work folder"),
                full_disk_told(work),
            ):
                ctx = _on_cluster(ctx, work)
            stages = [(name, stage_task) for name, stage_task in TASKS if name not in PARTITION_LOCAL]
        for _name, stage_task in stages:
            ctx = stage_task(ctx)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
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
