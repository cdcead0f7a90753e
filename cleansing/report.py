"""The audit report: the same numbers as ``report.json`` (for machines) and ``report.html`` (for people).

Nothing personal goes in: counts, reasons, file names and row numbers only.
"""

from __future__ import annotations

import html
from typing import Any

import polars as pl

from .reasons import Klass, Reason

SCHEMA_VERSION = 1
CLASS_ORDER = [k.value for k in Klass]


def build_report(decisions: pl.DataFrame, meta: dict[str, Any]) -> dict[str, Any]:
    """The report's numbers from the decisions and the run's metadata (run id, as-of, policy, DNS)."""
    by_class = {k: 0 for k in CLASS_ORDER}
    for row in decisions.group_by("class").len().iter_rows():
        by_class[row[0]] = row[1]
    reasons = []
    for reason_code, klass, count in (
        decisions.group_by("reason", "class").len().sort("len", "reason", descending=[True, False]).iter_rows()
    ):
        info = Reason(reason_code).info
        reasons.append(
            {
                "reason": reason_code,
                "class": klass,
                "rule": info.rule,
                "count": count,
                "explanation": info.text,
                "what_to_do": info.action,
            }
        )
    by_source = [
        {"source_file": f, "class": k, "count": n}
        for f, k, n in decisions.group_by("source_file", "class").len().sort("source_file", "class").iter_rows()
    ]
    flags = (
        decisions.select(pl.col("flags").str.split(";").explode(empty_as_null=True).alias("flag"))
        .filter(pl.col("flag").is_not_null() & (pl.col("flag") != ""))
        .group_by("flag")
        .len()
        .sort("len", "flag", descending=[True, False])
    )
    quarantine = (
        decisions.filter(pl.col("class") == Klass.QUARANTINE.value)
        .select("source_file", "source_row")
        .head(200)
        .to_dicts()
    )
    return {
        "schema_version": SCHEMA_VERSION,
        **meta,
        "rows_in": decisions.height,
        "by_class": by_class,
        "by_reason": reasons,
        "by_source": by_source,
        "flags": [{"flag": f, "count": n} for f, n in flags.iter_rows()],
        "quarantine_rows": quarantine,
    }


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: dict[str, Any], quarantine_errors: list[dict[str, Any]] | None = None) -> str:
    """A self-contained page: no scripts, no fonts, no requests."""
    total = report["rows_in"] or 1
    classes = _table(
        ["class", "records", "share"],
        [[k, n, f"{100 * n / total:.1f} %"] for k, n in report["by_class"].items()],
    )
    reasons = _table(
        ["reason", "rule", "class", "records", "what it means", "what to do"],
        [
            [r["reason"], r["rule"], r["class"], r["count"], r["explanation"], r["what_to_do"]]
            for r in report["by_reason"]
        ],
    )
    sources = _table(
        ["source file", "class", "records"], [[s["source_file"], s["class"], s["count"]] for s in report["by_source"]]
    )
    flags = (
        _table(["flag", "records"], [[f["flag"], f["count"]] for f in report["flags"]])
        if report["flags"]
        else "<p>None.</p>"
    )
    q_rows = quarantine_errors or []
    quarantine = (
        _table(["source file", "row", "error"], [[q["source_file"], q["source_row"], q["error"]] for q in q_rows])
        if q_rows
        else "<p>No row was quarantined.</p>"
    )
    dns = report.get("dns", {})
    domain_rows = [[status, count] for status, count in sorted(dns.get("domains_by_status", {}).items())]
    domains = _table(["domain status", "distinct domains"], domain_rows) if domain_rows else ""
    canaries = ", ".join(f"{c}: {s}" for c, s in dns.get("canaries", {}).items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Contact cleansing report {html.escape(report["run_id"])}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}}
table{{border-collapse:collapse;margin:1rem 0;width:100%}}
th,td{{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}}
th{{background:#f2f2f2}}@media print{{body{{margin:0}}}}
</style></head><body>
<h1>Contact cleansing report</h1>
<p>Run <code>{html.escape(report["run_id"])}</code>, rules applied as of {html.escape(report["as_of"])},
policy <code>{html.escape(report["policy_version"])}</code>. {report["rows_in"]} input rows.</p>
<h2>1. Summary</h2>{classes}
<p>Keep: mail them. Reconfirm: send one request for consent, keep only those who answer yes.
Discard: do not mail; delete or suppress as the reason says.
Quarantine: rows that could not be read; fix them and run again.</p>
<p>Domain check: {html.escape(str(dns.get("detail", "")))}.</p>
{domains}{f"<p>Canary domains: {html.escape(canaries)}.</p>" if canaries else ""}
<h2>2. Reasons</h2>{reasons}
<h2>3. By source</h2>{sources}
<h2>4. Flags</h2>{flags}
<h2>5. Quarantine</h2>{quarantine}
</body></html>
"""
