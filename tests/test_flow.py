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
