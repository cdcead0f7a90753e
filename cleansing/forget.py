"""``cleanse forget``: add addresses to the suppression list by hand (erasure or objection)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from .erase import Erasure, erase_everywhere
from .errors import InputError
from .state import StateStore, hash_keys
from .validate import address_key, normalize_emails
from .write import mask_email


def forget(emails: Sequence[str], state_path: str | Path) -> tuple[int, int, Erasure]:
    """Suppress every address and remove its rows from every run folder the state database knows;
    returns (newly added, already there, what the erasure removed). Invalid addresses are refused
    together, masked, before anything is written."""
    series = pl.Series("email", [e.strip() for e in emails], dtype=pl.String)
    checked = normalize_emails(series)
    invalid = checked.filter(pl.col("email_normalized").is_null())
    if invalid.height:
        masked = invalid.select(mask_email(pl.col("email")))["email"].to_list()
        raise InputError(
            f"{invalid.height} address(es) are not valid email addresses: {', '.join(map(str, masked))}.",
            fix="Correct them and run cleanse forget again; nothing was added.",
        )
    keys = checked.select(address_key(pl.col("email_normalized")).alias("k"))["k"].unique()
    store = StateStore(state_path)
    hashes = hash_keys(keys, store.hmac_key()).to_list()
    # The entry's date is the request's: consent given after it lifts it, consent from before does not.
    requested = dt.datetime.now(dt.UTC)
    added = store.suppress([(h, requested) for h in hashes], "erasure or objection", "cleanse forget")
    # Not while a run publishes: its folder is then erased from as well, once it is there.
    with store.publish_lock():
        erased = erase_everywhere(set(keys.to_list()), store, requested)
    return added, len(hashes) - added, erased
