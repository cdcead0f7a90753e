"""Canonical contact rows for tests, as the mapping stage would produce them."""

from __future__ import annotations

from typing import Any

import polars as pl

from cleansing.mapping import empty_contacts


def canonical(*records: dict[str, Any], **defaults: Any) -> pl.DataFrame:
    """One mapped row per dict: unset fields are empty, evidence flags false, ``record_id`` is ``r1``, ``r2`` …"""
    schema = empty_contacts().schema
    rows = []
    for i, overrides in enumerate(records, start=1):
        row: dict[str, Any] = {c: None for c in schema}
        row.update(
            source_file="t.csv",
            source_row=i,
            input_index=0,
            preset="generic",
            record_id=f"r{i}",
            tags=[],
            lawful_basis=[],
            consent_status="unknown",
            opted_out=False,
            erasure_requested=False,
            hard_bounced=False,
            is_customer=False,
            flags=[],
        )
        row.update(defaults)
        row.update(overrides)
        rows.append(row)
    return pl.DataFrame(rows, schema=schema).with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64))
