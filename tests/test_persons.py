"""Person ids that last from run to run: taken over by the records' clusters, new ones derived, merges
and splits counted."""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cleansing.errors import ConfigError
from cleansing.persons import assign_person_ids, person_id
from cleansing.pipeline import RunRequest, run_pipeline
from cleansing.state import StateStore


def clusters(**members: str) -> pl.DataFrame:
    """``clusters(a="r1 r2", b="r3")``: records r1 and r2 form cluster a, r3 cluster b."""
    return pl.DataFrame(
        [(r, key) for key, ids in members.items() for r in ids.split()],
        schema={"record_id": pl.String, "person_key": pl.String},
        orient="row",
    )


def known(**ids: str) -> pl.DataFrame:
    """``known(P1="r1 r2")``: records r1 and r2 had the person id P1."""
    return pl.DataFrame(
        [(r, pid) for pid, records in ids.items() for r in records.split()],
        schema={"record_id": pl.String, "person_id": pl.String},
        orient="row",
    )


def ids_of(records: pl.DataFrame, known: pl.DataFrame) -> dict[str, str]:
    """Each cluster's person id; every record of a cluster carries the same one."""
    given = records.with_columns(assign_person_ids(records, known).person_id)
    assert (given.group_by("person_key").agg(pl.col("person_id").n_unique())["person_id"] == 1).all()
    return dict(given.select("person_key", "person_id").unique().iter_rows())


def test_a_fresh_state_gives_the_same_ids_to_the_same_clusters_in_any_order() -> None:
    records = clusters(a="r1 r2", b="r3", c="r4 r5 r6")
    assert ids_of(records, known()) == ids_of(records.reverse(), known())
    assert ids_of(records, known()) == {"a": person_id("r1"), "b": person_id("r3"), "c": person_id("r4")}
    assert assign_person_ids(records, known()).counts == {"persons": 3, "kept_id": 0, "new": 3, "merged": 0, "split": 0}


def test_a_cluster_keeps_the_id_its_records_had_and_a_new_record_joins_it() -> None:
    result = assign_person_ids(clusters(a="r1 r2 r9"), known(P1="r1 r2"))
    assert ids_of(clusters(a="r1 r2 r9"), known(P1="r1 r2")) == {"a": "P1"}
    assert result.store.rows() == [("r9", "P1")]  # only what changed is written back
    assert result.counts == {"persons": 1, "kept_id": 1, "new": 0, "merged": 0, "split": 0}


def test_a_merge_keeps_the_id_most_of_its_records_had_and_counts_the_merge() -> None:
    result = assign_person_ids(clusters(a="r1 r2 r3"), known(P1="r1", P2="r2 r3"))
    assert ids_of(clusters(a="r1 r2 r3"), known(P1="r1", P2="r2 r3")) == {"a": "P2"}
    assert result.store.rows() == [("r1", "P2")]
    assert result.counts["merged"] == 1 and result.counts["kept_id"] == 1


def test_a_split_leaves_the_id_with_the_larger_part_and_gives_the_other_a_new_one() -> None:
    result = assign_person_ids(clusters(a="r1", b="r2 r3"), known(P1="r1 r2 r3"))
    assert ids_of(clusters(a="r1", b="r2 r3"), known(P1="r1 r2 r3")) == {"b": "P1", "a": person_id("r1")}
    assert result.counts == {"persons": 2, "kept_id": 1, "new": 0, "merged": 0, "split": 1}


def test_an_even_split_is_settled_by_the_smaller_record_id_not_by_input_order() -> None:
    records = clusters(a="r3 r4", b="r1 r2")
    for order in (records, records.reverse()):
        assert ids_of(order, known(P1="r1 r2 r3 r4"))["b"] == "P1"


def test_a_new_id_is_never_one_already_in_use() -> None:
    # r9 moved away from the person whose id was derived from it; that id is still in use by r8.
    assert ids_of(clusters(a="r9"), known(**{person_id("r9"): "r8"})) == {"a": person_id("r9#1")}


lists = st.lists(st.integers(0, 11), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(clusters_of=lists, earlier_of=st.lists(st.integers(0, 4) | st.none(), min_size=12, max_size=12))
def test_every_cluster_gets_one_id_no_two_share_one_and_order_does_not_matter(
    clusters_of: list[int], earlier_of: list[int | None]
) -> None:
    records = pl.DataFrame(
        {"record_id": [f"r{i:02d}" for i in range(len(clusters_of))], "person_key": [f"k{c}" for c in clusters_of]}
    )
    earlier = pl.DataFrame(
        [(f"r{i:02d}", f"P{p}") for i, p in enumerate(earlier_of) if p is not None],
        schema={"record_id": pl.String, "person_id": pl.String},
        orient="row",
    )
    result = assign_person_ids(records, earlier)
    ids = ids_of(records, earlier)
    assert set(ids) == set(records["person_key"]) and len(set(ids.values())) == len(ids)
    taken = {k: v for k, v in ids.items() if v in set(earlier["person_id"])}
    for key, pid in taken.items():  # an id taken over was held by one of the cluster's own records
        mine = records.filter(pl.col("person_key") == key)["record_id"]
        assert pid in set(earlier.filter(pl.col("record_id").is_in(mine.implode()))["person_id"])
    assert result.counts["kept_id"] == len(taken)
    shuffled = records.sample(fraction=1.0, shuffle=True, seed=len(clusters_of))
    assert ids_of(shuffled, earlier.reverse()) == ids


def _run(source: Path, tmp_path: Path) -> tuple[pl.DataFrame, Path]:
    ctx = run_pipeline(
        RunRequest(
            sources=(str(source),),
            as_of=dt.date(2026, 11, 29),
            out_dir=str(tmp_path / "out"),
            state=str(tmp_path / "state.sqlite"),
            check_mx=False,
        )
    )
    assert ctx.run_dir is not None
    return pl.read_parquet(ctx.run_dir / "decisions.parquet").filter(pl.col("record_id").is_not_null()), ctx.run_dir


def test_after_5_percent_of_the_records_change_the_untouched_persons_keep_their_ids(tmp_path: Path) -> None:
    from benchmarks.generate_people import generate

    people = generate(1500, seed=9).drop("truth").with_row_index("n").with_columns(pl.format("c{}", "n").alias("id"))
    people = people.drop("n").select("id", pl.exclude("id"))
    source = tmp_path / "contacts.csv"
    people.write_csv(source)
    before, _ = _run(source, tmp_path)

    rng = random.Random(4)
    touched = set(rng.sample(people["id"].to_list(), k=people.height // 20))
    edited = sorted(touched)[: len(touched) // 2]  # the other half is deleted
    newcomers = (
        generate(40, seed=77).drop("truth").with_row_index("n").with_columns(pl.format("new{}", "n").alias("id"))
    )
    changed = pl.concat(
        [
            people.filter(~pl.col("id").is_in(sorted(touched))),
            people.filter(pl.col("id").is_in(edited)).with_columns(
                pl.lit("Ottilia").alias("first_name"),
                pl.format("ottilia.{}@example.org", "id").alias("email"),
                pl.lit(None, pl.String).alias("phone"),
            ),
            newcomers.drop("n").select(people.columns),
        ]
    )
    changed.write_csv(source)
    after, run_dir = _run(source, tmp_path)

    def persons(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.group_by("person_id").agg(pl.col("record_id").sort().alias("records"))

    untouched = persons(before).filter(~pl.col("records").list.eval(pl.element().is_in(sorted(touched))).list.any())
    now = persons(after)
    assert untouched.height > 1000
    # The untouched persons whose clusters came out the same keep their ids, every one of them.
    same = untouched.join(now, on="records", how="inner", suffix="_now")
    assert same.height >= 0.97 * untouched.height
    assert (same["person_id"] == same["person_id_now"]).all()
    # Those whose cluster changed (it took in a newcomer, or dedupe learned slightly different weights)
    # still hold their id on the part that kept most of their records.
    kept = after.join(before.select("record_id", pl.col("person_id").alias("was")), on="record_id")
    untouched_records = kept.filter(pl.col("was").is_in(untouched["person_id"].implode()))
    assert (untouched_records["person_id"] == untouched_records["was"]).mean() >= 0.99  # type: ignore[operator]

    counted = json.loads((run_dir / "report.json").read_text())["duplicates"]["persons"]
    assert counted["persons"] == after["person_id"].n_unique() and counted["kept_id"] >= same.height
    assert counted["new"] >= 1 and "kept the <code>person_id</code>" in (run_dir / "report.html").read_text()

    stored = StateStore(tmp_path / "state.sqlite").persons()
    assert stored.columns == ["record_id", "person_id"]  # record ids and person ids: nothing personal
    assert stored.height == stored["record_id"].n_unique()
    assert dict(stored.iter_rows()) | dict(after.select("record_id", "person_id").iter_rows()) == dict(
        stored.iter_rows()
    )


def test_recording_person_ids_changes_only_the_records_given(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite")
    with store.transaction() as db:
        store.set_persons(known(P1="r1 r2"), db=db)
    with store.transaction() as db:  # another run's records, and one record that moved
        store.set_persons(known(P2="r3", P9="r2"), db=db)
    assert dict(store.persons().iter_rows()) == {"r1": "P1", "r2": "P9", "r3": "P2"}


def test_unreadable_person_ids_in_the_state_are_a_damaged_state(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite")
    with sqlite3.connect(tmp_path / "s.sqlite") as db:
        db.execute("INSERT INTO person_ids (id, data) VALUES (1, ?)", (b"PAR1 not really",))
    with pytest.raises(ConfigError, match="person ids cannot be read"):
        store.persons()
