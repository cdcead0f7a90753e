"""The audit report as a person sees it: rendered in headless Chromium, and as numbers."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import polars as pl
import pytest
from markupsafe import escape

from cleansing import charts
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
    "10. Records of processing",
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


# The smallest text a chart may show, in CSS pixels as drawn on the screen.
MIN_CHART_TEXT_PX = 9.5
CHART_TEXT_SIZES = """() => Array.from(document.querySelectorAll('svg.chart text')).map(t => {
    const m = t.getScreenCTM();
    return parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b);
})"""


@pytest.mark.parametrize("width", [1280, 390])
def test_report_renders_in_chromium_with_every_section_and_chart_and_no_request(
    two_runs: tuple[Path, Path], width: int
) -> None:
    """On a laptop and on a phone: every section and chart, nothing fetched, no sideways scrolling of the
    page (tables and charts scroll in their own box), and chart text as large as on a wide screen."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Chromium is needed: apt-get install chromium (.ci/run does it)"
    report = two_runs[1] / "report.html"
    requests: list[str] = []
    failed: list[str] = []
    with sync_playwright() as p:
        # Playwright gives every launch a fresh, empty user-data dir of its own.
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        page.on("requestfailed", lambda r: failed.append(r.url))
        response = page.goto(report.as_uri(), wait_until="load")
        assert response is not None and response.ok
        shot = SCREENSHOT.with_name(f"report-{width}.png")
        shot.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        headings = page.locator("section h2").all_inner_texts()
        charts_per_section = [page.locator(f"section#s{i} svg.chart").count() for i in range(1, 10)]
        page_width = page.evaluate("document.documentElement.scrollWidth")
        text_sizes = page.evaluate(CHART_TEXT_SIZES)
        browser.close()
    assert failed == [] and requests == [report.as_uri()]
    assert headings[:10] == SECTIONS
    assert all(n >= 1 for n in charts_per_section), charts_per_section
    assert page_width <= width
    assert text_sizes and min(text_sizes) >= MIN_CHART_TEXT_PX, min(text_sizes)
    assert shot.stat().st_size > 50_000


def test_labels_of_sources_that_differ_in_the_middle_stay_distinct() -> None:
    names = [f"{kind}_members_export_5f3a9c.csv (mailchimp)" for kind in ("subscribed", "unsubscribed", "cleaned")]
    names.append("nonsubscribed_members_export_5f3a9c.csv (mailchimp)")
    labels = charts.distinct_labels(names, limit=30)
    assert len(set(labels)) == 4 and all(len(label) <= 30 for label in labels)
    assert all(label.endswith("(mailchimp)") for label in labels)
    svg = charts.stacked([(n, {"keep": 1}) for n in names], title="t")
    assert all(f"<title>{n}</title>" in svg for n in names)  # the full name on hover


def test_a_negative_change_is_drawn_to_the_left_of_the_zero_line() -> None:
    svg = charts.hbars([("CONSENT_VALID", -99, "#2e7d32"), ("CONSENT_STALE", 48, "#f9a825")], unit="delta")
    zero = float(re.search(r'<line x1="([0-9.]+)"', svg).group(1))  # type: ignore[union-attr]
    rects = [(float(x), float(w)) for x, w in re.findall(r'<rect x="([0-9.]+)" y="[0-9.]+" width="([0-9.]+)"', svg)]
    (neg_x, neg_w), (pos_x, _pos_w) = rects
    assert neg_x + neg_w == pytest.approx(zero, abs=0.2) and pos_x == pytest.approx(zero, abs=0.2)
    assert ">-99<" in svg and ">+48<" in svg


def test_the_report_explains_every_flag_it_counts_and_draws_no_empty_chart(two_runs: tuple[Path, Path]) -> None:
    first, second = two_runs
    report = json.loads((second / "report.json").read_text())
    page = (second / "report.html").read_text()
    assert report["flags"] and set(report["flag_meanings"]) == set(report["flags"])
    for flag, meaning in report["flag_meanings"].items():
        assert f"<td>{flag}</td>" in page and str(escape(meaning)) in page
    first_page = (first / "report.html").read_text()
    assert "no previous run" not in first_page and "nothing to compare with" in first_page
    age = report["consent_age"]
    assert age["kept_past_refresh"] > 0 and f"can still be kept: {age['kept_past_refresh']:,} are" in page
    assert sum(sum(b["by_class"].values()) for b in age["buckets"]) == sum(b["count"] for b in age["buckets"])


def test_the_rule_table_in_the_report_is_the_decision_table_with_one_condition_per_outcome(
    two_runs: tuple[Path, Path],
) -> None:
    report = json.loads((two_runs[1] / "report.json").read_text())
    rules = report["rules"]
    assert len({r["condition"] for r in rules}) == len(rules)
    r9 = [r for r in rules if r["rule"] == "R9"]
    assert {r["reason"]: r["class"] for r in r9} == {"CONSENT_VALID": "keep", "NEEDS_DOUBLE_OPT_IN": "reconfirm"}
    by_reason = {r["reason"]: r for r in report["by_reason"]}
    table = {r["reason"]: r for r in rules}
    assert all(
        by_reason[k]["class"] == table[k]["class"] and by_reason[k]["rule"] == table[k]["rule"] for k in by_reason
    )


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


def test_the_report_holds_a_record_of_processing_with_nothing_personal(two_runs: tuple[Path, Path]) -> None:
    report = json.loads((two_runs[1] / "report.json").read_text())
    processing = report["processing"]
    held = processing["fields_by_source"]
    assert set(held) == {s["source_file"] for s in report["by_source"]}
    assert len(held) == len(report["by_source"]) and all("email" in fields["contact"] for fields in held.values())
    assert any(fields["purchase"] for fields in held.values()) and any(fields["activity"] for fields in held.values())
    assert processing["run_folder"] == str(two_runs[1].resolve())
    assert processing["retention"]["keep_runs"] == 7 and processing["erasure_requests"] > 0
    # Objections go on the list the first time; the second run over the same inputs adds none.
    first = json.loads((two_runs[0] / "report.json").read_text())["processing"]
    assert first["objections_listed"] > 0 and processing["objections_listed"] == 0
    page = (two_runs[1] / "report.html").read_text()
    assert "10. Records of processing" in page and "consent evidence" in page
