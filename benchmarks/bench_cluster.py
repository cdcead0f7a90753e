"""A partitioned run on a local Dask cluster: wall time and the peak of the memory summed over every process.

    python benchmarks/bench_cluster.py 1000000                      # cleanse run --cluster local:2
    python benchmarks/bench_cluster.py 1000000 --one-process        # and the same files in one process
    python benchmarks/bench_cluster.py 10000000 --workers 2 --partition-rows 250000

The input is generated as generic CSV files of at most a million rows each (generate_generic: Swedish
names, a third of the addresses non-ASCII, dirty rows), one seed per file. ``cleanse run --no-mx`` runs as
a process of its own; the resident memory of that process and all its descendants (the temporary Prefect
server, the Dask scheduler's and workers' processes) is sampled every 0.2 s and the peak of the sum is
printed with the wall time and the time per row. With ``--one-process`` the same files also go through a
run without ``--cluster``, and the two runs' ``decisions.parquet`` are compared row by row.

Targets (issue "beyond one machine"): 10M contacts on ``--cluster local:2`` in ≤ 20 minutes and ≤ 8 GB
summed; the time per row at 10M no worse than 1.5× that at 1M.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

# After the installed packages: an installed (not editable) cleansing is the one measured.
sys.path.append(str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_pipeline import run_cli  # noqa: E402
from benchmarks.generate_generic import generate  # noqa: E402

ROWS_PER_FILE = 1_000_000


def make_files(rows: int, work: Path) -> list[Path]:
    files = []
    started = time.perf_counter()
    for number, start in enumerate(range(0, rows, ROWS_PER_FILE)):
        path = work / f"contacts-{number:03d}.csv"
        generate(min(ROWS_PER_FILE, rows - start), path, seed=11 + number)
        files.append(path)
    size = sum(f.stat().st_size for f in files) / 2**20
    took = time.perf_counter() - started
    print(f"generated {rows:,} contacts in {len(files)} file(s), {size:,.0f} MiB, in {took:.1f} s")
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows", type=int)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partition-rows", type=int, default=None)
    parser.add_argument("--one-process", action="store_true", help="also run without --cluster and compare")
    parser.add_argument("--work", type=Path, default=None, help="where to generate and run (default: a temp folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        files = make_files(args.rows, work)
        extra = ["--cluster", f"local:{args.workers}"]
        if args.partition_rows:
            extra += ["--partition-rows", str(args.partition_rows)]
        wall, peak = run_cli(files, work / "cluster", extra)
        print(
            f"cleanse run {' '.join(extra)}: {args.rows:,} rows in {wall:.1f} s wall "
            f"({1e6 * wall / args.rows:.1f} µs per row), peak RSS summed {peak:,.0f} MB"
        )
        if args.one_process:
            wall, peak = run_cli(files, work / "one")
            print(
                f"cleanse run (one process): {wall:.1f} s wall ({1e6 * wall / args.rows:.1f} µs per row), "
                f"peak RSS summed {peak:,.0f} MB"
            )
            a, b = (
                pl.read_parquet(work / name / "out" / "latest" / "decisions.parquet").sort("source_file", "source_row")
                for name in ("cluster", "one")
            )
            print(f"decisions identical: {a.equals(b)} ({a.height:,} rows)")


if __name__ == "__main__":
    main()
