"""``cleanse access ADDRESS``: what is held about a person (GDPR Art. 15), for the person themselves.

Follows the person, not just the address: the records of the newest run whose address has the
address's key, then every record of the persons (``person_id``) those belong to. For each record the
source file and row, the fields held (the address in full: this answer is for the person), the class
and the reason in words, and the evidence the decision used; for the person, whether an address is on
the suppression list and since when, the reconfirmations sent, and which retained run folders still
hold the records. Nothing of it
is logged or written anywhere: it goes to standard output only.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl

from .erase import TABLES, rows_holding
from .errors import InputError
from .reasons import Reason
from .state import StateStore, hash_keys
from .validate import address_key, normalize_emails
from .write import CONTACT_COLUMNS, PARTITIONS

EVIDENCE = ["consent_status", "consent_at", "confirmed_at", "consent_source", "opted_out", "opted_out_at"]
EVIDENCE += ["erasure_requested", "hard_bounced", "last_activity_at", "is_customer", "last_purchase_at"]


def _key(address: str) -> str:
    checked = normalize_emails(pl.Series("email", [address.strip()], dtype=pl.String))
    normalized = checked["email_normalized"][0] if checked.height else None
    if normalized is None:
        raise InputError("the address is not a valid email address.", fix="Pass the person's email address.")
    return str(pl.select(address_key(pl.lit(normalized))).item())


def _value(value: object) -> object:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, list):
        return value or None
    return value


def access(address: str, state_path: str | Path) -> dict[str, Any]:
    """Everything held about the person with this address, as one JSON-ready object."""
    key = _key(address)
    store = StateStore(state_path)
    runs = [r for r in store.runs() if not r.get("purged_at") and Path(r["run_dir"]).is_dir()]
    answer: dict[str, Any] = {"run": None, "records": [], "unreadable_rows": [], "suppression": [], "runs_holding": []}
    if runs:
        newest = Path(runs[-1]["run_dir"])
        answer["run"] = runs[-1]["run_id"]
        records = pl.concat(
            [pl.read_parquet(newest / f"{p}.parquet").with_columns(pl.lit(p).alias("class")) for p in PARTITIONS],
            how="diagonal_relaxed",
        )
        own = records.filter(address_key(pl.col("email_normalized")) == key)
        persons = (
            own["person_id"].drop_nulls().unique() if "person_id" in own.columns else pl.Series([], dtype=pl.String)
        )
        held = records.filter(
            (address_key(pl.col("email_normalized")) == key) | pl.col("person_id").is_in(persons.implode())
        ).sort("source_file", "source_row")
        answer["records"] = [_record(row) for row in held.iter_rows(named=True)]
        quarantine = pl.read_parquet(newest / "quarantine.parquet")
        unreadable = quarantine.filter(rows_holding(quarantine, {key}))
        answer["unreadable_rows"] = unreadable.select("source_file", "source_row", "raw", "error").to_dicts()
        keys = set(held.select(address_key(pl.col("email_normalized")))["email_normalized"].drop_nulls()) | {key}
        answer["runs_holding"] = [r["run_id"] for r in runs if _holds(Path(r["run_dir"]), keys)]
    else:
        keys = {key}
    hashes = hash_keys(pl.Series(sorted(keys), dtype=pl.String), store.hmac_key()).to_list()
    requests = store.requests()
    answer["reconfirmations"] = [
        {"address": k, "asked_on": asked.isoformat()}
        for k, h in zip(sorted(keys), hashes, strict=True)
        for asked in sorted(requests.filter(pl.col("address_hash") == h)["asked_on"].to_list())
    ]
    answer["suppression"] = [
        {"address": k, "listed_since": entry["added_at"], "objection_dated": entry["objection_at"]}
        for k, h in zip(sorted(keys), hashes, strict=True)
        if (entry := store.suppression_entry(h)) is not None
    ]
    return answer


def _record(row: dict[str, Any]) -> dict[str, Any]:
    reason = str(row.get("reason"))
    words = Reason(reason).info if reason in Reason.__members__ else None
    return {
        "source_file": row["source_file"],
        "source_row": row["source_row"],
        "record_id": row.get("record_id"),
        "person_id": row.get("person_id"),
        "fields": {c: row[c] for c in CONTACT_COLUMNS if row.get(c) not in (None, "")},
        "class": row["class"],
        "reason": reason,
        "reason_text": f"{words.text} {words.action}" if words else None,
        "evidence": {c: _value(row.get(c)) for c in EVIDENCE if _value(row.get(c)) not in (None, False)},
    }


def _holds(folder: Path, keys: set[str]) -> bool:
    for name in TABLES:
        path = folder / f"{name}.parquet"
        if path.is_file() and rows_holding(pl.read_parquet(path), keys).any():
            return True
    return False


def as_text(answer: dict[str, Any]) -> str:
    """The answer in plain words, for the person."""
    if not answer["records"] and not answer["unreadable_rows"] and not answer["suppression"]:
        return "No records are held about this address."
    lines = [f"Records held in the newest run ({answer['run']}): {len(answer['records'])}"]
    for r in answer["records"]:
        lines += ["", f"- {r['source_file']}, row {r['source_row']} (record {r['record_id']}, person {r['person_id']})"]
        lines += [f"    {k}: {v}" for k, v in r["fields"].items()]
        lines.append(f"    decision: {r['class']} ({r['reason']}): {r['reason_text']}")
        lines += [f"    {k}: {v}" for k, v in r["evidence"].items()]
    for u in answer["unreadable_rows"]:
        lines += ["", f"- {u['source_file']}, row {u['source_row']}, could not be read ({u['error']}): {u['raw']}"]
    lines.append("")
    if answer["suppression"]:
        lines += [
            f"On the suppression list: {s['address']} since {s['listed_since']}"
            + (f" (objection dated {s['objection_dated']})" if s["objection_dated"] else "")
            for s in answer["suppression"]
        ]
    else:
        lines.append("Not on the suppression list.")
    lines += [
        f"A reconfirmation was sent to {r['address']} on {r['asked_on']} (the decision above says if it was answered)"
        for r in answer.get("reconfirmations", [])
    ]
    lines.append(f"Run folders that hold these records: {', '.join(answer['runs_holding']) or 'none'}")
    return "\n".join(lines)
