"""Partitioned runs: the partition-local stages (read, map, validate) one input or one partition at a time.

A run on a cluster (``--cluster``) reads each input in a task of its own and cuts its rows into
partitions of at most ``partition_rows`` rows; each partition is then mapped and validated in a task of
its own, which also sends its rows of every dedupe blocking key to the buckets of a shuffle by key; a task
per bucket finds the candidate pairs of that bucket's blocks. Dedupe then scores them in tasks per range,
each over the pairs whose left record lies in a span of records that holds about as many pairs as the
others (``pair_spans``, ``range_pairs``, ``compare_range``, ``weigh_range``), the flow's process learning
the model from what the tasks count. The distinct email domains of all partitions are checked once,
dedupe clusters the pairs that can still matter, and each record's unit (records linked by a person or a
shared mailbox) is found, all in the flow's process; a task per partition then applies these and sends
each record to its unit's bucket of a second shuffle, and a task per bucket classifies it.
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
from .dedupe import (
    FIELDS,
    Common,
    Compared,
    Field,
    Model,
    Pairs,
    Scored,
    _patterns,
    block_pairs,
    blocking_rows,
    code_columns,
    compare,
    components,
    distinct,
    model_weights,
    settle,
    two_people_phones,
)
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
    """The candidate pairs one bucket's blocks give (``code``: ``left * width + right`` over ``_row``), and
    how many have their left record in each bin of ``bin_rows(width)`` records (``pair_spans``)."""

    path: str
    rows: int  # pairs
    counts: np.ndarray


# Pairs of a bucket's file per row group: a range of left records reads the row groups that hold its pairs.
PAIRS_PER_GROUP = 1 << 17
# Bins of left records that the buckets count their pairs in, to cut the ranges scored in tasks.
PAIR_BINS = 4096
# Candidate pairs a scoring task takes on per record of the largest partition, at most (more only where the
# records of one bin are in more pairs): a comparing task holds about 0.8 kB per pair (a worker's 1.5 GB
# for 1.9 million), so about 2 GB at the default partition size.
RANGE_PAIRS_PER_ROW = 10


def bin_rows(width: int) -> int:
    """Records per bin of left records (``PAIR_BINS`` bins over ``width`` records)."""
    return max(1, math.ceil(width / PAIR_BINS))


def bucket_pairs(bucket: int, work: Path, width: int) -> PairBucket:
    """The distinct pairs of records that share a block in ``bucket`` (every partition's rows of it), in
    order."""
    files = sorted(work.glob(f"block-{bucket:05d}-*.parquet"))
    out = work / f"pairs-{bucket:05d}.parquet"
    step = bin_rows(width)
    bins = math.ceil(width / step)
    if not files:
        pl.DataFrame(schema={"code": pl.Int64}).write_parquet(out)
        return PairBucket(str(out), 0, np.zeros(bins, dtype=np.int64))
    codes = block_pairs(pl.scan_parquet(files), width).unique().sort("code").collect()
    codes.write_parquet(out, row_group_size=PAIRS_PER_GROUP)
    for file in files:
        file.unlink()
    left = codes["code"].to_numpy() // width
    return PairBucket(str(out), codes.height, np.bincount(left // step, minlength=bins))


def pair_spans(buckets: Sequence[PairBucket], width: int, ranges: int) -> list[tuple[int, int]]:
    """At most ``ranges`` spans of left records (``_row`` from, to) that cover all ``width`` records and
    hold about as many candidate pairs each, cut between bins of ``bin_rows`` records. A pair that two
    buckets found counts twice: the spans are even only roughly, and always the same for the same pairs."""
    counts = np.sum([b.counts for b in buckets], axis=0) if buckets else np.zeros(1, dtype=np.int64)
    total = int(counts.sum())
    if total == 0 or ranges <= 1:
        return [(0, width)]
    # After the bin in which the running count reaches each k/ranges of the total.
    cuts = (np.searchsorted(np.cumsum(counts), total * np.arange(1, ranges) / ranges) + 1) * bin_rows(width)
    edges = [0, *sorted({int(e) for e in cuts if 0 < e < width}), width]
    return list(zip(edges, edges[1:], strict=False))


# Dedupe's scoring, a task per range: the candidate pairs whose left record lies in a span of records,
# spans cut so that each holds about as many pairs (``pair_spans``), compared where the records of both
# ends are read, a few columns of a few partitions at a time; the flow's process only learns the model
# from what the tasks count, and keeps the pairs that can still matter.


def row_starts(parts: Sequence[Partition]) -> list[int]:
    """The first ``_row`` of every partition, then the row after the last: partitions hold consecutive
    rows, in input order."""
    starts = [0]
    for part in parts:
        starts.append(starts[-1] + part.rows)
    return starts


# What the comparison reads of a record: the fields, the nickname, the address and its company domain,
# whether it is a personal mailbox.
COMPARED_COLUMNS = (*(f.name for f in FIELDS), "first_canon", "address", "workdomain", "mailbox")


def records_of(rows: np.ndarray, parts: Sequence[Partition], columns: Sequence[str] = COMPARED_COLUMNS) -> pl.DataFrame:
    """``_row`` and the prepared ``columns`` of the records ``rows`` (``_row``, distinct, in order), in
    that order: each partition that holds some of them is read (those columns only) and let go of in turn."""
    starts = row_starts(parts)
    frames = [pl.DataFrame(schema={"_row": pl.Int64})]
    for part, start, stop in zip(parts, starts, starts[1:], strict=False):
        wanted = rows[np.searchsorted(rows, start) : np.searchsorted(rows, stop)]
        if len(wanted) and part.prepared is not None:
            read = pl.read_parquet(part.prepared, columns=["_row", *columns])
            frames.append(read.select(pl.all().gather(wanted - start)))  # a partition's rows are consecutive
    found = pl.concat(frames, how="diagonal_relaxed")
    if not np.array_equal(found["_row"].to_numpy(), rows):
        raise RuntimeError(f"the partitions' prepared files do not hold the {len(rows)} records asked for")
    return found


def _coded(
    codes: np.ndarray, width: int, parts: Sequence[Partition], columns: Sequence[str] = COMPARED_COLUMNS
) -> tuple[pl.DataFrame, Pairs]:
    """The records at both ends of the pairs ``codes`` (``left * width + right`` over ``_row``), and the
    pairs by the records' positions among them."""
    left, right = codes // width, codes % width
    # Rows and positions by a mark per row of the span the pairs cover: no sort, no search.
    low = int(left.min())
    seen = np.zeros(int(max(left.max(), right.max())) - low + 1, dtype=bool)
    seen[left - low] = True
    seen[right - low] = True
    position = np.cumsum(seen, dtype=np.int32) - 1
    records = records_of(np.flatnonzero(seen) + low, parts, columns)
    return records, Pairs(position[left - low], position[right - low])


@dataclass(frozen=True)
class PairRange:
    """The candidate pairs whose left record lies in a range's span (``code`` over ``_row``, each once,
    in order) and the phone numbers two people among them share (``two_people_phones``)."""

    path: str
    rows: int  # pairs
    phones: list[str]


NAMES = ("first", "last", "first_canon")  # what tells two people apart (``names_differ``)


def range_pairs(
    number: int, span: tuple[int, int], buckets: Sequence[PairBucket], parts: Sequence[Partition], phone: bool
) -> PairRange:
    """Range ``number``: the candidate pairs whose left record's ``_row`` is in ``span`` (from, to), from
    every bucket; with ``phone`` (phones are compared), the numbers two people among them share."""
    width = row_starts(parts)[-1]
    low, high = span[0] * width, span[1] * width - 1
    scan = pl.scan_parquet([b.path for b in buckets]).filter(pl.col("code").is_between(low, high))
    codes = distinct(scan.collect(engine="streaming")["code"].to_numpy())
    out = Path(buckets[0].path).parent / f"range-{number:05d}.parquet"
    pl.DataFrame({"code": codes}, schema={"code": pl.Int64}).write_parquet(out)
    phones: list[str] = []
    if phone and len(codes):
        # Names are read only for the pairs with one number.
        records, pairs = _coded(codes, width, parts, ("phone",))
        one_number = codes[pairs.exact(code_columns(records)["phone"])]
        if len(one_number):
            records, pairs = _coded(one_number, width, parts, ("phone", *NAMES))
            phones = two_people_phones(code_columns(records), pairs).to_list()
    return PairRange(str(out), len(codes), phones)


@dataclass(frozen=True)
class ComparedRange:
    """A range's candidate pairs compared (``Compared``, in the order of its ``PairRange``): the file,
    the pairs, and their distinct agreement patterns with counts, of all of them and of those in the
    model's training sample."""

    path: str
    rows: int  # pairs
    counted: tuple[np.ndarray, np.ndarray]
    trained: tuple[np.ndarray, np.ndarray]


def compare_range(
    pairs: PairRange,
    parts: Sequence[Partition],
    fields: Sequence[Field],
    learned: bool,
    shared: str,
    sample: np.ndarray | None,
) -> ComparedRange:
    """``compare`` the pairs of ``pairs`` (``shared``: a file of the phone numbers several people share,
    ``shared_phones``; ``sample``: the positions among them of the pairs the model trains on, None for
    all of them)."""
    codes = pl.read_parquet(pairs.path)["code"].to_numpy()
    names = [f.name for f in fields]
    out = Path(pairs.path).with_name(Path(pairs.path).name.replace("range-", "compared-"))
    if not len(codes):
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        pl.DataFrame(schema=COMPARED).write_parquet(out)
        return ComparedRange(str(out), 0, empty, empty)
    records, local = _coded(codes, row_starts(parts)[-1], parts)
    mailbox = records["mailbox"].is_not_null().to_numpy()
    compared = compare(code_columns(records), local, fields, learned, mailbox, pl.read_parquet(shared)["v"])
    del records
    pl.DataFrame(
        {
            "pattern": compared.patterns,
            "no_link": compared.no_link,
            "strangers": compared.strangers,
            "same_person": compared.same_person,
        },
        schema=COMPARED,
    ).write_parquet(out)
    counted = _patterns(compared.patterns, names)
    trained = counted if sample is None else _patterns(compared.patterns[sample], names)
    return ComparedRange(str(out), len(codes), counted, trained)


COMPARED = {"pattern": pl.Int32, "no_link": pl.Boolean, "strangers": pl.Boolean, "same_person": pl.Boolean}


@dataclass(frozen=True)
class KeptRange:
    """A range's candidate pairs that can still matter once weighed (``settle``): those at or above the
    review band (``left``, ``right`` over ``_row``, ``weight``, ``pattern``, ``vetoed``) and, in a file of
    their own, the clear strangers (``left``, ``right``)."""

    path: str
    rows: int  # pairs weighed
    strangers: str


def weigh_range(
    pairs: PairRange,
    compared: ComparedRange,
    parts: Sequence[Partition],
    model: Model,
    frequent: dict[str, float],
    probability: float,
) -> KeptRange:
    """The model's weights of a range's compared pairs, their exact agreements on common values
    discounted (which looks at the left records, those of the range's span; ``frequent``: the average
    frequency of each field's values, whose values more frequent than that ``write_frequent`` wrote
    beside the pairs), ``settle``d."""
    common = read_frequent(Path(pairs.path).parent, frequent)
    codes = pl.read_parquet(pairs.path)["code"].to_numpy()
    width = row_starts(parts)[-1]
    names = list(model.weights)
    frame = pl.read_parquet(compared.path)
    left = codes // width
    rows = distinct(left)
    counted = [name for name in common.frequent if name in names]
    columns = code_columns(records_of(rows, parts, counted)) if counted and len(rows) else {}
    weights = model_weights(model, columns, np.searchsorted(rows, left), frame["pattern"].to_numpy(), names, common)
    verdicts = Compared(*(frame[name].to_numpy() for name in COMPARED))
    kept = settle(model, probability, Pairs(left, codes % width), weights, verdicts)
    out = Path(pairs.path).with_name(Path(pairs.path).name.replace("range-", "kept-"))
    pl.DataFrame(
        {
            "left": kept.pairs.left,
            "right": kept.pairs.right,
            "weight": kept.weights,
            "pattern": kept.patterns,
            "vetoed": kept.vetoed,
        },
        schema=KEPT,
    ).write_parquet(out)
    apart = out.with_name(out.name.replace("kept-", "strangers-"))
    (strangers,) = kept.strangers()
    pl.DataFrame({"left": strangers.left, "right": strangers.right}, schema=STRANGERS).write_parquet(apart)
    return KeptRange(str(out), len(codes), str(apart))


def write_frequent(common: Common, work: Path) -> dict[str, float]:
    """``common.frequent``'s values into the work folder, a file per field; returns each field's average."""
    for name, (values, _) in common.frequent.items():
        values.write_parquet(work / f"frequent-{name}.parquet")
    return {name: average for name, (_, average) in common.frequent.items()}


def read_frequent(work: Path, averages: dict[str, float]) -> Common:
    """What ``write_frequent`` wrote, as the ``Common`` that weighing needs."""
    frequent = {name: (pl.read_parquet(work / f"frequent-{name}.parquet"), a) for name, a in averages.items()}
    return Common(pl.Series("v", [], pl.String), frequent)


STRANGERS = {"left": pl.Int64, "right": pl.Int64}
KEPT = {"left": pl.Int64, "right": pl.Int64, "weight": pl.Float64, "pattern": pl.Int32, "vetoed": pl.Boolean}


def read_kept(ranges: Sequence[KeptRange], model: Model, probability: float) -> Scored:
    """Every range's kept pairs (``weigh_range``), in order, as ``settle`` leaves them: the clear
    strangers a range at a time, as they are asked for."""
    kept = pl.read_parquet([r.path for r in ranges]) if ranges else pl.DataFrame(schema=KEPT)
    columns = (kept["weight"].to_numpy(writable=True), kept["pattern"].to_numpy(), kept["vetoed"].to_numpy())
    return Scored.by(
        model,
        probability,
        (_pairs_of(kept), *columns),
        lambda: (_pairs_of(pl.read_parquet(r.strangers)) for r in ranges),
    )


def _pairs_of(frame: pl.DataFrame) -> Pairs:
    return Pairs(frame["left"].to_numpy(), frame["right"].to_numpy())


def read_result(reads: Sequence[InputRead], warnings: Sequence[str]) -> ReadResult:
    """The read result (without tables) as the one-process read leaves it, from the inputs' reads."""
    read = ReadResult(warnings=list(warnings))
    read.inputs = [r.described for r in reads if r.described is not None]
    read.rows_in = sum(r.rows_in for r in reads)
    quarantined = [pl.read_parquet(r.quarantine) for r in reads if r.quarantine]
    read.quarantine = pl.concat([read.quarantine, *quarantined])
    return read


def classified_records(buckets: Sequence[Classified]) -> dict[str, list[pl.LazyFrame]]:
    """Each class's records of every classified bucket, a piece per bucket, read as they are streamed."""
    return {name: [pl.scan_parquet(b.paths[name]) for b in buckets if b.paths] for name in PARTITIONS}


def gather_objections(buckets: Sequence[Classified]) -> pl.DataFrame:
    """The objections of every classified bucket, by address key."""
    return pl.concat([pl.read_parquet(b.objections) for b in buckets if b.objections]).sort("address_key")


def gather_pairs(ranges: Sequence[PairRange]) -> np.ndarray:
    """Every range's candidate pairs (codes over ``_row``, ``range_pairs``), each once, in order."""
    return np.concatenate([np.zeros(0, dtype=np.int64), *(pl.read_parquet(r.path)["code"].to_numpy() for r in ranges)])
