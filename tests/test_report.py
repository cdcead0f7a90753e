"""The audit report as a person sees it: rendered in headless Chromium, and as numbers."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from cleansing.pipeline import RunRequest, run_pipeline
from cleansing.rebuild import rebuild_report

SECTIONS = [
    "1. Summary",
    "2. Flow",
    "3. Why",
    "4. By source",
    "5. Consent age",
    "6. Domains",
    "7. Duplicates",
    "8. Change since the previous run",
    "9. Quarantine",
]
SCREENSHOT = Path(__file__).resolve().parents[1] / ".pytest_cache" / "report.png"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The bundled sample (dated up to November 2026) run twice on one state database, half a year apart."""
    tmp = tmp_path_factory.mktemp("report")
    first = run_pipeline(
        RunRequest(as_of=dt.date(2026, 11, 2), out_dir=str(tmp / "out"), state=str(tmp / "s.sqlite"), check_mx=False)
    )
    second = run_pipeline(
        RunRequest(as_of=dt.date(2027, 5, 3), out_dir=str(tmp / "out"), state=str(tmp / "s.sqlite"), check_mx=False)
    )
    assert first.run_dir is not None and second.run_dir is not None
    return first.run_dir, second.run_dir


def test_report_renders_in_chromium_with_every_section_and_chart_and_no_request(
    two_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Chromium is needed: apt-get install chromium (.ci/run does it)"
    report = two_runs[1] / "report.html"
    requests: list[str] = []
    failed: list[str] = []
    with sync_playwright() as p:
        # Playwright gives every launch a fresh, empty user-data dir of its own.
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        page.on("requestfailed", lambda r: failed.append(r.url))
        response = page.goto(report.as_uri(), wait_until="load")
        assert response is not None and response.ok
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        headings = page.locator("section h2").all_inner_texts()
        charts_per_section = [page.locator(f"section#s{i} svg.chart").count() for i in range(1, 10)]
        width = page.evaluate("document.documentElement.scrollWidth")
        browser.close()
    assert failed == [] and requests == [report.as_uri()]
    assert headings[:9] == SECTIONS
    assert all(n >= 1 for n in charts_per_section), charts_per_section
    assert width <= 1280  # readable on a laptop screen without scrolling sideways
    assert SCREENSHOT.stat().st_size > 50_000


def test_change_since_previous_run_shows_consent_that_went_stale(two_runs: tuple[Path, Path]) -> None:
    first, second = (json.loads((d / "report.json").read_text()) for d in two_runs)
    assert first["change"]["previous_run"] is None
    change = second["change"]
    assert change["previous_run"] == first["run_id"] and change["previous_as_of"] == "2026-11-02"
    delta = {r["reason"]: r["delta"] for r in change["by_reason"]}
    assert delta["CONSENT_VALID"] < 0 < delta["CONSENT_STALE"]
    # The same inputs still carry last run's opt-outs: their reasons stay theirs, not SUPPRESSED.
    assert "SUPPRESSED" not in delta and delta.get("OPTED_OUT", 0) == 0
    assert "8. Change since the previous run" in (two_runs[1] / "report.html").read_text()


def test_report_json_carries_the_numbers_with_a_schema_version(two_runs: tuple[Path, Path]) -> None:
    report = json.loads((two_runs[1] / "report.json").read_text())
    decisions = pl.read_parquet(two_runs[1] / "decisions.parquet")
    assert report["schema_version"] >= 2 and report["rows_in"] == decisions.height
    assert sum(report["by_class"].values()) == decisions.height
    assert sum(r["count"] for r in report["by_reason"]) == decisions.height
    assert report["flow"]["after_dedupe"] <= report["flow"]["valid_email"] <= report["flow"]["readable"]
    assert sum(b["count"] for b in report["consent_age"]["buckets"]) > 0
    assert report["duplicates"]["duplicate_records"] == report["flow"]["valid_email"] - report["flow"]["after_dedupe"]
    assert [r["rule"] for r in report["rules"]][:2] == ["R0", "R1"]
    assert report["quarantine"]["rows"] == 2


def test_cleanse_report_rebuilds_the_same_numbers(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(two_runs[1], copy)
    before = json.loads((copy / "report.json").read_text())
    (copy / "report.json").unlink()
    rebuild_report(copy)
    assert json.loads((copy / "report.json").read_text()) == before
