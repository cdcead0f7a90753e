"""Read: turn export files into frames of text, one per file, plus quarantine rows.

Every column is read as text; types come from the mapping, never from inference. A row that cannot
be read (undecodable bytes, wrong number of fields, a broken quote) becomes a quarantine row with
its file, row and error, and the rest of the file is still read.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

import fastexcel
import polars as pl

from .errors import InputError, file_error

ROW = "source_row"
QUARANTINE_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "source_file": pl.String,
    "source_row": pl.Int64,
    "stage": pl.String,
    "field": pl.String,
    "error": pl.String,
    "raw": pl.String,
}
TEXT_SUFFIXES = {".csv", ".tsv", ".txt", ".tab", ".psv", ""}
DELIMITERS = [",", ";", "\t", "|"]
# A quoted field may hold line breaks (a street address); one that spans more lines than this is a
# quote that was never closed.
MAX_LINES_PER_RECORD = 20
# Why a row is quarantined: the fast and the careful parser say it in the same words.
UNDECODABLE = "undecodable bytes (the row is not in the file's encoding)"
EMPTY_LINE = "empty line"
UNCLOSED_QUOTE = "a quote is opened and never closed"

MIB = 1 << 20
# Limits on one input (a file or a ZIP member, inflated). They keep a hostile archive from filling the
# memory: a member is inflated in chunks and refused as soon as it passes either limit.
# Reading holds about ten times an input's size for a moment (bytes, text, lines, fields), so this keeps
# the read of any one input below 3 GB (a 244 MiB CSV peaks at 2.4 GB).
MAX_INPUT_BYTES = 256 * MIB
MAX_COMPRESSION_RATIO = 100  # CSV exports deflate 5–20 times; far more than this is a ZIP bomb
RATIO_CHECK_FROM = 16 << 20  # small members may compress very well and harm no one
CHUNK = 1 << 20

csv.field_size_limit(1 << 30)


@dataclass(frozen=True)
class InputFile:
    """One input as the manifest describes it."""

    path: str
    size: int
    sha256: str


@dataclass
class RawTable:
    """The rows of one file (or ZIP member) as text, with ``source_row`` counted from 1."""

    source_file: str
    frame: pl.DataFrame
    encoding: str = ""
    delimiter: str = ""
    input_index: int = 0
    nul_rows: list[int] = field(default_factory=list)  # rows whose NUL bytes were removed


@dataclass
class ReadResult:
    tables: list[RawTable] = field(default_factory=list)
    quarantine: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=QUARANTINE_SCHEMA))
    inputs: list[InputFile] = field(default_factory=list)
    rows_in: int = 0
    warnings: list[str] = field(default_factory=list)


def quarantine_frame(rows: list[tuple[str, int, str, str, str, str]]) -> pl.DataFrame:
    """Quarantine rows ``(source_file, source_row, stage, field, error, raw)`` as a frame."""
    return pl.DataFrame(rows, schema=QUARANTINE_SCHEMA, orient="row")


@dataclass(frozen=True)
class InputUnit:
    """One input to read: a file, or one member of a ZIP (``member``), under its ``name`` in the
    outputs. ``input_index`` numbers the files given in order; ``first`` marks a file's first unit,
    the one that records the file among the run's inputs."""

    path: Path
    member: zipfile.ZipInfo | None
    name: str
    input_index: int
    first: bool


def plan_inputs(paths: Sequence[str | Path]) -> tuple[list[InputUnit], list[str]]:
    """Every input of ``paths`` (files, ZIPs or folders) in the order given, with its name, and the
    warnings finding them gave.

    ``source_file`` is the path relative to the source given: a file's name, a path inside a folder,
    a member's path inside a ZIP. Where two inputs would share a name (``a/contacts.csv`` and
    ``b/contacts.csv`` given as two files), as many parent folders are added as it takes to tell
    them apart."""
    warnings: list[str] = []
    files = list(expand_sources(paths, warnings))
    if not files:
        raise InputError(
            "no input files were found.",
            path=", ".join(str(p) for p in paths),
            fix="Pass one or more export files or a folder that contains them.",
        )
    units = [(path, parts, depth, member) for path, parts, depth in files for member in archive_members(path)]
    logical = []
    for _path, parts, depth, member in units:
        inner = PurePosixPath(member.filename).parts if member else ()
        logical.append((parts + inner, len(inner) if member else depth))
    names = unique_names(logical)
    index: dict[Path, int] = {}
    planned = []
    for (path, _parts, _depth, member), name in zip(units, names, strict=True):
        first = path not in index
        index.setdefault(path, len(index))
        planned.append(InputUnit(path, member, name, index[path], first))
    return planned, warnings


def read_unit(unit: InputUnit) -> tuple[RawTable, pl.DataFrame, InputFile | None]:
    """One input read: its table, its quarantine rows, and (for a file's first unit) the file as the
    manifest lists it."""
    path, member = unit.path, unit.member
    described = None
    try:
        data = _read_member(path, member) if member else _read_file(path)
        if unit.first:
            # A file is hashed from the bytes just read; an archive, which is never read whole, as a stream.
            digest = _sha256(path) if member else hashlib.sha256(data).hexdigest()
            described = InputFile(str(path), path.stat().st_size, digest)
    except OSError as exc:
        raise file_error(exc, path, "reading the file") from exc
    table, bad = read_bytes(unit.name, data, display_path=f"{path} ({member.filename})" if member else path)
    del data
    table.input_index = unit.input_index
    return table, bad, described


def read_sources(paths: Sequence[str | Path]) -> ReadResult:
    """Read every source (file, ZIP or folder) in the order given (see ``plan_inputs``)."""
    units, warnings = plan_inputs(paths)
    result = ReadResult(warnings=warnings)
    quarantined: list[pl.DataFrame] = []
    for unit in units:
        table, bad, described = read_unit(unit)
        if described is not None:
            result.inputs.append(described)
        result.tables.append(table)
        quarantined.append(bad)
        result.rows_in += table.frame.height + bad.height
    result.quarantine = pl.concat([result.quarantine, *quarantined])
    return result


def unique_names(paths: Sequence[tuple[tuple[str, ...], int]]) -> list[str]:
    """Each input's name: the last ``depth`` parts of its logical path (what the source gave), plus as
    many parts before them as it takes for no two inputs to share a name."""
    depths = [max(depth, 1) for _parts, depth in paths]
    while True:
        names = ["/".join(parts[-d:]) for (parts, _), d in zip(paths, depths, strict=True)]
        counts: dict[str, int] = {}
        for name in names:
            counts[name] = counts.get(name, 0) + 1
        clashing = [i for i, n in enumerate(names) if counts[n] > 1 and depths[i] < len(paths[i][0])]
        if not clashing:
            return names
        for i in clashing:
            depths[i] += 1


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def expand_sources(paths: Sequence[str | Path], warnings: list[str]) -> Iterator[tuple[Path, tuple[str, ...], int]]:
    """Every input file with its logical path: the parts up to the source given are kept so that two
    inputs with one name can be told apart, the tail is what the source gave (name or relative path).

    Hidden files and folders are skipped; a symbolic link that leads outside the folder given is
    skipped with a warning; a file given twice is read once."""
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(
                "the path does not exist.",
                path=path,
                fix="Check the spelling, or pass the folder that holds the exports.",
            )
        if not path.is_dir():
            real = path.resolve()
            if real not in seen:
                seen.add(real)
                yield path, path.absolute().parts, 1
            continue
        root = path.resolve()
        found = []
        for folder, dirs, names in os.walk(path, followlinks=False):
            here = Path(folder)
            for d in list(dirs):
                if d.startswith(".") or (here / d).is_symlink():
                    if (here / d).is_symlink() and not d.startswith("."):
                        warnings.append(f"{here / d}: a linked folder is not followed; pass its target as a source.")
                    dirs.remove(d)
            dirs.sort()
            for name in sorted(names):
                child = here / name
                if name.startswith("."):
                    continue
                real = child.resolve()
                if child.is_symlink() and not real.is_relative_to(root):
                    warnings.append(f"{child}: a link that leads outside {path} was skipped.")
                    continue
                if real.is_file() and real not in seen:
                    seen.add(real)
                    found.append(child)
        for child in sorted(found, key=lambda c: c.relative_to(path).as_posix()):
            yield child, child.absolute().parts, len(child.relative_to(path).parts)


def _check_size(size: int, where: str, fix: str) -> None:
    if size > MAX_INPUT_BYTES:
        raise InputError(
            f"{size / MIB:,.0f} MiB is more than one input may hold ({MAX_INPUT_BYTES / MIB:,.0f} MiB).",
            path=where,
            fix=fix,
        )


def _read_file(path: Path) -> bytes:
    size = path.stat().st_size
    if size == 0:
        raise InputError(
            "the file is empty (zero bytes).",
            path=path,
            fix="Export the contacts again; a file needs at least a header line.",
        )
    _check_size(size, str(path), "Split the export into files below that size.")
    return path.read_bytes()


def archive_members(path: Path) -> list[zipfile.ZipInfo | None]:
    """The members of a ZIP to read (checked against the limits before any is inflated), or ``[None]``
    for a file that is read as it is."""
    if path.suffix.lower() == ".xlsx" or not zipfile.is_zipfile(path):
        return [None]
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"the ZIP archive cannot be read ({exc}).", path=path, fix="Export it again.") from exc
    with archive:
        infos = [
            i
            for i in archive.infolist()
            if not i.is_dir()
            and not i.filename.startswith("__MACOSX/")
            and not any(part.startswith(".") for part in PurePosixPath(i.filename).parts)
        ]
    if any(i.filename.lower().endswith("[content_types].xml") for i in infos):
        return [None]  # an XLSX without its suffix
    for info in infos:
        where = f"{path} ({info.filename})"
        _check_size(info.file_size, where, "Split the export into smaller files, or pass the file itself, unpacked.")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_CHECK_FROM and ratio > MAX_COMPRESSION_RATIO:
            raise InputError(
                f"the archive member inflates {ratio:,.0f} times (more than {MAX_COMPRESSION_RATIO}), "
                "which an export does not do: it looks like a ZIP bomb.",
                path=where,
                fix="Check where the archive came from; pass the export itself, unpacked.",
            )
    return [*sorted(infos, key=lambda i: i.filename)]


def _read_member(path: Path, info: zipfile.ZipInfo) -> bytes:
    """Inflate one member in chunks, stopping at the limits whatever its header claims."""
    where = f"{path} ({info.filename})"
    try:
        with zipfile.ZipFile(path) as archive, archive.open(info) as handle:
            chunks = list(_inflate(handle, info.compress_size, where))
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise InputError(
            f"the archive member cannot be unpacked ({exc}).",
            path=where,
            fix="Export the archive again, or unpack it yourself and pass the files.",
        ) from exc
    if not chunks:
        raise InputError(
            f"the archive member {info.filename!r} is empty (zero bytes).",
            path=path,
            fix="Export the audience again, or remove the empty file from the archive.",
        )
    return b"".join(chunks)


def _inflate(handle: IO[bytes], compressed: int, where: str) -> Iterator[bytes]:
    total = 0
    while chunk := handle.read(CHUNK):
        total += len(chunk)
        _check_size(total, where, "Split the export into smaller files, or pass the file itself, unpacked.")
        if total > RATIO_CHECK_FROM and total / max(compressed, 1) > MAX_COMPRESSION_RATIO:
            raise InputError(
                f"the archive member inflates more than {MAX_COMPRESSION_RATIO} times, which an export does "
                "not do: it looks like a ZIP bomb.",
                path=where,
                fix="Check where the archive came from; pass the export itself, unpacked.",
            )
        yield chunk


def read_bytes(name: str, data: bytes, *, display_path: Path | str | None = None) -> tuple[RawTable, pl.DataFrame]:
    """Read one file's bytes by its kind: XLSX, Parquet, JSON Lines or delimited text."""
    where = display_path if display_path is not None else name
    suffix = Path(name).suffix.lower()
    if data[:4] == b"PK\x03\x04":
        return RawTable(name, _read_xlsx(data, where)), quarantine_frame([])
    if data[:4] == b"PAR1":
        frame = pl.read_parquet(io.BytesIO(data))
        frame = frame.select(pl.all().cast(pl.String))
        return RawTable(name, _with_rows(frame)), quarantine_frame([])
    if suffix in {".jsonl", ".ndjson"}:
        return _read_jsonl(name, data, where)
    text, encoding, bad_lines = decode(data, where)
    nul_lines: set[int] = set()
    if "\x00" in text:  # NUL bytes inside fields: removed, and the rows flagged
        lines = io.StringIO(text, newline="").readlines()
        nul_lines = {n for n, line in enumerate(lines, start=1) if "\x00" in line}
        text = text.replace("\x00", "")
    table, quarantine = parse_delimited(name, text, bad_lines, nul_lines)
    table.encoding = encoding
    return table, quarantine


def _with_rows(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))


def _check_workbook(data: bytes, where: Path | str) -> None:
    """An XLSX is a ZIP too: its parts are held to the same limits before the workbook is opened."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as workbook:
            infos = workbook.infolist()
    except zipfile.BadZipFile:
        return  # not a ZIP after all: the reader says what it is
    inflated = sum(i.file_size for i in infos)
    _check_size(inflated, str(where), "Save the workbook as CSV and pass that, split if need be.")
    for info in infos:
        if info.file_size > RATIO_CHECK_FROM and info.file_size / max(info.compress_size, 1) > MAX_COMPRESSION_RATIO:
            raise InputError(
                f"the workbook part {info.filename!r} inflates more than {MAX_COMPRESSION_RATIO} times, which a "
                "spreadsheet does not do: it looks like a ZIP bomb.",
                path=where,
                fix="Check where the file came from; save it again as CSV and pass that.",
            )


def _read_xlsx(data: bytes, where: Path | str) -> pl.DataFrame:
    _check_workbook(data, where)
    try:
        frame = fastexcel.read_excel(data).load_sheet(0, dtypes="string").to_polars()
    except Exception as exc:  # fastexcel raises its own types for damaged workbooks
        raise InputError(
            f"the workbook cannot be read ({exc}).",
            path=where,
            fix="Open it in a spreadsheet program and save it again as XLSX or CSV.",
        ) from exc
    frame = frame.select(pl.all().cast(pl.String))
    return _with_rows(frame)


def _read_jsonl(name: str, data: bytes, where: Path | str) -> tuple[RawTable, pl.DataFrame]:
    text, _, bad_lines = decode(data, where)
    records: list[dict[str, str | None]] = []
    rows: list[int] = []
    bad: list[tuple[str, int, str, str, str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if number in bad_lines:
            bad.append((name, number, "read", "", "undecodable bytes", line))
            continue
        try:
            value = json.loads(line)
            if not isinstance(value, dict):
                raise ValueError("a line is not a JSON object")
        except ValueError as exc:
            bad.append((name, number, "read", "", f"not a JSON object: {exc}", line))
            continue
        records.append(
            {k: None if v is None else (v if isinstance(v, str) else json.dumps(v)) for k, v in value.items()}
        )
        rows.append(number)
    columns = list(dict.fromkeys(k for r in records for k in r))
    frame = pl.DataFrame({c: [r.get(c) for r in records] for c in columns}, schema={c: pl.String for c in columns})
    frame = frame.with_columns(pl.Series(ROW, rows, dtype=pl.Int64))
    return RawTable(name, frame, encoding="utf-8"), quarantine_frame(bad)


def decode(data: bytes, where: Path | str) -> tuple[str, str, set[int]]:
    """Decode text by BOM, then UTF-8, then Windows-1252; returns the text, the encoding and the
    1-based line numbers (header included, so data row n is line n+1) that could not be decoded,
    which are blanked out of the text."""
    if data.startswith(b"\xef\xbb\xbf"):
        return _decode_lines(data[3:], "utf-8")
    if data.startswith(b"\xff\xfe"):
        return _decode_utf16(data[2:], "utf-16-le")
    if data.startswith(b"\xfe\xff"):
        return _decode_utf16(data[2:], "utf-16-be")
    utf16 = utf16_without_bom(data[:8192])
    if utf16:
        return _decode_utf16(data, utf16)
    if data[:8192].count(b"\x00") > max(2, len(data[:8192]) // 100):
        raise InputError(
            "this is a binary file, not a contact export.",
            path=where,
            fix="Pass a CSV, XLSX, Parquet, JSON Lines or ZIP export of your contacts.",
        )
    try:
        return data.decode("utf-8"), "utf-8", set()
    except UnicodeDecodeError:
        pass
    # Mostly valid UTF-8 with a few broken rows, or a whole file in Windows-1252?
    # Bytes of a Windows-1252 file almost never form valid multi-byte UTF-8, so lines that do are
    # evidence of UTF-8 with a few damaged rows.
    text, encoding, bad = _decode_lines(data, "utf-8")
    good_multibyte = sum(
        1 for number, line in enumerate(text.splitlines(), start=1) if number not in bad and not line.isascii()
    )
    if good_multibyte and good_multibyte >= len(bad):
        return text, encoding, bad
    return _decode_lines(data, "cp1252")


def utf16_without_bom(sample: bytes) -> str | None:
    """``utf-16-le`` or ``utf-16-be`` when the bytes look like UTF-16 text written without a BOM:
    text in Latin letters has a zero in every other byte, always on the same side."""
    sample = sample[: len(sample) // 2 * 2]
    pairs = len(sample) // 2
    if pairs < 4:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if odd > 0.3 * pairs and even < 0.05 * pairs:
        return "utf-16-le"
    if even > 0.3 * pairs and odd < 0.05 * pairs:
        return "utf-16-be"
    return None


def _decode_utf16(data: bytes, encoding: str) -> tuple[str, str, set[int]]:
    """Decode UTF-16; lines that cannot be decoded (a cut-off tail, a lone surrogate) are marked bad
    so that their rows go to quarantine like those of any other encoding."""
    try:
        return data.decode(encoding), encoding, set()
    except UnicodeDecodeError:
        pass
    text = data.decode(encoding, errors="replace")
    lines = io.StringIO(text, newline="").readlines()
    bad = {n for n, line in enumerate(lines, start=1) if "\ufffd" in line}
    return text, encoding, bad


def _decode_lines(data: bytes, encoding: str) -> tuple[str, str, set[int]]:
    try:
        return data.decode(encoding), encoding, set()
    except UnicodeDecodeError:
        pass
    lines = data.splitlines(keepends=True)
    out: list[str] = []
    bad: set[int] = set()
    for number, line in enumerate(lines, start=1):
        try:
            out.append(line.decode(encoding))
        except UnicodeDecodeError:
            bad.add(number)
            out.append(line.decode(encoding, errors="replace"))
    return "".join(out), encoding, bad


def sniff_delimiter(lines: list[str]) -> str:
    """The delimiter that splits the header and the next lines most consistently into most fields."""
    sample = [line for line in lines[:50] if line.strip()]
    if not sample:
        return ","
    best, best_score = ",", (-1, -1)
    for delimiter in DELIMITERS:
        counts = [len(next(csv.reader([line], delimiter=delimiter), [])) for line in sample]
        header = counts[0]
        agree = sum(1 for c in counts if c == header)
        score = (agree if header > 1 else 0, header)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def parse_delimited(
    name: str, text: str, bad_lines: set[int] | None = None, nul_lines: set[int] | None = None
) -> tuple[RawTable, pl.DataFrame]:
    """Parse delimited text. Rows whose field count differs from the header's, that hold
    undecodable bytes, or that open a quote never closed go to quarantine; the next row is read
    from the following physical line, so one broken quote does not swallow the rest. Rows on
    ``nul_lines`` (NUL bytes removed) are listed in ``nul_rows``.

    The fast path splits lines and fields with polars; only lines holding a quote (and the lines a
    quoted field spans) go through the ``csv`` module, one record at a time, with the same rules as
    ``parse_careful``, which reads a file whose lines end in a bare carriage return."""
    bare_cr = "\r" in text and text.count("\r") != text.count("\r\n")
    if bare_cr:
        return parse_careful(name, text, bad_lines, nul_lines)
    return _parse_fast(name, text, bad_lines or set(), nul_lines or set())


def split_lines(text: str) -> pl.Series:
    """The lines of ``text``, split at every ``\n`` (a last line break ends the last line), as they are:
    a carriage return stays where it is."""
    if "\r" in text or "\x1f" in text:
        # Python splits the text in about half the time polars' split of one long string takes.
        lines = pl.Series("line", text.split("\n"), dtype=pl.String)
        return lines.head(-1) if text.endswith("\n") or not text else lines  # no piece after the last break
    # Polars' CSV reader, with a separator the text does not hold and no quoting, reads each line as one
    # field in a third of Python's time; it would take a carriage return before a line break away.
    read = pl.read_csv(text.encode(), has_header=False, separator="\x1f", quote_char=None, schema={"line": pl.String})
    return read.to_series().fill_null("")  # an empty line reads as null


def _parse_fast(name: str, text: str, bad_lines: set[int], nul_lines: set[int]) -> tuple[RawTable, pl.DataFrame]:
    lines = split_lines(text)
    if lines.len() == 0:
        return RawTable(name, pl.DataFrame({ROW: []}, schema={ROW: pl.Int64})), quarantine_frame([])
    head = [f"{line}\n" for line in lines.head(50).to_list()]
    delimiter = sniff_delimiter(head)
    tail = [f"{line}\n" for line in lines.tail(min(1000, lines.len() - 1)).to_list()] if lines.len() > 1 else []
    footer = _report_footer_length([head[0], *tail], delimiter)
    header = next(csv.reader([head[0]], delimiter=delimiter))
    header = _unique([h.strip() or f"column_{i + 1}" for i, h in enumerate(header)])
    width = len(header)
    body = lines.slice(1, lines.len() - 1 - footer)
    del lines
    # Line i of the body is physical line i + 2. A line with a quote, or a carriage return anywhere
    # but at its end, is read by the csv module; the rest are split here.
    frame = pl.DataFrame({"line": body}).with_row_index("i").with_columns(pl.col("i").cast(pl.Int64))
    content = pl.col("line").str.strip_suffix("\r")
    complex_line = pl.col("line").str.contains('"', literal=True) | content.str.contains("\r", literal=True)
    # (Lazily, collected by the streaming engine, which spreads one chunk's rows over the cores.)
    starts = frame.lazy().filter(complex_line).select("i").collect(engine="streaming")["i"].to_list()
    quoted: list[tuple[int, list[str], str, str, int]] = []  # (start, record, error, raw, spanned)
    consumed: list[int] = []
    cursor = 0
    for start in starts:
        if start < cursor:
            continue  # inside a record that began on an earlier line
        window = [f"{line}\n" for line in body.slice(start, MAX_LINES_PER_RECORD + 1).to_list()]
        record, error, spanned = _read_record(window, delimiter, start, bad_lines, width)
        raw = "".join(window[:spanned]).rstrip("\r\n")
        if _swallowed(error, spanned):  # quarantine only this line, reread the rest
            error, raw, spanned = UNCLOSED_QUOTE, window[0].rstrip("\r\n"), 1
        quoted.append((start, record, error, raw, spanned))
        consumed.extend(range(start, start + spanned))
        cursor = start + spanned
    taken = pl.Series("i", consumed, dtype=pl.Int64)
    # One text column per line: without carriage returns in the file the line is its content.
    has_cr = "\r" in text
    simple = frame.filter(~pl.col("i").is_in(taken.implode())).select(
        "i", (content if has_cr else pl.col("line")).alias("content")
    )
    del frame, body
    count = pl.col("content").str.count_matches(delimiter, literal=True) + 1
    simple = (
        simple.lazy()
        .with_columns(
            pl.when(pl.col("i").is_in(pl.Series([n - 2 for n in bad_lines], dtype=pl.Int64).implode()))
            .then(pl.lit(UNDECODABLE))
            .when(pl.col("content") == "")
            .then(pl.lit(EMPTY_LINE))
            .when(count != width)
            .then(pl.format("{} fields where the header has {}", count, pl.lit(width)))
            .alias("error")
        )
        .collect(engine="streaming")
    )
    # Row numbers count records in order: simple lines and the first lines of quoted records.
    numbers = (
        pl.concat([simple.select("i"), pl.DataFrame({"i": [q[0] for q in quoted]}, schema={"i": pl.Int64})])
        .sort("i")
        .with_row_index(ROW, offset=1)
        .with_columns(pl.col(ROW).cast(pl.Int64))
    )
    simple = simple.join(numbers, on="i", how="left", maintain_order="left")
    split = pl.col("content").str.split_exact(delimiter, width - 1).struct.rename_fields(header)
    good_simple = (
        simple.lazy()
        .filter(pl.col("error").is_null())
        .select("i", ROW, split.alias("_fields"))
        .unnest("_fields")
        .collect(engine="streaming")
    )
    row_of = dict(zip(numbers["i"].to_list(), numbers[ROW].to_list(), strict=True)) if quoted else {}
    good_quoted = [(q[0], row_of[q[0]], *q[1]) for q in quoted if not q[2]]
    schema = {"i": pl.Int64, ROW: pl.Int64, **{h: pl.String for h in header}}
    good = (
        pl.concat([good_simple, pl.DataFrame(good_quoted, schema=schema, orient="row")], how="vertical").sort(ROW)
        if good_quoted
        else good_simple  # already in row order
    )
    spans = {q[0]: q[4] for q in quoted}
    nul_rows = (
        [
            r
            for i, r in good.select("i", ROW).iter_rows()
            if any(n in nul_lines for n in range(i + 2, i + 2 + spans.get(i, 1)))
        ]
        if nul_lines
        else []
    )
    bad = [
        (name, r, "read", "", e, raw)
        for r, e, raw in simple.filter(pl.col("error").is_not_null())
        .select(ROW, "error", pl.col("content").str.strip_chars_end("\r\n"))
        .iter_rows()
    ]
    bad += [(name, row_of[q[0]], "read", "", q[2], q[3]) for q in quoted if q[2]]
    bad.sort(key=lambda b: b[1])
    out = good.drop("i")
    return RawTable(name, out.select(*header, ROW), delimiter=delimiter, nul_rows=nul_rows), quarantine_frame(bad)


def _read_record(
    window: list[str], delimiter: str, start: int, bad_lines: set[int], width: int
) -> tuple[list[str], str, int]:
    """One record read by the csv module from its first line on: ``(record, error, lines spanned)``,
    judged as ``parse_careful`` judges it."""
    reader = csv.reader(iter(window), delimiter=delimiter, strict=True)
    try:
        record, error = next(reader), ""
    except StopIteration:
        return [], EMPTY_LINE, 1
    except csv.Error as exc:
        record, error = [], f"unreadable CSV: {exc}"
    spanned = max(reader.line_num, 1)
    return record, error or _record_error(record, start + 2, spanned, bad_lines, width), spanned


def _swallowed(error: str, spanned: int) -> bool:
    """Whether a record that failed over several lines is a quote that swallowed the lines after its first."""
    return spanned > 1 and error.startswith(("unreadable", UNCLOSED_QUOTE))


def _record_error(record: list[str], first_line: int, spanned: int, bad_lines: set[int], width: int) -> str:
    """What is wrong with a record the csv module read from ``spanned`` physical lines starting at line
    ``first_line`` (1-based), or "" when nothing is."""
    if any(n in bad_lines for n in range(first_line, first_line + spanned)):
        return UNDECODABLE
    if not record:
        return EMPTY_LINE
    if spanned > MAX_LINES_PER_RECORD:
        return UNCLOSED_QUOTE
    if len(record) != width:
        return f"{len(record)} fields where the header has {width}"
    return ""


def parse_careful(
    name: str, text: str, bad_lines: set[int] | None = None, nul_lines: set[int] | None = None
) -> tuple[RawTable, pl.DataFrame]:
    """``parse_delimited`` record by record with the ``csv`` module: the reference the fast path
    keeps to, and the reader for files whose lines end in a bare carriage return."""
    bad_lines = bad_lines or set()
    nul_lines = nul_lines or set()
    nul_rows: list[int] = []
    lines = io.StringIO(text, newline="").readlines()
    if not lines:
        return RawTable(name, pl.DataFrame({ROW: []}, schema={ROW: pl.Int64})), quarantine_frame([])
    delimiter = sniff_delimiter(lines)
    lines = lines[: len(lines) - _report_footer_length(lines, delimiter)]
    header = next(csv.reader([lines[0]], delimiter=delimiter))
    header = [h.strip() or f"column_{i + 1}" for i, h in enumerate(header)]
    header = _unique(header)
    width = len(header)

    good_rows: list[list[str]] = []
    good_numbers: list[int] = []
    bad: list[tuple[str, int, str, str, str, str]] = []
    cursor = 1  # index into lines of the next physical line to parse
    row_number = 0
    total = len(lines)

    def feed() -> Iterator[str]:
        nonlocal cursor
        while cursor < total:
            line = lines[cursor]
            cursor += 1
            yield line

    reader = csv.reader(feed(), delimiter=delimiter, strict=True)
    while cursor < total:
        start = cursor
        try:
            record = next(reader)
            error = ""
        except StopIteration:
            break
        except csv.Error as exc:
            record, error = [], f"unreadable CSV: {exc}"
        row_number += 1
        spanned = cursor - start
        error = error or _record_error(record, start + 1, spanned, bad_lines, width)
        if not error:
            good_rows.append(record)
            good_numbers.append(row_number)
            if nul_lines and any(n in nul_lines for n in range(start + 1, cursor + 1)):
                nul_rows.append(row_number)
            continue
        raw = "".join(lines[start:cursor]).rstrip("\r\n")
        if _swallowed(error, spanned):  # quarantine only this line, reread the rest
            cursor = start + 1
            reader = csv.reader(feed(), delimiter=delimiter, strict=True)
            error = UNCLOSED_QUOTE
            raw = lines[start].rstrip("\r\n")
        bad.append((name, row_number, "read", "", error, raw))

    columns = list(zip(*good_rows, strict=True)) if good_rows else [()] * width
    frame = pl.DataFrame({h: pl.Series(h, list(col), dtype=pl.String) for h, col in zip(header, columns, strict=True)})
    frame = frame.with_columns(pl.Series(ROW, good_numbers, dtype=pl.Int64))
    return RawTable(name, frame, delimiter=delimiter, nul_rows=nul_rows), quarantine_frame(bad)


# Salesforce report exports end with a blank line and one-cell lines: the report name, a copyright,
# "Confidential Information - Do Not Distribute", "Generated By: <user> <date>" and the company.
_FOOTER_MARK = re.compile(r"salesforce\.com|confidential information|generated by", re.IGNORECASE)


def _report_footer_length(lines: list[str], delimiter: str) -> int:
    """How many trailing lines form a report footer (blank line first); 0 when there is none. Only a
    footer that names itself as one is dropped; anything else stays and is quarantined if ragged."""
    count, marked = 0, False
    for line in reversed(lines[1:]):
        text = line.strip()
        if text in ("", '""'):
            if marked:
                count += 1
                while count < len(lines) - 1 and lines[-count - 1].strip() in ("", '""'):
                    count += 1
                return count
            count += 1
            continue
        if len(next(csv.reader([text], delimiter=delimiter), [])) > 1:
            return 0
        marked = marked or bool(_FOOTER_MARK.search(text))
        count += 1
    return 0


def _unique(header: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for h in header:
        if h in seen:
            seen[h] += 1
            out.append(f"{h}_{seen[h]}")
        else:
            seen[h] = 1
            out.append(h)
    return out
