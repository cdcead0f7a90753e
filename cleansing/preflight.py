"""The checks that run before anything starts, in about a second whatever the input: the request, the
configuration, the output folder and the inputs' headers. Imports only what these need, so that the
command line answers a bad request without loading the pipeline or Prefect."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import ConfigError, InputError
from .mapping import load_mapping, map_table
from .policy import LoadedPolicy, load_policy
from .read import archive_members, expand_sources, read_bytes, utf16_without_bom
from .state import DEFAULT_STATE, StateStore

DEFAULT_OUT = Path("out")
SAMPLE_DIR = Path(str(resources.files("cleansing.data").joinpath("samples")))


@dataclass(frozen=True)
class RunRequest:
    """What the user asked for; every field has the command line's default."""

    sources: tuple[str, ...] = ()
    preset: str = "auto"
    mapping: str | None = None
    policy: str | None = None
    as_of: dt.date | None = None
    out_dir: str = str(DEFAULT_OUT)
    state: str = str(DEFAULT_STATE)
    check_mx: bool = True
    dns_servers: tuple[str, ...] = ()
    # Point OUT/latest at this run even when it reads other sources than the run latest points at.
    set_latest: bool = False
    # A Dask cluster for the partition-local stages: ``local:N`` (N worker processes on this machine) or the
    # scheduler's address (``tcp://HOST:8786``); None runs every stage in this process.
    cluster: str | None = None
    partition_rows: int | None = None  # rows per partition on a cluster (None: from the input's size)

    def sources_key(self) -> str:
        """Which set of sources this run reads: the same for every run over the same files and folders,
        however they are written or ordered. ``latest`` and the comparison with the previous run follow it."""
        paths = sorted({str(Path(s).resolve()) for s in self.sources} or {str(SAMPLE_DIR.resolve())})
        return hashlib.sha256("\n".join(paths).encode()).hexdigest()[:16]


def parse_as_of(text: str | None) -> dt.date:
    if text is None or text == "":
        return dt.datetime.now(dt.UTC).date()
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(
            f"--as-of {text!r} is not a date.", fix="Write it as YYYY-MM-DD, e.g. --as-of 2026-11-29."
        ) from exc


LOCAL_CLUSTER = re.compile(r"local:([1-9][0-9]{0,2})")
CLUSTER_ADDRESS = re.compile(r"(tcp|tls)://[^\s/:]+(:[0-9]{1,5})?")


def local_workers(cluster: str) -> int | None:
    """N for ``local:N``; None for the address of a running cluster."""
    match = LOCAL_CLUSTER.fullmatch(cluster)
    return int(match.group(1)) if match else None


def check_cluster(cluster: str | None, partition_rows: int | None) -> None:
    if cluster is not None and not (LOCAL_CLUSTER.fullmatch(cluster) or CLUSTER_ADDRESS.fullmatch(cluster)):
        raise ConfigError(
            f"--cluster {cluster!r} is neither local:N nor a Dask scheduler's address.",
            fix="Use local:2 for two worker processes on this machine, or tcp://HOST:8786 for a running cluster.",
        )
    if partition_rows is not None:
        if cluster is None:
            raise ConfigError(
                "--partition-rows applies to a run on a cluster only.", fix="Add --cluster local:N, or leave it out."
            )
        if partition_rows < 1:
            raise ConfigError(
                f"--partition-rows {partition_rows} is not a number of rows.",
                fix="Give a positive number, e.g. 250000.",
            )


def check_config(request: RunRequest) -> tuple[LoadedPolicy, dt.date, StateStore]:
    """The policy, the mapping, the cluster, the as-of date and the state database (a damaged one is exit 2)."""
    check_cluster(request.cluster, request.partition_rows)
    policy = load_policy(request.policy)
    load_mapping(request.mapping)
    as_of = request.as_of or dt.datetime.now(dt.UTC).date()
    return policy, as_of, StateStore(request.state)


HEAD_BYTES = 64 << 10


def check_output(out: Path, *, file: bool = False) -> None:
    """The output place is usable: a folder (or, with ``file``, a file's folder) that can be created and
    written. Checked before any work by trying it, as permissions alone do not tell (root, read-only
    mounts)."""
    folder = out.parent if file else out
    if file and out.is_dir():
        raise ConfigError("--out is a folder; it must name a file.", path=out, fix="Name a .csv or .parquet file.")
    if not file and out.exists() and not out.is_dir():
        raise ConfigError(
            "--out is a file, not a folder.", path=out, fix="Pass a folder for the run folders, or move the file away."
        )
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"{existing} is a file, so the output folder cannot be made there.",
            path=folder,
            fix="Pass --out a folder you can write to.",
        )
    try:
        # Nothing is created: a probe in the nearest existing folder shows the run can create the rest.
        probe = existing / f".cleanse-probe-{os.getpid()}"
        probe.mkdir(mode=0o700)
        probe.rmdir()
    except OSError as exc:
        raise ConfigError(
            f"the output folder cannot be written ({exc.strerror or exc}).",
            path=folder,
            fix="Pass --out a folder you can write to.",
        ) from exc


def check_inputs(request: RunRequest) -> list[str]:
    """The cheap checks before the flow starts, in about a second whatever the input size: every source
    exists, files are found, ZIP members are within the limits, and each text file's header maps to an
    email column with no objection left unread. Reads only the first kilobytes of each file. Returns the
    warnings (skipped links)."""

    sources = list(request.sources) or [str(SAMPLE_DIR)]
    warnings: list[str] = []
    files = list(expand_sources(sources, warnings))
    if not files:
        raise InputError(
            "no input files were found.",
            path=", ".join(sources),
            fix="Pass one or more export files or a folder that contains them.",
        )
    user = load_mapping(request.mapping)
    for path, _parts, _depth in files:
        for member in archive_members(path):
            if member is not None or path.stat().st_size == 0:
                continue  # members are checked against the limits above; an empty file is reported by read
            head = _head(path)
            if head is None:
                continue
            table, _bad = read_bytes(path.name, head, display_path=path)
            if table.frame.columns == ["source_row"]:
                continue  # nothing but blank lines so far: read tells
            map_table(table, request.preset, user, where=str(path))
    return warnings


def _head(path: Path) -> bytes | None:
    """The first whole lines of a text file, or None for a file that is not delimited text."""
    suffix = path.suffix.lower()
    if suffix in {".xlsx", ".parquet", ".jsonl", ".ndjson"}:
        return None
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
        more = bool(handle.read(1))
    if head[:4] in (b"PK\x03\x04", b"PAR1"):
        return None
    if not more:
        return head
    without_bom = utf16_without_bom(head)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or without_bom is not None:
        big_endian = head.startswith(b"\xfe\xff") or without_bom == "utf-16-be"
        cut = head.rfind(b"\x00\n") + 2 if big_endian else head.rfind(b"\n\x00") + 2
    else:
        cut = head.rfind(b"\n") + 1
    return head[:cut] if cut > 1 else head
