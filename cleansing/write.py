"""Write: the run folder, whole or not at all.

Everything is written into ``OUT/.tmp-<run_id>`` (``stage_folder``), the conservation rule is checked,
and only then is the folder renamed to ``OUT/<run_id>`` and ``OUT/latest`` pointed at it (``promote``,
inside the state database's publishing transaction, undone if that transaction does not commit). Files
are owner-only; CSV cells that a spreadsheet would run as a formula are prefixed with ``'``.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from schemas.contacts import Decisions

from .errors import ConservationError, no_space_left, os_errno
from .reasons import Klass, Reason

PARTITIONS = (Klass.KEEP.value, Klass.RECONFIRM.value, Klass.DISCARD.value)
LINEAGE = ["source_file", "source_row", "record_id", "cluster_id", "person_id", "survivor_id"]
CONTACT_COLUMNS = [
    "email",
    "email_normalized",
    "first_name",
    "last_name",
    "full_name",
    "phone",
    "phone_e164",
    "company",
    "street",
    "street2",
    "postcode",
    "city",
    "region",
    "country",
]
CONSENT_EVIDENCE = (
    "consent_status",
    "consent_at",
    "confirmed_at",
    "consent_source",
    "consent_proof",
    "consent_expires_at",
    "lawful_basis",
    "opted_out",
    "opted_out_at",
    "erasure_requested",
)
EVIDENCE_COLUMNS = [
    *CONSENT_EVIDENCE,
    "hard_bounced",
    "bounced_at",
    "is_customer",
    "last_purchase_at",
    "last_activity_at",
    "created_at",
    "tags",
    "unparsed",
]
# The categories of personal data a record of processing names (GDPR Art. 30), by canonical field.
FIELD_CATEGORIES = {
    "identity": ("record_id", "first_name", "last_name", "full_name"),
    "contact": ("email", "phone", "company", "street", "street2", "postcode", "city", "region", "country"),
    "consent evidence": CONSENT_EVIDENCE,
    "activity": ("last_activity_at", "created_at", "hard_bounced", "bounced_at", "tags"),
    "purchase": ("is_customer", "last_purchase_at"),
}
PARTITION_COLUMNS = [
    *LINEAGE,
    "reason",
    "reason_text",
    "action",
    "flags",
    "mx_status",
    "suggested_email",
    "preset",
    *CONTACT_COLUMNS,
    *EVIDENCE_COLUMNS,
]
FORMULA_START = r"^[=+\-@\t\r]"
# A plain number (an E.164 phone, a signed amount) starts like a formula but cannot run as one.
PLAIN_NUMBER = r"^[+-]?[0-9]+(?:[.,][0-9]+)?$"
# Parquet files of a run: zstd at its fastest level, which here compresses as well as its default.
PARQUET: dict[str, Any] = {"compression": "zstd", "compression_level": 1}
ACTIONS = ("ask", "wait")  # of a record in reconfirm: ask now, or wait for the answer to an earlier request
TMP_PREFIX = ".tmp-"
# A run writes its temporary folder within minutes; one untouched for this long was left by a killed run.
STALE_AFTER_S = 6 * 3600.0
WRITER_FILE = ".writer"  # host and pid of the process writing a temporary run folder
Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


def new_run_id(now: dt.datetime | None = None) -> str:
    """A run id that sorts by time: ``20261129T020000Z-3f9a``."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def mask_email(expr: pl.Expr) -> pl.Expr:
    """``anna.svensson@example.se`` → ``a***@example.se``; no local part is ever shown whole."""
    domain = expr.str.extract(r"@([^@]*)$")
    masked = pl.concat_str([expr.str.slice(0, 1).str.replace("@", "", literal=True), pl.lit("***@"), domain])
    return pl.when(domain.is_not_null()).then(masked).when(expr.is_not_null()).then(pl.lit("***"))


def with_reason_text(records: pl.LazyFrame) -> pl.LazyFrame:
    """``records`` with ``reason_text``: the reason in plain words, what it means and what to do, joined
    from a table of the reasons, so that a stream of records stays a stream (``replace_strict`` among many
    columns makes polars gather them whole)."""
    return records.join(reason_table().lazy(), on="reason", how="left", maintain_order="left")


def reason_table() -> pl.DataFrame:
    """``reason, reason_text``: every reason in plain words, what it means and what to do."""
    words = {r.value: f"{r.info.text} {r.info.action}" for r in Reason}
    return pl.DataFrame({"reason": list(words), "reason_text": list(words.values())})


def formula_columns(frame: Frame) -> list[str]:
    """The text columns of ``frame`` with a cell that starts like a formula and is not a plain number (most
    have none; a phone in E.164 starts with "+" and is not one). A list of texts is looked at as the cell
    ``_flat`` makes of it, which starts as one of its texts does: only lists with such a text are joined."""
    schema = frame.collect_schema()
    lists = [c for c, t in schema.items() if t == pl.List(pl.String)]
    if lists:
        starts = _collected(frame.select(pl.col(c).explode().str.contains(FORMULA_START).any() for c in lists))
        joined = [c for c, start in zip(lists, starts.row(0), strict=True) if start]
        frame = _flat(frame.select(c for c in schema if c not in lists or c in joined), times=False)
    text = [c for c, t in frame.collect_schema().items() if t == pl.String]
    if not text:
        return []
    starting = [pl.col(c).filter(pl.col(c).str.contains(FORMULA_START)) for c in text]
    found = _collected(frame.select((~cell.str.contains(PLAIN_NUMBER)).any() for cell in starting)).row(0)
    return [c for c, risky in zip(text, found, strict=True) if risky]


def _collected(frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    return frame.collect(engine="streaming") if isinstance(frame, pl.LazyFrame) else frame


def guard_formulas(frame: Frame, columns: Sequence[str] | None = None) -> Frame:
    """Prefix ``'`` to text cells a spreadsheet would treat as a formula; a plain number is left as it is.
    Only ``columns`` are rewritten (None: those ``formula_columns`` finds)."""
    return frame.with_columns(
        pl.when((pl.col(c).str.contains(FORMULA_START) & ~pl.col(c).str.contains(PLAIN_NUMBER)).fill_null(False))
        .then(pl.concat_str([pl.lit("'"), pl.col(c)]))
        .otherwise(pl.col(c))
        .alias(c)
        for c in (formula_columns(frame) if columns is None else columns)
    )


CSV_TIME = "%Y-%m-%dT%H:%M:%SZ"  # times in CSV: ISO 8601, UTC


def _flat(frame: Frame, times: bool = True) -> Frame:
    """Lists joined with ``;`` and, with ``times``, times as text (``CSV_TIME``), for CSV; without, the
    CSV writer formats them (``datetime_format=CSV_TIME``), which a stream of records can afford."""
    out = []
    for name, dtype in frame.collect_schema().items():
        if isinstance(dtype, pl.List):
            out.append(pl.col(name).list.join(";").alias(name))
        elif isinstance(dtype, pl.Datetime) and times:
            out.append(pl.col(name).dt.strftime(CSV_TIME).alias(name))
    return frame.with_columns(out)


EXCEL_MAX_ROWS = 1_048_576  # rows of one worksheet, the header included


def write_xlsx(frame: pl.DataFrame, path: Path, sheet: str | None = None, sheet_rows: int = EXCEL_MAX_ROWS - 1) -> None:
    """One partition as a workbook for people: every cell written as text (row numbers as numbers), so
    that no cell can run as a formula; a new worksheet every ``sheet_rows`` rows, past Excel's limit.
    Sheets are named ``sheet`` (default: the file's name), ``sheet 2``, …"""
    import xlsxwriter  # type: ignore[import-untyped]

    flat = _flat(frame).with_columns(pl.col(pl.Boolean).cast(pl.String))
    numeric = {i for i, dtype in enumerate(flat.dtypes) if dtype.is_integer()}
    flat = flat.with_columns(pl.col(name).cast(pl.String) for i, name in enumerate(flat.columns) if i not in numeric)
    options = {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False}
    workbook = xlsxwriter.Workbook(str(path), options)
    bold = workbook.add_format({"bold": True})
    name = sheet or path.stem
    for number, start in enumerate(range(0, max(flat.height, 1), sheet_rows)):
        worksheet = workbook.add_worksheet(name if number == 0 else f"{name} {number + 1}")
        worksheet.write_row(0, 0, flat.columns, bold)
        worksheet.freeze_panes(1, 0)
        for r, row in enumerate(flat.slice(start, sheet_rows).iter_rows(), start=1):
            for c, value in enumerate(row):
                if value is None:
                    continue
                if c in numeric:
                    worksheet.write_number(r, c, value)
                else:
                    worksheet.write_string(r, c, value)
    workbook.close()


def decisions_frame(records: pl.DataFrame | pl.LazyFrame, quarantine: pl.DataFrame) -> pl.LazyFrame:
    """One row per input row, quarantine included, in the order of ``records`` then ``quarantine``
    (``write_decisions`` sorts them)."""
    judged = records.lazy().select(
        "source_file",
        "source_row",
        "record_id",
        "class",
        "reason",
        pl.col("flags").list.join(";").alias("flags"),
        "cluster_id",
        "person_id",
        "survivor_id",
        "mx_status",
        mask_email(pl.col("email")).alias("email_masked"),
    )
    quarantined = quarantine.lazy().select(
        "source_file",
        "source_row",
        pl.lit(None, pl.String).alias("record_id"),
        pl.lit(Klass.QUARANTINE.value).alias("class"),
        pl.lit("UNREADABLE_ROW").alias("reason"),
        pl.lit(None, pl.String).alias("flags"),
        pl.lit(None, pl.String).alias("cluster_id"),
        pl.lit(None, pl.String).alias("person_id"),
        pl.lit(None, pl.String).alias("survivor_id"),
        pl.lit("not_checked").alias("mx_status"),
        pl.lit(None, pl.String).alias("email_masked"),
    )
    return pl.concat([judged, quarantined])


# Rows of decisions.parquet sorted at once: the file is written a range of rows of one input at a time.
DECISIONS_AT_ONCE = 1_000_000


def write_decisions(decisions: pl.LazyFrame, path: Path, rows_at_once: int | None = None) -> tuple[int, int]:
    """``decisions`` (``decisions_frame``) into ``path`` sorted by ``source_file, source_row``, checked
    against the ``Decisions`` schema; returns the rows written and their distinct ``source_file,
    source_row``. Never more than ``rows_at_once`` rows (default ``DECISIONS_AT_ONCE``) are held: as
    many rows or fewer are sorted, checked and written at once; more are first streamed into a file
    beside ``path``, then sorted and checked a range of one input's rows at a time, and the sorted ranges
    streamed into ``path`` in order."""
    rows_at_once = DECISIONS_AT_ONCE if rows_at_once is None else rows_at_once
    whole = decisions.head(rows_at_once + 1).collect(engine="streaming")
    if whole.height <= rows_at_once:  # every row: sorted and checked at once, written in one go
        # By row, then by file keeping that order: a third of the time of one sort by both.
        whole = whole.sort("source_row", maintain_order=True).sort("source_file", maintain_order=True)
        if whole.height:  # (no rows: the schema alone, as in ranges)
            Decisions.validate(whole)
        whole.write_parquet(path, **PARQUET)
        # In this order a row already seen is the one before it.
        seen = (pl.col("source_file") == pl.col("source_file").shift()) & (
            pl.col("source_row") == pl.col("source_row").shift()
        )
        return whole.height, whole.height - whole.select(seen.sum()).item()
    del whole
    folder = path.parent
    unsorted = folder / f".{path.stem}-unsorted.parquet"
    ranges: list[Path] = []
    try:
        decisions.sink_parquet(unsorted, **PARQUET)
        scan = pl.scan_parquet(unsorted)
        spans = (
            scan.group_by("source_file")
            .agg(pl.len(), pl.col("source_row").min().alias("low"), pl.col("source_row").max().alias("high"))
            .sort("source_file")
            .collect(engine="streaming")
        )
        rows = distinct = 0
        for source, n, low, high in spans.iter_rows():
            step = -(-(high - low + 1) // -(-n // rows_at_once))  # rows of the input per range
            for start in range(low, high + 1, step):
                part = (
                    scan.filter(
                        (pl.col("source_file") == source) & pl.col("source_row").is_between(start, start + step - 1)
                    )
                    .sort("source_row", maintain_order=True)
                    .collect(engine="streaming")
                )
                Decisions.validate(part)
                rows += part.height
                distinct += part["source_row"].n_unique()
                ranges.append(folder / f".{path.stem}-{len(ranges)}.parquet")
                part.write_parquet(ranges[-1], **PARQUET)
        if ranges:
            pl.scan_parquet(ranges).sink_parquet(path, **PARQUET)
        else:
            pl.scan_parquet(unsorted).sink_parquet(path, **PARQUET)  # no rows: the schema alone
    finally:
        for leftover in [unsorted, *ranges]:
            leftover.unlink(missing_ok=True)
    return rows, distinct


class Rewrite:
    """Files written whole or not at all, owner-only: each beside its old self (``.NAME.partial``), then
    all renamed over the old ones together, so a write that fails leaves every old file as it was.
    Parquet files are renamed last: an erasure whose renames stop half-way still finds its rows there
    when it is run again."""

    def __init__(self) -> None:
        self.pending: list[tuple[Path, Path]] = []

    def add(self, path: Path, write: Callable[[Path], object]) -> None:
        partial = path.with_name(f".{path.name}.partial")
        self.pending.append((partial, path))
        write(partial)
        os.chmod(partial, 0o600)

    def commit(self) -> None:
        for partial, path in sorted(self.pending, key=lambda pair: pair[1].suffix == ".parquet"):
            os.replace(partial, path)
        self.pending.clear()

    def abandon(self) -> None:
        for partial, _path in self.pending:
            if partial.is_file():
                partial.unlink()
        self.pending.clear()


def check_conservation(rows_in: int, rows: int, distinct: int, counts: dict[str, int]) -> dict[str, int]:
    """Every input row in exactly one partition (``counts``: the rows each partition's files hold) and
    exactly once in the decisions (``rows`` rows, ``distinct`` distinct ``source_file, source_row``), or
    raise."""
    total = sum(counts.values())
    if not (total == rows_in == rows == distinct):
        raise ConservationError(
            f"rows in ({rows_in}) do not equal keep + reconfirm + discard + quarantine ({total}); "
            f"decisions hold {rows} rows, {distinct} distinct."
        )
    return counts


def _owner_only(path: Path) -> None:
    os.chmod(path, 0o600)


def by_class(records: pl.DataFrame) -> dict[str, pl.LazyFrame]:
    """Each class's records (``PARTITIONS``) of the judged records in memory, in input order."""
    ordered = (records if records["_row"].is_sorted() else records.sort("_row")).lazy()
    return {name: ordered.filter(pl.col("class") == name) for name in PARTITIONS}


def stage_folder(
    out_dir: Path,
    run_id: str,
    classes: Mapping[str, Sequence[pl.LazyFrame]],
    quarantine: pl.DataFrame,
    rows_in: int,
    extra: Callable[[Path, dict[str, int], pl.LazyFrame], None],
    spreadsheets: bool = False,
    records: pl.LazyFrame | None = None,
) -> tuple[Path, dict[str, int]]:
    """Write every file of the run folder into ``OUT/.tmp-<run_id>`` (owner-only) and check conservation.

    ``classes``: each class's judged records (``PARTITIONS``, see ``by_class``) in pieces, in order, which
    are streamed into their files, never held whole: the CSV a piece at a time (polars holds much of a
    stream of many files while it writes CSV). ``records``: the same records in one frame, in any order
    (default: the pieces together), which the decisions and the formula check read in one pass where the
    caller holds them so. ``extra(tmp_dir, counts, decisions)`` writes the manifest and the report into
    the same folder; with ``spreadsheets`` keep, reconfirm and discard are also written as ``.xlsx``. On
    any error the temporary folder is removed. Nothing is visible under the run's name yet.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f"{TMP_PREFIX}{run_id}"
    shutil.rmtree(tmp, ignore_errors=True)  # a retried write starts from nothing
    tmp.mkdir(mode=0o700)
    try:
        (tmp / WRITER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n")
        # In reconfirm, whom to ask now and who was asked and is waiting (never to be asked twice).
        action = (
            pl.when(pl.col("class") != Klass.RECONFIRM.value)
            .then(None)
            .when(pl.col("reason") == Reason.RECONFIRM_PENDING.value)
            .then(pl.lit(ACTIONS[1]))
            .otherwise(pl.lit(ACTIONS[0]))
            .alias("action")
        )

        def shaped(name: str, records: pl.LazyFrame) -> pl.LazyFrame:
            if name == Klass.QUARANTINE.value:
                return with_reason_text(records)
            return with_reason_text(records).with_columns(action).select(PARTITION_COLUMNS)

        pieces = {name: list(classes[name]) for name in PARTITIONS}
        pieces[Klass.QUARANTINE.value] = [
            quarantine.lazy().with_columns(pl.lit(Reason.UNREADABLE_ROW.value).alias("reason"))
        ]
        judged = pl.concat([piece for name in PARTITIONS for piece in classes[name]]) if records is None else records
        rows, distinct = write_decisions(decisions_frame(judged, quarantine), tmp / "decisions.parquet")
        # The columns whose cells are guarded against formulas: the words this stage adds, looked at once in
        # their table, and the records' own, looked at once for every partition (a column guarded where no
        # cell needs it is written as it is).
        cells = [c for c in PARTITION_COLUMNS if c not in ("reason_text", "action")]
        words = [reason_table().select("reason_text"), pl.DataFrame({"action": ACTIONS})]
        risky = [c for table in words for c in formula_columns(table)] + formula_columns(judged.select(cells))
        # A partition at a time, in every format, each streamed from the records into its file: whole (its
        # pieces put together before the reasons are joined, for polars holds much of a stream of many
        # joined pieces), and for CSV a piece at a time.
        written = {}
        for name, parts in pieces.items():
            lazy = shaped(name, pl.concat(parts))
            lazy.sink_parquet(tmp / f"{name}.parquet", **PARQUET)
            written[name] = pl.scan_parquet(tmp / f"{name}.parquet").select(pl.len()).collect().item()
            guard = formula_columns(lazy) if name == Klass.QUARANTINE.value else risky
            with (tmp / f"{name}.csv").open("wb") as csv:
                for number, piece in enumerate(parts):
                    guarded = guard_formulas(_flat(shaped(name, piece), times=False), guard)
                    guarded.sink_csv(csv, include_header=number == 0, datetime_format=CSV_TIME)
            if spreadsheets and name in PARTITIONS:
                write_xlsx(lazy.collect(), tmp / f"{name}.xlsx")
        counts = check_conservation(rows_in, rows, distinct, written)
        extra(tmp, counts, pl.scan_parquet(tmp / "decisions.parquet"))
        (tmp / WRITER_FILE).unlink()
        for child in tmp.iterdir():
            _owner_only(child)
    except BaseException as exc:
        # Some writers lose the OS error (polars: "Invalid thrift: transport error"); ask the disk itself
        # while what was written still fills it.
        full = isinstance(exc, Exception) and os_errno(exc) is None and no_space_left(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp)) from exc
        raise
    return tmp, counts


def promote(out_dir: Path, run_id: str, move_latest: bool = True) -> Callable[[], None]:
    """Rename the staged folder to ``OUT/<run_id>`` and, with ``move_latest``, point ``OUT/latest`` at it.

    Returns an undo that puts ``latest`` back where it pointed and removes the run folder, for when the
    state database does not take the run's record after all."""
    tmp = out_dir / f"{TMP_PREFIX}{run_id}"
    final = out_dir / run_id
    link = out_dir / "latest"
    before = os.readlink(link) if link.is_symlink() else None
    os.rename(tmp, final)

    def undo() -> None:
        if before is None:
            link.unlink(missing_ok=True)
        elif link.is_symlink() and os.readlink(link) != before:
            _relink(out_dir, before, f"undo-{run_id}")
        shutil.rmtree(final, ignore_errors=True)

    if move_latest:
        try:
            _relink(out_dir, run_id, run_id)
        except BaseException:
            undo()
            raise
    return undo


def _relink(out_dir: Path, target: str, tag: str) -> None:
    staging = out_dir / f".latest-{tag}"
    staging.unlink(missing_ok=True)
    staging.symlink_to(target)
    os.replace(staging, out_dir / "latest")


def _writer_alive(folder: Path) -> bool | None:
    """Whether the process that writes ``folder`` still runs: None when that cannot be told here."""
    try:
        host, pid = (folder / WRITER_FILE).read_text().split()
    except (OSError, ValueError):
        return None
    if host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def remove_stale(out_dir: Path) -> list[str]:
    """Remove temporary run folders a killed run left behind (they hold contacts); returns their names.

    A folder whose writer on this machine no longer runs is stale at once; one whose writer cannot be
    told (another machine, no marker) only after ``STALE_AFTER_S`` untouched."""
    if not out_dir.is_dir():
        return []
    removed = []
    now = time.time()
    for child in out_dir.iterdir():
        try:
            age = now - child.lstat().st_mtime
        except FileNotFoundError:
            continue
        if child.name.startswith(TMP_PREFIX) and child.is_dir() and not child.is_symlink():
            alive = _writer_alive(child)
            if alive is False or (alive is None and age > STALE_AFTER_S):
                shutil.rmtree(child, ignore_errors=True)
                removed.append(child.name)
        elif child.name.startswith(".latest-") and child.is_symlink() and age > 60:
            child.unlink(missing_ok=True)
            removed.append(child.name)
    return removed


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
