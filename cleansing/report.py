"""The audit report: ``report.json`` (for machines) and ``report.html`` (for people), same numbers.

Built from the run's frames (or, for ``cleanse report``, from the run folder's files). Nothing
personal goes in: counts, reasons, file names, row numbers, domains; any address is masked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from .classify import evidence_at, months_before
from .policy import Policy
from .reasons import Klass, Reason, flag_text
from .rules import decision_table

SCHEMA_VERSION = 3
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


DOMAIN_REASONS = [Reason.NO_MAIL_DOMAIN.value, Reason.DOMAIN_TYPO.value, Reason.DISPOSABLE_DOMAIN.value]
PERSON_COUNTS = ("persons", "kept_id", "new", "merged", "split")
REVIEW_COUNTS = ("pending", "listed", "split", "decided", "overridden")


def counts_by(counted: pl.DataFrame, column: str) -> dict[str, int]:
    """``value → count`` of ``column`` in ``decision_counts``."""
    return _as_counts(counted.group_by(column).agg(pl.col("len").sum()).sort(column))


def _as_counts(counted: pl.DataFrame) -> dict[str, int]:
    """``value → count`` from a frame of a value column and its ``len``."""
    return {str(k): int(v) for k, v in counted.iter_rows()}


def rule_table(policy: Policy) -> list[dict[str, str]]:
    """The decision table as applied, with the policy's numbers in it (rules.py: the one source)."""
    return [row.as_dict() for row in decision_table(policy)]


def decision_counts(decisions: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """``source_file, class, reason, len``: what the report and the manifest count of the decisions, in
    one streamed pass (``decisions.parquet`` of ten million rows is never held)."""
    return decisions.lazy().group_by("source_file", "class", "reason").len().collect(engine="streaming")


def build_report(
    records: pl.DataFrame | pl.LazyFrame,
    counted: pl.DataFrame,
    quarantine: pl.DataFrame,
    meta: dict[str, Any],
    policy: Policy,
) -> dict[str, Any]:
    """Every number of the report. ``counted``: the decisions' ``decision_counts``; ``meta`` is the run's
    manifest (run id, inputs, policy, DNS, previous run)."""
    as_of = dt.date.fromisoformat(meta["as_of"])
    rows_in = int(counted["len"].sum())
    by_class = {k: 0 for k in CLASS_ORDER} | counts_by(counted, "class")
    by_reason = counts_by(counted, "reason")
    found = _record_queries(records, as_of, policy)
    flag_counts = _as_counts(found["flags"])
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": meta["run_id"],
        "as_of": meta["as_of"],
        "policy": {"version": policy.version, "sha256": meta.get("policy", {}).get("sha256", "")},
        "inputs": [{"path": i["path"], "size": i["size"], "sha256": i["sha256"]} for i in meta.get("inputs", [])],
        "rows_in": rows_in,
        "by_class": by_class,
        "shares": {k: (v / rows_in if rows_in else 0.0) for k, v in by_class.items()},
        "flow": _flow(rows_in, by_class, by_reason),
        "by_reason": _reasons(counted, by_reason, policy),
        "by_source": _by_source(counted, meta.get("presets", {})),
        "consent_age": _consent_age(found, policy),
        "domains": _domains(found, meta.get("dns", {}), by_reason, flag_counts),
        "duplicates": _duplicates(found, meta, by_reason, flag_counts),
        "change": _change(meta.get("previous_run"), by_class, by_reason),
        "quarantine": _quarantine(quarantine),
        "retention": meta.get("retention", {}),
        "processing": _processing(meta, by_reason),
        "flags": flag_counts,
        "flag_meanings": {flag: flag_text(flag) for flag in flag_counts},
        "rules": rule_table(policy),
    }


def _reasons(counted: pl.DataFrame, by_reason: dict[str, int], policy: Policy) -> list[dict[str, Any]]:
    """Records per reason, most first, each with its rule, class and words."""
    table = {row.reason.value: row for row in decision_table(policy)}
    seen = dict(counted.group_by("reason").agg(pl.col("class").unique(maintain_order=True)).iter_rows())
    reasons = []
    for r, n in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
        classes = seen[r]
        reasons.append(
            {
                "reason": r,
                # the class the records got; the table's when (never, so far) one reason gave two
                "class": classes[0] if len(classes) == 1 else table[r].klass.value,
                "rule": table[r].rule,
                "count": n,
                "explanation": Reason(r).info.text,
                "what_to_do": Reason(r).info.action,
            }
        )
    return reasons


def _flow(rows_in: int, by_class: dict[str, int], by_reason: dict[str, int]) -> dict[str, int]:
    invalid = by_reason.get(Reason.INVALID_EMAIL.value, 0)
    duplicates = by_reason.get(Reason.DUPLICATE.value, 0)
    return {
        "rows_in": rows_in,
        "readable": rows_in - by_class["quarantine"],
        "valid_email": rows_in - by_class["quarantine"] - invalid,
        "after_dedupe": rows_in - by_class["quarantine"] - invalid - duplicates,
        "keep": by_class["keep"],
        "reconfirm": by_class["reconfirm"],
        "discard_other": by_class["discard"] - invalid - duplicates,
    }


def _by_source(counted: pl.DataFrame, presets: dict[str, str]) -> list[dict[str, Any]]:
    by_source = []
    for source, group in counted.group_by("source_file", maintain_order=True):
        counts = {k: 0 for k in CLASS_ORDER} | counts_by(group, "class")
        rows = int(group["len"].sum())
        by_source.append(
            {"source_file": source[0], "preset": presets.get(source[0], ""), "rows": rows, "by_class": counts}
        )
    return sorted(by_source, key=lambda s: s["source_file"])


def _record_queries(records: pl.DataFrame | pl.LazyFrame, as_of: dt.date, policy: Policy) -> dict[str, pl.DataFrame]:
    """Every query over the records at once, in parallel, each reading the frame once."""
    evidence = evidence_at()
    lazy = records.lazy()
    months = ((pl.lit(as_of) - evidence.dt.date()).dt.total_days() / 30.44).alias("months")
    domain = pl.col("email_normalized").str.extract(r"@([^@]*)$")
    # The file of each cluster's survivor, whatever order the records come in (ids may repeat across files).
    survivor_files = (
        lazy.filter(pl.col("class").is_in([Klass.KEEP.value, Klass.RECONFIRM.value]))
        .group_by("cluster_id", pl.col("record_id").alias("survivor_id"))
        .agg(pl.col("source_file").min().alias("survivor_file"))
    )
    queries = {
        "ages": lazy.filter(pl.col("reason") != Reason.DUPLICATE.value)
        .select(months, "class")
        .drop_nulls("months")
        .filter(pl.col("months") >= 0)
        .group_by(
            (pl.col("months") // AGE_BUCKET_MONTHS).clip(0, AGE_BUCKETS - 1).cast(pl.Int32).alias("bucket"), "class"
        )
        .len(),
        "kept_past_refresh": lazy.filter(
            (pl.col("class") == Klass.KEEP.value)
            & (evidence.dt.date() < months_before(as_of, policy.consent.refresh_after_months))
        ).select(pl.len()),
        "flags": lazy.select(pl.col("flags").list.explode(keep_nulls=False, empty_as_null=False).alias("flag"))
        .drop_nulls()
        .group_by("flag")
        .len()
        .sort("flag"),
        # Discarded for their domain: the domains a list owner should look at, not merely the biggest ones.
        "discarded": lazy.filter(pl.col("reason").is_in(DOMAIN_REASONS) & pl.col("email_normalized").is_not_null())
        .group_by(domain.alias("domain"), "reason")
        .len()
        .sort(["len", "domain", "reason"], descending=[True, False, False])
        .head(10),
        "typos": lazy.filter(pl.col("suggested_email").is_not_null())
        .group_by(domain.alias("domain"), pl.col("suggested_email").str.extract(r"@([^@]*)$").alias("suggested"))
        .agg(
            pl.len().alias("records"),
            *[(pl.col("class") == k).sum().alias(k) for k in (Klass.KEEP, Klass.RECONFIRM, Klass.DISCARD)],
        )
        .sort(["records", "domain", "suggested"], descending=[True, False, False]),
        "statuses": lazy.group_by("mx_status").len().sort("mx_status"),
        "sizes": lazy.filter(pl.col("cluster_id").is_not_null())
        .group_by("cluster_id")
        .len()
        .group_by(pl.col("len").clip(1, 10).alias("size"))
        .len()
        .sort("size"),
        "pairs": lazy.filter(pl.col("reason") == Reason.DUPLICATE.value)
        .join(survivor_files, on=["cluster_id", "survivor_id"], how="left")
        .group_by("source_file", "survivor_file")
        .len()
        .sort(["len", "source_file", "survivor_file"], descending=[True, False, False]),
    }
    return dict(zip(queries, pl.collect_all(list(queries.values()), engine="streaming"), strict=True))


def _consent_age(found: dict[str, pl.DataFrame], policy: Policy) -> dict[str, Any]:
    """Age of the newest consent evidence per record, bucketed, split by class."""
    counts: dict[int, dict[str, int]] = {}
    for bucket, klass, n in found["ages"].iter_rows():
        counts.setdefault(bucket, {})[klass] = int(n)
    return {
        "bucket_months": AGE_BUCKET_MONTHS,
        "buckets": [
            {
                "from_months": i * AGE_BUCKET_MONTHS,
                "to_months": None if i == AGE_BUCKETS - 1 else (i + 1) * AGE_BUCKET_MONTHS,
                "count": sum(counts.get(i, {}).values()),
                "by_class": {k: counts.get(i, {}).get(k, 0) for k in CLASS_ORDER[:3]},
            }
            for i in range(AGE_BUCKETS)
        ],
        "refresh_after_months": policy.consent.refresh_after_months,
        "expire_after_months": policy.consent.expire_after_months,
        "engagement_refreshes_consent": policy.consent.engagement_refreshes_consent,
        "kept_past_refresh": int(found["kept_past_refresh"].item()),
    }


def _domains(
    found: dict[str, pl.DataFrame], dns: dict[str, Any], by_reason: dict[str, int], flag_counts: dict[str, int]
) -> dict[str, Any]:
    """What the domain check found, and only what it found: when it did not run or DNS was not trusted,
    every record's status says so and no domain status is counted."""
    return {
        "dns": dns,
        "check": "trusted"
        if dns.get("checked") and dns.get("healthy")
        else ("untrusted" if dns.get("checked") else "off"),
        "records_by_status": _as_counts(found["statuses"]),
        "top_discarded_domains": [
            {"domain": d, "reason": r, "discarded": n} for d, r, n in found["discarded"].iter_rows()
        ],
        "typo_suggestions": [
            {"domain": d, "suggested": s, "records": n, "keep": k, "reconfirm": rc, "discard": dc}
            for d, s, n, k, rc, dc in found["typos"].iter_rows()
        ],
        "typo_records": by_reason.get(Reason.DOMAIN_TYPO.value, 0),
        "disposable_records": by_reason.get(Reason.DISPOSABLE_DOMAIN.value, 0),
        "role_accounts": flag_counts.get("ROLE_ACCOUNT", 0),
        "free_mail": flag_counts.get("FREE_MAIL", 0),
    }


def _duplicates(
    found: dict[str, pl.DataFrame], meta: dict[str, Any], by_reason: dict[str, int], flag_counts: dict[str, int]
) -> dict[str, Any]:
    sizes = _as_counts(found["sizes"])
    return {
        "cluster_sizes": {("10+" if int(k) >= 10 else str(k)): v for k, v in sizes.items()},
        "merges_by_source_pair": [
            {"merged_from": a, "survivor_in": b, "records": n} for a, b, n in found["pairs"].iter_rows()
        ],
        "opt_outs_spread": flag_counts.get("VIA_DUPLICATE", 0),
        "duplicate_records": by_reason.get(Reason.DUPLICATE.value, 0),
        # review.csv: pairs waiting for a person, strangers kept apart; a person's decisions applied.
        "review": {k: int(meta.get("review", {}).get(k, 0)) for k in REVIEW_COUNTS},
        # Lasting person ids: how many persons kept the id of an earlier run, how many are new, merged, split.
        "persons": {k: int(meta.get("persons", {}).get(k, 0)) for k in PERSON_COUNTS},
    }


def _change(previous: dict[str, Any] | None, by_class: dict[str, int], by_reason: dict[str, int]) -> dict[str, Any]:
    if not previous:
        return {"previous_run": None}
    prev_class, prev_reason = previous.get("by_class", {}), previous.get("by_reason", {})
    return {
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


def _processing(meta: dict[str, Any], by_reason: dict[str, int]) -> dict[str, Any]:
    """A record of processing (GDPR Art. 30) for this run: the categories of personal data held per
    source, where the outputs are and for how long, and the erasures and purges this run did."""
    processing = meta.get("processing", {})
    return {
        "fields_by_source": processing.get("fields_by_source", {}),
        "run_folder": processing.get("run_folder", ""),
        "retention": meta.get("retention", {}),
        "erasure_requests": by_reason.get(Reason.ERASURE_REQUESTED.value, 0),
        "objections_listed": processing.get("objections_listed", 0),
        "erasures_since": meta.get("erasures", []),
    }


def _quarantine(quarantine: pl.DataFrame) -> dict[str, Any]:
    return {
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
