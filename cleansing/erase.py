"""Erasure that reaches every copy: the rows of forgotten addresses leave every run folder the state
database knows (lifecycle.md).

A row goes when any address in it, in any form (case, Gmail dots and ``+tags``), has a forgotten
address key: its own email, an address in another text field, or in a quarantined row's raw text.
Each file is written anew beside the old one and renamed over it; the decisions and the review list
lose the removed rows too, the manifest's counts are adjusted and the erasure noted there (a date and
a count, never the address), and the report is rebuilt from what remains. Running it again removes
nothing more.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from .errors import os_errno
from .state import StateStore
from .validate import address_key, normalize_emails
from .write import PARQUET, PARTITIONS, Rewrite, _flat, guard_formulas, write_json, write_xlsx

# Anything shaped like an address inside a text: what a forgotten address could be hidden in.
ADDRESS_TOKEN = r"""[^\s,;:"'<>()\[\]]+@[^\s,;:"'<>()\[\]]+"""
TABLES = (*PARTITIONS, "quarantine")


@dataclass
class Erasure:
    """What one erasure did: rows removed per folder, and the folders it could not rewrite."""

    removed: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.removed.values())


def rows_holding(frame: pl.DataFrame, keys: set[str]) -> pl.Series:
    """Whether each row holds an address whose key is in ``keys``, in any form and any text column."""
    text = [c for c, t in frame.schema.items() if t == pl.String or t == pl.List(pl.String)]
    if not frame.height or not text:
        return pl.Series("forgotten", [False] * frame.height, dtype=pl.Boolean)
    joined = pl.concat_str(
        [pl.col(c).list.join(" ") if frame.schema[c] == pl.List(pl.String) else pl.col(c) for c in text],
        separator=" ",
        ignore_nulls=True,
    )
    tokens = (
        frame.select(joined.str.extract_all(ADDRESS_TOKEN).alias("t"))
        .with_row_index("i")
        .explode("t", empty_as_null=True)
    )
    distinct = tokens["t"].drop_nulls().str.strip_chars(".").unique()
    if distinct.is_empty():
        return pl.Series("forgotten", [False] * frame.height, dtype=pl.Boolean)
    normal = normalize_emails(distinct).filter(pl.col("email_normalized").is_not_null())
    hits = normal.filter(address_key(pl.col("email_normalized")).is_in(list(keys)))["email"]
    marked = tokens.with_columns(pl.col("t").str.strip_chars(".").is_in(hits.implode()).fill_null(False).alias("hit"))
    return marked.group_by("i", maintain_order=True).agg(pl.col("hit").any())["hit"].alias("forgotten")


def _tables(folder: Path) -> dict[str, pl.DataFrame]:
    return {
        name: pl.read_parquet(folder / f"{name}.parquet") for name in TABLES if (folder / f"{name}.parquet").is_file()
    }


def erase_in_folder(folder: Path, keys: set[str], at: dt.datetime) -> int:
    """Remove the forgotten addresses' rows from one run folder; returns how many rows went."""
    tables = _tables(folder)
    kept: dict[str, pl.DataFrame] = {}
    gone: list[pl.DataFrame] = []
    for name, frame in tables.items():
        forgotten = rows_holding(frame, keys)
        if forgotten.any():
            kept[name] = frame.filter(~forgotten)
            gone.append(
                frame.filter(forgotten).select(
                    "source_file", "source_row", *(["record_id"] if "record_id" in frame.columns else [])
                )
            )
    if not gone:
        return 0
    removed = pl.concat(gone, how="diagonal")
    rewrite = Rewrite()
    try:
        for name, frame in kept.items():
            rewrite.add(folder / f"{name}.parquet", functools.partial(frame.write_parquet, **PARQUET))
            rewrite.add(folder / f"{name}.csv", guard_formulas(_flat(frame)).write_csv)
            if (folder / f"{name}.xlsx").is_file():
                rewrite.add(folder / f"{name}.xlsx", functools.partial(write_xlsx, frame, sheet=name))
        decisions_path = folder / "decisions.parquet"
        reasons = None
        if decisions_path.is_file():
            decisions = pl.read_parquet(decisions_path).join(
                removed.select("source_file", "source_row"), on=["source_file", "source_row"], how="anti"
            )
            rewrite.add(decisions_path, functools.partial(decisions.write_parquet, **PARQUET))
            reasons = dict(decisions.group_by("reason").len().sort("reason").iter_rows())
        ids = removed["record_id"].drop_nulls() if "record_id" in removed.columns else pl.Series([], dtype=pl.String)
        review_path = folder / "review.csv"
        if review_path.is_file() and ids.len():
            review = pl.read_csv(review_path, infer_schema=False)
            if {"record_a", "record_b"} <= set(review.columns):
                listed = pl.col("record_a").is_in(ids.implode()) | pl.col("record_b").is_in(ids.implode())
                rewrite.add(review_path, review.filter(~listed).write_csv)
        manifest = _noted_manifest(folder, kept, reasons, removed.height, at)
        if manifest is not None:
            rewrite.add(folder / "manifest.json", lambda p: write_json(p, manifest))
    except BaseException:
        rewrite.abandon()
        raise
    rewrite.commit()
    return removed.height


def _noted_manifest(
    folder: Path, kept: dict[str, pl.DataFrame], reasons: dict[str, int] | None, rows: int, at: dt.datetime
) -> dict[str, Any] | None:
    """The manifest with the counts of what remains and the erasure noted (a date and a count)."""
    path = folder / "manifest.json"
    if not path.is_file():
        return None
    manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    counts = manifest.get("counts", {})
    for name, frame in kept.items():
        counts[name] = frame.height
    manifest["counts"] = counts
    # rows in = keep + reconfirm + discard + quarantine + the rows erased since
    manifest.setdefault("erasures", []).append({"at": at.isoformat(timespec="seconds"), "rows_removed": rows})
    if reasons is not None:
        manifest["reasons"] = reasons
    return manifest


def erase_everywhere(keys: set[str], store: StateStore, at: dt.datetime) -> Erasure:
    """Remove the forgotten addresses' rows from every run folder the state database knows that still
    holds personal data; a folder that cannot be rewritten is named in ``failed`` and the rest go on."""
    from .rebuild import rebuild_report

    done = Erasure()
    seen: set[Path] = set()
    for run in store.runs():
        folder = Path(run["run_dir"])
        if folder.resolve() in seen or not folder.is_dir() or run.get("purged_at"):
            continue
        seen.add(folder.resolve())
        try:
            rows = erase_in_folder(folder, keys, at)
            if rows:
                rebuild_report(folder)
        except Exception as exc:  # a file system's error, whichever writer raised it; anything else is a bug
            number = os_errno(exc)
            if number is None and not isinstance(exc, OSError):
                raise
            done.failed[str(folder)] = os.strerror(number) if number is not None else type(exc).__name__
            continue
        if rows:
            done.removed[str(folder)] = rows
    return done
