"""Faults at publication: the run folder, ``latest``, the state database and the error agree."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cleansing.errors import CleansingError, ConfigError, TransientError, file_error, file_errors, full_disk_told
from cleansing.pipeline import STAGES, RunContext, RunRequest, prepare, run_pipeline, stage_write
from cleansing.state import StateStore
from cleansing.write import by_class, promote, stage_folder
from flows.cli import main

AS_OF = dt.date(2026, 11, 2)


def source(tmp: Path) -> Path:
    path = tmp / "c.csv"
    path.write_text(
        "email,consent,consent date,unsubscribed\n"
        "anna@example.se,yes,2026-01-01,2026-02-01\n"
        "bo@example.se,yes,2026-01-01,\n",
        encoding="utf-8",
    )
    return path


def ready_to_write(tmp: Path, timeout: float = 0.3) -> RunContext:
    request = RunRequest(
        sources=(str(source(tmp)),), as_of=AS_OF, out_dir=str(tmp / "out"), state=str(tmp / "s.sqlite"), check_mx=False
    )
    ctx = prepare(request)
    ctx.state = StateStore(request.state, timeout=timeout)
    for _name, stage in STAGES[:-1]:
        ctx = stage(ctx)
    return ctx


def story(tmp: Path) -> tuple[list[str], int, int, int]:
    """What the out folder and the state database say: visible entries, run records, suppression entries,
    records with a person id."""
    out = tmp / "out"
    names = sorted(p.name for p in out.iterdir()) if out.exists() else []
    store = StateStore(tmp / "s.sqlite")
    return names, len(store.runs()), store.suppression().height, store.persons().height


def test_a_locked_state_database_at_publication_publishes_nothing_and_says_so(tmp_path: Path) -> None:
    ctx = ready_to_write(tmp_path)
    holder = sqlite3.connect(tmp_path / "s.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(TransientError, match="locked by another process"):
            stage_write(ctx)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert story(tmp_path) == ([], 0, 0, 0)
    ctx = stage_write(ctx)  # the retry starts from the same inputs and publishes all of it
    assert story(tmp_path) == ([ctx.run_id, "latest"], 1, 1, 2)


def test_a_state_database_damaged_during_the_run_publishes_nothing(tmp_path: Path) -> None:
    ctx = ready_to_write(tmp_path)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp_path / 's.sqlite'}{suffix}").unlink(missing_ok=True)
    (tmp_path / "s.sqlite").write_bytes(b"this is not a database " * 400)
    with pytest.raises(ConfigError, match="damaged"):
        stage_write(ctx)
    assert list((tmp_path / "out").glob("*")) == []  # no folder, no temporary one, no latest


def test_a_damaged_state_database_is_exit_2_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "s.sqlite"
    state.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    code = main(["run", str(source(tmp_path)), "--state", str(state), "--out", str(tmp_path / "out"), "--no-mx"])
    err = capsys.readouterr().err
    assert code == 2
    assert "state database is damaged" in err and "Restore the file from a backup" in err
    assert not (tmp_path / "out").exists()


def test_an_undone_promotion_puts_latest_back_and_removes_the_folder(tmp_path: Path) -> None:
    first = run_pipeline(
        RunRequest(
            sources=(str(source(tmp_path)),),
            as_of=AS_OF,
            out_dir=str(tmp_path / "out"),
            state=str(tmp_path / "s.sqlite"),
            check_mx=False,
        )
    )
    ctx = ready_to_write(tmp_path)
    out = tmp_path / "out"
    stage_folder(
        out,
        ctx.run_id,
        {n: [lf] for n, lf in by_class(ctx.contacts).items()},
        ctx.read.quarantine,
        ctx.read.rows_in,
        lambda *_: None,
    )
    undo = promote(out, ctx.run_id)
    assert os.readlink(out / "latest") == ctx.run_id
    undo()
    assert os.readlink(out / "latest") == first.run_id
    assert sorted(p.name for p in out.iterdir()) == [first.run_id, "latest"]


def test_the_next_run_removes_temporary_folders_a_killed_run_left(tmp_path: Path) -> None:
    out = tmp_path / "out"
    killed, writing = out / ".tmp-20261101T020000Z-dead", out / ".tmp-20261101T020000Z-live"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    for folder, pid in ((killed, int(dead.stdout)), (writing, os.getpid())):
        folder.mkdir(parents=True, mode=0o700)
        (folder / ".writer").write_text(f"{socket.gethostname()} {pid}\n")
        (folder / "keep.csv").write_text("email\nanna@example.se\n")
    ctx = ready_to_write(tmp_path)
    stage_write(ctx)
    assert not killed.exists()
    assert writing.exists()  # its writer still runs
    assert sorted(p.name for p in out.iterdir()) == [writing.name, ctx.run_id, "latest"]


def test_two_processes_creating_the_hmac_key_at_once_end_with_one_key(tmp_path: Path) -> None:
    code = (
        "import sys; from cleansing.state import StateStore; s = StateStore(sys.argv[1]); print(s.hmac_key().decode())"
    )
    env = {k: v for k, v in os.environ.items() if k != "CLEANSE_HMAC_KEY"}
    for attempt in range(5):
        state = tmp_path / f"try{attempt}" / "s.sqlite"
        procs = [
            subprocess.Popen([sys.executable, "-c", code, str(state)], stdout=subprocess.PIPE, text=True, env=env)
            for _ in range(6)
        ]
        keys = {p.communicate()[0].strip() for p in procs}
        assert [p.returncode for p in procs] == [0] * 6
        assert keys == {(state.parent / "hmac.key").read_text().strip()} and len(keys.pop()) == 64


def test_connections_creating_one_state_database_at_once_all_open_it(tmp_path: Path) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    for attempt in range(30):
        path = tmp_path / f"try{attempt}.sqlite"
        start = threading.Barrier(6)

        def open_store(_: int, path: Path = path, start: threading.Barrier = start) -> int:
            start.wait()
            return StateStore(path, timeout=5).suppression().height

        with ThreadPoolExecutor(max_workers=6) as pool:
            assert list(pool.map(open_store, range(6))) == [0] * 6


def test_a_full_disk_while_writing_publishes_nothing_and_says_the_disk_is_full(
    tmp_path: Path, small_disk: Callable[[Path, str], Path]
) -> None:
    """Disks a page bigger each time, from one page to one that holds the run folder: the run fails in
    each of the writers in turn (Parquet, CSV, spreadsheet, report), then publishes."""
    ctx = ready_to_write(tmp_path)
    failed, published = [], None
    for pages in range(1, 60):
        out = small_disk(tmp_path / f"disk-{pages}", f"{pages * 4}k")
        ctx.request = dataclasses.replace(ctx.request, out_dir=str(out))
        try:
            done = stage_write(ctx)
        except CleansingError as exc:
            assert "the disk is full" in str(exc) and "Free space and run again" in str(exc), str(exc)
            assert str(out) in str(exc)
            assert list(out.iterdir()) == []  # no folder, no temporary one, no latest
            assert story(tmp_path)[1:] == (0, 0, 0)
            failed.append(pages)
            continue
        published = sorted(p.name for p in out.iterdir())
        assert published == [done.run_id, "latest"] and (out / done.run_id / "report.html").is_file()
        assert story(tmp_path)[1:] == (1, 1, 2)
        break
    assert published is not None and failed == list(range(1, len(failed) + 1)) and len(failed) > 10


def test_a_partition_task_that_fills_the_disk_says_the_disk_is_full_on_whichever_write_it_fails(
    tmp_path: Path, small_disk: Callable[[Path, str], Path]
) -> None:
    """Disks a page bigger each time, until one holds an input's raw partitions: polars loses the OS error
    when the disk fills up as it writes a file's footer ("Invalid thrift: transport error"), and the task's
    error reaches the run masked, without the error's chain; the run still tells a full disk."""
    from cleansing.partitions import read_input
    from cleansing.read import plan_inputs
    from flows.cleanse import masked_errors

    units, _ = plan_inputs([Path(__file__).parents[1] / "data" / "samples" / "hubspot_contacts.csv"])
    failed = []
    for pages in range(1, 80):
        out = small_disk(tmp_path / f"disk-{pages}", f"{pages * 4}k")
        work = out / "work"
        work.mkdir()
        try:
            with file_errors(out, "writing the run's partitions"), full_disk_told(work):
                with masked_errors():  # as the task on a worker raises it
                    read = read_input(units[0], 0, work, 60)
        except CleansingError as exc:
            assert f"{out}: the disk is full" in str(exc) and "Free space and run again" in str(exc), str(exc)
            failed.append(pages)
            continue
        assert read.rows_in > 600 and len(read.parts) > 10
        break
    assert failed == list(range(1, len(failed) + 1)) and len(failed) > 10


def test_an_error_that_is_not_the_disks_stays_what_it_is_on_a_disk_with_room(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not the disk"), full_disk_told(tmp_path):
        raise ValueError("not the disk")


# xlsxwriter's zip file tries to close again when collected, and fails again on the full disk.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_every_writers_full_disk_error_reads_as_a_full_disk(
    tmp_path: Path, small_disk: Callable[[Path, str], Path]
) -> None:
    import polars as pl
    import xlsxwriter  # type: ignore[import-untyped]

    disk = small_disk(tmp_path / "disk", "64k")
    frame = pl.DataFrame({"a": [os.urandom(15).hex() for _ in range(20_000)]})  # beyond compression

    def workbook(path: Path) -> None:
        book = xlsxwriter.Workbook(str(path))
        sheet = book.add_worksheet()
        for i, value in enumerate(frame["a"]):
            sheet.write_string(i, 0, value)
        book.close()

    writers: dict[str, Callable[[Path], object]] = {
        "write_parquet": frame.write_parquet,
        "sink_parquet": frame.lazy().sink_parquet,
        "write_csv": frame.write_csv,
        "sink_csv": frame.lazy().sink_csv,
        "xlsxwriter": workbook,
        "write_text": lambda path: path.write_text("x" * 200_000),
    }
    for name, write in writers.items():
        with pytest.raises(Exception) as caught:
            write(disk / name)
        error = file_error(caught.value, disk, "writing the run folder")
        assert "the disk is full" in str(error), f"{name}: {caught.value!r} read as {error}"
        for leftover in disk.iterdir():
            leftover.unlink()
