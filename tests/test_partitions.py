"""Partitioned runs on a Dask cluster: the same decisions as one process, whatever the partitioning."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from benchmarks.generate_contacts import generate
from cleansing import dedupe
from cleansing.partitions import RANGE_PAIRS_PER_ROW, PairBucket, bin_rows, gather_pairs, pair_spans, work_folder
from cleansing.pipeline import (
    STAGES,
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
from cleansing.state import StateStore
from cleansing.write import decisions_frame
from flows.cli import main

AS_OF = dt.date(2026, 11, 29)
ONE_PROCESS = ("read", "map", "validate")
JUDGED = ("domains", "dedupe", "classify")


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    """A local Dask cluster of two worker processes, as ``--cluster local:2`` starts."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ...]:
    """Three exports (one Swedish, semicolon-separated) whose people recur across the files."""
    return tuple(str(p) for p in generate(450, tmp_path_factory.mktemp("generated")))


def _on(client: Any) -> Callable[[str, Callable[..., Any], list[tuple[Any, ...]]], list[Any]]:
    def run_all(_stage: str, function: Callable[..., Any], arguments: list[tuple[Any, ...]]) -> list[Any]:
        return list(client.gather(client.map(function, *zip(*arguments, strict=True), pure=False)))

    return run_all


def _request(tmp: Path, sources: tuple[str, ...], partition_rows: int | None, dns: str | None = None) -> RunRequest:
    return RunRequest(
        sources=sources,
        as_of=AS_OF,
        out_dir=str(tmp / "out"),
        state=str(tmp / "s.sqlite"),
        check_mx=dns is not None,
        dns_servers=(dns,) if dns else (),
        cluster="local:2" if partition_rows else None,
        partition_rows=partition_rows,
    )


def _decisions(ctx: RunContext, judged: tuple[str, ...] = JUDGED) -> pl.DataFrame:
    """Every row's class, reason, flags, cluster, person and survivor, as ``decisions.parquet`` has them."""
    for name, stage in STAGES:
        if name in judged:
            ctx = run_stage(name, stage, ctx)
    return decisions_frame(ctx.records(), ctx.read.quarantine).sort("source_file", "source_row").collect()


def one_process(tmp: Path, sources: tuple[str, ...], dns: str | None = None) -> pl.DataFrame:
    ctx = prepare(_request(tmp, sources, None, dns))
    for name, stage in STAGES:
        if name in ONE_PROCESS:
            ctx = run_stage(name, stage, ctx)
    return _decisions(ctx)


def partitioned(
    tmp: Path,
    sources: tuple[str, ...],
    rows: int,
    client: Any,
    buckets: int | None = None,
    dns: str | None = None,
    ranges: int | None = None,
) -> tuple[pl.DataFrame, int]:
    """The decisions, and how many partitions the input was cut into. The candidate pairs the shuffle by
    blocking key found must be the pairs one process finds, and dedupe must take them, scored in ``ranges``
    tasks at most (None: the run's own choice)."""
    request = _request(tmp, sources, rows, dns)
    ctx = prepare(request)
    work = work_folder(Path(request.out_dir), ctx.run_id)
    done = partition_local(sources, work, rows, map_settings(ctx), _on(client), buckets, ranges)
    assert len(done.pairs) == (buckets or 1)
    pairs, largest = sum(b.rows for b in done.pairs), max(part.rows for part in done.parts)
    most = ranges or max(len(done.parts), -(-pairs // (RANGE_PAIRS_PER_ROW * largest)))
    assert len(done.scored.ranges) <= most
    # The domain check, dedupe and the units classify needs, over the partitions, here; a task per partition
    # applies what they found and sends its records to their units' buckets; a task per bucket classifies.
    ctx.partitions = done
    for name, stage in (("domains", stage_domains), ("dedupe", stage_dedupe), ("classify", stage_classify)):
        ctx = run_stage(name, stage, ctx)
    assert ctx.person_table is not None
    assert ctx.rows == ctx.person_table.height == sum(part.rows for part in done.parts)
    classified = apply_partitions(done.parts, unit_bucket_count(done), *partition_tables(ctx), _on(client))
    assert len(classified) == len(done.pairs)
    ctx = with_partitions(ctx, classified)
    p = dedupe.prepare(ctx.records().collect().sort("_row"))
    assert np.array_equal(p["_row"].to_numpy(), np.arange(p.height))  # positions are row numbers
    shuffled = dedupe.pairs_from_codes(pl.Series(gather_pairs(done.scored.ranges)), p.height)
    whole = dedupe.candidate_pairs(p)
    assert np.array_equal(shuffled.left, whole.left) and np.array_equal(shuffled.right, whole.right)
    # Scored by the partition tasks as one process scores them: the same pairs kept, weights, patterns.
    fields = dedupe.compared_fields(p.lazy())
    common = dedupe.common_facts(p.lazy(), [f.name for f in fields])
    mailbox = p["mailbox"].is_not_null().to_numpy()
    expected, scored = dedupe.score(dedupe.code_columns(p), whole, fields, mailbox, common), done.scored.read()
    for got, wanted in zip(_scored_arrays(scored), _scored_arrays(expected), strict=True):
        assert np.array_equal(got, wanted)
    assert (scored.threshold, scored.low, scored.prior, scored.names) == (
        expected.threshold,
        expected.low,
        expected.prior,
        expected.names,
    )
    return _decisions(ctx, judged=()), len(done.parts)


def _scored_arrays(scored: dedupe.Scored) -> tuple[np.ndarray, ...]:
    apart = list(scored.strangers())
    strangers = [
        np.concatenate([np.zeros(0, dtype=np.int64), *(getattr(p, end) for p in apart)]) for end in ("left", "right")
    ]
    return scored.pairs.left, scored.pairs.right, scored.weights, scored.patterns, scored.vetoed, *strangers


@pytest.fixture(scope="module")
def sample_decisions(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    return one_process(tmp_path_factory.mktemp("one"), ())


@pytest.fixture(scope="module")
def generated_decisions(tmp_path_factory: pytest.TempPathFactory, generated: tuple[str, ...]) -> pl.DataFrame:
    return one_process(tmp_path_factory.mktemp("one"), generated)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.integers(min_value=7, max_value=4000),
    buckets=st.integers(min_value=1, max_value=12),
    ranges=st.none() | st.integers(min_value=1, max_value=40),
)
@example(rows=40, buckets=3, ranges=None)
@example(rows=4000, buckets=2, ranges=17)  # one partition, its pairs scored in many tasks
def test_the_sample_cut_into_partitions_of_any_size_gets_the_decisions_of_one_process(
    rows: int,
    buckets: int,
    ranges: int | None,
    dask_client: Any,
    sample_decisions: pl.DataFrame,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    decisions, parts = partitioned(tmp_path_factory.mktemp("parts"), (), rows, dask_client, buckets, ranges=ranges)
    assert parts == expected_parts(sample_decisions, rows)
    assert decisions.equals(sample_decisions)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.integers(min_value=7, max_value=1000),
    buckets=st.none() | st.integers(min_value=1, max_value=12),
    ranges=st.none() | st.integers(min_value=1, max_value=40),
)
@example(rows=7, buckets=5, ranges=None)
@example(rows=1000, buckets=None, ranges=3)  # fewer ranges than partitions
def test_generated_exports_whose_people_span_files_and_partitions_get_the_decisions_of_one_process(
    rows: int,
    buckets: int | None,
    ranges: int | None,
    dask_client: Any,
    generated: tuple[str, ...],
    generated_decisions: pl.DataFrame,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    decisions, parts = partitioned(
        tmp_path_factory.mktemp("parts"), generated, rows, dask_client, buckets, ranges=ranges
    )
    assert parts == expected_parts(generated_decisions, rows)
    assert decisions.equals(generated_decisions)
    # The property is worth testing: records of one person do sit in different files.
    persons = (
        decisions.filter(pl.col("person_id").is_not_null()).group_by("person_id").agg(pl.col("source_file").n_unique())
    )
    assert (persons["source_file"] > 1).any()


# Domains of the generated exports as DNS answers them: deliverable, no mail (null MX), a lookup that
# fails (SERVFAIL), and, for the rest (bredband.net, comhem.se, live.se …), no such domain.
GENERATED_ZONE = """
gmail.com. 3600 IN MX 5 mx.gmail.com.
mx.gmail.com. 3600 IN A 142.250.150.26
outlook.com. 3600 IN MX 10 mx.outlook.com.
mx.outlook.com. 3600 IN A 52.101.68.1
yahoo.com. 3600 IN MX 1 mx.yahoo.com.
mx.yahoo.com. 3600 IN A 67.195.204.72
icloud.com. 3600 IN A 17.253.144.10
hotmail.com. 3600 IN MX 10 mx.outlook.com.
telia.com. 3600 IN MX 0 .
nordvik.se. 3600 IN MX 10 mx.gmail.com.
"""


def test_the_domain_check_on_partitions_gets_the_decisions_of_one_process(
    dask_client: Any, generated: tuple[str, ...], tmp_path: Path
) -> None:
    from .dns_server import DnsServer

    with DnsServer(GENERATED_ZONE, {"granitdata.se": "servfail"}) as dns:
        whole = one_process(tmp_path / "one", generated, dns.address)
        decisions, _ = partitioned(tmp_path / "parts", generated, 97, dask_client, 3, dns.address)
    assert decisions.equals(whole)
    # What the domain check found reached the decisions: dead domains discarded, a failed lookup flagged.
    assert {"NO_MAIL_DOMAIN"} <= set(whole["reason"]) and whole["flags"].str.contains("MX_UNVERIFIED").any()


def test_the_ranges_of_skewed_pairs_hold_about_as_many_pairs_each_and_cover_every_record_once() -> None:
    rng = np.random.default_rng(7)
    width = 1_000_003
    step = bin_rows(width)
    # Early records in far more pairs than late ones (each pair is counted at its left record), over buckets.
    buckets = [PairBucket("", 0, rng.zipf(1.6, size=-(-width // step)).astype(np.int64) * 40) for _ in range(5)]
    total = int(sum(b.counts.sum() for b in buckets))
    spans = pair_spans(buckets, width, 12)
    assert spans[0][0] == 0 and spans[-1][1] == width
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False)) and all(lo < hi for lo, hi in spans)
    assert 2 <= len(spans) <= 12
    per_bin = np.sum([b.counts for b in buckets], axis=0)
    held = [int(per_bin[lo // step : -(-hi // step)].sum()) for lo, hi in spans]
    assert sum(held) == total
    # None more than its share and the largest bin: a bin's pairs are never split.
    assert max(held) <= total / 12 + per_bin.max()
    assert pair_spans(buckets, width, 1) == [(0, width)]
    assert pair_spans([PairBucket("", 0, np.zeros(-(-width // step), dtype=np.int64))], width, 12) == [(0, width)]


def expected_parts(decisions: pl.DataFrame, rows: int) -> int:
    """Each input cut into partitions of ``rows`` records (its readable rows), at least one per input."""
    per_input = decisions.group_by("source_file").agg((pl.col("class") != "quarantine").sum().alias("n"))
    return sum(max(1, -(-n // rows)) for n in per_input["n"])


def _run(tmp: Path, *extra: str, sources: tuple[str, ...] = ()) -> int:
    return main(
        [
            "run",
            *sources,
            "--as-of",
            AS_OF.isoformat(),
            "--out",
            str(tmp / "out"),
            "--state",
            str(tmp / "s.sqlite"),
            "--no-mx",
            *extra,
        ]
    )


def _published(tmp: Path) -> pl.DataFrame:
    return pl.read_parquet(tmp / "out" / "latest" / "decisions.parquet").sort("source_file", "source_row")


@pytest.mark.flow
def test_cleanse_run_on_a_local_cluster_publishes_the_decisions_of_one_process_and_shows_the_partition_tasks(
    prefect_harness: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterId

    assert _run(tmp_path / "one") == 0
    capsys.readouterr()
    assert _run(tmp_path / "cluster", "--cluster", "local:2", "--partition-rows", "400") == 0
    _, err = capsys.readouterr()
    assert _published(tmp_path / "cluster").equals(_published(tmp_path / "one"))
    # Each partition streamed from the classified buckets holds the rows one process writes, in both formats,
    # and the report counts the same.
    one, cluster = tmp_path / "one" / "out" / "latest", tmp_path / "cluster" / "out" / "latest"
    for name in ("keep", "reconfirm", "discard", "quarantine"):
        ours, theirs = (
            pl.read_parquet(d / f"{name}.parquet").sort("source_file", "source_row") for d in (cluster, one)
        )
        assert ours.equals(theirs), name
        assert sorted((cluster / f"{name}.csv").read_text().splitlines()) == sorted(
            (one / f"{name}.csv").read_text().splitlines()
        )
    reports = [json.loads((d / "report.json").read_text()) for d in (cluster, one)]
    for part in ("by_class", "by_reason", "by_source", "consent_age", "domains", "duplicates", "flags"):
        assert reports[0][part] == reports[1][part], part
    manifest = json.loads((tmp_path / "cluster" / "out" / "latest" / "manifest.json").read_text())
    assert (
        manifest["counts"] == json.loads((tmp_path / "one" / "out" / "latest" / "manifest.json").read_text())["counts"]
    )
    # Rows done per stage as the partition tasks finish; the work folder of partitions is gone.
    assert "of 7 tasks" in err and "3,419 rows" in err and "pairs" in err and "@" not in err
    assert [p.name for p in (tmp_path / "cluster" / "out").iterdir() if p.name.startswith(".")] == []
    with get_client(sync_client=True) as client:
        subflows = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["cleanse-partitions"])))
        assert subflows, "the partition stages run as a subflow"
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[f.id for f in subflows])))
        apply = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["cleanse-partitions-classify"])))
        assert apply, "the partitions are shuffled by unit and classified in a subflow"
        applied = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[apply[0].id])))
    names = [r.name.rsplit("-", 1)[0] for r in runs]
    assert names.count("read-input") >= 7 and names.count("map-partition") >= 11 and "pair-bucket" in names
    applied_names = [r.name.rsplit("-", 1)[0] for r in applied]
    assert applied_names.count("apply-partition") == names.count("map-partition")
    assert applied_names.count("classify-bucket") == names.count("pair-bucket")
    # Dedupe's pairs gathered, compared and weighed in tasks over ranges, not in the flow's process: as
    # many ranges as partitions, for pairs as few as the sample's.
    for scoring in ("pair-range", "compare-range", "weigh-range"):
        assert names.count(scoring) == names.count("map-partition"), scoring


@pytest.mark.flow
def test_an_input_a_worker_cannot_use_exits_2_and_leaves_no_partitions_or_run_folder(
    prefect_harness: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.csv"
    good.write_text("email,consent date\nanna@example.se,2026-10-01\n")
    # JSON Lines are not looked into before the run starts: the worker that maps it finds no address.
    names = tmp_path / "names.jsonl"
    names.write_text('{"name": "Anna", "telefon": "070"}\n')
    code = _run(tmp_path, "--cluster", "local:2", sources=(str(good), str(names)))
    _, err = capsys.readouterr()
    assert code == 2
    assert "cleanse-contacts: starting" in err
    assert "names.jsonl" in err and "no column holds email addresses" in err
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.flow
def test_a_full_disk_on_a_cluster_says_the_disk_is_full_and_leaves_no_partitions_or_run_folder(
    prefect_harness: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], small_disk: Callable[[Path, str], Path]
) -> None:
    out = small_disk(tmp_path / "out", "128k")  # the partitions of the sample need more
    code = _run(tmp_path, "--cluster", "local:2", "--partition-rows", "700")
    _, err = capsys.readouterr()
    assert code == 1
    assert f"{out}: the disk is full" in err and "Free space and run again" in err
    assert list(out.iterdir()) == []
    assert StateStore(tmp_path / "s.sqlite").runs() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--cluster", "somewhere"], "neither local:N nor", id="bad-cluster"),
        pytest.param(["--cluster", "local:0"], "neither local:N nor", id="no-workers"),
        pytest.param(["--cluster", "local:2", "--partition-rows", "0"], "is not a number of rows", id="no-rows"),
        pytest.param(["--partition-rows", "1000"], "applies to a run on a cluster only", id="rows-alone"),
    ],
)
def test_a_cluster_option_that_makes_no_sense_exits_2_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert _run(tmp_path, *args) == 2
    _, err = capsys.readouterr()
    assert message in err and "starting" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.flow
def test_sigterm_while_partitions_are_mapped_stops_the_cluster_publishes_nothing_and_leaves_no_partitions(
    prefect_server: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys
    import time

    _, env = prefect_server
    err = (tmp_path / "err.txt").open("w")
    command = [sys.executable, "-m", "flows.cli", "run", "--as-of", AS_OF.isoformat(), "--no-mx"]
    command += ["--out", str(tmp_path / "out"), "--state", str(tmp_path / "s.sqlite")]
    command += ["--cluster", "local:2", "--partition-rows", "40"]  # some ninety map tasks: time to stop it
    run = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    deadline = time.time() + 120
    while " map " not in (tmp_path / "err.txt").read_text() and run.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert run.poll() is None, "the run ended before it could be stopped"
    os.kill(run.pid, signal.SIGTERM)
    code = run.wait(timeout=60)
    text = (tmp_path / "err.txt").read_text()
    assert code == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in text and "nothing was published" in text
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == []  # no run folder, no work folder, no latest

    # The cluster's processes went with the run.
    def leftover() -> str:
        listed = subprocess.run(["ps", "-o", "pid=,args=", "-s", str(run.pid)], capture_output=True, text=True)
        return listed.stdout.strip()

    deadline = time.time() + 20
    while leftover() and time.time() < deadline:
        time.sleep(0.5)
    assert leftover() == ""


def test_serve_refuses_a_cluster_option_that_makes_no_sense_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--cluster", "tcp//nowhere", "--out", str(tmp_path / "out")]) == 2
    _, err = capsys.readouterr()
    assert "neither local:N nor" in err


@pytest.mark.flow
def test_cleanse_run_on_a_running_cluster_at_its_address_gets_the_decisions_of_one_process(
    prefect_harness: None, dask_client: Any, tmp_path: Path
) -> None:
    address = dask_client.scheduler.address
    assert address.startswith("tcp://127.0.0.1:")
    assert _run(tmp_path / "one") == 0
    assert _run(tmp_path / "remote", "--cluster", address, "--partition-rows", "900") == 0
    assert _published(tmp_path / "remote").equals(_published(tmp_path / "one"))
    # The cluster is someone else's: the run leaves it running.
    assert dask_client.status == "running" and len(dask_client.scheduler_info()["workers"]) == 2


@pytest.mark.flow
def test_relative_paths_reach_workers_whose_working_folder_is_another(
    prefect_harness: None, dask_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cluster's workers started in another folder than the one the command runs in.
    assert dask_client.run(os.getcwd) and all(cwd != str(tmp_path) for cwd in dask_client.run(os.getcwd).values())
    monkeypatch.chdir(tmp_path)
    Path("kunder.csv").write_text("Mejl;Samtycke\nanna@example.se;2026-10-01\n", encoding="utf-8")
    Path("mapping.toml").write_text('[columns]\n"Mejl" = "email"\n"Samtycke" = "consent_at"\n', encoding="utf-8")
    address = dask_client.scheduler.address
    argv = ["run", "kunder.csv", "--mapping", "mapping.toml", "--as-of", AS_OF.isoformat(), "--no-mx"]
    assert main([*argv, "--out", "out", "--state", "s.sqlite", "--cluster", address]) == 0
    decisions = pl.read_parquet(tmp_path / "out" / "latest" / "decisions.parquet")
    assert decisions["source_file"].to_list() == ["kunder.csv"] and decisions["class"].to_list() != ["quarantine"]


def test_a_work_folder_a_killed_run_left_is_removed_by_the_next_run(tmp_path: Path) -> None:
    import socket

    from cleansing.write import WRITER_FILE, remove_stale

    work = work_folder(tmp_path / "out", "20261130T000000Z-dead")
    assert work.stat().st_mode & 0o777 == 0o700
    (work / "part-00000.parquet").write_bytes(b"contacts")
    (work / WRITER_FILE).write_text(f"{socket.gethostname()} 999999999\n")  # a process that no longer runs
    assert remove_stale(tmp_path / "out") == [work.name]
    assert not work.exists()


def test_records_linked_by_a_person_or_by_a_mailbox_two_persons_share_are_sent_to_one_bucket() -> None:
    from cleansing.partitions import unit_buckets

    persons = pl.Series(["p:1", "p:1", "p:2", "p:3", "p:4", "p:4", "p:5", "p:6"])
    addresses = pl.Series(["a@x.se", "b@x.se", "b@x.se", "c@x.se", None, "d@x.se", "e@x.se", "e@x.se"])
    for buckets in (1, 7, 1000):
        b = unit_buckets(persons, addresses, buckets).to_list()
        assert b[0] == b[1] == b[2] and b[4] == b[5] and b[6] == b[7]  # p:1 and p:2 share b@x.se
        assert all(0 <= x < buckets for x in b)
    # Units are spread: a thousand units of one record each do not all land in one of seven buckets.
    many = pl.Series([f"p:{i}" for i in range(1000)])
    assert unit_buckets(many, many.str.replace("p:", "a@"), 7).n_unique() == 7
