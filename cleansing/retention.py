"""Retention: run folders older than the policy's limits keep only what holds no personal data.

After a run is published, every earlier run folder beyond ``[retention] keep_runs`` (counting the new
run) or published more than ``keep_days`` ago loses its personal-data files: everything but
``manifest.json``, ``report.json`` and ``report.html``. The run's record stays in the state database
with ``purged_at``. Which folders go is planned before the run's report is written, so the report can
say so; a folder that cannot be purged now is planned again by the next run.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from .policy import RetentionPolicy
from .state import StateStore

KEPT_FILES = frozenset({"manifest.json", "report.json", "report.html"})


def plan_purge(runs: list[dict[str, Any]], policy: RetentionPolicy, now: dt.datetime) -> list[dict[str, Any]]:
    """The recorded runs (oldest first) whose folders are to be purged once a new run is published."""
    oldest_kept = now - dt.timedelta(days=policy.keep_days)
    newest_first = list(reversed(runs))
    plan = []
    for rank, run in enumerate(newest_first, start=2):  # the new run is the newest
        if run.get("purged_at"):
            continue
        published = dt.datetime.fromisoformat(run["published_at"])
        if rank > policy.keep_runs or published < oldest_kept:
            plan.append(run)
    return list(reversed(plan))


def purge(runs: list[dict[str, Any]], store: StateStore, now: dt.datetime) -> tuple[list[str], dict[str, str]]:
    """Delete the personal-data files of these runs' folders and record it; returns the run ids purged
    and, per run id, why a folder could not be."""
    done, failed = [], {}
    for run in runs:
        folder = Path(run["run_dir"])
        try:
            if folder.is_dir():
                for path in folder.iterdir():
                    if path.name not in KEPT_FILES and (path.is_file() or path.is_symlink()):
                        path.unlink()
        except OSError as exc:
            failed[run["run_id"]] = exc.strerror or type(exc).__name__
            continue
        store.mark_purged(run["run_id"], now)
        done.append(run["run_id"])
    return done, failed
