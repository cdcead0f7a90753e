"""Throughput of the pipeline: end to end and per stage, with peak memory.

    python benchmarks/bench_pipeline.py 1000000            # pipeline stages, no Prefect
    python benchmarks/bench_pipeline.py 1000000 --cli      # also `cleanse run --no-mx` as a process
    python benchmarks/bench_pipeline.py 1000000 --emails   # the email step against email-validator per row
    python benchmarks/bench_pipeline.py 1000000 --generic --cli   # one generic 12-column CSV (generate_generic)
    python benchmarks/bench_pipeline.py 1000000 --generic --nightly  # the stages again on the same state
    python benchmarks/bench_pipeline.py --server          # what `cleanse run` adds against a running server
    python benchmarks/bench_pipeline.py 1000000 --generic --repeat 5  # the ratio as the median of five
    python benchmarks/bench_pipeline.py 1000000 --generic --floor    # also the contract's files alone

Beside the stages it times a bare polars read + write of the same files (``read_csv`` + ``write_parquet``)
and prints the stages' total as a multiple of it; with ``--repeat N`` both N times, interleaved, the
stages each time on a fresh state, and the medians compared (on a shared machine one measurement varies
by a tenth). ``--cli`` samples the memory of the command and every process it starts (the temporary
Prefect server) and reports the peak of their sum. ``--nightly`` runs
the stages a second time on the state the first run left (a suppression list to match and add to), as
a nightly run does. ``--server`` starts ``prefect server start`` on loopback and runs ``cleanse run`` on the
bundled sample against it five times: the wall time of each command minus the stage times it printed is
what Prefect (and starting Python) adds to the stages. ``--floor`` times what no implementation of the
contract can skip, against the same bare reference: the inputs read as bare, and the run folder's tables
(four CSVs, four Parquet files, ``decisions.parquet``), taken from the first run's folder into memory,
written again in their formats, with nothing computed.

Targets (issue "speed"): 1,000,000 rows through ``cleanse run`` server-less in ≤ 40 s wall and ≤ 3 GB
summed over its processes; the stages together ≤ 15× the bare polars read + write; against a running
server ``cleanse run`` adds ≤ 3 s to the stages; the email step
agreeing with email-validator on every row, non-ASCII addresses costing at most twice ASCII ones.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import polars as pl

# After the installed packages: an installed (not editable) cleansing is the one measured.
sys.path.append(str(Path(__file__).resolve().parents[1]))

from benchmarks.generate_contacts import generate  # noqa: E402
from benchmarks.generate_generic import generate as generate_generic  # noqa: E402
from cleansing.pipeline import RunContext, RunRequest, run_pipeline  # noqa: E402
from cleansing.read import read_sources  # noqa: E402
from cleansing.validate import normalize_emails  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bare_read(f: Path) -> pl.DataFrame:
    """One input read by polars alone: every field a text, no quoting, ragged rows cut or padded."""
    return pl.read_csv(
        f,
        infer_schema=False,
        separator=";" if f.name.startswith("kunder") else ",",
        truncate_ragged_lines=True,
        ignore_errors=True,
        quote_char=None,
    )


def bench_bare(files: list[Path], work: Path) -> float:
    """A bare polars read + write of the same files: the floor the stages are measured against."""
    started = time.perf_counter()
    for i, f in enumerate(files):
        bare_read(f).write_parquet(work / f"bare-{i}.parquet")
    bare = time.perf_counter() - started
    print(f"bare polars read + write: {bare:.2f} s")
    return bare


def bench_stages(files: list[Path], work: Path, as_of: dt.date = dt.date(2026, 11, 29)) -> float:
    def progress(name: str, ctx: RunContext, seconds: float) -> None:
        print(f"  {name:<9} {seconds:7.2f} s   peak RSS {peak_rss_mb():7.0f} MB", flush=True)

    started = time.perf_counter()
    ctx = run_pipeline(
        RunRequest(
            sources=tuple(map(str, files)),
            as_of=as_of,
            out_dir=str(work / "out"),
            state=str(work / "state.sqlite"),
            check_mx=False,
        ),
        progress=progress,
    )
    wall = time.perf_counter() - started
    print(
        f"pipeline (no Prefect): {ctx.read.rows_in:,} rows in {wall:.1f} s "
        f"({ctx.read.rows_in / wall:,.0f} rows/s), peak RSS {peak_rss_mb():.0f} MB; counts {ctx.counts}"
    )
    return sum(ctx.timings.values())


def bench_floor(files: list[Path], work: Path, bare: float, repeat: int) -> None:
    """The inputs read as ``bench_bare`` reads them (``bare_read``) and the contract's files of the run folder under
    ``work/out`` written from memory (lists joined as in the CSVs): the least the stages can cost."""
    from cleansing.write import PARQUET, _flat

    folder = next(p for p in sorted((work / "out").iterdir()) if (p / "manifest.json").exists())
    tables = {p.stem: pl.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}
    flat = {name: _flat(frame.lazy(), times=False).collect() for name, frame in tables.items() if name != "decisions"}
    (work / "floor").mkdir(exist_ok=True)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        for f in files:
            bare_read(f)
        for name, frame in tables.items():
            frame.write_parquet(work / "floor" / f"{name}.parquet", **PARQUET)
        for name, frame in flat.items():
            frame.write_csv(work / "floor" / f"{name}.csv")
        times.append(time.perf_counter() - started)
    floor = statistics.median(times)
    print(
        f"the contract's files alone (inputs read, {len(tables)} Parquet and {len(flat)} CSV files written from "
        f"memory): {floor:.2f} s = {floor / bare:.1f}x the bare polars read + write"
    )


def _tree_rss_mb(root: int) -> float:
    """Resident memory of a process and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        rss[pid] = int(fields[21]) * resource.getpagesize()
    tree, frontier = {root}, [root]
    while frontier:
        here = frontier.pop()
        for pid, parent in parents.items():
            if parent == here and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return sum(rss.get(pid, 0) for pid in tree) / 2**20


def run_cli(files: list[Path], out: Path, extra: Sequence[str] = ()) -> tuple[float, float]:
    """``cleanse run --no-mx`` as a process of its own: its wall time and the peak of the memory of it and
    every process it starts (the temporary Prefect server, a Dask cluster), summed, in MB."""
    command = [
        str(Path(sys.executable).with_name("cleanse")),  # the installed command, as a user runs it
        "run",
        *map(str, files),
        "--no-mx",
        "--as-of",
        "2026-11-29",
        "--out",
        str(out / "out"),
        "--state",
        str(out / "state.sqlite"),
        *extra,
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=out.parent)
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, _tree_rss_mb(process.pid))
        time.sleep(0.2)
    wall = time.perf_counter() - started
    if process.returncode:
        raise SystemExit(f"cleanse run {' '.join(extra)} exited {process.returncode}")
    return wall, peak


def bench_cli(files: list[Path], work: Path) -> None:
    wall, peak = run_cli(files, work / "cli")
    print(f"cleanse run --no-mx (Prefect flow, own process): {wall:.1f} s wall, peak RSS summed {peak:.0f} MB")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bench_server(work: Path, runs: int = 5) -> None:
    """``cleanse run`` on the bundled sample against a running Prefect server: wall time minus stages."""
    from flows.server import healthy

    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(work / "prefect"), "DO_NOT_TRACK": "1"}
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    prefect = Path(sys.executable).with_name("prefect")
    with (work / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while not healthy(api, timeout=2):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the Prefect server did not start; see {work / 'server.log'}")
                time.sleep(0.5)
            command = [str(Path(sys.executable).with_name("cleanse")), "run", "--no-mx", "--as-of", "2026-11-29"]
            added: list[float] = []
            for i in range(runs):
                out = work / f"server-run-{i}"
                started = time.perf_counter()
                done = subprocess.run(
                    [*command, "--out", str(out / "out"), "--state", str(out / "state.sqlite")],
                    env={**env, "PREFECT_API_URL": api},
                    capture_output=True,
                    text=True,
                    check=False,
                )
                wall = time.perf_counter() - started
                if done.returncode:
                    raise SystemExit(f"cleanse run exited {done.returncode}: {done.stderr[-2000:]}")
                stages = sum(float(s) for s in re.findall(r"^  \S+ +[\d,]+ rows +([\d.]+) s$", done.stderr, re.M))
                added.append(wall - stages)
                print(f"  run {i + 1}: {wall:.2f} s wall, stages {stages:.2f} s, added {wall - stages:.2f} s")
            print(
                f"cleanse run against a running server adds {statistics.median(added):.2f} s to the stages "
                f"(median of {runs}; min {min(added):.2f}, max {max(added):.2f})"
            )
        finally:
            server.terminate()
            server.wait(timeout=30)


def bench_emails(files: list[Path]) -> None:
    from email_validator import EmailNotValidError, validate_email

    read = read_sources(list(map(str, files)))
    emails = pl.concat(
        [t.frame.select(pl.col(t.frame.columns[0]).str.strip_chars().alias("email")) for t in read.tables]
    )["email"]
    emails = emails.filter(emails.is_not_null() & (emails != ""))
    rows = emails.to_list()
    started = time.perf_counter()
    ours = normalize_emails(emails)
    joined = pl.DataFrame({"email": rows}).join(ours, on="email", how="left")
    fast = time.perf_counter() - started
    started = time.perf_counter()
    reference: list[str | None] = []
    for address in rows:
        try:
            reference.append(validate_email(address, check_deliverability=False).normalized)
        except EmailNotValidError:
            reference.append(None)
    slow = time.perf_counter() - started
    disagree = joined.with_columns(pl.Series("reference", reference, dtype=pl.String)).filter(
        pl.col("email_normalized").ne_missing(pl.col("reference"))
    )
    print(
        f"email step: {len(rows):,} rows ({ours.height:,} distinct) in {fast:.2f} s; email-validator per row "
        f"{slow:.1f} s; speed-up {slow / fast:.1f}x; disagreements {disagree.height}"
    )
    non_ascii = emails.str.contains(r"[^\x00-\x7f]").mean() or 0.0
    ascii_only = emails.str.replace_all(r"[^\x00-\x7f]", "a")
    started = time.perf_counter()
    normalize_emails(ascii_only)
    plain = time.perf_counter() - started
    print(
        f"email step on the same addresses made ASCII: {plain:.2f} s; as given ({non_ascii:.0%} non-ASCII) "
        f"{fast:.2f} s = {fast / plain:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int, nargs="?", default=1_000_000)
    parser.add_argument("--cli", action="store_true")
    parser.add_argument("--emails", action="store_true")
    parser.add_argument("--nightly", action="store_true", help="the stages again on the state of the first run")
    parser.add_argument("--generic", action="store_true", help="one generic CSV (generate_generic) instead of three")
    parser.add_argument("--server", action="store_true", help="only: cleanse run on the sample against a server")
    parser.add_argument("--repeat", type=int, default=1, help="the bare read + write and the stages this many times")
    parser.add_argument("--floor", action="store_true", help="also the contract's files written from memory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.server:
            bench_server(work)
            return
        started = time.perf_counter()
        if args.generic:
            (work / "in").mkdir()
            files = [generate_generic(args.n, work / "in" / "contacts.csv")]
        else:
            files = generate(args.n, work / "in")
        size = sum(f.stat().st_size for f in files) / 1e6
        print(
            f"generated {args.n:,} contacts in {len(files)} files ({size:.0f} MB) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        bares, totals = [], []
        for i in range(args.repeat):  # each time on a fresh state, as the first run was
            run = work / f"run-{i}" if i else work
            run.mkdir(exist_ok=True)
            bares.append(bench_bare(files, run))
            totals.append(bench_stages(files, run))
            print(f"stages together: {totals[-1]:.1f} s = {totals[-1] / bares[-1]:.1f}x the bare polars read + write")
        bare, stages = statistics.median(bares), statistics.median(totals)
        if args.repeat > 1:
            print(
                f"medians of {args.repeat}: bare {bare:.2f} s, stages {stages:.1f} s = {stages / bare:.1f}x the bare "
                "polars read + write"
            )
        if args.floor:
            bench_floor(files, work, bare, max(args.repeat, 3))
        if args.nightly:
            print("the next night, on the state the first run left:")
            again = bench_stages(files, work, as_of=dt.date(2026, 11, 30))
            print(f"stages together: {again:.1f} s = {again / bare:.1f}x the bare polars read + write")
        if args.cli:
            bench_cli(files, work)
        if args.emails:
            bench_emails(files)


if __name__ == "__main__":
    main()
