"""The temporary Prefect server a command-line run starts when no server is configured.

Prefect would start one itself, but in the command's own process group: Ctrl-C in a terminal (a signal
to the whole group) would kill it before the run could be marked cancelled. This one runs in a session
of its own, is stopped when the command ends however it ends, and serves Prefect's database in
``PREFECT_HOME`` as Prefect's own temporary server does.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO

from cleansing.errors import CleansingError

STARTUP_TIMEOUT_S = 90.0


def healthy(api_url: str, timeout: float) -> bool:
    """Whether a Prefect API answers its health check at ``api_url``."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TemporaryServer:
    """``with TemporaryServer() as api_url:`` a Prefect API on loopback for the length of the block."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(os.devnull)
        self._log: IO[bytes] = open(os.devnull, "wb")  # noqa: SIM115 - replaced in __enter__, closed in stop
        self.port = _free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"

    def __enter__(self) -> str:
        self.start()
        self.wait_healthy()
        return self.api_url

    def start(self) -> None:
        """Start the server process and return at once (it takes several seconds to answer)."""
        home = Path(os.environ.get("PREFECT_HOME", ".prefect"))
        home.mkdir(parents=True, exist_ok=True)
        self.log_path = home / "temporary-server.log"
        self._log = self.log_path.open("wb")
        spec = importlib.util.find_spec("prefect")
        assert spec is not None and spec.submodule_search_locations
        app_dir = Path(next(iter(spec.submodule_search_locations))).parent
        env = {
            **os.environ,
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(app_dir),
                "--factory",
                "prefect.server.api.server:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "error",
                "--lifespan",
                "on",
            ],
            env=env,
            start_new_session=True,  # a signal to the terminal's process group does not reach it
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )

    def wait_healthy(self) -> None:
        """Wait until the server answers; stop it and raise if it exits or does not answer in time."""
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CleansingError(
                    f"the temporary Prefect server exited at start with code {self.process.returncode}; "
                    f"its messages are in {self.log_path}."
                )
            if healthy(self.api_url, timeout=2):
                return
            time.sleep(0.1)
        raise CleansingError(f"the temporary Prefect server did not answer within {STARTUP_TIMEOUT_S:.0f} s.")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self._log.closed:
            self._log.close()

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()
