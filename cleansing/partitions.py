"""Partitioned runs: the partition-local stages (read, map, validate) one input or one partition at a time.

A run on a cluster (``--cluster``) reads each input in a task of its own and cuts its rows into
partitions of at most ``partition_rows`` rows; each partition is then mapped and validated in a task of
its own, which also sends its rows of every dedupe blocking key to the buckets of a shuffle by key; a task
per bucket finds the candidate pairs of that bucket's blocks. The distinct email domains of all
partitions are checked once, dedupe scores and clusters the candidate pairs over the columns it reads
of every partition, and each record's unit (records linked by a person or a shared mailbox) is found,
all in the flow's process; a task per partition then applies these and sends each record to its unit's
bucket of a second shuffle, and a task per bucket classifies it.
Partitions and buckets travel between tasks
as Parquet files in the run's work folder (``OUT/.tmp-work-<run id>``, owner-only, removed when the run
ends), never as frames through the orchestrator; tasks return only paths and counts.

Nothing here depends on how the input was partitioned: reading, mapping and validating are row by row
once a file's header, encoding and preset are known, and every record gets the same ``_row`` (its place
in the whole input) as in one process, so the stages after these see the same records in the same order.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from .classify import classify, suppression_entries
from .dedupe import block_pairs, blocking_rows, components, distinct
from .dedupe import prepare as prepare_for_dedupe
from .domains import apply_domains
from .frames import look_up
from .mapping import load_mapping, map_table
from .policy import Policy
from .read import InputFile, InputUnit, RawTable, ReadResult, read_unit
from .validate import validate
from .write import PARTITIONS, TMP_PREFIX, WRITER_FILE, by_class

BYTES_PER_ROW = 100  # an export's size per contact, to plan partitions before anything is read
MAX_PARTITION_ROWS = 250_000  # about 0.75 GB in a worker through map and validate
MIN_PARTITION_ROWS = 10_000
MIN_BUCKET_ROWS = 50_000


def default_partition_rows(units: Sequence[InputUnit]) -> int:
    """Partitions of at most ``MAX_PARTITION_ROWS`` rows, of about equal size for the input at hand."""
    size = sum(unit.member.file_size if unit.member else unit.path.stat().st_size for unit in units)
    rows = max(size // BYTES_PER_ROW, 1)
    return max(MIN_PARTITION_ROWS, math.ceil(rows / math.ceil(rows / MAX_PARTITION_ROWS)))


def work_folder(out_dir: Path, run_id: str) -> Path:
    """The run's work folder for partitions, created owner-only, marked with its writer like a staged run
    folder so that one a killed run left is removed by the next run (it holds contacts)."""
    work = out_dir.resolve() / f"{TMP_PREFIX}work-{run_id}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700, parents=True)
    (work / WRITER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n")
    return work


@dataclass(frozen=True)
class RawPart:
    """Rows of one input, as read, in a Parquet file: ``source_row`` and the file's columns as text."""

    path: str
    rows: int


@dataclass(frozen=True)
class InputRead:
    """What reading one input gave: its raw partitions in order, its quarantine rows (a Parquet file, or
    None when there are none) and, for a file's first input, the file as the manifest lists it."""

    source_file: str
    input_index: int
    nul_rows: tuple[int, ...]
    parts: tuple[RawPart, ...]
    quarantine: str | None
    quarantined: int
    described: InputFile | None

    @property
    def rows_in(self) -> int:
        return sum(p.rows for p in self.parts) + self.quarantined


def read_input(unit: InputUnit, number: int, work: Path, partition_rows: int) -> InputRead:
    """Read input ``number`` of the run and cut its rows into raw partitions of ``partition_rows``. An input
    without rows still gives one (empty) partition: mapping it checks its header."""
    table, bad, described = read_unit(unit)
    parts = []
    frame = table.frame
    for k, start in enumerate(range(0, max(frame.height, 1), partition_rows)):
        path = work / f"raw-{number:05d}-{k:05d}.parquet"
        piece = frame.slice(start, partition_rows)
        piece.write_parquet(path)
        parts.append(RawPart(str(path), piece.height))
    quarantine = None
    if bad.height:
        quarantine = str(work / f"quarantine-{number:05d}.parquet")
        bad.write_parquet(quarantine)
    return InputRead(
        table.source_file,
        table.input_index,
        tuple(table.nul_rows),
        tuple(parts),
        quarantine,
        bad.height,
        described,
    )


@dataclass(frozen=True)
class MapJob:
    """One raw partition to map and validate, with what it needs to know of its input and of the run."""

    raw: RawPart
    source_file: str
    input_index: int
    nul_rows: tuple[int, ...]
    first_row: int  # the ``_row`` of its first record: records before it in the whole input
    out: str


def map_jobs(reads: Sequence[InputRead], work: Path) -> list[MapJob]:
    """Every raw partition in input order, each with the place of its first record in the whole input."""
    jobs: list[MapJob] = []
    first = 0
    for read in reads:
        for part in read.parts:
            out = str(work / f"part-{len(jobs):05d}.parquet")
            jobs.append(MapJob(part, read.source_file, read.input_index, read.nul_rows, first, out))
            first += part.rows
    return jobs


@dataclass(frozen=True)
class MapSettings:
    preset: str
    mapping: str | None
    local_zone: str
    region: str
    require_email: bool = True
    buckets: int = 0  # buckets of the shuffle by blocking key that each partition writes its rows to


def bucket_count(reads: Sequence[InputRead], partition_rows: int) -> int:
    """Buckets for the shuffle by blocking key: about a partition's worth of records each (at least
    ``MIN_BUCKET_ROWS``: a bucket's fixed cost is a file per partition)."""
    rows = sum(part.rows for read in reads for part in read.parts)
    return max(1, math.ceil(rows / max(partition_rows, MIN_BUCKET_ROWS)))


def bucket_of(buckets: int) -> pl.Expr:
    """The bucket of a blocking row: a hash of its key and value, so that a block lies in one bucket."""
    return (pl.struct("key", "k").hash(seed=0) % buckets).cast(pl.Int32).alias("bucket")


@dataclass(frozen=True)
class Partition:
    """A mapped and validated partition: its Parquet file, rows, and the preset its input was read with."""

    path: str
    rows: int
    source_file: str
    preset: str
    prepared: str | None = None  # its records' fields as dedupe compares them (``record_id`` and ``prepare``)


def map_partition(job: MapJob, settings: MapSettings) -> Partition:
    """Map and validate one raw partition (as ``stage_map`` and ``stage_validate`` do the whole input)."""
    from schemas.contacts import MappedContacts

    raw = pl.read_parquet(job.raw.path)
    table = RawTable(job.source_file, raw, input_index=job.input_index, nul_rows=list(job.nul_rows))
    contacts, preset = map_table(
        table,
        settings.preset,
        load_mapping(settings.mapping),
        local_zone=settings.local_zone,
        require_email=settings.require_email,
    )
    MappedContacts.validate(contacts)
    contacts = contacts.with_row_index("_row", offset=job.first_row).with_columns(pl.col("_row").cast(pl.Int64))
    contacts = validate(contacts, settings.region)
    contacts.write_parquet(job.out)
    Path(job.raw.path).unlink(missing_ok=True)
    if not settings.buckets:
        return Partition(job.out, contacts.height, job.source_file, preset)
    # Dedupe's fields, prepared here, row by row, and its shuffle by blocking key: this partition's rows
    # of every block, each to its bucket.
    work, number = Path(job.out).parent, Path(job.out).stem.removeprefix("part-")
    prepared = prepare_for_dedupe(contacts)
    rows = pl.concat(blocking_rows(prepared, pl.col("_row"))).collect()
    for (bucket,), piece in rows.with_columns(bucket_of(settings.buckets)).group_by("bucket"):
        piece.drop("bucket").write_parquet(work / f"block-{bucket:05d}-{number}.parquet")
    path = work / f"prepared-{number}.parquet"
    prepared.with_columns(contacts["record_id"]).write_parquet(path)
    return Partition(job.out, contacts.height, job.source_file, preset, str(path))


def distinct_domains(parts: Sequence[Partition]) -> list[str]:
    """The distinct email domains of every partition, read from their files one column at a time."""
    if not parts:
        return []
    domains = pl.scan_parquet([part.path for part in parts]).select(pl.col("email_domain").drop_nulls().unique())
    return domains.collect(engine="streaming")["email_domain"].to_list()


def gather_columns(parts: Sequence[Partition], columns: Sequence[str]) -> pl.DataFrame:
    """``columns`` of every partition, in input order."""
    return pl.scan_parquet([part.path for part in parts]).select(columns).collect(engine="streaming")


def gather_prepared(parts: Sequence[Partition]) -> pl.LazyFrame:
    """Dedupe's prepared fields of every partition's records, in input order: a scan of their files."""
    return pl.scan_parquet([part.prepared for part in parts if part.prepared])


@dataclass(frozen=True)
class Shuffled:
    """A partition's records sent to the buckets of the shuffle by unit (``apply_to_partition``)."""

    rows: int


def apply_to_partition(part: Partition, domains: str, persons: str) -> Shuffled:
    """One partition with the domain check's table (``judge_domains``) and the records' table (``_row``,
    what dedupe gave each record, its address's hash and ``_bucket``, its unit's bucket) applied, each
    record then sent to its unit's bucket (``unit-<bucket>-<partition>.parquet``). Only this partition's
    rows of the records' table are read. An empty partition leaves an empty file in bucket 0, which
    carries the records' columns."""
    frame = apply_domains(pl.read_parquet(part.path), pl.read_parquet(domains))
    rows = pl.scan_parquet(persons)
    rows = (
        rows.filter(pl.col("_row").is_between(frame["_row"].min(), frame["_row"].max()))
        if frame.height
        else rows.head(0)
    )
    frame = look_up(frame, rows.collect(engine="streaming"), "_row")
    work, number = Path(part.path).parent, Path(part.path).stem.removeprefix("part-")
    pieces = frame.group_by("_bucket") if frame.height else [((0,), frame)]
    for (bucket,), piece in pieces:
        piece.drop("_bucket").write_parquet(work / f"unit-{bucket:05d}-{number}.parquet")
    Path(part.path).unlink()
    return Shuffled(frame.height)


@dataclass(frozen=True)
class ClassifySettings:
    """What classifying a bucket needs besides its records: the policy, the as-of date, whether DNS was
    healthy, and the state's suppression list and reconfirmation requests (Parquet files)."""

    policy: Policy
    as_of: dt.date
    dns_healthy: bool
    suppression: str
    requests: str


@dataclass(frozen=True)
class Classified:
    """One bucket's records as classify leaves them, a Parquet file per class (``PARTITIONS``) in input
    order, and the objections its addresses add to the suppression list (``suppression_entries``); no
    files for a bucket without records."""

    paths: dict[str, str]
    objections: str | None
    rows: int


def classify_bucket(bucket: int, work: Path, settings: ClassifySettings) -> Classified:
    """Classify the records of one bucket of the shuffle by unit: a unit
    (records linked by a person or by an address) lies wholly in one bucket, so each record is judged with
    everything it is judged with in one process."""
    files = sorted(work.glob(f"unit-{bucket:05d}-*.parquet"))
    if not files:
        return Classified({}, None, 0)
    records = pl.concat([pl.read_parquet(f) for f in files]).sort("_row")
    suppression, requests = pl.read_parquet(settings.suppression), pl.read_parquet(settings.requests)
    out, addresses = classify(
        records, settings.policy, settings.as_of, suppression, settings.dns_healthy, requests=requests
    )
    paths = {}
    for name, lazy in by_class(out).items():
        paths[name] = str(work / f"classified-{bucket:05d}-{name}.parquet")
        lazy.collect().write_parquet(paths[name])
    objections = work / f"objections-{bucket:05d}.parquet"
    suppression_entries(addresses).write_parquet(objections)
    for file in files:
        file.unlink()
    return Classified(paths, str(objections), out.height)


def unit_buckets(person_key: pl.Series, address_key: pl.Series, buckets: int) -> pl.Series:
    """Per record, the bucket of its unit: the records linked by a person or by an address (a mailbox
    two persons share), which classify judges together."""
    persons = person_key.rank("dense").cast(pl.Int64).to_numpy() - 1
    ranked = address_key.rank("dense").cast(pl.Int64)
    has = ranked.is_not_null().to_numpy()
    addresses = ranked.fill_null(0).to_numpy() - 1
    width = int(persons.max()) + 1 if len(persons) else 0
    nodes = width + (int(addresses.max()) + 1 if has.any() else 0)
    labels = components(nodes, persons[has], width + addresses[has])[persons]
    return (pl.Series(labels).hash(seed=0) % buckets).cast(pl.Int32).alias("_bucket")


@dataclass(frozen=True)
class PairBucket:
    """The candidate pairs one bucket's blocks give (``code``: ``left * width + right`` over ``_row``)."""

    path: str
    rows: int  # pairs


def bucket_pairs(bucket: int, work: Path, width: int) -> PairBucket:
    """The distinct pairs of records that share a block in ``bucket`` (every partition's rows of it)."""
    files = sorted(work.glob(f"block-{bucket:05d}-*.parquet"))
    out = work / f"pairs-{bucket:05d}.parquet"
    if not files:
        pl.DataFrame(schema={"code": pl.Int64}).write_parquet(out)
        return PairBucket(str(out), 0)
    codes = block_pairs(pl.scan_parquet(files), width).unique().collect()
    codes.write_parquet(out)
    for file in files:
        file.unlink()
    return PairBucket(str(out), codes.height)


def read_result(reads: Sequence[InputRead], warnings: Sequence[str]) -> ReadResult:
    """The read result (without tables) as the one-process read leaves it, from the inputs' reads."""
    read = ReadResult(warnings=list(warnings))
    read.inputs = [r.described for r in reads if r.described is not None]
    read.rows_in = sum(r.rows_in for r in reads)
    quarantined = [pl.read_parquet(r.quarantine) for r in reads if r.quarantine]
    read.quarantine = pl.concat([read.quarantine, *quarantined])
    return read


def classified_records(buckets: Sequence[Classified]) -> dict[str, pl.LazyFrame]:
    """Each class's records of every classified bucket, read as they are streamed."""
    return {name: pl.scan_parquet([b.paths[name] for b in buckets if b.paths]) for name in PARTITIONS}


def gather_objections(buckets: Sequence[Classified]) -> pl.DataFrame:
    """The objections of every classified bucket, by address key."""
    return pl.concat([pl.read_parquet(b.objections) for b in buckets if b.objections]).sort("address_key")


def gather_pairs(buckets: Sequence[PairBucket]) -> np.ndarray:
    """Every bucket's candidate pairs (codes over ``_row``), each once, sorted: read into one array."""
    sizes = [pl.scan_parquet(b.path).select(pl.len()).collect().item() for b in buckets]
    codes = np.empty(sum(sizes), dtype=np.int64)
    at = 0
    for bucket, size in zip(buckets, sizes, strict=True):
        codes[at : at + size] = pl.read_parquet(bucket.path)["code"].to_numpy()
        at += size
    return distinct(codes, in_place=True)
