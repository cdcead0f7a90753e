"""The pipeline in order: read → map → validate → domains → dedupe → classify → write.

Each stage is a function ``(RunContext) -> RunContext``. ``STAGES`` is the one place that says the
order; the Prefect flow wraps each stage in a task, the benchmark and the tests call them directly.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import math
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from . import __version__
from .classify import classify, evidence_at, suppression_entries
from .dedupe import (
    MATCH_PROBABILITY,
    MIN_TRAINING_RECORDS,
    Model,
    Pairs,
    Scored,
    code_columns,
    common_facts,
    compared_fields,
    default_model,
    distinct,
    learn,
    levels,
    merge_patterns,
    persons_and_review,
    shared_phones,
    training_draws,
)
from .domains import DnsHealth, check_domains, judge_domains
from .errors import ConfigError, file_errors
from .mapping import empty_contacts, load_mapping, map_tables
from .partitions import (
    RANGE_PAIRS_PER_ROW,
    Classified,
    ClassifySettings,
    ComparedRange,
    InputRead,
    KeptRange,
    MapSettings,
    PairBucket,
    PairRange,
    Partition,
    apply_to_partition,
    bucket_count,
    bucket_pairs,
    classified_records,
    classify_bucket,
    compare_range,
    default_partition_rows,
    distinct_domains,
    gather_columns,
    gather_objections,
    gather_prepared,
    map_jobs,
    map_partition,
    pair_spans,
    range_pairs,
    read_input,
    read_kept,
    read_result,
    records_of,
    unit_buckets,
    weigh_range,
    write_frequent,
)
from .persons import PersonIds, assign_person_ids
from .policy import LoadedPolicy
from .preflight import DEFAULT_OUT as DEFAULT_OUT
from .preflight import SAMPLE_DIR as SAMPLE_DIR
from .preflight import RunRequest as RunRequest
from .preflight import check_config
from .preflight import check_inputs as check_inputs
from .preflight import check_output as check_output
from .preflight import parse_as_of as parse_as_of
from .read import ReadResult, plan_inputs, read_sources
from .report import RECORD_COLUMNS, build_report, counts_by, decision_counts
from .report_html import render_html
from .resolver import DnsResolver
from .retention import plan_purge, purge
from .state import SUPPRESSION_ENTRIES, StateStore, hash_keys
from .validate import validate
from .write import (
    FIELD_CATEGORIES,
    PARQUET,
    Rewrite,
    by_class,
    guard_formulas,
    mask_email,
    new_run_id,
    promote,
    remove_stale,
    stage_folder,
    write_json,
)


@dataclass
class RunContext:
    request: RunRequest
    policy: LoadedPolicy
    as_of: dt.date
    state: StateStore
    run_id: str = field(default_factory=new_run_id)
    read: ReadResult = field(default_factory=ReadResult)
    presets: dict[str, str] = field(default_factory=dict)
    contacts: pl.DataFrame = field(default_factory=empty_contacts)
    # The addresses whose records object (opt-out, erasure) and the list does not yet hold as strictly.
    objections: pl.DataFrame | None = None
    review: pl.DataFrame | None = None  # dedupe's review list (review_table), written as review.csv
    review_counts: dict[str, int] = field(default_factory=dict)
    persons: PersonIds | None = None  # lasting person ids: each record's, and what the state must record
    dns: DnsHealth = DnsHealth(checked=False, healthy=True, detail="the domain check was not run")
    # On a cluster, until the partitions are gathered: what the partition tasks left, and the domain check
    # of their distinct domains (``judge_domains``) for the partition tasks to apply.
    partitions: PartitionsDone | None = None
    domain_table: pl.DataFrame | None = None
    # Likewise, what dedupe gave every record (``_row`` and ``PERSON_COLUMNS``, then the hash of its address
    # and the bucket of its unit), and the state's suppression list and requests, for the partition tasks.
    person_table: pl.DataFrame | None = None
    classify_inputs: tuple[pl.DataFrame, pl.DataFrame] | None = None
    # On a cluster, once classified: the buckets' files of judged records, which the write stage streams.
    classified: list[Classified] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    run_dir: Path | None = None
    counts: dict[str, int] = field(default_factory=dict)
    suppressed_added: int = 0
    # False while the stage will be tried again if it raises TransientError (set by the Prefect task).
    final_attempt: bool = True

    @property
    def rows(self) -> int:
        if self.partitions is not None:  # on a cluster, not classified yet
            return sum(part.rows for part in self.partitions.parts)
        if self.classified is not None:
            return sum(bucket.rows for bucket in self.classified)
        return self.contacts.height

    def judged(self) -> dict[str, list[pl.LazyFrame]]:
        """Each class's judged records in pieces, in input order: those in memory in one piece, or on a
        cluster the classified buckets' files, a piece per bucket."""
        if self.classified is None:
            return {name: [lazy] for name, lazy in by_class(self.contacts).items()}
        return classified_records(self.classified)

    def records(self) -> pl.LazyFrame:
        """Every judged record, in no particular order."""
        if self.classified is None:
            return self.contacts.lazy()
        return pl.concat([piece for pieces in self.judged().values() for piece in pieces])


def prepare(request: RunRequest) -> RunContext:
    """Check the configuration before any data is read: policy, mapping, as-of, state."""
    policy, as_of, state = check_config(request)
    return RunContext(request=request, policy=policy, as_of=as_of, state=state)


def stage_read(ctx: RunContext) -> RunContext:
    sources = list(ctx.request.sources) or [str(SAMPLE_DIR)]
    ctx.read = read_sources(sources)
    return ctx


def stage_map(ctx: RunContext, require_email: bool = True) -> RunContext:
    from schemas.contacts import MappedContacts

    contacts, ctx.presets = map_tables(
        ctx.read.tables,
        ctx.request.preset,
        load_mapping(ctx.request.mapping),
        local_zone=ctx.policy.policy.contacts.local_timezone,
        require_email=require_email,
    )
    MappedContacts.validate(contacts)
    ctx.contacts = contacts.with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64))
    # The text as read is not needed again: the rest of the run holds the mapped records only.
    ctx.read = dataclasses.replace(ctx.read, tables=[])
    return ctx


def stage_validate(ctx: RunContext) -> RunContext:
    ctx.contacts = validate(ctx.contacts, ctx.policy.policy.contacts.default_region)
    return ctx


def stage_domains(ctx: RunContext) -> RunContext:
    """The domain check. On a cluster, before the partitions are gathered, only the distinct domains of
    every partition are checked, here; the partition tasks apply the result (``apply_partitions``)."""
    options: dict[str, Any] = {
        "policy": ctx.policy.policy.domains,
        "resolver": DnsResolver(ctx.request.dns_servers) if ctx.request.check_mx else None,
        "cache": ctx.state,
        # A resolver that answers nothing at all may be back in a moment: worth a retry while one is left.
        "unreachable_raises": not ctx.final_attempt,
    }
    if ctx.partitions is not None:
        ctx.domain_table, ctx.dns = judge_domains(distinct_domains(ctx.partitions.parts), **options)
    else:
        ctx.contacts, ctx.dns = check_domains(ctx.contacts, **options)
    return ctx


PERSON_COLUMNS = ("owns_mailbox", "person_key", "person_id")  # what it adds to every record


def stage_dedupe(ctx: RunContext, lasting_ids: bool = True) -> RunContext:
    """Clusters (``person_key``) and the review list; with ``lasting_ids`` also each cluster's ``person_id``,
    taken over from the records' earlier runs (persons.py) and recorded when the run publishes.

    On a cluster, before the partitions are gathered, dedupe takes the candidate pairs the partition tasks
    found and scored (``score_partitions``: only those that can still matter) and reads of the fields they
    prepared only ``_row``, ``owner`` and ``mailbox``; the review list reads the fields it shows of its own
    records only; what dedupe gives every record is left in ``person_table`` for the partition tasks to
    apply (``apply_partitions``)."""
    prepared: Callable[[], pl.LazyFrame] | None = None
    scored: Callable[[], Scored] | None = None
    if ctx.partitions is not None:
        gathered = gather_prepared(ctx.partitions.parts)
        records = gathered.select("_row", "record_id").collect(engine="streaming")
        # Read by dedupe a few columns at a time from the partitions' files, never gathered whole.
        prepared = functools.partial(gathered.drop, "record_id")
        scored = ctx.partitions.scored.read
        shown: pl.DataFrame | pl.LazyFrame = pl.scan_parquet([part.path for part in ctx.partitions.parts])
    else:
        records = shown = ctx.contacts
    decided = ctx.state.person_decisions()
    persons, review = persons_and_review(records, decisions=decided, scored=scored, prepared=prepared)
    if lasting_ids:
        ctx.persons = assign_person_ids(persons, ctx.state.persons())
        persons = persons.with_columns(ctx.persons.person_id)
    ctx.review = review_table(review.pairs, shown)
    ctx.review_counts = {
        "pending": review.unsure,
        "listed": ctx.review.filter(pl.col("why") == "unsure").height,
        "split": ctx.review.filter(pl.col("why") == "split").height,
        "decided": review.decided,
        "overridden": review.overridden,
    }
    if ctx.partitions is not None:
        ctx.person_table = persons.select("_row", *(c for c in PERSON_COLUMNS if c in persons.columns))
    else:
        ctx.contacts = persons
    return ctx


def review_table(review: pl.DataFrame, contacts: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The review list with both records' fields side by side, masked: initials for names, the first
    letter and domain of an address, the last two digits of a phone; company and city as written."""
    listed = pl.concat([review["record_a"], review["record_b"]]).unique()
    masked = (
        contacts.lazy()
        .filter(pl.col("record_id").is_in(listed.implode()))
        .select(
            "record_id",
            pl.concat_str(
                [
                    pl.coalesce("first_name", "full_name").str.slice(0, 1),
                    pl.lit("*** "),
                    pl.col("last_name").str.slice(0, 1),
                    pl.lit("***"),
                ]
            ).alias("name"),
            mask_email(pl.col("email")).alias("email"),
            pl.when(pl.col("phone").is_not_null())
            .then(pl.concat_str([pl.lit("***"), pl.col("phone").str.replace_all(r"\D", "").str.slice(-2)]))
            .alias("phone"),
            "company",
            "city",
        )
        .unique("record_id", keep="first", maintain_order=True)
        .collect()
    )
    fields = [c for c in masked.columns if c != "record_id"]
    side = {name: masked.rename({c: f"{c}_{name}" for c in fields}) for name in ("a", "b")}
    return (
        review.join(side["a"], left_on="record_a", right_on="record_id", how="left", maintain_order="left")
        .join(side["b"], left_on="record_b", right_on="record_id", how="left", maintain_order="left")
        .select(
            "record_a",
            "record_b",
            "why",
            "posterior",
            "agreed",
            *[f"{c}_{name}" for c in fields for name in ("a", "b")],
        )
    )


def stage_classify(ctx: RunContext) -> RunContext:
    """Judge every record. On a cluster, before the partitions are gathered, only every record's address
    hash and the bucket of its unit are found here (``unit_buckets``), for the partition tasks to send
    the records to and classify each bucket (``apply_partitions``)."""
    suppression, requests = ctx.state.suppression(), ctx.state.requests()
    if ctx.partitions is not None:
        assert ctx.person_table is not None
        keys = gather_columns(ctx.partitions.parts, ["address_key"])["address_key"]
        hashes = (
            hash_keys(keys, ctx.state.hmac_key())
            if suppression.height or requests.height
            else pl.repeat(None, len(keys), dtype=pl.String, eager=True)
        )
        buckets = unit_buckets(ctx.person_table["person_key"], keys, unit_bucket_count(ctx.partitions))
        ctx.person_table = ctx.person_table.with_columns(hashes.alias("address_hash"), buckets)
        ctx.classify_inputs = (suppression, requests)
        return ctx
    if suppression.height or requests.height:
        hashes = hash_keys(ctx.contacts["address_key"], ctx.state.hmac_key())
        contacts = ctx.contacts.with_columns(hashes.alias("address_hash"))
    else:
        contacts = ctx.contacts.with_columns(pl.lit(None, pl.String).alias("address_hash"))
    ctx.contacts, addresses = classify(
        contacts, ctx.policy.policy, ctx.as_of, suppression, ctx.dns.healthy, requests=requests
    )
    ctx.objections = suppression_entries(addresses)
    return ctx


def spreadsheets(ctx: RunContext) -> bool:
    """Whether this run writes keep/reconfirm/discard.xlsx (policy ``[output]``)."""
    output = ctx.policy.policy.output
    if output.spreadsheets == "auto":
        return ctx.rows <= output.spreadsheet_max_records
    return output.spreadsheets == "always"


def _manifest(
    ctx: RunContext, counts: dict[str, int], counted: pl.DataFrame, runs: list[dict[str, Any]]
) -> dict[str, Any]:
    reasons = counts_by(counted, "reason")
    # The previous run over the same sources: an ad-hoc run over other files is no baseline for this one.
    key = ctx.request.sources_key()
    previous = [r for r in runs if r["summary"].get("sources_key", key) == key]
    return {
        "run_id": ctx.run_id,
        "as_of": ctx.as_of.isoformat(),
        "package_version": __version__,
        "versions": decision_versions(),
        "inputs": [{"path": i.path, "size": i.size, "sha256": i.sha256} for i in ctx.read.inputs],
        "presets": ctx.presets,
        "sources_key": key,
        "spreadsheets": spreadsheets(ctx),
        "policy": {"path": ctx.policy.path, "sha256": ctx.policy.sha256, "text": ctx.policy.text},
        "rows_in": ctx.read.rows_in,
        "counts": counts,
        "reasons": reasons,
        "timings_s": {k: round(v, 3) for k, v in ctx.timings.items()},
        "dns": dns_summary(ctx.dns),
        # Pairs in review.csv (unsure, or strangers kept apart), and a person's links and unlinks applied.
        "review": ctx.review_counts,
        # Lasting person ids: persons, those that kept their id from earlier runs, new ones, merges, splits.
        "persons": ctx.persons.counts if ctx.persons is not None else {},
        "previous_run": previous[-1]["summary"] if previous else None,
        "conservation": "rows in = keep + reconfirm + discard + quarantine",
        "warnings": list(ctx.read.warnings),
    }


# The libraries whose behaviour the decisions depend on: parsing, email rules, disposable domains, DNS.
DECISION_LIBRARIES = ("polars", "email-validator", "disposable-email-domains", "dnspython", "prefect", "phonenumbers")


def decision_versions() -> dict[str, str | None]:
    """The installed version of each library the decisions depend on (None where one is missing)."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name in DECISION_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def dns_summary(health: DnsHealth) -> dict[str, Any]:
    return {
        "checked": health.checked,
        "healthy": health.healthy,
        "detail": health.detail,
        "domains_by_status": health.statuses,
        "canaries": health.canaries,
        "from_cache": health.from_cache,
        "looked_up": health.looked_up,
    }


def stage_write(ctx: RunContext) -> RunContext:
    """Publish in one ordered commit: the run folder is staged whole, then, inside one state-database
    transaction, the run's suppression entries and run record are written, the folder is renamed and
    ``latest`` moved, and the transaction commits. If the commit fails the rename is undone, so the
    folder, ``latest`` and the state database never tell different stories."""
    summary: dict[str, Any] = {}
    out_dir = Path(ctx.request.out_dir)
    started = time.perf_counter()

    def extra(folder: Path, counts: dict[str, int], decisions: pl.LazyFrame) -> None:
        # The manifest is written inside the run folder, before publishing: its write time is the staging's.
        ctx.timings["write"] = time.perf_counter() - started
        counted = decision_counts(decisions)  # one pass over decisions.parquet for the manifest and the report
        manifest = _manifest(ctx, counts, counted, runs)
        manifest["retention"] = {
            "keep_runs": retention.keep_runs,
            "keep_days": retention.keep_days,
            "purged": [run["run_id"] for run in plan],  # once this run is published
        }
        manifest["processing"] = {
            "fields_by_source": fields_by_source(ctx.records()),
            "run_folder": str((out_dir / ctx.run_id).resolve()),
            "objections_listed": entries.height,
        }
        write_json(folder / "manifest.json", manifest)
        report = build_report(
            ctx.records().select(RECORD_COLUMNS), counted, ctx.read.quarantine, manifest, ctx.policy.policy
        )
        write_json(folder / "report.json", report)
        if ctx.review is not None:
            guard_formulas(ctx.review).write_csv(folder / "review.csv")
        (folder / "report.html").write_text(render_html(report), encoding="utf-8")
        summary.update(
            run_id=ctx.run_id,
            as_of=ctx.as_of.isoformat(),
            sources_key=manifest["sources_key"],
            by_class=report["by_class"],
            by_reason=manifest["reasons"],
        )

    # One run at a time stages and publishes to a state database: the previous run it compares with and
    # where latest points are then those of a run that has finished publishing.
    retention = ctx.policy.policy.retention
    with ctx.state.publish_lock():
        now = dt.datetime.now(dt.UTC)
        runs = ctx.state.runs()  # read once the lock is held: the runs published before this one
        plan = plan_purge(runs, retention, now)
        entries = pl.DataFrame(schema=SUPPRESSION_ENTRIES)
        objections = ctx.objections
        if objections is not None and objections.height:
            # Classify hashed every address when the list was not empty; otherwise they are hashed here.
            hashes = objections["address_hash"]
            if hashes.null_count():
                hashes = hash_keys(objections["address_key"], ctx.state.hmac_key())
            entries = pl.DataFrame({"address_hash": hashes, "objection_at": objections["objection_at"]})
        with file_errors(out_dir, "writing the run folder"):
            remove_stale(out_dir)
            tmp, counts = stage_folder(
                out_dir,
                ctx.run_id,
                ctx.judged(),
                ctx.read.quarantine,
                ctx.read.rows_in,
                extra,
                spreadsheets(ctx),
                records=ctx.records(),
            )
        undo: Callable[[], None] | None = None
        try:
            with ctx.state.transaction() as db:
                added = ctx.state.suppress(entries, "opt-out or erasure", f"run {ctx.run_id}", db=db)
                if ctx.persons is not None:
                    ctx.state.set_persons(ctx.persons.store, db=db)
                ctx.state.record_run(ctx.run_id, ctx.as_of, str(out_dir / ctx.run_id), summary, db=db)
                undo = promote(out_dir, ctx.run_id, move_latest=_moves_latest(ctx, out_dir))
        except BaseException:
            if undo is not None:
                undo()
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _, failed = purge(plan, ctx.state, now)
        for run_id, why in failed.items():
            print(
                f"cleanse: warning: run {run_id} could not be purged ({why}); the next run tries again.",
                file=sys.stderr,
            )
    ctx.run_dir, ctx.counts, ctx.suppressed_added = out_dir / ctx.run_id, counts, added
    return ctx


def fields_by_source(contacts: pl.DataFrame | pl.LazyFrame) -> dict[str, dict[str, list[str]]]:
    """Per source file, the canonical fields that hold a value in any of its records, by category."""
    schema = contacts.collect_schema()
    fields = [f for names in FIELD_CATEGORIES.values() for f in names if f in schema]

    def held(name: str) -> pl.Expr:
        column = pl.col(name)
        if isinstance(schema[name], pl.List):
            return (column.list.len() > 0).any()
        if schema[name] == pl.Boolean:
            return column.fill_null(False).any()
        return column.is_not_null().any()

    present = (
        contacts.lazy()
        .group_by("source_file")
        .agg(held(f).alias(f) for f in fields)
        .sort("source_file")
        .collect(engine="streaming")
    )
    return {
        row["source_file"]: {category: [f for f in names if row.get(f)] for category, names in FIELD_CATEGORIES.items()}
        for row in present.iter_rows(named=True)
    }


def _moves_latest(ctx: RunContext, out_dir: Path) -> bool:
    """``latest`` follows runs over the same sources as the run it points at (the nightly's, as a rule); a
    run over other sources is published and recorded but leaves it, unless asked to move it."""
    if ctx.request.set_latest:
        return True
    try:
        current = json.loads((out_dir / "latest" / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True  # no latest yet, or one that is not a whole run folder
    return bool(current.get("sources_key", ctx.request.sources_key()) == ctx.request.sources_key())


Stage = Callable[[RunContext], RunContext]
STAGES: Sequence[tuple[str, Stage]] = (
    ("read", stage_read),
    ("map", stage_map),
    ("validate", stage_validate),
    ("domains", stage_domains),
    ("dedupe", stage_dedupe),
    ("classify", stage_classify),
    ("write", stage_write),
)
Progress = Callable[[str, RunContext, float], None]


def run_stage(name: str, stage: Stage, ctx: RunContext, progress: Progress | None = None) -> RunContext:
    """Run one stage on a copy of its input, so that a stage that fails half-way and is tried again
    starts from the same input, never from a half-updated context."""
    started = time.perf_counter()
    ctx = stage(dataclasses.replace(ctx, timings=dict(ctx.timings)))
    ctx.timings[name] = time.perf_counter() - started
    if progress:
        progress(name, ctx, ctx.timings[name])
    return ctx


def dedupe_only(
    request: RunRequest, out_file: Path, progress: Progress | None = None, review_file: Path | None = None
) -> pl.DataFrame:
    """read → map → validate → dedupe, written as one row per input row: ``source_file, source_row,
    record_id, cluster_id, survivor`` (CSV or Parquet by the file's ending, owner-only, whole or not at
    all). The survivor of a cluster is its record with the latest evidenced consent, then the latest
    activity, then the first in input order; unreadable rows have no cluster. The links and unlinks
    recorded in the state database are honoured; ``review_file`` receives the review list."""
    if out_file.suffix.lower() not in {".csv", ".parquet"}:
        raise ConfigError(f"--out {out_file} must end in .csv or .parquet.", fix="Name the output file so.")
    ctx = prepare(request)
    # Dedupe alone reads any export with names: a postal list or a sign-up sheet may hold no email.
    # It publishes nothing, so it gives no lasting person ids either.
    stages: dict[str, Stage] = {
        **dict(STAGES),
        "map": functools.partial(stage_map, require_email=False),
        "dedupe": functools.partial(stage_dedupe, lasting_ids=False),
    }
    for name in ("read", "map", "validate", "dedupe"):
        ctx = run_stage(name, stages[name], ctx, progress)
    evidence = evidence_at()
    ranked = ctx.contacts.sort(
        [evidence, pl.col("last_activity_at"), pl.col("_row")], descending=[True, True, False], nulls_last=True
    )
    survivors = set(ranked.group_by("person_key", maintain_order=True).agg(pl.col("_row").first())["_row"])
    records = ctx.contacts.sort("_row").select(
        "source_file",
        "source_row",
        "record_id",
        pl.col("record_id").first().over("person_key").alias("cluster_id"),
        pl.col("_row").is_in(list(survivors)).alias("survivor"),
    )
    unreadable = ctx.read.quarantine.select(
        "source_file",
        "source_row",
        pl.lit(None, pl.String).alias("record_id"),
        pl.lit(None, pl.String).alias("cluster_id"),
        pl.lit(False).alias("survivor"),
    )
    out = pl.concat([records, unreadable]).sort("source_file", "source_row", maintain_order=True)
    _write_whole(out, out_file)
    if review_file is not None and ctx.review is not None:
        _write_whole(guard_formulas(ctx.review), review_file)
    return out


def _write_whole(frame: pl.DataFrame, path: Path) -> None:
    """CSV or Parquet by the file's ending, owner-only, whole or not at all."""
    rewrite = Rewrite()
    with file_errors(path, "writing the file"):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            parquet = functools.partial(frame.write_parquet, **PARQUET)
            rewrite.add(path, parquet if path.suffix.lower() == ".parquet" else frame.write_csv)
        except BaseException:
            rewrite.abandon()
            raise
        rewrite.commit()


# Runs a function over argument tuples, wherever it runs them (Prefect tasks on a Dask cluster, a Dask
# client, one by one), and returns the results in the order of the arguments.
RunAll = Callable[[str, Callable[..., Any], list[tuple[Any, ...]]], list[Any]]


@dataclass(frozen=True)
class ScoredPartitions:
    """Dedupe's candidate pairs scored in tasks over ranges (``score_partitions``): each range's
    pairs, those of them that can still matter once weighed, and the model they were weighed by (None:
    nothing to compare)."""

    ranges: list[PairRange]
    kept: list[KeptRange]
    model: Model | None = None
    probability: float = MATCH_PROBABILITY

    def read(self) -> Scored:
        return Scored.none() if self.model is None else read_kept(self.kept, self.model, self.probability)


def score_partitions(
    parts: list[Partition],
    buckets: list[PairBucket],
    run_all: RunAll,
    probability: float = MATCH_PROBABILITY,
    range_count: int | None = None,
) -> ScoredPartitions:
    """Dedupe's scoring as tasks over ``range_count`` ranges (None: as many as partitions, more where they
    would hold over ``RANGE_PAIRS_PER_ROW`` pairs per record of the largest partition), each over the
    candidate pairs whose left record lies in its span of records (``partitions.pair_spans``,
    ``range_pairs``): a task's pairs, and so its memory, follow from the partition size, not from the
    input's. First the numbers two people share among them, then the pairs compared (``compare_range``),
    then, once this process has learned the model from the patterns the tasks counted and from random pairs
    of records it reads, weighed and settled (``weigh_range``). Only the counts per pattern, a few columns
    of all records (``common_facts``) and of the random pairs' records, and the model pass through this
    process; the pairs stay in the work folder."""
    source = gather_prepared(parts).drop("record_id")
    fields = compared_fields(source)
    names = [f.name for f in fields]
    phone = "phone" in names
    width = sum(part.rows for part in parts)
    if range_count is None:
        pairs = sum(bucket.rows for bucket in buckets)
        range_count = max(len(parts), math.ceil(pairs / (RANGE_PAIRS_PER_ROW * max(part.rows for part in parts))))
    spans = pair_spans(buckets, width, range_count)
    ranges: list[PairRange] = run_all(
        "ranges", range_pairs, [(i, span, buckets, parts, phone) for i, span in enumerate(spans)]
    )
    for bucket in buckets:
        Path(bucket.path).unlink(missing_ok=True)
    count = sum(r.rows for r in ranges)
    if not (fields and count):
        return ScoredPartitions(ranges, [])
    common = common_facts(source, names)
    shared = shared_phones([pl.Series("v", r.phones, pl.String) for r in ranges], common)
    ranges = [dataclasses.replace(r, phones=[]) for r in ranges]  # in ``shared`` now, not in every task's call
    work = Path(ranges[0].path).parent
    shared_path = str(work / "shared-phones.parquet")
    shared.to_frame("v").write_parquet(shared_path)
    learned = width >= MIN_TRAINING_RECORDS
    draws, sample = training_draws(width, count) if learned else (None, None)
    offsets = np.cumsum([0, *(r.rows for r in ranges)])
    samples = [
        None if sample is None else sample[(sample >= low) & (sample < high)] - low
        for low, high in zip(offsets, offsets[1:], strict=False)
    ]
    compared: list[ComparedRange] = run_all(
        "compare",
        compare_range,
        [(r, parts, fields, learned, shared_path, s) for r, s in zip(ranges, samples, strict=True)],
    )
    model = default_model(fields)
    if draws is not None:
        rows = distinct(np.concatenate([draws.left, draws.right]))
        columns = code_columns(records_of(rows, parts))
        random = Pairs(np.searchsorted(rows, draws.left), np.searchsorted(rows, draws.right))
        counted, trained = merge_patterns([c.counted for c in compared]), merge_patterns([c.trained for c in compared])
        model = learn(levels(columns, random, fields), trained, counted, width, names)
        del columns
    frequent = write_frequent(common, work)
    kept: list[KeptRange] = run_all(
        "weigh",
        weigh_range,
        [(r, c, parts, model, frequent, probability) for r, c in zip(ranges, compared, strict=True)],
    )
    return ScoredPartitions(ranges, kept, model, probability)


@dataclass(frozen=True)
class PartitionsDone:
    """What the partition-local stages left in the work folder, and how long each took."""

    reads: list[InputRead]
    parts: list[Partition]
    pairs: list[PairBucket]
    warnings: list[str]
    timings: dict[str, float]
    work: str
    scored: ScoredPartitions = dataclasses.field(default_factory=lambda: ScoredPartitions([], []))


def partition_local(
    sources: Sequence[str],
    work: Path,
    partition_rows: int | None,
    settings: MapSettings,
    run_all: RunAll,
    buckets: int | None = None,
    ranges: int | None = None,
) -> PartitionsDone:
    """read, map and validate as partition-local tasks (see partitions.py): each input read in a task of its
    own and cut into partitions of ``partition_rows`` (None: from the input's size), each partition mapped
    and validated in one, which also sends its rows of dedupe's blocks to ``buckets`` buckets (None: from
    the input's size); then each bucket's candidate pairs in a task, and the pairs scored in tasks over
    ``ranges`` ranges (``score_partitions``; None: from the pairs and the partition size)."""
    units, warnings = plan_inputs(list(sources) or [str(SAMPLE_DIR)])
    rows = partition_rows or default_partition_rows(units)
    started = time.perf_counter()
    reads = run_all("read", read_input, [(unit, number, work, rows) for number, unit in enumerate(units)])
    timings = {"read": time.perf_counter() - started}
    started = time.perf_counter()
    jobs = map_jobs(reads, work)
    settings = dataclasses.replace(settings, buckets=buckets or bucket_count(reads, rows))
    parts = run_all("map", map_partition, [(job, settings) for job in jobs])
    timings["map"] = time.perf_counter() - started
    started = time.perf_counter()
    width = sum(part.rows for part in parts)
    pairs = run_all("pairs", bucket_pairs, [(bucket, work, width) for bucket in range(settings.buckets)])
    timings["pairs"] = time.perf_counter() - started
    started = time.perf_counter()
    scored = score_partitions(parts, pairs, run_all, range_count=ranges)
    timings["score"] = time.perf_counter() - started
    return PartitionsDone(reads, parts, pairs, warnings, timings, str(work), scored)


def unit_bucket_count(done: PartitionsDone) -> int:
    """Buckets of the shuffle by unit: as many as of the shuffle by blocking key, for the same reason."""
    return max(1, len(done.pairs))


def partition_tables(ctx: RunContext) -> tuple[str, str, ClassifySettings]:
    """What the domain check, dedupe and classify found in the flow's process (``stage_domains``,
    ``stage_dedupe``, ``stage_classify`` on partitions) as files in the work folder, for the partition
    tasks; the context lets go of them."""
    assert ctx.partitions is not None and ctx.domain_table is not None and ctx.person_table is not None
    assert ctx.classify_inputs is not None
    work = Path(ctx.partitions.work)
    ctx.domain_table.write_parquet(work / "domains.parquet")
    ctx.person_table.write_parquet(work / "persons.parquet")
    suppression, requests = ctx.classify_inputs
    suppression.write_parquet(work / "suppression.parquet")
    requests.write_parquet(work / "requests.parquet")
    ctx.domain_table = ctx.person_table = ctx.classify_inputs = None
    settings = ClassifySettings(
        ctx.policy.policy, ctx.as_of, ctx.dns.healthy, str(work / "suppression.parquet"), str(work / "requests.parquet")
    )
    return str(work / "domains.parquet"), str(work / "persons.parquet"), settings


def apply_partitions(
    parts: Sequence[Partition], buckets: int, domains: str, persons: str, settings: ClassifySettings, run_all: RunAll
) -> list[Classified]:
    """The tables of ``partition_tables`` applied to every partition in a task of its own, which sends each
    record to the bucket of its unit (one of ``buckets``); then each bucket classified in a task of its own."""
    run_all("apply", apply_to_partition, [(part, domains, persons) for part in parts])
    work = Path(parts[0].path).parent
    return list(run_all("classify", classify_bucket, [(b, work, settings) for b in range(buckets)]))


def map_settings(ctx: RunContext) -> MapSettings:
    contacts = ctx.policy.policy.contacts
    return MapSettings(ctx.request.preset, ctx.request.mapping, contacts.local_timezone, contacts.default_region)


def with_partitions(ctx: RunContext, classified: Sequence[Classified]) -> RunContext:
    """The context as the stages up to ``stage_classify`` leave it, from the buckets classified on the
    cluster (``apply_partitions``): their files of judged records, which the write stage streams, and their
    objections."""
    done = ctx.partitions
    assert done is not None
    ctx.read = read_result(done.reads, done.warnings)
    ctx.presets = {p.source_file: p.preset for p in done.parts}
    ctx.classified, ctx.objections = list(classified), gather_objections(classified)
    ctx.partitions = None
    ctx.timings.update(done.timings)
    return ctx


def run_pipeline(request: RunRequest, progress: Progress | None = None) -> RunContext:
    """Every stage in order without Prefect (the flow does the same through tasks)."""
    ctx = prepare(request)
    for name, stage in STAGES:
        ctx = run_stage(name, stage, ctx, progress)
    return ctx
