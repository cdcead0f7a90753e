"""``cleanse serve`` against a real Prefect server on loopback: the nightly deployment, its schedule,
an ad-hoc run with other parameters, its artifacts, and no personal data in what Prefect keeps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cleansing.read import read_sources

from .conftest import ROOT, SAMPLES
from .conftest import wait_until as _wait

pytestmark = pytest.mark.flow


def test_serve_registers_the_nightly_deployment_and_runs_ad_hoc_runs(
    prefect_server: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url, env = prefect_server
    with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:
        before = next((d.updated for d in client.read_deployments() if d.name == "nightly"), None)
    serve_log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "serve",
            str(SAMPLES),
            "--out",
            str(tmp_path / "nightly"),
            "--state",
            str(tmp_path / "s.sqlite"),
            "--no-mx",
            "--cron",
            "30 3 * * *",
        ],
        cwd=ROOT,
        env=env,
        stdout=serve_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:
            deployments: list[object] = []

            def registered() -> bool:  # by this serve (another test may have registered it before)
                deployments[:] = [d for d in client.read_deployments() if d.name == "nightly" and d.updated != before]
                return bool(deployments)

            _wait(registered, 90, "the deployment")
            deployment = client.read_deployment_by_name("cleanse-contacts/nightly")
            (schedule,) = deployment.schedules
            assert schedule.schedule.cron == "30 3 * * *"  # type: ignore[union-attr]
            assert schedule.schedule.timezone == "Europe/Stockholm"  # type: ignore[union-attr]
            assert deployment.parameters["sources"] == [str(SAMPLES)]
            form = deployment.parameter_openapi_schema["properties"]
            assert {"sources", "preset", "policy", "as_of", "out_dir", "check_domains"} <= set(form)
            assert form["as_of"]["anyOf"][0]["format"] == "date"

            source = SAMPLES / "kunder_sv.csv"
            run = client.create_flow_run_from_deployment(
                deployment.id,
                parameters={"sources": [str(source)], "as_of": "2026-11-02", "out_dir": str(tmp_path / "adhoc")},
            )
            _wait(lambda: client.read_flow_run(run.id).state.is_final(), 120, "the ad-hoc run")  # type: ignore[union-attr]
            final = client.read_flow_run(run.id).state
            assert final is not None and final.is_completed()
            run_dir = tmp_path / "adhoc" / "latest"
            manifest = json.loads((run_dir / "manifest.json").read_text())
            assert manifest["as_of"] == "2026-11-02" and manifest["presets"] == {"kunder_sv.csv": "generic"}

            artifacts = {a.key: a for a in client.read_artifacts() if a.flow_run_id == run.id}
            assert {"cleanse-summary", "cleanse-reasons"} <= set(artifacts)
            summary = str(artifacts["cleanse-summary"].data)
            assert "| keep |" in summary and "Domain check" in summary and str(run_dir.resolve().parent) in summary
            assert "file://" not in summary and "cleanse-report" not in artifacts
            logs = client.read_logs()
            prefect_text = "\n".join([*(str(a.data) for a in artifacts.values()), *(log.message for log in logs)])
    finally:
        os.killpg(serve.pid, signal.SIGINT)
        serve.wait(timeout=30)
        serve_log.close()

    read = read_sources([source]).tables[0].frame
    personal = {v for c in ("E-post", "Förnamn", "Efternamn", "Telefon") for v in read[c].drop_nulls() if len(v) > 3}
    personal -= {"ja", "nej"}
    for name, text in [
        ("Prefect logs and artifacts", prefect_text),
        ("serve output", (tmp_path / "serve.log").read_text()),
        ("report.html", (run_dir / "report.html").read_text()),
        ("report.json", (run_dir / "report.json").read_text()),
    ]:
        leaked = sorted(v for v in personal if v in text)
        assert leaked == [], f"{name} holds personal data: {leaked[:5]}"


def _start_serve(tmp_path: Path, env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "serve", str(SAMPLES), "--out", str(tmp_path / "out")]
        + ["--state", str(tmp_path / "s.sqlite"), "--no-mx", "--cron", "30 3 * * *"],
        cwd=ROOT,
        env=env,
        stdout=(tmp_path / log_name).open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_stopping_serve_leaves_the_schedule_and_a_restart_keeps_the_operators_pause(
    prefect_server: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateName,
    )
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url, env = prefect_server
    with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:

        def scheduled(deployment_id: object) -> int:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),  # type: ignore[list-item]
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Scheduled"]))
                ),
            )
            return len(runs)

        def updated() -> object:
            return next((d.updated for d in client.read_deployments() if d.name == "nightly"), None)

        first = updated()
        serve = _start_serve(tmp_path, env, "serve-1.log")
        try:
            _wait(lambda: updated() not in (None, first), 90, "serve to register the deployment")
            deployment = client.read_deployment_by_name("cleanse-contacts/nightly")
            assert deployment.global_concurrency_limit is not None and deployment.global_concurrency_limit.limit == 1
            _wait(lambda: scheduled(deployment.id) > 0, 60, "the scheduler to plan the nightlies")
        finally:
            os.killpg(serve.pid, signal.SIGTERM)
            serve.wait(timeout=30)
        deployment = client.read_deployment_by_name("cleanse-contacts/nightly")
        assert deployment.paused is False and scheduled(deployment.id) > 0  # nothing deleted: missed runs go Late

        client.pause_deployment(deployment.id)
        before = updated()
        serve = _start_serve(tmp_path, env, "serve-2.log")
        try:
            _wait(lambda: updated() != before, 90, "serve to register again")
            assert client.read_deployment_by_name("cleanse-contacts/nightly").paused is True
        finally:
            os.killpg(serve.pid, signal.SIGTERM)
            serve.wait(timeout=30)
