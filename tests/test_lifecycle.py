"""The GDPR lifecycle end to end: erasure that reaches every run folder, and retention."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import polars as pl
import pytest

from cleansing.pipeline import RunRequest, run_pipeline
from flows.cli import main

# Anna's address in any form the key folds: case, Gmail dots, +tags, googlemail.com.
ANNA = re.compile(r"anna\.?svensson", re.IGNORECASE)
ROWS = [
    "Anna.Svensson+news@gmail.com,Anna,Svensson,yes,2026-10-01,",
    "annasvensson@googlemail.com,Anna,Svensson,yes,2026-09-01,",
    "bo.ek@example.se,Bo,Ek,yes,2026-10-01,",
    "cia@example.se,Cia,Berg,yes,2026-10-01,c/o ANNA.SVENSSON@GMAIL.COM",
    "dan@example.se,Dan,Lund,yes,2026-10-01,",
    "anna.svensson@gmail.com,Anna,Svensson,yes,2026-10-01,,one field too many",
]


def _run(tmp_path: Path, day: int, policy: str | None = None) -> Path:
    """A run over ROWS, ``day`` days after 2 November 2026, into one out folder and state database."""
    source = tmp_path / "contacts.csv"
    source.write_text("email,first name,last name,consent,consent date,company\n" + "\n".join(ROWS) + "\n")
    ctx = run_pipeline(
        RunRequest(
            sources=(str(source),),
            as_of=dt.date(2026, 11, 2) + dt.timedelta(days=day),
            out_dir=str(tmp_path / "out"),
            state=str(tmp_path / "s.sqlite"),
            check_mx=False,
            policy=policy,
        )
    )
    assert ctx.run_dir is not None
    return ctx.run_dir


def _runs(tmp_path: Path, days: int) -> list[Path]:
    return [_run(tmp_path, day) for day in range(days)]


def _occurrences(out: Path) -> list[str]:
    """Every file under ``out`` that holds Anna's address in any form, read as a person or a program would."""
    from openpyxl import load_workbook

    found = []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
            text = " ".join(
                str(v) for c, t in frame.schema.items() if t in (pl.String, pl.List(pl.String)) for v in frame[c]
            )
        elif path.suffix == ".xlsx":
            text = " ".join(
                str(c) for ws in load_workbook(path).worksheets for r in ws.iter_rows(values_only=True) for c in r
            )
        else:
            text = path.read_text(encoding="utf-8", errors="replace")
        if ANNA.search(text):
            found.append(str(path.relative_to(out)))
    return found


def test_forget_after_three_runs_leaves_no_occurrence_in_any_file_of_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folders = _runs(tmp_path, 3)
    before = _occurrences(tmp_path / "out")
    assert any(f.endswith("keep.csv") for f in before) and any(f.endswith("quarantine.parquet") for f in before)
    manifests = [json.loads((f / "manifest.json").read_text()) for f in folders]

    assert main(["forget", "anna.svensson@gmail.com", "--state", str(tmp_path / "s.sqlite")]) == 0
    said = capsys.readouterr().err
    # per folder: two records of the address, Cia's row that names it, the quarantined raw line
    assert "12 record(s) removed from 3 run folder(s)" in said

    assert _occurrences(tmp_path / "out") == []
    for folder, old in zip(folders, manifests, strict=True):
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["erasures"][0]["rows_removed"] == 4 and "anna" not in json.dumps(manifest["erasures"]).lower()
        assert sum(manifest["counts"].values()) + 4 == manifest["rows_in"] == old["rows_in"]
        decisions = pl.read_parquet(folder / "decisions.parquet")
        assert decisions.height == sum(manifest["counts"].values())
        assert json.loads((folder / "report.json").read_text())["rows_in"] == decisions.height
        kept = pl.read_csv(folder / "keep.csv", infer_schema=False)["email"].to_list()
        assert "bo.ek@example.se" in kept and "dan@example.se" in kept  # nobody else went
        assert all(p.stat().st_mode & 0o077 == 0 for p in folder.iterdir())

    # Idempotent: nothing more to remove.
    assert main(["forget", "anna.svensson@gmail.com", "--state", str(tmp_path / "s.sqlite")]) == 0
    assert "0 record(s) removed from 0 run folder(s)" in capsys.readouterr().err


def test_a_folder_that_cannot_be_rewritten_is_named_and_the_rest_is_done(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = _runs(tmp_path, 2)
    (first / ".keep.csv.partial").mkdir()  # the new keep.csv cannot be written
    assert main(["forget", "anna.svensson@gmail.com", "--state", str(tmp_path / "s.sqlite")]) == 1
    said = capsys.readouterr().err
    assert str(first) in said and "run cleanse forget again" in said
    assert "4 record(s) removed from 1 run folder(s)" in said
    assert (first / "keep.parquet").stat().st_size and ANNA.search((first / "keep.csv").read_text())  # untouched
    assert not [p for p in first.iterdir() if p.name.endswith(".partial") and p.is_file()]
    (first / ".keep.csv.partial").rmdir()
    assert main(["forget", "anna.svensson@gmail.com", "--state", str(tmp_path / "s.sqlite")]) == 0
    assert "4 record(s) removed from 1 run folder(s)" in capsys.readouterr().err
    assert _occurrences(tmp_path / "out") == []


def _policy(tmp_path: Path, keep_runs: int, keep_days: int) -> str:
    path = tmp_path / "policy.toml"
    path.write_text(f"[retention]\nkeep_runs = {keep_runs}\nkeep_days = {keep_days}\n")
    return str(path)


KEPT = {"manifest.json", "report.json", "report.html"}


def test_retention_keeps_the_personal_data_of_the_newest_runs_only(tmp_path: Path) -> None:
    from cleansing.state import StateStore

    policy = _policy(tmp_path, keep_runs=2, keep_days=365)
    folders = [_run(tmp_path, day, policy) for day in range(4)]
    assert [{p.name for p in f.iterdir()} == KEPT for f in folders] == [True, True, False, False]
    assert _occurrences(folders[0]) == [] and _occurrences(folders[3]) != []
    runs = {r["run_id"]: r for r in StateStore(tmp_path / "s.sqlite").runs()}
    assert [bool(runs[f.name]["purged_at"]) for f in folders] == [True, True, False, False]
    # The run that purged a folder says so; nothing is purged twice.
    assert json.loads((folders[2] / "report.json").read_text())["retention"]["purged"] == [folders[0].name]
    assert json.loads((folders[3] / "report.json").read_text())["retention"]["purged"] == [folders[1].name]
    assert f"purged 1 earlier run folder(s): {folders[1].name}" in (folders[3] / "report.html").read_text()
    # A purged folder's report still opens and its manifest still counts what the run decided.
    assert json.loads((folders[0] / "manifest.json").read_text())["counts"]["keep"] > 0


def test_retention_purges_run_folders_older_than_keep_days(tmp_path: Path) -> None:
    import sqlite3

    policy = _policy(tmp_path, keep_runs=10, keep_days=30)
    old, recent = _run(tmp_path, 0, policy), _run(tmp_path, 1, policy)
    forty_days_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=40)).isoformat(timespec="seconds")
    with sqlite3.connect(tmp_path / "s.sqlite") as db:  # as if the first run had been published 40 days ago
        db.execute("UPDATE runs SET published_at = ? WHERE run_id = ?", (forty_days_ago, old.name))
    newest = _run(tmp_path, 2, policy)
    assert {p.name for p in old.iterdir()} == KEPT
    assert {p.name for p in recent.iterdir()} > KEPT and {p.name for p in newest.iterdir()} > KEPT


def test_access_shows_every_record_of_the_person_across_three_sources_and_whether_it_is_suppressed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header = "email,first name,last name,phone,consent,consent date,opted out\n"
    (tmp_path / "a.csv").write_text(header + "Anna.Svensson@gmail.com,Anna,Svensson,070-111 22 33,yes,2026-10-01,\n")
    (tmp_path / "b.csv").write_text(
        header + "bo@example.se,Bo,Ek,,yes,2026-10-01,\nannasvensson@gmail.com,Anna,Svensson,,yes,2025-01-01,\n"
    )
    (tmp_path / "c.csv").write_text(header + "anna.svensson+x@googlemail.com,Anna,Svensson,,no,,2026-10-15\n")
    ctx = run_pipeline(
        RunRequest(
            sources=tuple(str(tmp_path / f) for f in ("a.csv", "b.csv", "c.csv")),
            as_of=dt.date(2026, 11, 2),
            out_dir=str(tmp_path / "out"),
            state=str(tmp_path / "s.sqlite"),
            check_mx=False,
        )
    )
    assert ctx.run_dir is not None
    state = str(tmp_path / "s.sqlite")
    assert main(["access", "ANNA.SVENSSON@gmail.com", "--state", state, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    records = answer["records"]
    assert [(r["source_file"], r["source_row"]) for r in records] == [("a.csv", 1), ("b.csv", 2), ("c.csv", 1)]
    assert {r["class"] for r in records} == {"discard"} and {r["reason"] for r in records} == {"OPTED_OUT"}
    assert all(r["reason_text"].startswith("The person opted out") for r in records)
    assert (
        records[0]["fields"]["email"] == "Anna.Svensson@gmail.com"
        and records[0]["fields"]["phone_e164"] == "+46701112233"
    )
    assert records[2]["evidence"]["opted_out_at"].startswith("2026-10-15")
    assert answer["runs_holding"] == [ctx.run_dir.name]
    # The opt-out put the address on the suppression list: the answer says since when.
    (entry,) = answer["suppression"]
    assert entry["address"] == "annasvensson@gmail.com" and entry["objection_dated"].startswith("2026-10-15")
    # Plain text for a person; nobody else's record in it.
    assert main(["access", "anna.svensson@gmail.com", "--state", state]) == 0
    text = capsys.readouterr().out
    assert (
        "Records held in the newest run" in text and "bo@example.se" not in text and "On the suppression list" in text
    )
    # After erasure: no record is held, and the list says the address is suppressed.
    assert main(["forget", "anna.svensson@gmail.com", "--state", state]) == 0
    capsys.readouterr()
    assert main(["access", "anna.svensson@gmail.com", "--state", state, "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["records"] == [] and after["runs_holding"] == [] and after["suppression"]
    assert main(["access", "nobody@example.se", "--state", state]) == 0
    assert capsys.readouterr().out.strip() == "No records are held about this address."


def test_access_follows_the_person_to_the_records_of_another_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header = "email,first name,last name,phone,consent,consent date\n"
    (tmp_path / "a.csv").write_text(
        header + "anna@example.se,Anna,Svensson,070-111 22 33,yes,2026-10-01\nbo@example.se,Bo,Ek,,yes,2026-10-01\n"
    )
    (tmp_path / "b.csv").write_text(header + "anna.svensson@work.se,Anna,Svensson,070-111 22 33,yes,2026-09-01\n")
    run_pipeline(
        RunRequest(
            sources=(str(tmp_path / "a.csv"), str(tmp_path / "b.csv")),
            as_of=dt.date(2026, 11, 2),
            out_dir=str(tmp_path / "out"),
            state=str(tmp_path / "s.sqlite"),
            check_mx=False,
        )
    )
    assert main(["access", "anna@example.se", "--state", str(tmp_path / "s.sqlite"), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)["records"]
    assert [(r["fields"]["email"], r["reason"]) for r in records] == [
        ("anna@example.se", "CONSENT_VALID"),
        ("anna.svensson@work.se", "DUPLICATE"),  # the same person (name and phone), another address
    ]
    assert len({r["person_id"] for r in records}) == 1


def test_a_reconfirmation_is_asked_once_waited_for_and_then_kept_or_discarded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    day0 = dt.date(2026, 11, 2)
    state = str(tmp_path / "s.sqlite")
    header = "email,first name,consent,consent date,confirmation date\n"
    silent = header + "anna@example.se,Anna,yes,2024-05-01,\nbo@example.se,Bo,yes,2026-10-01,\n"
    answered = header + "anna@example.se,Anna,yes,2024-05-01,2026-11-14\nbo@example.se,Bo,yes,2026-10-01,\n"

    def run(day: int, text: str) -> tuple[Path, dict[str, tuple[str, str, str | None]]]:
        source = tmp_path / f"day{day}" / "contacts.csv"
        source.parent.mkdir()
        source.write_text(text)
        ctx = run_pipeline(
            RunRequest(
                sources=(str(source),),
                as_of=day0 + dt.timedelta(days=day),
                out_dir=str(tmp_path / f"day{day}" / "out"),  # each run on its own: only the state links them
                state=state,
                check_mx=False,
            )
        )
        assert ctx.run_dir is not None
        reconfirm = pl.read_parquet(ctx.run_dir / "reconfirm.parquet")
        actions = dict(zip(reconfirm["email"], reconfirm["action"], strict=True))
        return ctx.run_dir, {
            e: (k, r, actions.get(e)) for e, k, r in ctx.contacts.select("email", "class", "reason").iter_rows()
        }

    first, decided = run(0, silent)
    assert decided["anna@example.se"] == ("reconfirm", "CONSENT_STALE", "ask")
    assert main(["reconfirm-sent", str(first), "--on", str(day0), "--state", state]) == 0
    assert "1 reconfirmation(s) recorded as sent; 0 address(es)" in capsys.readouterr().err
    assert main(["reconfirm-sent", str(first), "--on", str(day0), "--state", state]) == 0
    assert "0 reconfirmation(s) recorded as sent; 1 address(es) already asked" in capsys.readouterr().err

    _, decided = run(10, silent)  # asked and waiting: not offered for another request
    assert decided["anna@example.se"] == ("reconfirm", "RECONFIRM_PENDING", "wait")
    _, decided = run(12, answered)  # confirmed on day 12, after the request
    assert decided["anna@example.se"][:2] == ("keep", "CONSENT_VALID")
    _, decided = run(31, silent)  # silent until day 31
    assert decided["anna@example.se"] == ("discard", "RECONFIRM_UNANSWERED", None)
    assert decided["bo@example.se"][:2] == ("keep", "CONSENT_VALID")
    assert main(["access", "anna@example.se", "--state", state, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["reconfirmations"] == [{"address": "anna@example.se", "asked_on": "2026-11-02"}]
    assert [r["reason"] for r in answer["records"]] == ["RECONFIRM_UNANSWERED"]
