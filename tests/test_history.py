"""A run's decisions depend on its inputs and what people recorded, never on which runs came before."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleansing.forget import forget
from cleansing.pipeline import RunRequest, run_pipeline
from cleansing.state import StateStore, hash_keys

from .conftest import ROOT, SAMPLES

AS_OF = dt.date(2026, 11, 2)
HEADER = "email,first_name,last_name,consent,consent date,unsubscribed,erasure\n"


def decide(sources: list[Path], state: Path, out: Path) -> dict[tuple[str, int], tuple[str, str]]:
    ctx = run_pipeline(
        RunRequest(
            sources=tuple(str(s) for s in sources), as_of=AS_OF, out_dir=str(out), state=str(state), check_mx=False
        )
    )
    assert ctx.run_dir is not None
    frame = pl.read_parquet(ctx.run_dir / "decisions.parquet")
    return {
        (f, r): (k, why) for f, r, k, why in frame.select("source_file", "source_row", "class", "reason").iter_rows()
    }


def write(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def write_with_phone(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER.rstrip("\n") + ",phone,company\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def sample_files() -> list[Path]:
    return sorted(p for p in SAMPLES.iterdir() if p.is_file())


def with_forget(state: Path) -> Path:
    forget((ROOT / "data" / "sample-forget.txt").read_text().split(), state)
    return state


@pytest.mark.parametrize("first", [p.name for p in sorted(SAMPLES.iterdir()) if p.is_file()])
def test_a_run_over_one_sample_file_first_does_not_change_the_full_runs_decisions(tmp_path: Path, first: str) -> None:
    fresh = decide(sample_files(), with_forget(tmp_path / "fresh.sqlite"), tmp_path / "o1")
    state = with_forget(tmp_path / "shared.sqlite")
    decide([SAMPLES / first], state, tmp_path / "o2")
    after = decide(sample_files(), state, tmp_path / "o2")
    changed = {k: (fresh[k], after[k]) for k in fresh if fresh[k] != after[k]}
    assert after.keys() == fresh.keys() and changed == {}


def test_an_identical_rerun_changes_no_class_and_no_reason(tmp_path: Path) -> None:
    state = with_forget(tmp_path / "s.sqlite")
    first = decide(sample_files(), state, tmp_path / "out")
    second = decide(sample_files(), state, tmp_path / "out")
    assert first == second
    assert {"OPTED_OUT", "ERASURE_REQUESTED"} <= {why for _k, why in second.values()}


def test_a_reoptin_after_an_optout_an_earlier_run_saw_is_honoured(tmp_path: Path) -> None:
    old = write(tmp_path / "old.csv", ["anna@example.se,Anna,Berg,yes,2024-01-10,2025-01-01,"])
    new = write(tmp_path / "new.csv", ["anna@example.se,Anna,Berg,yes,2026-03-01,,"])
    state = tmp_path / "s.sqlite"
    assert set(decide([old], state, tmp_path / "out").values()) == {("discard", "OPTED_OUT")}
    fresh = decide([old, new], tmp_path / "fresh.sqlite", tmp_path / "o2")
    assert set(fresh.values()) == {("keep", "CONSENT_VALID"), ("discard", "DUPLICATE")}
    assert decide([old, new], state, tmp_path / "out") == fresh
    # The objection's own date is what the list keeps: the later consent lifts it without the old file too.
    assert set(decide([new], state, tmp_path / "out").values()) == {("keep", "CONSENT_VALID")}


def test_an_objection_the_inputs_no_longer_carry_is_suppressed_and_an_undated_one_is_never_lifted(
    tmp_path: Path,
) -> None:
    dated = write(tmp_path / "a.csv", ["anna@example.se,Anna,Berg,yes,2024-01-10,2025-01-01,"])
    undated = write(tmp_path / "b.csv", ["bo@example.se,Bo,Ek,yes,2024-01-10,yes,"])
    erased = write(tmp_path / "c.csv", ["cia@example.se,Cia,Lund,yes,2024-01-10,,yes"])
    state = tmp_path / "s.sqlite"
    decide([dated, undated, erased], state, tmp_path / "out")
    old_consent = write(
        tmp_path / "d.csv",
        [
            "anna@example.se,Anna,Berg,yes,2024-06-01,,",  # consent before the opt-out: still suppressed
            "bo@example.se,Bo,Ek,yes,2026-06-01,,",  # undated opt-out: not lifted by later consent
            "cia@example.se,Cia,Lund,yes,2026-06-01,,",  # erasure: never lifted
        ],
    )
    assert sorted(decide([old_consent], state, tmp_path / "out").values()) == [("discard", "SUPPRESSED")] * 3


def test_an_address_discarded_only_via_its_person_is_not_put_on_the_list(tmp_path: Path) -> None:
    person = tmp_path / "a.csv"
    person.write_text(
        "email,first_name,last_name,phone,company,consent,consent date,unsubscribed\n"
        "anna.berg@example.se,Anna,Berg,070-123 45 67,Acme AB,yes,2026-01-10,2026-02-01\n"
        "anna@berg-design.se,Anna,Berg,070-123 45 67,Acme AB,yes,2026-01-10,\n",
        encoding="utf-8",
    )
    state = tmp_path / "s.sqlite"
    decisions = decide([person], state, tmp_path / "out")
    assert set(decisions.values()) == {("discard", "OPTED_OUT")}
    assert StateStore(state).suppression().height == 1


def test_the_list_keeps_the_stricter_date_whatever_order_the_runs_came_in(tmp_path: Path) -> None:
    one, two = StateStore(tmp_path / "a.sqlite"), StateStore(tmp_path / "b.sqlite")
    early, late = dt.datetime(2025, 1, 1, tzinfo=dt.UTC), dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    for store, order in ((one, [early, late, None]), (two, [None, late, early])):
        for when in order:
            store.suppress([("h1", when), ("h2", late if when is None else when)], "opt-out", "test")
    listed = [s.suppression().sort("address_hash").rows() for s in (one, two)]
    assert listed[0] == listed[1] == [("h1", None), ("h2", late)]


def test_one_batch_that_names_an_address_twice_keeps_the_stricter_date(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite")
    early, late = dt.datetime(2025, 1, 1, tzinfo=dt.UTC), dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    added = store.suppress([("h1", early), ("h1", None), ("h2", late), ("h2", early)], "opt-out", "test")
    assert added == 2
    assert store.suppression().sort("address_hash").rows() == [("h1", None), ("h2", late)]


def test_runs_make_an_entry_stricter_and_never_looser(tmp_path: Path) -> None:
    state = tmp_path / "s.sqlite"

    def listed_after(unsubscribed: str) -> dt.datetime | None:
        source = write(tmp_path / "a.csv", [f"anna@example.se,Anna,Berg,yes,2024-01-10,{unsubscribed},"])
        decide([source], state, tmp_path / "out")
        (entry,) = StateStore(state).suppression()["suppressed_at"].to_list()
        return entry  # type: ignore[no-any-return]

    assert listed_after("2025-01-01") == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert listed_after("2024-06-01") == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)  # an earlier date: no change
    assert listed_after("2025-03-01") == dt.datetime(2025, 3, 1, tzinfo=dt.UTC)  # a later one: kept
    assert listed_after("yes") is None  # undated beats any date
    assert listed_after("2025-06-01") is None  # and is never dated again


def test_a_database_from_before_objection_dates_treats_run_entries_as_undated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE suppression (address_hash TEXT PRIMARY KEY, reason TEXT, added_at TEXT, origin TEXT)")
        db.executemany(
            "INSERT INTO suppression VALUES (?, ?, ?, ?)",
            [
                ("from-run", "opt-out or erasure", "2026-01-01T00:00:00+00:00", "run 20260101T000000Z-abcd"),
                ("forgotten", "erasure or objection", "2026-02-01T00:00:00+00:00", "cleanse forget"),
            ],
        )
    entries = dict(StateStore(path).suppression().rows())
    assert entries == {"from-run": None, "forgotten": dt.datetime(2026, 2, 1, tzinfo=dt.UTC)}


def test_forget_dates_the_entry_by_the_request(tmp_path: Path) -> None:
    state = tmp_path / "s.sqlite"
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    forget(["anna@example.se"], state)
    store = StateStore(state)
    (stored,) = store.suppression()["suppressed_at"].to_list()
    key = hash_keys(pl.Series(["anna@example.se"]), store.hmac_key()).item()
    assert store.suppression()["address_hash"].to_list() == [key]
    assert before <= stored <= dt.datetime.now(dt.UTC)


ADDRESSES = ["anna.berg@example.se", "anna@berg-design.se", "berg@hotmail.com"]  # one person where linked
DATES = ["", "2024-03-01", "2025-05-01", "2026-02-01", "2026-09-01"]
ROW = st.tuples(
    st.sampled_from(ADDRESSES),
    st.sampled_from([",", ",", "070-123 45 67,Acme AB"]),  # shared phone and company: one person
    st.sampled_from(["yes", "no", "", "pending"]),
    st.sampled_from(DATES),
    st.sampled_from(["yes", "", "no", "maybe", *DATES[1:]]),
    st.sampled_from(["", "", "", "yes"]),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    files=st.lists(st.lists(ROW, min_size=1, max_size=4), min_size=2, max_size=4),
    first=st.sets(st.integers(min_value=0, max_value=3), min_size=1),
)
def test_runs_over_any_subset_first_leave_the_full_runs_decisions_unchanged(
    tmp_path_factory: pytest.TempPathFactory, files: list[list[tuple[str, ...]]], first: set[int]
) -> None:
    tmp = tmp_path_factory.mktemp("history")
    paths = [
        write_with_phone(tmp / f"f{i}.csv", [f"{a},Anna,Berg,{c},{cd},{o},{e},{ph}" for a, ph, c, cd, o, e in rows])
        for i, rows in enumerate(files)
    ]
    fresh = decide(paths, tmp / "fresh.sqlite", tmp / "o1")
    state = tmp / "shared.sqlite"
    decide([paths[i] for i in sorted(first) if i < len(paths)], state, tmp / "o2")
    full = decide(paths, state, tmp / "o2")
    assert full == fresh
    assert decide(paths, state, tmp / "o2") == fresh


def test_an_ad_hoc_run_over_other_sources_moves_neither_latest_nor_the_nightlys_comparison(tmp_path: Path) -> None:
    import json
    import os

    def run(sources: tuple[str, ...], as_of: dt.date, set_latest: bool = False) -> Path:
        ctx = run_pipeline(
            RunRequest(
                sources=sources,
                as_of=as_of,
                out_dir=str(tmp_path / "out"),
                state=str(tmp_path / "s.sqlite"),
                check_mx=False,
                set_latest=set_latest,
            )
        )
        assert ctx.run_dir is not None
        return ctx.run_dir

    def latest() -> str:
        return os.readlink(tmp_path / "out" / "latest")

    nightly = run((str(SAMPLES),), AS_OF)
    adhoc = run((str(SAMPLES / "kunder_sv.csv"),), AS_OF)
    assert latest() == nightly.name and adhoc.is_dir()  # published, recorded, but not latest
    assert [r["run_id"] for r in StateStore(tmp_path / "s.sqlite").runs()] == [nightly.name, adhoc.name]
    assert json.loads((adhoc / "report.json").read_text())["change"]["previous_run"] is None
    # The same folder written another way is the same set of sources.
    again = run((f"{SAMPLES}/../samples/",), dt.date(2026, 11, 3))
    assert latest() == again.name
    change = json.loads((again / "report.json").read_text())["change"]
    assert change["previous_run"] == nightly.name
    assert all(r["delta"] == 0 for r in change["by_class"])  # the ad-hoc run is no baseline
    forced = run((str(SAMPLES / "kunder_sv.csv"),), dt.date(2026, 11, 4), set_latest=True)
    assert latest() == forced.name
    assert json.loads((forced / "report.json").read_text())["change"]["previous_run"] == adhoc.name


def test_a_run_waits_for_another_run_publishing_to_the_same_state_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import fcntl
    import os
    import threading
    import time

    state = tmp_path / "s.sqlite"
    StateStore(state)
    holder = os.open(tmp_path / "s.sqlite.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)  # another run is publishing
    os.pwrite(holder, b"4242\n", 0)
    done: list[Path | None] = []

    def run() -> None:
        request = RunRequest(as_of=AS_OF, out_dir=str(tmp_path / "out"), state=str(state), check_mx=False)
        done.append(run_pipeline(request).run_dir)

    worker = threading.Thread(target=run)
    worker.start()
    said = ""
    deadline = time.time() + 60
    while "waiting" not in said and time.time() < deadline and worker.is_alive():
        time.sleep(0.2)
        said += capsys.readouterr().err
    assert "waiting for it to finish" in said and "process 4242" in said
    time.sleep(1)
    assert worker.is_alive() and StateStore(state).runs() == [] and not (tmp_path / "out" / "latest").exists()
    os.close(holder)  # the other run ends
    worker.join(timeout=60)
    assert done and done[0] is not None and done[0].is_dir()
    assert [r["run_id"] for r in StateStore(state).runs()] == [done[0].name]
