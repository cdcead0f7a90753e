"""Looking values up in a table of one row per key."""

from __future__ import annotations

import polars as pl


def look_up(frame: pl.DataFrame, table: pl.DataFrame, on: str, nulls_equal: bool = False) -> pl.DataFrame:
    """``frame`` with ``table``'s other columns set beside each row by its ``on`` value (null where
    ``table``, which holds one row per ``on`` value, has none): a left join in row order that carries
    only the key column through the join, not the frame's many others."""
    found = frame.select(on).join(table, on=on, how="left", nulls_equal=nulls_equal, maintain_order="left")
    return frame.hstack(found.drop(on))
