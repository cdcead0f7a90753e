"""Through Prefect: the flow cleanse-contacts and the cleanse command line (one harness per session)."""

import datetime as dt
import json
from pathlib import Path

import pytest

from cleansing.pipeline import STAGES
from flows.cli import main

from .conftest import ROOT

pytestmark = pytest.mark.flow


def test_flow_runs_one_task_per_stage_in_pipeline_order(prefect_harness: None, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.cleanse import cleanse_contacts

    state = cleanse_contacts(
        as_of=dt.date(2026, 11, 2),
        out_dir=str(tmp_path / "out"),
        state=str(tmp_path / "s.sqlite"),
        check_domains=False,
        return_state=True,
    )
    assert state.is_completed() and state.name == "Completed"
    run_dir = Path(state.result())
    assert (run_dir / "manifest.json").is_file()
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    ordered = sorted(runs, key=lambda r: r.start_time or r.expected_start_time)
    assert [r.name.rsplit("-", 1)[0] for r in ordered] == [name for name, _ in STAGES]
    assert all(r.state is not None and r.state.is_completed() for r in ordered)


def test_cleanse_run_prints_the_run_folder_last_and_exits_0(
    prefect_harness: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            str(ROOT / "data" / "samples" / "hubspot_contacts.csv"),
            "--as-of",
            "2026-11-02",
            "--out",
            str(tmp_path / "out"),
            "--state",
            str(tmp_path / "s.sqlite"),
            "--no-mx",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0
    run_dir = Path(out.strip().splitlines()[-1])
    assert run_dir.parent == tmp_path / "out" and (run_dir / "report.html").is_file()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["presets"] == {"hubspot_contacts.csv": "hubspot"}
    for stage, _ in STAGES:
        assert stage in err
    assert "@" not in err  # progress shows counts, never addresses


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--as-of", "29/11/2026"], "is not a date", id="bad-as-of"),
        pytest.param(["--policy", "{tmp}/nope.toml"], "policy file does not exist", id="missing-policy"),
        pytest.param(["{tmp}/nope.csv"], "does not exist", id="missing-source"),
        pytest.param(["{tmp}/empty.csv"], "zero bytes", id="empty-source"),
        pytest.param(["{tmp}/names.csv"], "no column holds email addresses", id="no-email-column"),
    ],
)
def test_unusable_input_exits_2_with_one_paragraph_and_publishes_nothing(
    prefect_harness: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "names.csv").write_text("Name;Telefon\nAnna;070\n")
    argv = [
        "run",
        *[a.format(tmp=tmp_path) for a in args],
        "--out",
        str(tmp_path / "out"),
        "--state",
        str(tmp_path / "s.sqlite"),
    ]
    code = main(argv)
    _, err = capsys.readouterr()
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and err.splitlines()[-1] == errors[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_run_with_unhealthy_dns_ends_in_a_warning_state(prefect_harness: None, tmp_path: Path) -> None:
    from flows.cleanse import cleanse_contacts

    from .dns_server import DnsServer

    source = tmp_path / "c.csv"
    source.write_text("email,consent date\nanna@example.se,2026-10-01\n")
    with DnsServer("example.se. 3600 IN MX 10 mail.example.se.\n", lie=True) as liar:
        state = cleanse_contacts(
            sources=[str(source)],
            as_of=dt.date(2026, 11, 29),
            out_dir=str(tmp_path / "out"),
            state=str(tmp_path / "s.sqlite"),
            dns_servers=[liar.address],
            return_state=True,
        )
    assert state.is_completed() and state.name == "Warning"
    assert "DNS is unhealthy" in (state.message or "")
    assert Path(state.result()).is_dir()


def test_a_run_with_many_unreadable_rows_ends_in_a_warning_state(prefect_harness: None, tmp_path: Path) -> None:
    from flows.cleanse import cleanse_contacts

    source = tmp_path / "c.csv"
    source.write_text("email,consent date\nanna@example.se,2026-10-01\nbo@example.se,2026-10-01,extra\n")
    state = cleanse_contacts(
        sources=[str(source)],
        as_of=dt.date(2026, 11, 29),
        out_dir=str(tmp_path / "out"),
        state=str(tmp_path / "s.sqlite"),
        check_domains=False,
        return_state=True,
    )
    assert state.is_completed() and state.name == "Warning"
    assert "50.0% of the rows were quarantined" in (state.message or "")


def _task_runs(flow_run_id: object) -> dict[str, object]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {r.name.rsplit("-", 1)[0]: r for r in runs}


def test_a_resolver_that_is_down_at_first_makes_the_domains_stage_retry(prefect_harness: None, tmp_path: Path) -> None:
    import threading

    from flows.cleanse import cleanse_contacts

    from .dns_server import DnsServer
    from .test_domains import ZONE

    source = tmp_path / "c.csv"
    source.write_text("email,consent,consent date\nanna@mx.zone.se,yes,2026-10-01\nbo@nullmx.zone.se,yes,2026-10-01\n")
    server = DnsServer(ZONE)  # bound, but answering nothing until its thread starts
    timer = threading.Timer(9.0, server._thread.start)  # after the first attempt's lookups have timed out
    timer.start()
    try:
        state = cleanse_contacts(
            sources=[str(source)],
            as_of=dt.date(2026, 11, 29),
            out_dir=str(tmp_path / "out"),
            state=str(tmp_path / "s.sqlite"),
            dns_servers=[server.address],
            return_state=True,
        )
    finally:
        timer.join()
        server.__exit__()
    assert state.is_completed() and state.name == "Completed"
    domains = _task_runs(state.state_details.flow_run_id)["domains"]
    assert domains.run_count == 2  # type: ignore[attr-defined]
    manifest = json.loads((Path(state.result()) / "manifest.json").read_text())
    assert manifest["dns"]["healthy"] and manifest["reasons"] == {"CONSENT_VALID": 1, "NO_MAIL_DOMAIN": 1}


def test_a_failing_flow_keeps_personal_data_out_of_its_state_and_logs(prefect_harness: None, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    from flows.cleanse import cleanse_contacts

    source = tmp_path / "c.csv"
    source.write_text("Anna,Berg,anna.berg@example.se,+46 70 123 45 67\nBo,Ek,bo@example.se,0701234567\n")
    state = cleanse_contacts(
        sources=[str(source)],
        out_dir=str(tmp_path / "out"),
        state=str(tmp_path / "s.sqlite"),
        check_domains=False,
        return_state=True,
    )
    assert state.is_failed()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
        stored = [client.read_flow_run(state.state_details.flow_run_id).state]
    stored += [r.state for r in _task_runs(state.state_details.flow_run_id).values()]  # type: ignore[attr-defined]
    texts = [state.message or "", *(s.message or "" for s in stored if s), *(log.message for log in logs)]
    assert any("looks like a contact" in t for t in texts)
    for personal in ("anna.berg", "@example.se", "123 45", "0701234567"):
        assert not any(personal in t for t in texts), personal
    # No result of the failed run was persisted where Prefect keeps results.
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH

    storage = Path(PREFECT_LOCAL_STORAGE_PATH.value())
    stored_files = [f for f in storage.rglob("*") if f.is_file()] if storage.exists() else []
    assert not [f for f in stored_files if b"anna.berg" in f.read_bytes()]


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.parametrize(("signum", "to_group", "code"), [(15, False, 143), (2, True, 130)], ids=["sigterm", "ctrl-c"])
def test_a_signal_cancels_the_run_stops_its_server_and_publishes_nothing(
    tmp_path: Path, signum: int, to_group: bool, code: int
) -> None:
    import os
    import socket
    import sqlite3
    import subprocess
    import sys
    import time

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a resolver that never answers: a slow run
    silent.bind(("127.0.0.1", 0))
    source = tmp_path / "c.csv"
    source.write_text("email,consent,consent date\nanna@mx.zone.se,yes,2026-10-01\n")
    home = tmp_path / "prefect-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")} | {"PREFECT_HOME": str(home)}
    err = (tmp_path / "stderr.txt").open("w+")
    command = [sys.executable, "-m", "flows.cli", "run", str(source), "--out", str(tmp_path / "out")]
    command += ["--state", str(tmp_path / "s.sqlite"), "--dns-server", f"127.0.0.1:{silent.getsockname()[1]}"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "validate" not in Path(err.name).read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        servers = _children(process.pid)
        assert servers, "the run started no server of its own"
        if to_group:
            os.killpg(process.pid, signum)
        else:
            os.kill(process.pid, signum)
        assert process.wait(timeout=60) == code
    finally:
        if process.poll() is None:
            process.kill()
        silent.close()
    lines = Path(err.name).read_text().strip().splitlines()
    assert lines[-1].startswith("stopped by SIG") and "nothing was published" in lines[-1]
    assert not [line for line in lines if "rror" in line]
    assert not any(Path(f"/proc/{pid}").exists() for pid in servers)  # the server it started is gone
    with sqlite3.connect(home / "prefect.db") as db:
        assert db.execute("SELECT state_type FROM flow_run").fetchall() == [("CANCELLED",)]
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == []
