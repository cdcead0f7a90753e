"""Dedupe: which addresses belong to one person.

Records with the same address key are always one address (consent-policy.md). Grouping addresses
into persons is this module's job; for now every address is its own person, and the person-level
rules in ``classify`` (opt-out spreading, one survivor per person) already work on whatever
grouping this returns.
"""

from __future__ import annotations

import polars as pl


def assign_persons(contacts: pl.DataFrame) -> pl.DataFrame:
    """Add ``person_key``: records with equal keys belong to one person.

    Records without a valid address are each their own person.
    """
    return contacts.with_columns(
        pl.coalesce(pl.col("address_key"), pl.format("record:{}", pl.col("_row"))).alias("person_key")
    )
