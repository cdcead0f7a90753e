"""``cleanse reconfirm-sent RUN_DIR``: record that a run's reconfirm list was mailed.

A mail asking for consent is marketing in itself, so each address is asked once. This records the
keyed hash of every address on the run's "ask now" list (``action = ask``) with the day it was sent;
later runs keep those addresses out of the list while the answer is awaited (``RECONFIRM_PENDING``),
keep them once consent dated since arrives, and discard them when no answer came in
``[reconfirm] answer_days`` (``RECONFIRM_UNANSWERED``). An address already asked since the list was
made is not asked again: it is counted, not an error.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl

from .errors import InputError
from .state import StateStore, hash_keys
from .validate import address_key


def reconfirm_sent(run_dir: Path, on: dt.date, state_path: str | Path) -> tuple[int, int]:
    """Record the run's "ask now" list as sent on ``on``; returns (recorded, refused as already asked)."""
    listed, manifest = run_dir / "reconfirm.parquet", run_dir / "manifest.json"
    if not listed.is_file() or not manifest.is_file():
        raise InputError(
            "this run folder holds no reconfirm list (not a run folder, or its personal data was purged).",
            path=run_dir,
            fix="Pass the folder of the run whose reconfirm list was mailed, e.g. out/latest.",
        )
    made_on = dt.date.fromisoformat(json.loads(manifest.read_text(encoding="utf-8"))["as_of"])
    if on < made_on:
        raise InputError(
            f"--on {on} is before the list was made ({made_on}).", path=run_dir, fix="Give the day it was sent."
        )
    frame = pl.read_parquet(listed)
    if "action" in frame.columns:
        frame = frame.filter(pl.col("action") == "ask")
    keys = frame.select(address_key(pl.col("email_normalized")).alias("k"))["k"].drop_nulls().unique()
    store = StateStore(state_path)
    return store.record_requests(hash_keys(keys, store.hmac_key()).to_list(), on, made_on)
