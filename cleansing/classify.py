"""Classify: the decision table R0–R15 judged once per address on merged evidence, then the
person level (opt-outs spread, one survivor), then every record gets its class and reason.

Input columns: the mapped contact, ``_row`` (input order), the validate stage's ``address_key`` and
``email_valid``, ``address_hash`` (keyed hash of the address key), ``mx_status``, ``disposable``,
``typo_domain`` and ``person_key``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from .domains import PERMANENT_FAILURES
from .flags import with_flags
from .frames import look_up
from .policy import Policy
from .reasons import Flag, Klass, Reason, unparseable_flag
from .rules import decision_table

KEEP, RECONFIRM, DISCARD = Klass.KEEP.value, Klass.RECONFIRM.value, Klass.DISCARD.value
OBJECTIONS = [Reason.SUPPRESSED.value, Reason.ERASURE_REQUESTED.value, Reason.OPTED_OUT.value]
SUPPRESSION_REASONS = [Reason.ERASURE_REQUESTED.value, Reason.OPTED_OUT.value]
SHARED = "shared:"  # the person key of a mailbox people of different first names share
_DATES = [
    "consent_at",
    "confirmed_at",
    "consent_expires_at",
    "opted_out_at",
    "bounced_at",
    "last_activity_at",
    "last_purchase_at",
    "created_at",
]
_CLASS_RANK = {KEEP: 0, RECONFIRM: 1, DISCARD: 2}
# Bases besides legitimate interest that do not count as another basis for R14: consent to processing
# (HubSpot's "Freely given consent") says nothing about email.
NOT_OTHER_BASES = ["legitimate_interest", "processing_consent"]
REQUEST_SCHEMA: dict[str, pl.DataType] = {"address_hash": pl.String(), "asked_on": pl.Date()}
SUPPRESSION_SCHEMA: dict[str, pl.DataType] = {"address_hash": pl.String(), "suppressed_at": pl.Datetime("us", "UTC")}


def months_before(as_of: dt.date, months: int) -> dt.date:
    """``as_of`` minus calendar months, clamped to the month's end (polars ``offset_by``)."""
    value = pl.select(pl.lit(as_of).dt.offset_by(f"-{months}mo")).item()
    assert isinstance(value, dt.date)
    return value


def _day(column: str | pl.Expr) -> pl.Expr:
    expr = pl.col(column) if isinstance(column, str) else column
    return expr.dt.date()


# Dates that can only make a contact more mailable; one after the as-of date is not evidence.
_EVIDENCE_DATES = ["consent_at", "confirmed_at", "last_activity_at", "last_purchase_at", "created_at"]
# An objection dated after the as-of date is still an objection, with its date unknown.
_OBJECTION_DATES = ["opted_out_at", "bounced_at"]


def drop_future_dates(records: pl.DataFrame, as_of: dt.date) -> pl.DataFrame:
    """Dates after ``as_of`` are removed from the evidence, flagged ``FUTURE_DATE`` and kept as text
    in ``unparsed``: a consent dated 2027 proves nothing in 2026 and lifts no opt-out."""
    # The dates are UTC: a day after ``as_of`` is a time at or after the next midnight.
    tomorrow = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    candidates = [c for c in _EVIDENCE_DATES + _OBJECTION_DATES if c in records.columns]
    if not candidates:
        return records
    present = records.select(pl.col(c).ge(tomorrow).any() for c in candidates).row(0)
    columns = [c for c, found in zip(candidates, present, strict=True) if found]
    if not columns:
        return records
    future = {c: (pl.col(c) >= tomorrow).fill_null(False) for c in columns}
    notes = [
        pl.when(future[c]).then(pl.concat_str([pl.lit(f"{c}="), pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%SZ")]))
        for c in columns
    ]
    note = pl.concat_str(notes, separator="; ", ignore_nulls=True)
    any_future = pl.any_horizontal(list(future.values()))
    return records.with_columns(
        *[pl.when(future[c]).then(None).otherwise(pl.col(c)).alias(c) for c in columns],
        with_flags(pl.col("flags"), (any_future, Flag.FUTURE_DATE.value)).alias("flags"),
        pl.when(any_future)
        .then(pl.concat_str([pl.col("unparsed"), note], separator="; ", ignore_nulls=True))
        .otherwise(pl.col("unparsed"))
        .alias("unparsed"),
    )


def third_party_pattern(patterns: Sequence[str]) -> str | None:
    """One case-insensitive regular expression that matches any pattern as whole words."""
    if not patterns:
        return None
    return r"(?i)\b(?:" + "|".join(f"(?:{p})" for p in patterns) + r")\b"


def evidence_at() -> pl.Expr:
    """A record's proof of consent: its confirmation, or its consent date where its status does not
    deny it."""
    consent_ok = pl.col("consent_status").is_in(["granted", "unknown"])
    return pl.max_horizontal(pl.col("confirmed_at"), pl.when(consent_ok).then(pl.col("consent_at")))


def _third_party(records: pl.DataFrame, pattern: str) -> pl.Expr:
    """Whether a record's consent source or one of its tags names a third party: the pattern is tried
    once per distinct source and tag (a million records hold a few dozen)."""
    sources = records.select(pl.col("consent_source").drop_nulls().unique().alias("v"))
    tags = records.select(pl.col("tags").explode(empty_as_null=False).drop_nulls().unique().alias("v"))
    named = [frame.filter(pl.col("v").str.contains(pattern))["v"].to_list() for frame in (sources, tags)]
    return pl.col("consent_source").is_in(named[0]).fill_null(False) | pl.col("tags").list.eval(
        pl.element().is_in(named[1])
    ).list.any().fill_null(False)


def _record_evidence(policy: Policy, records: pl.DataFrame) -> list[pl.Expr]:
    pattern = third_party_pattern(policy.consent.third_party_patterns)
    third_party = _third_party(records, pattern) if pattern else pl.lit(False)
    # A refusal in words is an opt-out; an objection whose value could not be read has no date.
    opted = pl.col("opted_out") | pl.col("consent_status").is_in(["withdrawn", "denied"])
    flags = pl.col("flags")
    return [
        evidence_at().alias("_evidence_at"),
        opted.alias("_opted"),
        (opted & (pl.col("opted_out_at").is_null() | flags.list.contains(unparseable_flag("opted_out")))).alias(
            "_optout_undated"
        ),
        (pl.col("hard_bounced") & flags.list.contains(unparseable_flag("hard_bounced"))).alias("_bounce_undated"),
        third_party.alias("_third_party"),
        # Consent the source states in words no one can read: with a date it is a claim, never proof.
        ((pl.col("consent_status") == "unreadable") & pl.col("consent_at").is_not_null()).alias("_unreadable_claim"),
        # Soft opt-in assumes the person was offered the opt-out and did not take it.
        pl.col("consent_status").is_in(["denied", "unreadable"]).alias("_no_soft_opt_in"),
    ]


def judge_addresses(addresses: pl.DataFrame, policy: Policy, as_of: dt.date, dns_healthy: bool) -> pl.DataFrame:
    """The decision table on one row per address (merged evidence); adds ``class``, ``reason``, ``ref``."""
    c = policy.consent
    if "asked_on" not in addresses.columns:  # no reconfirmation recorded
        addresses = addresses.with_columns(pl.lit(None, pl.Date).alias("asked_on"))
    evidenced = pl.col("_evidence_at").is_not_null()
    ref_base = pl.col("_evidence_at")
    ref: pl.Expr
    if c.engagement_refreshes_consent:
        ref = pl.when(evidenced).then(pl.max_horizontal(ref_base, pl.col("last_activity_at")))
    else:
        ref = ref_base
    frame = addresses.with_columns(ref.alias("ref"))

    standing_optout = pl.col("_opted") & (
        pl.col("_optout_undated")
        | pl.lit(not c.reoptin_after_optout)
        | ~(pl.col("_evidence_at") > pl.col("opted_out_at")).fill_null(False)
    )
    # The list holds each objection's own date (null: undated, never lifted), so an address is judged
    # alike whether an earlier run saw its objection or not.
    suppressed = pl.col("_listed").fill_null(False) & (
        pl.col("suppressed_at").is_null()
        | pl.lit(not c.reoptin_after_optout)
        | ~(pl.col("_evidence_at") > pl.col("suppressed_at")).fill_null(False)
    )
    bounced = pl.col("hard_bounced") & (
        pl.col("_bounce_undated") | ~(pl.col("confirmed_at") > pl.col("bounced_at")).fill_null(False)
    )
    no_mail = pl.col("mx_status").is_in(PERMANENT_FAILURES) & pl.lit(dns_healthy)
    third_party = pl.col("_third_party") & ~pl.col("_direct_evidence") & pl.col("confirmed_at").is_null()
    expired = evidenced & (
        (_day("consent_expires_at") < as_of).fill_null(False)
        | (_day("ref") < months_before(as_of, c.expire_after_months)).fill_null(False)
    )
    fresh = evidenced & (_day("ref") >= months_before(as_of, c.refresh_after_months)).fill_null(False)
    # An open reconfirmation request: asked, and no consent dated on or after the day it was sent.
    asked = pl.col("asked_on").is_not_null() & ~(_day("_evidence_at") >= pl.col("asked_on")).fill_null(False)
    pending = pl.col("_pending")
    pending_recent = (
        _day(pl.coalesce("consent_at", "created_at")) >= as_of - dt.timedelta(days=c.pending_max_days)
    ).fill_null(False)
    soft = (
        pl.col("is_customer")
        & ~pl.col("_no_soft_opt_in")
        & (_day("last_purchase_at") >= months_before(as_of, policy.soft_opt_in.max_months)).fill_null(False)
    )
    claimed = pl.col("_granted") | pl.col("_basis_consent") | pl.col("_unreadable_claim")
    # Consent to processing (HubSpot's "Freely given consent") says nothing about email either way.
    li_only = pl.col("_basis_li") & ~pl.col("_basis_other")

    conditions = {
        Reason.SUPPRESSED: suppressed & ~pl.col("erasure_requested") & ~standing_optout,
        Reason.ERASURE_REQUESTED: pl.col("erasure_requested"),
        Reason.OPTED_OUT: standing_optout,
        Reason.HARD_BOUNCE: bounced,
        Reason.NO_MAIL_DOMAIN: no_mail,
        Reason.DOMAIN_TYPO: pl.col("typo_domain"),
        Reason.DISPOSABLE_DOMAIN: pl.col("disposable"),
        Reason.THIRD_PARTY_LIST: third_party,
        Reason.CONSENT_EXPIRED: expired,
        Reason.RECONFIRM_PENDING: asked
        & (as_of < pl.col("asked_on") + dt.timedelta(days=policy.reconfirm.answer_days)),
        Reason.RECONFIRM_UNANSWERED: asked,
        Reason.NEEDS_DOUBLE_OPT_IN: fresh & pl.col("confirmed_at").is_null(),
        Reason.CONSENT_VALID: fresh,
        Reason.CONSENT_STALE: evidenced,
        Reason.DOI_PENDING: pending & pending_recent,
        Reason.DOI_NEVER_CONFIRMED: pending,
        Reason.SOFT_OPT_IN: soft,
        Reason.CONSENT_UNPROVEN: claimed,
        Reason.LEGITIMATE_INTEREST_ONLY: li_only,
    }
    # The decision table in its order: rows for R0, dedupe and read are judged elsewhere; R15 is the rest.
    rows = [row for row in decision_table(policy) if row.reason in conditions and row.active]
    klass: pl.Expr = pl.lit(DISCARD)
    reason: pl.Expr = pl.lit(Reason.NO_CONSENT.value)
    for row in reversed(rows):
        cond = conditions[row.reason].fill_null(False)
        klass = pl.when(cond).then(pl.lit(row.klass.value)).otherwise(klass)
        reason = pl.when(cond).then(pl.lit(row.reason.value)).otherwise(reason)
    return frame.with_columns(klass.alias("class"), reason.alias("reason"))


def suppression_entries(addresses: pl.DataFrame) -> pl.DataFrame:
    """``address_key, address_hash, objection_at`` for every address whose own records carry a standing
    objection (R2, R3) that the list does not already hold as strictly: the opt-out date the source
    gives, or null (undated) for an erasure, an undated or unreadable opt-out. An address discarded only
    through another address of its person (``VIA_DUPLICATE``) is not listed: its own evidence holds no
    objection, and a later run that no longer links the two must judge it on its own. An entry the list
    holds undated, or dated no earlier, would change nothing (entries only ever get stricter) and is
    left out, so that a nightly run does not write its whole list again."""
    own = addresses.filter(pl.col("reason").is_in(SUPPRESSION_REASONS) & ~pl.col("via_duplicate"))
    undated = (pl.col("reason") == Reason.ERASURE_REQUESTED.value) | pl.col("_optout_undated")
    entries = own.select(
        "address_key",
        "address_hash",
        pl.when(undated).then(None).otherwise(pl.col("opted_out_at")).alias("objection_at"),
        pl.col("_listed").fill_null(False).alias("_listed"),
        "suppressed_at",
    )
    as_strict = pl.col("_listed") & (
        pl.col("suppressed_at").is_null() | (pl.col("objection_at") <= pl.col("suppressed_at")).fill_null(False)
    )
    return entries.filter(~as_strict).drop("_listed", "suppressed_at").sort("address_key")


def merge_addresses(records: pl.DataFrame) -> pl.DataFrame:
    """One row per address key with merged evidence and its representative record."""
    # Lazily, so that only the columns merged are filtered, not every column of the records.
    valid = records.lazy().filter(pl.col("address_key").is_not_null())
    order = valid.select("address_key", "record_id", "_row", "_evidence_at", "last_activity_at").sort(
        by=["_evidence_at", "last_activity_at", "_row"],
        descending=[True, True, False],
        nulls_last=True,
    )
    reps = order.unique("address_key", keep="first").select(
        "address_key", pl.col("record_id").alias("rep_record_id"), pl.col("_row").alias("rep_row")
    )
    # The facts the rules ask of statuses and bases, as booleans per record (a list per address costs
    # twenty times more), so that merging is a plain any() per address.
    status, bases = pl.col("consent_status"), pl.col("lawful_basis")
    valid = valid.with_columns(
        (status == "pending").alias("_pending"),
        (status == "granted").alias("_granted"),
        # Compared as numbers, which costs a third of comparing the texts per address.
        pl.when(status != "unknown").then(status).cast(pl.Categorical).to_physical().alias("_known"),
        bases.list.contains("consent").alias("_basis_consent"),
        bases.list.contains("legitimate_interest").alias("_basis_li"),
        (bases.list.set_difference(pl.lit(NOT_OTHER_BASES)).list.len() > 0).alias("_basis_other"),
    )
    merged = valid.group_by("address_key").agg(
        *[pl.col(d).max() for d in _DATES],
        pl.col("_pending", "_granted", "_basis_consent", "_basis_li", "_basis_other").any(),
        (pl.col("_known").min() != pl.col("_known").max()).fill_null(False).alias("_status_conflict"),
        pl.col("_evidence_at").max(),
        pl.col("_opted").any(),
        pl.col("_optout_undated").any(),
        pl.col("_bounce_undated").any(),
        pl.col("_unreadable_claim").any(),
        pl.col("_no_soft_opt_in").any(),
        pl.col("erasure_requested").any(),
        pl.col("hard_bounced").any(),
        pl.col("is_customer").any(),
        pl.col("_third_party").any(),
        (~pl.col("_third_party") & pl.col("_evidence_at").is_not_null()).any().alias("_direct_evidence"),
        pl.col("address_hash").first(),
        pl.col("person_key").n_unique().alias("_persons"),
        pl.col("person_key").first(),
        pl.col("mx_status").first(),
        pl.col("disposable").any(),
        pl.col("typo_domain").any(),
    )
    # A mailbox people of different first names share (dedupe gave its records several persons) is a unit
    # of its own; judge_persons says what passes through it. (Decided once merged: an expression per
    # address inside the merge costs more than the rest of it.)
    unit = (
        pl.when(pl.col("_persons") > 1)
        .then(pl.concat_str([pl.lit(SHARED), pl.col("address_key")]))
        .otherwise(pl.col("person_key"))
        .alias("person_key")
    )
    return merged.with_columns(unit).drop("_persons").join(reps, on="address_key").collect()


def _objection_rank(reason: pl.Expr) -> pl.Expr:
    return reason.replace_strict({r: i for i, r in enumerate(OBJECTIONS)}, default=None, return_dtype=pl.Int32)


def shared_members(records: pl.DataFrame, addresses: pl.DataFrame) -> pl.DataFrame:
    """``address_key, person_key, _own, _owner``: the records on each shared mailbox (an address people
    of different first names share, a unit of its own), with the person dedupe gave each record, whether
    the record itself carries an opt-out or erasure, and whether its names make up the local part (the
    mailbox is theirs: ``nils.nilsson506@`` is Nils Nilsson's, whoever else a CRM filed under it)."""
    shared = addresses.filter(pl.col("person_key").str.starts_with(SHARED)).select("address_key")
    owner = pl.col("owns_mailbox") if "owns_mailbox" in records.columns else pl.lit(False)
    return (
        records.lazy()
        .join(shared.lazy(), on="address_key")
        .select(
            "address_key",
            "person_key",
            (pl.col("_opted") | pl.col("erasure_requested")).alias("_own"),
            owner.fill_null(False).alias("_owner"),
        )
        .collect()
    )


def _through_shared_mailboxes(frame: pl.DataFrame, members: pl.DataFrame) -> pl.DataFrame:
    """``_objection`` per address once shared mailboxes have passed on what belongs to whom (see
    ``judge_persons``)."""
    shared = pl.col("person_key").str.starts_with(SHARED)
    mailbox = frame.filter(shared).select("address_key", "_own_objection")
    on_mailbox = members.join(mailbox, on="address_key")
    anyone = pl.col("_own").any().over("address_key")
    listed = pl.col("_own_objection") == OBJECTIONS.index(Reason.SUPPRESSED.value)
    carried = (
        on_mailbox.filter(
            pl.col("_own_objection").is_not_null() & (pl.col("_own") | pl.col("_owner") | ~anyone | listed)
        )
        .group_by("person_key")
        .agg(pl.col("_own_objection").min().alias("_carried"))
    )
    persons = (
        frame.filter(~shared)
        .group_by("person_key")
        .agg(pl.col("_own_objection").min().alias("_person"))
        .join(carried, on="person_key", how="full", coalesce=True)
        .select("person_key", pl.min_horizontal("_person", "_carried").alias("_person"))
    )
    into_mailbox = (
        members.join(persons, on="person_key").group_by("address_key").agg(pl.col("_person").min().alias("_users"))
    )
    return (
        look_up(look_up(frame, persons, "person_key"), into_mailbox, "address_key")
        .with_columns(
            pl.when(shared)
            .then(pl.min_horizontal("_own_objection", "_users"))
            .otherwise(pl.col("_person"))
            .alias("_objection")
        )
        .drop("_person", "_users")
    )


def judge_persons(addresses: pl.DataFrame, policy: Policy, members: pl.DataFrame | None = None) -> pl.DataFrame:
    """Spread objections across a person and pick one survivor among its kept or reconfirmed addresses.

    A shared mailbox (``members`` from ``shared_members``) is a unit of its own. Its objection reaches
    the persons whose own records on it carry the objection and the person whose names make up its
    local part (its owner), or, where no record carries it (an address already on the suppression
    list), every person who uses it; and every objection of a person who uses it reaches it. Nothing
    travels further through it: one person's no never becomes a housemate's."""
    frame = addresses
    if policy.consent.propagate_opt_out:
        frame = frame.with_columns(_objection_rank(pl.col("reason")).alias("_own_objection"))
        if members is not None and members.height:
            frame = _through_shared_mailboxes(frame, members)
        else:
            frame = frame.with_columns(pl.col("_own_objection").min().over("person_key").alias("_objection"))
        frame = frame.drop("_own_objection")
        spread = pl.col("_objection").is_not_null() & (pl.col("class") != DISCARD)
        objection = pl.col("_objection").replace_strict(
            dict(enumerate(OBJECTIONS)), default=None, return_dtype=pl.String
        )
        frame = frame.with_columns(
            pl.when(spread).then(pl.lit(True)).otherwise(pl.lit(False)).alias("via_duplicate"),
            pl.when(spread).then(pl.lit(DISCARD)).otherwise(pl.col("class")).alias("class"),
            pl.when(spread).then(objection).otherwise(pl.col("reason")).alias("reason"),
        ).drop("_objection")
    else:
        frame = frame.with_columns(pl.lit(False).alias("via_duplicate"))
    rank = pl.col("class").replace_strict(_CLASS_RANK, return_dtype=pl.Int8)
    # Only the columns the choice needs are sorted; every address has its own representative row, so
    # the order has no ties.
    survivors = (
        frame.lazy()
        .filter(pl.col("class") != DISCARD)
        .select("person_key", "address_key", "rep_record_id", rank.alias("_rank"), "ref", "last_activity_at", "rep_row")
        .sort(
            by=["_rank", "ref", "last_activity_at", "rep_row"], descending=[False, True, True, False], nulls_last=True
        )
        .group_by("person_key", maintain_order=True)
        .agg(pl.col("address_key").first().alias("_survivor_key"), pl.col("rep_record_id").first().alias("survivor_id"))
        .collect()
    )
    frame = look_up(frame, survivors, "person_key")
    loser = (pl.col("class") != DISCARD) & (pl.col("address_key") != pl.col("_survivor_key"))
    return frame.with_columns(
        pl.when(loser).then(pl.lit(DISCARD)).otherwise(pl.col("class")).alias("class"),
        pl.when(loser).then(pl.lit(Reason.DUPLICATE.value)).otherwise(pl.col("reason")).alias("reason"),
        pl.when(loser).then(pl.col("survivor_id")).otherwise(None).alias("address_survivor_id"),
    ).drop("_survivor_key", "survivor_id")


def classify(
    records: pl.DataFrame,
    policy: Policy,
    as_of: dt.date,
    suppression: pl.DataFrame | None = None,
    dns_healthy: bool = True,
    requests: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Judge every record; returns ``(records with class/reason/flags/cluster_id/survivor_id, addresses)``.
    ``requests`` (``address_hash, asked_on``) are the reconfirmations recorded as sent."""
    suppression = suppression if suppression is not None else pl.DataFrame(schema=SUPPRESSION_SCHEMA)
    requests = requests if requests is not None else pl.DataFrame(schema=REQUEST_SCHEMA)
    # The latest request sent on or before the as-of date: one sent later is not known yet on that day.
    asked = requests.filter(pl.col("asked_on") <= as_of).group_by("address_hash").agg(pl.col("asked_on").max())
    # A cluster is named after its first record in input order.
    recs = drop_future_dates(records, as_of)
    recs = (recs if recs["_row"].is_sorted() else recs.sort("_row")).with_columns(
        *_record_evidence(policy, recs), pl.col("record_id").first().over("person_key").alias("cluster_id")
    )
    listed = suppression.group_by("address_hash").agg(
        # One entry per hash in the database; should a frame hold several, undated wins, then the latest.
        pl.when(pl.col("suppressed_at").is_null().any())
        .then(None)
        .otherwise(pl.col("suppressed_at").max())
        .alias("suppressed_at"),
        pl.lit(True).alias("_listed"),
    )
    addresses = merge_addresses(recs).join(listed, on="address_hash", how="left")
    addresses = addresses.join(asked, on="address_hash", how="left")
    addresses = judge_addresses(addresses, policy, as_of, dns_healthy)
    addresses = judge_persons(addresses, policy, shared_members(recs, addresses))
    joined = look_up(
        recs,
        addresses.select(
            "address_key",
            pl.col("class").alias("_aclass"),
            pl.col("reason").alias("_areason"),
            "rep_record_id",
            "rep_row",
            "address_survivor_id",
            pl.col("_status_conflict").alias("_conflict"),
            pl.col("via_duplicate").alias("_via_duplicate"),
            "ref",
        ),
        "address_key",
    )
    invalid = pl.col("address_key").is_null()
    is_rep = pl.col("_row") == pl.col("rep_row")
    kept_address = pl.col("_aclass").is_in([KEEP, RECONFIRM])
    duplicate_record = kept_address & ~is_rep
    out = joined.with_columns(
        pl.when(invalid)
        .then(pl.lit(DISCARD))
        .when(duplicate_record)
        .then(pl.lit(DISCARD))
        .otherwise(pl.col("_aclass"))
        .alias("class"),
        pl.when(invalid)
        .then(pl.lit(Reason.INVALID_EMAIL.value))
        .when(duplicate_record)
        .then(pl.lit(Reason.DUPLICATE.value))
        .otherwise(pl.col("_areason"))
        .alias("reason"),
        pl.when(duplicate_record)
        .then(pl.col("rep_record_id"))
        .otherwise(pl.col("address_survivor_id"))
        .alias("survivor_id"),
        # A record's own flags never name these two, which belong to its address.
        with_flags(
            pl.col("flags"),
            (pl.col("_conflict"), Flag.SOURCE_CONFLICT.value),
            (pl.col("_via_duplicate"), Flag.VIA_DUPLICATE.value),
        ).alias("flags"),
    ).drop("_aclass", "_areason", "rep_record_id", "rep_row", "address_survivor_id", "_conflict", "_via_duplicate")
    return out, addresses
