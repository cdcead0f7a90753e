"""The production path on a real Prefect server: prefect.yaml deployed to a process work pool and run by
a worker, and `cleanse alerts` telling a webhook on loopback about every bad run: Failed, Crashed,
Late, and a run that ends in Warning."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .conftest import ROOT, SAMPLES, wait_until

pytestmark = pytest.mark.flow
ARRIVES_WITHIN_S = 60


class Receiver:
    """A webhook on loopback that keeps what was posted to it, with the time it arrived."""

    def __init__(self) -> None:
        self.posts: list[tuple[float, dict[str, str]]] = []
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server interface
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                posts.append((time.time(), json.loads(body or b"{}")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def arrived(self, word: str, since: float) -> float | None:
        """Seconds from ``since`` to the first post after it whose subject names ``word``."""
        for at, post in self.posts:
            if at >= since and word in post.get("subject", ""):
                return at - since
        return None


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.server.shutdown()


def _cli(env: dict[str, str], *args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _flow(env: dict[str, str], **parameters: object) -> subprocess.CompletedProcess[str]:
    """The flow run in a process of its own against the server, as a worker would run it."""
    code = f"from flows.cleanse import cleanse_contacts\ncleanse_contacts(**{parameters!r})"
    return _cli(env, sys.executable, "-c", code)


def test_prefect_yaml_deploys_the_nightly_to_a_work_pool_and_alerts_reach_a_webhook(
    prefect_server: tuple[str, dict[str, str]], receiver: Receiver, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Crashed

    url, env = prefect_server
    env = {**env, "PWD": str(ROOT)}
    prefect = [sys.executable, "-m", "prefect"]
    made = _cli(env, *prefect, "work-pool", "create", "cleansing", "--type", "process")
    assert made.returncode == 0, made.stdout + made.stderr
    deployed = _cli(env, *prefect, "--no-prompt", "deploy", "--all")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    alerts = _cli(env, sys.executable, "-m", "flows.cli", "alerts", "--webhook", receiver.url)
    assert alerts.returncode == 0, alerts.stdout + alerts.stderr

    with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("cleanse-contacts/nightly")
        assert deployment.work_pool_name == "cleansing"
        assert deployment.global_concurrency_limit is not None and deployment.global_concurrency_limit.limit == 1
        (schedule,) = deployment.schedules
        assert schedule.schedule.cron == "0 2 * * *"  # type: ignore[union-attr]
        assert deployment.parameters["out_dir"] == f"{ROOT}/out"  # absolute when deployed

        # Late: a run nobody executes (no worker yet) goes Late, and someone hears of it.
        started = time.time()
        late = client.create_flow_run_from_deployment(
            deployment.id,
            parameters={
                "sources": [str(SAMPLES)],
                "out_dir": str(tmp_path / "out"),
                "state": str(tmp_path / "s.sqlite"),
                "check_domains": False,
                "as_of": "2026-11-02",
            },
        )
        wait_until(lambda: receiver.arrived("Late", started) is not None, ARRIVES_WITHIN_S + 30, "the Late alert")
        assert (receiver.arrived("Late", started) or 0) <= ARRIVES_WITHIN_S
        assert client.read_flow_run(late.id).state_name == "Late"

        # A worker started now runs the late run from the deployment, in the project folder.
        worker = _cli(env, *prefect, "worker", "start", "--pool", "cleansing", "--run-once", timeout=240)
        assert worker.returncode == 0, worker.stdout[-2000:] + worker.stderr[-2000:]
        final = client.read_flow_run(late.id).state
        assert final is not None and final.is_completed(), final
        assert (tmp_path / "out" / "latest" / "manifest.json").is_file()

        # Failed: a run over a file that is not there.
        started = time.time()
        failed = _flow(
            env, sources=[str(tmp_path / "missing.csv")], out_dir=str(tmp_path / "f"), state=str(tmp_path / "f.sqlite")
        )
        assert failed.returncode != 0
        wait_until(lambda: receiver.arrived("Failed", started) is not None, ARRIVES_WITHIN_S, "the Failed alert")

        # Warning: a Completed-type state that no state event tells from a success.
        bad = tmp_path / "bad.csv"
        ragged = "".join(f"x{i}@example.se,2026-10-01,one field too many\n" for i in range(5))
        bad.write_text("email,consent date\nok@example.se,2026-10-01\n" + ragged)
        started = time.time()
        warned = _flow(
            env, sources=[str(bad)], out_dir=str(tmp_path / "w"), state=str(tmp_path / "w.sqlite"), check_domains=False
        )
        assert warned.returncode == 0, warned.stderr[-2000:]
        wait_until(lambda: receiver.arrived("warning", started) is not None, ARRIVES_WITHIN_S, "the warning alert")

        # Crashed: the process running a flow run died without reporting (as the worker then records it).
        started = time.time()
        crashed = client.create_flow_run_from_deployment(deployment.id, parameters={"check_domains": False})
        client.set_flow_run_state(crashed.id, Crashed(message="the flow run's process died"), force=True)
        wait_until(lambda: receiver.arrived("Crashed", started) is not None, ARRIVES_WITHIN_S, "the Crashed alert")

    texts = json.dumps([post for _, post in receiver.posts])
    assert "cleanse-contacts" in texts and "@example.se" not in texts
