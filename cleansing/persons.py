"""Person ids that last from run to run.

A person is a cluster of one run: the records dedupe put together. Its ``person_id`` stays the same across
runs while any of its records is still there. The state database keeps, for every record id a run published,
the person id it had (record ids are the sources' own ids or file-and-row hashes: nothing personal). A run's
clusters take over the ids their records had:

- a cluster whose records all had one id keeps it;
- when records of several earlier persons now form one cluster (a merge), the cluster keeps the id most of its
  records had, and the other ids end;
- when one earlier person's records fall into several clusters (a split), the cluster holding most of them
  keeps the id, and the others get new ids.

Each id goes to at most one cluster and each cluster takes at most one id: pairs are taken most-shared first
(ties: the smaller record id, then the smaller person id), which makes the outcome independent of the order of
the input. A cluster left without an id gets a new one derived from its smallest record id, so a fresh state
gives the same ids to the same input; an id already in use is never given again.

Ids are bookkeeping, not decisions: which records form a person, and every class and reason, are decided before
and without them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

PREFIX = "P"
PERSON_IDS = {"record_id": pl.String, "person_id": pl.String}  # the mapping the state keeps


@dataclass(frozen=True)
class PersonIds:
    """``person_id``: each record's person id, in the order of the records (null where it has no cluster).
    ``store``: ``record_id, person_id``, the mapping rows the state must add or change for this run.
    ``counts``: persons, kept their id, new, merged (clusters that took in records of several earlier
    persons), split (earlier persons whose records now lie in several clusters)."""

    person_id: pl.Series
    store: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=PERSON_IDS))
    counts: dict[str, int] = field(default_factory=dict)


def assign_person_ids(records: pl.DataFrame, known: pl.DataFrame) -> PersonIds:
    """Give every cluster (``person_key``) of ``records`` (``record_id, person_key``) a person id, taking
    over the ids in ``known`` (``record_id, person_id``, one row per record id: the state's mapping)."""
    rows = records.select("record_id", "person_key").join(
        known.rename({"person_id": "_was"}), on="record_id", how="left", maintain_order="left"
    )
    pairs = (
        rows.filter(pl.col("_was").is_not_null() & pl.col("person_key").is_not_null())
        .group_by("person_key", pl.col("_was").alias("person_id"))
        .agg(pl.len().alias("n"), pl.col("record_id").min().alias("first"))
        .with_columns(
            (pl.len().over("person_key") > 1).alias("_merged"), (pl.len().over("person_id") > 1).alias("_split")
        )
    )
    # A cluster that alone holds all the records of one earlier id, and holds no other, simply keeps it.
    plain = ~pl.col("_merged") & ~pl.col("_split")
    taken = pl.concat([pairs.filter(plain).select("person_key", "person_id"), _take_over(pairs.filter(~plain))])
    fresh = (
        rows.filter(pl.col("person_key").is_not_null() & ~pl.col("person_key").is_in(taken["person_key"].implode()))
        .group_by("person_key")
        .agg(pl.col("record_id").min().alias("name"))
    )
    ids = pl.concat([taken, _new_ids(fresh, known["person_id"])])
    per_row = rows.join(ids, on="person_key", how="left", maintain_order="left")
    store = per_row.filter(
        pl.col("person_id").is_not_null() & (pl.col("_was").is_null() | (pl.col("_was") != pl.col("person_id")))
    ).unique("record_id", keep="first", maintain_order=True)
    merged = pairs.filter(pl.col("_merged"))["person_key"].n_unique()
    persons = taken.height + fresh.height
    counts = {
        "persons": persons,
        "kept_id": taken.height,
        "new": persons - pairs["person_key"].n_unique(),
        "merged": merged,
        "split": pairs.filter(pl.col("_split"))["person_id"].n_unique(),
    }
    return PersonIds(person_id=per_row["person_id"], store=store.select("record_id", "person_id"), counts=counts)


def _take_over(pairs: pl.DataFrame) -> pl.DataFrame:
    """One-to-one matching of clusters to earlier ids, most-shared pair first (then the smaller record
    id, then the smaller person id). A pair that is the first choice of both its cluster and its id is
    one greedy would take, so each round takes all of those and drops what they used; every round takes
    at least the best remaining pair."""
    taken = [pl.DataFrame(schema={"person_key": pl.String, "person_id": pl.String})]
    remaining = pairs.sort(["n", "first", "person_id", "person_key"], descending=[True, False, False, False])
    while remaining.height:
        best_of_cluster = remaining.unique("person_key", keep="first", maintain_order=True)
        best_of_id = remaining.unique("person_id", keep="first", maintain_order=True)
        both = best_of_cluster.join(best_of_id, on=["person_key", "person_id"], how="semi")
        taken.append(both.select("person_key", "person_id"))
        remaining = remaining.filter(
            ~pl.col("person_key").is_in(both["person_key"].implode())
            & ~pl.col("person_id").is_in(both["person_id"].implode())
        )
    return pl.concat(taken)


def _new_ids(fresh: pl.DataFrame, in_use: pl.Series) -> pl.DataFrame:
    """New ids for ``fresh`` clusters (``person_key, name``), derived from the name; one that is in use, or
    that a cluster of a smaller name got, is derived again with a counter."""
    assigned = [pl.DataFrame(schema={"person_key": pl.String, "person_id": pl.String})]
    used = in_use.to_frame("person_id")
    pending = fresh
    attempt = 0
    while pending.height:
        salt = f"#{attempt}" if attempt else ""
        candidate = pending.with_columns(person_ids(pending["name"] + salt))
        if candidate["person_id"].is_duplicated().any():  # rare: only then does the order matter
            candidate = candidate.sort("name", "person_key")
        fine = candidate.join(used, on="person_id", how="anti", maintain_order="left").filter(
            pl.col("person_id").is_first_distinct()
        )
        assigned.append(fine.select("person_key", "person_id"))
        if fine.height == pending.height:  # the usual case: every id was new and distinct at once
            break
        used = pl.concat([used, fine.select("person_id")])
        pending = pending.join(fine, on="person_key", how="anti")
        attempt += 1
    return pl.concat(assigned)


_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def person_ids(names: pl.Series) -> pl.Series:
    """``P`` and 16 hex digits of a 64-bit hash of each text's UTF-8 bytes (FNV-1a, then MurmurHash3's
    finaliser to spread it): short, the same on every machine, and computed for all names at once."""
    texts = names.cast(pl.String)
    if texts.null_count():
        raise ValueError("a person id needs a name")
    lengths = texts.str.len_bytes().cast(pl.Int64).to_numpy()
    data = np.frombuffer((texts.str.join("").item() or "").encode("utf-8"), dtype=np.uint8)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    hashed = np.full(len(texts), _FNV_OFFSET, dtype=np.uint64)
    for position in range(int(lengths.max()) if len(texts) else 0):
        longer = np.flatnonzero(lengths > position) if position >= lengths.min() else None
        if longer is None:  # every text is longer: no selection needed
            hashed = (hashed ^ data[starts + position]) * _FNV_PRIME
        else:
            hashed[longer] = (hashed[longer] ^ data[starts[longer] + position]) * _FNV_PRIME
    for shift, factor in ((33, 0xFF51AFD7ED558CCD), (33, 0xC4CEB3FE1A85EC53), (33, None)):
        hashed ^= hashed >> np.uint64(shift)
        if factor is not None:
            hashed *= np.uint64(factor)
    digits = hashed.astype(">u8").view(np.uint8).reshape(-1, 8)
    text = np.empty((len(texts), 16), dtype=np.uint8)
    text[:, 0::2] = _HEX[digits >> 4]
    text[:, 1::2] = _HEX[digits & 15]
    hexed = pl.Series(text.view("S16").ravel(), dtype=pl.Binary).cast(pl.String)
    return (PREFIX + hexed).alias("person_id")


def person_id(name: str) -> str:
    """The id ``person_ids`` gives one name."""
    return str(person_ids(pl.Series([name]))[0])
