"""The audit report: ``report.json`` (for machines) and ``report.html`` (for people), same numbers.

Built from the run's frames (or, for ``cleanse report``, from the run folder's files). Nothing
personal goes in: counts, reasons, file names, row numbers, domains; any address is masked.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import polars as pl

from . import charts
from .classify import evidence_at
from .policy import Policy
from .reasons import Klass, Reason

SCHEMA_VERSION = 2
CLASS_ORDER = [k.value for k in Klass]
AGE_BUCKET_MONTHS = 6
AGE_BUCKETS = 17  # 0–6, 6–12, …, 96+ months
RECORD_COLUMNS = [
    "source_file",
    "record_id",
    "preset",
    "class",
    "reason",
    "flags",
    "mx_status",
    "email_normalized",
    "consent_status",
    "consent_at",
    "confirmed_at",
    "cluster_id",
    "survivor_id",
    "suggested_email",
]


PERSON_COUNTS = ("persons", "kept_id", "new", "merged", "split")


def _counts(frame: pl.DataFrame, column: str) -> dict[str, int]:
    return _as_counts(frame.group_by(column).len().sort(column))


def _as_counts(counted: pl.DataFrame) -> dict[str, int]:
    """``value → count`` from a frame of a value column and its ``len``."""
    return {str(k): int(v) for k, v in counted.iter_rows()}


def rule_table(policy: Policy) -> list[dict[str, str]]:
    """The decision table as applied, with the policy's numbers in it."""
    c = policy.consent
    conditions = {
        "R0": "email missing or invalid syntax",
        "R1": "on the suppression list, no evidenced consent since",
        "R2": "erasure requested",
        "R3": "opted out or refused (an unreadable or undated objection always stands)"
        + (", with no evidenced consent since" if c.reoptin_after_optout else ""),
        "R4": "undeliverable (hard bounce, cleaned), unless confirmed after it",
        "R5": "domain does not exist or takes no mail (DNS healthy)",
        "R6": "disposable domain" + ("" if policy.domains.discard_disposable else " (off by policy)"),
        "R7": "bought, rented or partner list (third party)",
        "R8": f"evidenced consent older than {c.expire_after_months} months, or past its end date",
        "R9": f"evidenced consent within {c.refresh_after_months} months"
        + (" (double opt-in required)" if c.require_double_opt_in else ""),
        "R10": f"evidenced consent within {c.expire_after_months} months",
        "R11": f"double opt-in pending: within {c.pending_max_days} days reconfirm, else discard",
        "R12": f"customer with a purchase within {policy.soft_opt_in.max_months} months and no refusal (soft opt-in)"
        + ("" if policy.soft_opt_in.enabled else " (off by policy)"),
        "R13": f"consent claimed without evidence, or in words that cannot be read → {c.unproven_consent}",
        "R14": f"legitimate interest only → {policy.legitimate_interest.action}",
        "R15": "anything else",
    }
    rows = []
    for reason in Reason:
        info = reason.info
        if info.rule in conditions:
            rows.append(
                {
                    "rule": info.rule,
                    "condition": conditions[info.rule],
                    "reason": reason.value,
                    "class": info.klass.value,
                }
            )
    return rows


def build_report(
    records: pl.DataFrame, decisions: pl.DataFrame, quarantine: pl.DataFrame, meta: dict[str, Any], policy: Policy
) -> dict[str, Any]:
    """Every number of the report. ``meta`` is the run's manifest (run id, inputs, policy, DNS, previous run)."""
    as_of = dt.date.fromisoformat(meta["as_of"])
    rows_in = decisions.height
    by_class = {k: 0 for k in CLASS_ORDER} | _counts(decisions, "class")
    by_reason = _counts(decisions, "reason")
    reasons = [
        {
            "reason": r,
            "class": Reason(r).info.klass.value if r != Reason.UNREADABLE_ROW else "quarantine",
            "rule": Reason(r).info.rule,
            "count": n,
            "explanation": Reason(r).info.text,
            "what_to_do": Reason(r).info.action,
        }
        for r, n in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    seen = dict(decisions.group_by("reason").agg(pl.col("class").unique()).iter_rows())
    for item in reasons:  # a policy may move a reason to another class
        item["class"] = seen[item["reason"]][0] if len(seen[item["reason"]]) == 1 else item["class"]
    invalid = by_reason.get(Reason.INVALID_EMAIL.value, 0)
    duplicates = by_reason.get(Reason.DUPLICATE.value, 0)
    flow = {
        "rows_in": rows_in,
        "readable": rows_in - by_class["quarantine"],
        "valid_email": rows_in - by_class["quarantine"] - invalid,
        "after_dedupe": rows_in - by_class["quarantine"] - invalid - duplicates,
        "keep": by_class["keep"],
        "reconfirm": by_class["reconfirm"],
        "discard_other": by_class["discard"] - invalid - duplicates,
    }
    presets = meta.get("presets", {})
    by_source = []
    for source, group in decisions.group_by("source_file", maintain_order=True):
        counts = {k: 0 for k in CLASS_ORDER} | _counts(group, "class")
        by_source.append(
            {"source_file": source[0], "preset": presets.get(source[0], ""), "rows": group.height, "by_class": counts}
        )
    by_source.sort(key=lambda s: s["source_file"])

    evidence = evidence_at()
    lazy = records.lazy()
    ages_query = (
        lazy.filter(pl.col("reason") != Reason.DUPLICATE.value)
        .select(((pl.lit(as_of) - evidence.dt.date()).dt.total_days() / 30.44).alias("months"))
        .drop_nulls()
        .filter(pl.col("months") >= 0)
        .select((pl.col("months") // AGE_BUCKET_MONTHS).clip(0, AGE_BUCKETS - 1).cast(pl.Int32).alias("bucket"))
        .group_by("bucket")
        .len()
    )
    domain = pl.col("email_normalized").str.extract(r"@([^@]*)$")
    flags_query = (
        lazy.select(pl.col("flags").list.explode(keep_nulls=False, empty_as_null=False).alias("flag"))
        .drop_nulls()
        .group_by("flag")
        .len()
        .sort("flag")
    )
    discarded_query = (
        lazy.filter((pl.col("class") == "discard") & pl.col("email_normalized").is_not_null())
        .group_by(domain.alias("domain"))
        .len()
        .sort(["len", "domain"], descending=[True, False])
        .head(10)
    )
    typos_query = (
        lazy.filter(pl.col("suggested_email").is_not_null())
        .group_by(domain.alias("domain"), pl.col("suggested_email").str.extract(r"@([^@]*)$").alias("suggested"))
        .len()
        .sort(["len", "domain"], descending=[True, False])
    )
    status_query = lazy.group_by("mx_status").len().sort("mx_status")
    clusters_query = (
        lazy.filter(pl.col("cluster_id").is_not_null())
        .group_by("cluster_id")
        .len()
        .group_by(pl.col("len").clip(1, 10).alias("size"))
        .len()
        .sort("size")
    )
    survivor_files = (
        lazy.filter(pl.col("class").is_in([Klass.KEEP.value, Klass.RECONFIRM.value]))
        .select(pl.col("record_id").alias("survivor_id"), pl.col("source_file").alias("survivor_file"))
        .unique("survivor_id", keep="first", maintain_order=True)
    )
    pairs_query = (
        lazy.filter(pl.col("reason") == Reason.DUPLICATE.value)
        .join(survivor_files, on="survivor_id", how="left")
        .group_by("source_file", "survivor_file")
        .len()
        .sort(["len", "source_file"], descending=[True, False])
    )
    # Every query over the records at once, in parallel, each reading the frame once.
    ages, flags, discarded_domains, typos, statuses, sizes_frame, pairs = pl.collect_all(
        [ages_query, flags_query, discarded_query, typos_query, status_query, clusters_query, pairs_query]
    )
    age_counts = dict(ages.iter_rows())
    flag_counts = _as_counts(flags)
    consent_age = {
        "bucket_months": AGE_BUCKET_MONTHS,
        "buckets": [
            {
                "from_months": i * AGE_BUCKET_MONTHS,
                "to_months": None if i == AGE_BUCKETS - 1 else (i + 1) * AGE_BUCKET_MONTHS,
                "count": int(age_counts.get(i, 0)),
            }
            for i in range(AGE_BUCKETS)
        ],
        "refresh_after_months": policy.consent.refresh_after_months,
        "expire_after_months": policy.consent.expire_after_months,
    }

    domains = {
        "dns": meta.get("dns", {}),
        "records_by_status": _as_counts(statuses),
        "top_discarded_domains": [{"domain": d, "discarded": n} for d, n in discarded_domains.iter_rows()],
        "typo_suggestions": [{"domain": d, "suggested": s, "records": n} for d, s, n in typos.iter_rows()],
        "disposable_records": by_reason.get(Reason.DISPOSABLE_DOMAIN.value, 0),
        "role_accounts": flag_counts.get("ROLE_ACCOUNT", 0),
        "free_mail": flag_counts.get("FREE_MAIL", 0),
    }

    sizes = _as_counts(sizes_frame)
    duplicates_section = {
        "cluster_sizes": {("10+" if int(k) >= 10 else str(k)): v for k, v in sizes.items()},
        "merges_by_source_pair": [{"merged_from": a, "survivor_in": b, "records": n} for a, b, n in pairs.iter_rows()],
        "opt_outs_spread": flag_counts.get("VIA_DUPLICATE", 0),
        "duplicate_records": duplicates,
        # review.csv: pairs waiting for a person, strangers kept apart; a person's decisions applied.
        "review": {
            k: int(meta.get("review", {}).get(k, 0)) for k in ("pending", "listed", "split", "decided", "overridden")
        },
        # Lasting person ids: how many persons kept the id of an earlier run, how many are new, merged, split.
        "persons": {k: int(meta.get("persons", {}).get(k, 0)) for k in PERSON_COUNTS},
    }

    previous = meta.get("previous_run")
    change: dict[str, Any] = {"previous_run": None}
    if previous:
        prev_class, prev_reason = previous.get("by_class", {}), previous.get("by_reason", {})
        change = {
            "previous_run": previous.get("run_id"),
            "previous_as_of": previous.get("as_of"),
            "by_class": [
                {
                    "class": k,
                    "previous": prev_class.get(k, 0),
                    "now": by_class.get(k, 0),
                    "delta": by_class.get(k, 0) - prev_class.get(k, 0),
                }
                for k in CLASS_ORDER
            ],
            "by_reason": [
                {
                    "reason": r,
                    "previous": prev_reason.get(r, 0),
                    "now": by_reason.get(r, 0),
                    "delta": by_reason.get(r, 0) - prev_reason.get(r, 0),
                }
                for r in sorted(set(prev_reason) | set(by_reason))
            ],
        }

    quarantine_section = {
        "rows": quarantine.height,
        "by_error": [
            {"error": e, "rows": n}
            for e, n in quarantine.group_by("error").len().sort(["len", "error"], descending=[True, False]).iter_rows()
        ],
        "examples": quarantine.select("source_file", "source_row", "error")
        .sort("source_file", "source_row")
        .head(500)
        .to_dicts(),
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": meta["run_id"],
        "as_of": meta["as_of"],
        "policy": {"version": policy.version, "sha256": meta.get("policy", {}).get("sha256", "")},
        "inputs": [{"path": i["path"], "size": i["size"], "sha256": i["sha256"]} for i in meta.get("inputs", [])],
        "rows_in": rows_in,
        "by_class": by_class,
        "shares": {k: (v / rows_in if rows_in else 0.0) for k, v in by_class.items()},
        "flow": flow,
        "by_reason": reasons,
        "by_source": by_source,
        "consent_age": consent_age,
        "domains": domains,
        "duplicates": duplicates_section,
        "change": change,
        "quarantine": quarantine_section,
        "flags": flag_counts,
        "rules": rule_table(policy),
    }


# ---------------------------------------------------------------- HTML


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "–"


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;
color:#222;line-height:1.45}
h1{font-size:1.6rem}h2{margin-top:2.2rem;border-bottom:2px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.8rem 0;width:100%;font-size:.92rem}
th,td{border:1px solid #ccc;padding:.25rem .45rem;text-align:left;vertical-align:top}th{background:#f3f3f3}
.big{display:flex;gap:1rem;flex-wrap:wrap}.big div{flex:1;min-width:9rem;padding:.6rem;border-radius:6px;color:#fff}
.big b{display:block;font-size:1.7rem}.keep{background:#2e7d32}.reconfirm{background:#b28704}
.discard{background:#c62828}
.quarantine{background:#6d4c41}.warn{background:#fff3cd;border:1px solid #e0c36a;padding:.5rem;border-radius:4px}
svg.chart{max-width:100%;height:auto;display:block;margin:.6rem 0}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}svg.chart,table{break-inside:avoid}}
"""


def _review_html(review: dict[str, int]) -> str:
    """What is waiting for a person in review.csv, and what people decided."""
    return (
        f"<p>Review: {review.get('pending', 0):,} pairs the model is unsure about "
        f"(the {review.get('listed', 0):,} likeliest listed) and {review.get('split', 0):,} pairs of different "
        "people kept apart inside one chain are in "
        f"<code>review.csv</code>. {review.get('decided', 0):,} pairs were decided by a person "
        f"(<code>cleanse link</code> / <code>cleanse unlink</code>), {review.get('overridden', 0):,} of them "
        "against what the model would have done.</p>"
    )


def _persons_html(persons: dict[str, int]) -> str:
    """How the lasting person ids moved since earlier runs."""
    if not persons.get("persons"):
        return ""
    return (
        f"<p>Persons: {persons['persons']:,}. {persons.get('kept_id', 0):,} kept the <code>person_id</code> "
        f"of an earlier run and {persons.get('new', 0):,} are new; {persons.get('merged', 0):,} took in records "
        f"of several earlier persons (a merge) and {persons.get('split', 0):,} earlier persons now lie in "
        "several (a split).</p>"
    )


def render_html(report: dict[str, Any]) -> str:
    """A self-contained page: inline CSS and SVG, no script, nothing fetched."""
    total = report["rows_in"]
    by_class = report["by_class"]
    dns = report["domains"]["dns"]
    dns_line = html.escape(str(dns.get("detail", "the domain check was not run")))
    dns_box = (
        f'<p class="warn">{dns_line}.</p>'
        if dns.get("checked") and not dns.get("healthy")
        else f"<p>Domain check: {dns_line}.</p>"
    )
    big = "".join(f'<div class="{k}"><b>{by_class[k]:,}</b>{k} · {_pct(by_class[k], total)}</div>' for k in CLASS_ORDER)
    inputs = _table(
        ["file", "preset", "rows"], [[s["source_file"], s["preset"], s["rows"]] for s in report["by_source"]]
    )
    summary = (
        f"<p>Run <code>{html.escape(report['run_id'])}</code>; rules applied as of "
        f"<b>{html.escape(report['as_of'])}</b>; policy <code>{html.escape(report['policy']['version'])}</code> "
        f"(sha256 <code>{html.escape(report['policy']['sha256'][:16])}…</code>); {total:,} input rows.</p>"
        f'<div class="big">{big}</div>{dns_box}'
        + charts.stacked([("all records", {k: by_class[k] for k in CLASS_ORDER})], title="records by class")
        + inputs
        + "<p><b>Keep</b>: mail them. <b>Reconfirm</b>: send one request for consent and keep only those who "
        "answer yes. <b>Discard</b>: do not mail; delete or suppress as the reason says. "
        "<b>Quarantine</b>: rows that could not be read; fix them and run again.</p>"
    )
    f = report["flow"]
    flow = charts.hbars(
        [
            ("rows in", f["rows_in"], "#455a64"),
            ("readable", f["readable"], "#546e7a"),
            ("valid email address", f["valid_email"], "#607d8b"),
            ("one per person", f["after_dedupe"], "#78909c"),
            ("keep", f["keep"], charts.PALETTE["keep"]),
            ("reconfirm", f["reconfirm"], charts.PALETTE["reconfirm"]),
            ("discard (other reasons)", f["discard_other"], charts.PALETTE["discard"]),
        ],
        title="from rows in to the three lists",
    )
    reasons = report["by_reason"]
    why = charts.hbars(
        [(r["reason"], r["count"], charts.PALETTE.get(r["class"])) for r in reasons], title="records by reason"
    ) + _table(
        ["reason", "rule", "class", "records", "what it means", "what to do"],
        [[r["reason"], r["rule"], r["class"], r["count"], r["explanation"], r["what_to_do"]] for r in reasons],
    )
    sources = charts.stacked(
        [(f"{s['source_file']} ({s['preset']})", s["by_class"]) for s in report["by_source"]],
        title="class shares per source",
    ) + _table(
        ["source file", "preset", "rows", *CLASS_ORDER],
        [
            [s["source_file"], s["preset"], s["rows"], *[s["by_class"][k] for k in CLASS_ORDER]]
            for s in report["by_source"]
        ],
    )
    age = report["consent_age"]
    step = age["bucket_months"]
    buckets = [
        (f"{b['from_months']}+" if b["to_months"] is None else f"{b['from_months']}–{b['to_months']}", b["count"])
        for b in age["buckets"]
    ]
    consent_age = charts.histogram(
        buckets,
        lines=[
            (age["refresh_after_months"] // step, f"refresh {age['refresh_after_months']} mo"),
            (age["expire_after_months"] // step, f"expiry {age['expire_after_months']} mo"),
        ],
        title="age of evidenced consent in months",
    ) + (
        "<p>Age of the newest consent evidence (opt-in or confirmation date) of each record, in months before "
        f"the as-of date. Left of the refresh line it is kept; between the lines it is reconfirmed; right of the "
        f"expiry line it is discarded. {sum(b['count'] for b in age['buckets']):,} records have dated consent.</p>"
    )
    d = report["domains"]
    statuses = dns.get("domains_by_status", {})
    domains = (
        charts.hbars(
            sorted(((k, v, None) for k, v in d["records_by_status"].items()), key=lambda t: -t[1]),
            title="records by domain status",
        )
        + (
            _table(["domain status", "distinct domains"], sorted([[k, v] for k, v in statuses.items()]))
            if statuses
            else ""
        )
        + _table(["domain", "discarded records"], [[t["domain"], t["discarded"]] for t in d["top_discarded_domains"]])
        + (
            _table(
                ["domain", "looks like a typo of", "records"],
                [[t["domain"], t["suggested"], t["records"]] for t in d["typo_suggestions"]],
            )
            if d["typo_suggestions"]
            else "<p>No typo of a common domain was found among failing domains.</p>"
        )
        + (
            f"<p>Disposable-domain records: {d['disposable_records']:,}. Role mailboxes (info@, sales@, …): "
            f"{d['role_accounts']:,}. Free-mail providers: {d['free_mail']:,}.</p>"
        )
    )
    dup = report["duplicates"]
    duplicates = (
        charts.hbars(
            [
                (f"{k} record(s)", v, None)
                for k, v in sorted(dup["cluster_sizes"].items(), key=lambda kv: int(kv[0].rstrip("+")))
            ],
            title="clusters by size",
        )
        + _table(
            ["merged record from", "survivor in", "records"],
            [[m["merged_from"], m["survivor_in"], m["records"]] for m in dup["merges_by_source_pair"]],
        )
        + (
            f"<p>{dup['duplicate_records']:,} records were merged into a surviving record; "
            f"{dup['opt_outs_spread']:,} addresses were discarded because the same person opted out elsewhere.</p>"
        )
        + _review_html(dup.get("review", {}))
        + _persons_html(dup.get("persons", {}))
    )
    change = report["change"]
    if change["previous_run"]:
        deltas = [r for r in change["by_reason"] if r["delta"]]
        change_html = (
            charts.hbars(
                [(r["reason"], r["delta"], "#2e7d32" if r["delta"] > 0 else "#c62828") for r in deltas]
                or [("no change", 0, None)],
                unit="delta",
                title="change per reason",
            )
            + (
                f"<p>Compared with run <code>{html.escape(change['previous_run'])}</code> (as of "
                f"{html.escape(str(change['previous_as_of']))}).</p>"
            )
            + _table(
                ["class", "previous", "now", "change"],
                [[r["class"], r["previous"], r["now"], f"{r['delta']:+,}"] for r in change["by_class"]],
            )
            + _table(
                ["reason", "previous", "now", "change"],
                [[r["reason"], r["previous"], r["now"], f"{r['delta']:+,}"] for r in change["by_reason"]],
            )
        )
    else:
        change_html = (
            charts.hbars([("no previous run", 0, None)], title="change per reason")
            + "<p>This is the first run recorded in the state database.</p>"
        )
    q = report["quarantine"]
    quarantine = charts.hbars(
        [(e["error"][:40], e["rows"], charts.PALETTE["quarantine"]) for e in q["by_error"]]
        or [("no quarantined rows", 0, None)],
        title="quarantined rows by error",
    ) + (
        _table(
            ["source file", "row", "error"], [[x["source_file"], x["source_row"], x["error"]] for x in q["examples"]]
        )
        if q["examples"]
        else "<p>No row was quarantined.</p>"
    )
    rules = _table(
        ["rule", "condition (first match wins)", "reason", "class"],
        [[r["rule"], r["condition"], r["reason"], r["class"]] for r in report["rules"]],
    )
    sections = [
        ("1. Summary", summary),
        ("2. Flow", flow),
        ("3. Why", why),
        ("4. By source", sources),
        ("5. Consent age", consent_age),
        ("6. Domains", domains),
        ("7. Duplicates", duplicates),
        ("8. Change since the previous run", change_html),
        ("9. Quarantine", quarantine),
    ]
    body = "".join(
        f'<section id="s{i + 1}"><h2>{html.escape(t)}</h2>{c}</section>' for i, (t, c) in enumerate(sections)
    )
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Contact cleansing report {html.escape(report['run_id'])}</title><style>{STYLE}</style></head>"
        f"<body><h1>Contact cleansing report</h1>{body}"
        f'<section id="rules"><h2>The rules applied</h2>{rules}</section></body></html>\n'
    )
