"""``report.html``: the numbers of ``report.json`` as a page people read, from an autoescaping template
(templates/report.html.j2), one function per section. Self-contained: inline CSS and SVG, no script,
nothing fetched; it fits a phone (tables and charts scroll in their own box, text keeps its size).
"""

from __future__ import annotations

import functools
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Template, select_autoescape
from markupsafe import Markup

from . import charts
from .reasons import flag_text
from .report import CLASS_ORDER
from .write import FIELD_CATEGORIES

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;
color:#222;line-height:1.45;overflow-wrap:anywhere}
h1{font-size:1.6rem}h2{margin-top:2.2rem;border-bottom:2px solid #ddd;padding-bottom:.2rem}h3{font-size:1.05rem}
.scroll{overflow-x:auto;max-width:100%;margin:.8rem 0}
table{border-collapse:collapse;width:100%;font-size:.92rem;overflow-wrap:normal}
th,td{border:1px solid #ccc;padding:.25rem .45rem;text-align:left;vertical-align:top}th{background:#f3f3f3}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.big{display:flex;gap:1rem;flex-wrap:wrap}.big div{flex:1;min-width:9rem;padding:.6rem;border-radius:6px;color:#fff}
.big b{display:block;font-size:1.7rem}.keep{background:#2e7d32}.reconfirm{background:#b28704}
.discard{background:#c62828}
.quarantine{background:#6d4c41}.warn{background:#fff3cd;border:1px solid #e0c36a;padding:.5rem;border-radius:4px}
svg.chart{display:block;max-width:none}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}svg.chart,table{break-inside:avoid}
.scroll{overflow:visible}}
"""


@functools.cache
def _template() -> Template:
    env = Environment(
        loader=PackageLoader("cleansing", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.j2")


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "–"


def render_html(report: dict[str, Any]) -> str:
    return _template().render(
        run_id=report["run_id"],
        style=Markup(STYLE),
        summary=summary(report),
        flow=flow(report),
        why=why(report),
        sources=by_source(report),
        age=consent_age(report),
        domains=domains(report),
        duplicates=duplicates(report),
        change=change(report),
        quarantine=quarantine(report),
        processing=processing(report),
        rules=[[r["rule"], r["condition"], r["reason"], r["class"]] for r in report["rules"]],
    )


def summary(report: dict[str, Any]) -> dict[str, Any]:
    total, by_class = report["rows_in"], report["by_class"]
    dns = report["domains"]["dns"]
    return {
        "run_id": report["run_id"],
        "as_of": report["as_of"],
        "policy_version": report["policy"]["version"],
        "policy_sha": report["policy"]["sha256"][:16],
        "total": total,
        "big": [{"klass": k, "count": by_class[k], "share": _pct(by_class[k], total)} for k in CLASS_ORDER],
        "dns_line": f"Domain check: {dns.get('detail', 'the domain check was not run')}.",
        "dns_warn": bool(dns.get("checked") and not dns.get("healthy")),
        "chart": Markup(
            charts.stacked([("all records", {k: by_class[k] for k in CLASS_ORDER})], title="records by class")
        ),
        "inputs": [[s["source_file"], s["preset"], f"{s['rows']:,}"] for s in report["by_source"]],
        "retention": _retention_line(report["retention"]),
    }


def _retention_line(retention: dict[str, Any]) -> str:
    if not retention:
        return ""
    purged = retention["purged"]
    return (
        f"Retention: run folders keep their personal data for the newest {retention['keep_runs']} runs and at most "
        f"{retention['keep_days']} days. Publishing this run purged "
        + (f"{len(purged)} earlier run folder(s): {', '.join(purged)}." if purged else "no earlier run folder.")
    )


def flow(report: dict[str, Any]) -> dict[str, Any]:
    f = report["flow"]
    bars = [
        ("rows in", f["rows_in"], "#455a64"),
        ("readable", f["readable"], "#546e7a"),
        ("valid email address", f["valid_email"], "#607d8b"),
        ("one per person", f["after_dedupe"], "#78909c"),
        ("keep", f["keep"], charts.PALETTE["keep"]),
        ("reconfirm", f["reconfirm"], charts.PALETTE["reconfirm"]),
        ("discard (other reasons)", f["discard_other"], charts.PALETTE["discard"]),
    ]
    return {"chart": Markup(charts.hbars(bars, title="from rows in to the three lists"))}


def why(report: dict[str, Any]) -> dict[str, Any]:
    reasons = report["by_reason"]
    return {
        "chart": Markup(
            charts.hbars(
                [(r["reason"], r["count"], charts.PALETTE.get(r["class"])) for r in reasons], title="records by reason"
            )
        ),
        "rows": [
            [r["reason"], r["rule"], r["class"], f"{r['count']:,}", r["explanation"], r["what_to_do"]] for r in reasons
        ],
        "flags": [[flag, f"{n:,}", flag_text(flag)] for flag, n in sorted(report["flags"].items())],
    }


def by_source(report: dict[str, Any]) -> dict[str, Any]:
    sources = report["by_source"]
    return {
        "chart": Markup(
            charts.stacked(
                [(f"{s['source_file']} ({s['preset']})", s["by_class"]) for s in sources],
                title="class shares per source",
            )
        ),
        "rows": [
            [s["source_file"], s["preset"], f"{s['rows']:,}", *[f"{s['by_class'][k]:,}" for k in CLASS_ORDER]]
            for s in sources
        ],
    }


def consent_age(report: dict[str, Any]) -> dict[str, Any]:
    age = report["consent_age"]
    step = age["bucket_months"]
    dated = sum(b["count"] for b in age["buckets"])
    buckets = [
        (
            f"{b['from_months']}+" if b["to_months"] is None else f"{b['from_months']}–{b['to_months']}",
            b["by_class"],
        )
        for b in age["buckets"]
    ]
    refresh, expire = age["refresh_after_months"], age["expire_after_months"]
    caption = (
        f"{dated:,} records have dated consent. Each bar counts them by the age of their newest consent evidence "
        "(the opt-in or confirmation date) before the as-of date, coloured by the class they got. The rules count "
        f"from the reference date: consent younger than {refresh} months keeps, older than {expire} months is "
        "discarded, in between is reconfirmed."
    )
    if age["engagement_refreshes_consent"]:
        caption += (
            " The policy lets later engagement (opens, clicks, visits) refresh the reference date, so records past "
            f"the refresh line can still be kept: {age['kept_past_refresh']:,} are."
        )
    chart = charts.histogram(
        buckets,
        lines=[(refresh // step, f"refresh {refresh} mo"), (expire // step, f"expiry {expire} mo")],
        title="age of the newest consent evidence, by class",
    )
    return {"dated": dated, "chart": Markup(chart), "caption": caption}


def domains(report: dict[str, Any]) -> dict[str, Any]:
    d = report["domains"]
    dns = d["dns"]
    check = d["check"]
    if check == "trusted":
        line = f"The domain check ran: {dns.get('detail', '')}."
    elif check == "untrusted":
        line = (
            f"The domain check ran but its answers were not trusted: {dns.get('detail', '')}. Every record's "
            "mx_status is unverified and no record was discarded for its domain's DNS; the DNS figures are left out."
        )
    else:
        line = (
            "The domain check did not run (switched off): every record's mx_status is not_checked and no record was "
            "discarded for its domain's DNS. The typo, disposable, role and free-mail figures below need no DNS."
        )
    trusted = check == "trusted"
    local = [
        ("known typo of a provider", d["typo_records"], charts.PALETTE["discard"]),
        ("disposable domain", d["disposable_records"], charts.PALETTE["discard"]),
        ("role mailbox", d["role_accounts"], None),
        ("free-mail provider", d["free_mail"], None),
    ]
    return {
        "local_chart": Markup(charts.hbars(local, title="records by what the domain tells without DNS")),
        "check_line": line,
        "warn": check == "untrusted",
        "status_chart": Markup(
            charts.hbars(
                sorted(((k, v, None) for k, v in d["records_by_status"].items()), key=lambda t: -t[1]),
                title="records by domain status",
            )
        )
        if trusted
        else None,
        "statuses": sorted([k, f"{v:,}"] for k, v in dns.get("domains_by_status", {}).items()) if trusted else [],
        "discarded": [[t["domain"], t["reason"], f"{t['discarded']:,}"] for t in d["top_discarded_domains"]],
        "typos": [
            [t["domain"], t["suggested"], f"{t['records']:,}", *[f"{t[k]:,}" for k in CLASS_ORDER[:3]]]
            for t in d["typo_suggestions"]
        ],
        "typo_records": d["typo_records"],
        "disposable": d["disposable_records"],
        "role": d["role_accounts"],
        "free": d["free_mail"],
    }


def duplicates(report: dict[str, Any]) -> dict[str, Any]:
    dup = report["duplicates"]
    sizes = sorted(dup["cluster_sizes"].items(), key=lambda kv: int(kv[0].rstrip("+")))
    return {
        "chart": Markup(charts.hbars([(f"{k} record(s)", v, None) for k, v in sizes], title="clusters by size")),
        "pairs": [[m["merged_from"], m["survivor_in"], f"{m['records']:,}"] for m in dup["merges_by_source_pair"]],
        "duplicate_records": dup["duplicate_records"],
        "spread": dup["opt_outs_spread"],
        "review": dup["review"],
        "persons": dup["persons"],
    }


def change(report: dict[str, Any]) -> dict[str, Any]:
    c = report["change"]
    if not c["previous_run"]:
        return {"previous_run": None}
    classes = {r["reason"]: r["class"] for r in report["rules"]}
    deltas = [r for r in c["by_reason"] if r["delta"]]
    # Each bar in its reason's colour, to the right for more records and to the left for fewer.
    chart = (
        charts.hbars(
            [(r["reason"], r["delta"], charts.PALETTE.get(classes.get(r["reason"], ""), "#78909c")) for r in deltas],
            unit="delta",
            title="change per reason",
        )
        if deltas
        else None
    )
    return {
        "previous_run": c["previous_run"],
        "previous_as_of": c["previous_as_of"],
        "chart": Markup(chart) if chart else None,
        "by_class": [[r["class"], f"{r['previous']:,}", f"{r['now']:,}", f"{r['delta']:+,}"] for r in c["by_class"]],
        "by_reason": [[r["reason"], f"{r['previous']:,}", f"{r['now']:,}", f"{r['delta']:+,}"] for r in c["by_reason"]],
    }


def quarantine(report: dict[str, Any]) -> dict[str, Any]:
    q = report["quarantine"]
    return {
        "chart": Markup(
            charts.hbars(
                [(e["error"], e["rows"], charts.PALETTE["quarantine"]) for e in q["by_error"]],
                title="quarantined rows by error",
            )
        ),
        "examples": [[x["source_file"], x["source_row"], x["error"]] for x in q["examples"]],
    }


def processing(report: dict[str, Any]) -> dict[str, Any]:
    """Section 10: what a data-protection officer needs for the Art. 30 record, and after a breach."""
    p = report["processing"]
    rows = {s["source_file"]: s["rows"] for s in report["by_source"]}
    retention = p["retention"]  # empty for a run from before retention
    held = [
        [source, f"{rows.get(source, 0):,}", *[", ".join(fields.get(c, [])) or "–" for c in FIELD_CATEGORIES]]
        for source, fields in sorted(p["fields_by_source"].items())
    ]
    kept = (
        f"The newest {retention['keep_runs']} run folders, and none for longer than {retention['keep_days']} days, "
        "keep their personal-data files; older ones keep only the manifest and the report."
        if retention
        else ""
    )
    erased = sum(e["rows_removed"] for e in p["erasures_since"])
    return {
        "categories": list(FIELD_CATEGORIES),
        "held": held,
        "folder": p["run_folder"],
        "kept": kept,
        "purged": retention.get("purged", []),
        "erasure_requests": p["erasure_requests"],
        "objections_listed": p["objections_listed"],
        "erased_since": erased,
    }
