"""Prefect settings the project sets itself, before Prefect is imported: offline, quiet, and out of
the user's home folder."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULTS = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_UI_ENABLED": "false",
}


def configure_prefect(home: Path | None = None, quiet: bool = True) -> None:
    """Point ``PREFECT_HOME`` at a project folder (``.prefect`` in the working folder unless set) and
    switch off telemetry; values the user already set win."""
    os.environ.setdefault("PREFECT_HOME", str((home or Path.cwd() / ".prefect").resolve()))
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    if quiet:
        # The terminal shows the command's own progress lines; Prefect's run logs still reach its API.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
