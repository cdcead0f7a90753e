"""The decision table R0–R15, each rule with the boundary day of its thresholds, and the address,
person and record levels of consent-policy.md."""

import datetime as dt
from typing import Any

import polars as pl
import pytest

from cleansing.classify import classify
from cleansing.dedupe import assign_persons
from cleansing.domains import check_domains
from cleansing.policy import ConsentPolicy, DomainPolicy, LegitimateInterestPolicy, Policy, SoftOptInPolicy
from cleansing.state import hash_keys
from cleansing.validate import validate

from .records import canonical

AS_OF = dt.date(2026, 11, 29)
KEY = b"test-key"


def t(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)


def judge(
    *records: dict[str, Any],
    policy: Policy | None = None,
    suppressed: dict[str, str] | None = None,
    persons: dict[int, str] | None = None,
    mx: dict[int, str] | None = None,
    disposable: set[int] | None = None,
    dns_healthy: bool = True,
) -> pl.DataFrame:
    frame = canonical(*records, email="anna@example.se")
    frame = assign_persons(check_domains(validate(frame), Policy().domains, None)[0])
    if persons:
        frame = frame.with_columns(
            pl.col("_row")
            .replace_strict(
                {i - 1: k for i, k in persons.items()}, default=pl.col("person_key"), return_dtype=pl.String
            )
            .alias("person_key")
        )
    if mx:
        frame = frame.with_columns(
            pl.col("_row")
            .replace_strict({i - 1: s for i, s in mx.items()}, default=pl.col("mx_status"), return_dtype=pl.String)
            .alias("mx_status")
        )
    if disposable:
        frame = frame.with_columns(pl.col("_row").is_in([i - 1 for i in disposable]).alias("disposable"))
    frame = frame.with_columns(hash_keys(frame["address_key"], KEY).alias("address_hash"))
    entries = pl.DataFrame(schema={"address_hash": pl.String, "suppressed_at": pl.Datetime("us", "UTC")})
    if suppressed:
        keys = pl.Series(list(suppressed))
        entries = pl.DataFrame(
            {"address_hash": hash_keys(keys, KEY), "suppressed_at": [t(d) for d in suppressed.values()]}
        )
    out, _ = classify(frame, policy or Policy(), AS_OF, entries, dns_healthy)
    return out.sort("_row")


def verdict(*records: dict[str, Any], **kwargs: Any) -> tuple[str, str]:
    out = judge(*records, **kwargs)
    first = out.row(0, named=True)
    return first["class"], first["reason"]


GRANTED = {"consent_status": "granted"}
DOI = Policy(consent=ConsentPolicy(require_double_opt_in=True))


@pytest.mark.parametrize(
    ("record", "kwargs", "expected"),
    [
        pytest.param({"email": "anna.example.se"}, {}, ("discard", "INVALID_EMAIL"), id="R0-invalid-syntax"),
        pytest.param(
            {"email": None, **GRANTED, "consent_at": t("2026-01-01")}, {}, ("discard", "INVALID_EMAIL"), id="R0-missing"
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2024-12-01")},
            {"suppressed": {"anna@example.se": "2025-01-01"}},
            ("discard", "SUPPRESSED"),
            id="R1-suppressed",
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2025-06-01")},
            {"suppressed": {"anna@example.se": "2025-01-01"}},
            ("keep", "CONSENT_VALID"),
            id="R1-newer-consent-lifts-suppression",
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2026-01-01"), "erasure_requested": True},
            {},
            ("discard", "ERASURE_REQUESTED"),
            id="R2-erasure",
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2026-01-01"), "opted_out": True},
            {},
            ("discard", "OPTED_OUT"),
            id="R3-undated-opt-out-always-stands",
        ),
        pytest.param(
            {"consent_status": "withdrawn", "consent_at": t("2026-01-01")},
            {},
            ("discard", "OPTED_OUT"),
            id="R3-withdrawn-status",
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2026-01-01"), "opted_out": True, "opted_out_at": t("2026-02-01")},
            {},
            ("discard", "OPTED_OUT"),
            id="R3-opt-out-after-consent",
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2026-03-01"), "opted_out": True, "opted_out_at": t("2026-02-01")},
            {},
            ("keep", "CONSENT_VALID"),
            id="R3-re-opt-in-after-dated-opt-out",
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2026-03-01"), "opted_out": True, "opted_out_at": t("2026-02-01")},
            {"policy": Policy(consent=ConsentPolicy(reoptin_after_optout=False))},
            ("discard", "OPTED_OUT"),
            id="R3-no-re-opt-in-by-policy",
        ),
        pytest.param(
            {**GRANTED, "confirmed_at": t("2024-12-01"), "hard_bounced": True, "bounced_at": t("2025-01-01")},
            {},
            ("discard", "HARD_BOUNCE"),
            id="R4-bounce-after-confirmation",
        ),
        pytest.param(
            {**GRANTED, "confirmed_at": t("2025-02-01"), "hard_bounced": True, "bounced_at": t("2025-01-01")},
            {},
            ("keep", "CONSENT_VALID"),
            id="R4-confirmed-after-bounce",
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2026-01-01"), "hard_bounced": True},
            {},
            ("discard", "HARD_BOUNCE"),
            id="R4-undated-bounce",
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2026-01-01")},
            {"mx": {1: "no_mail"}},
            ("discard", "NO_MAIL_DOMAIN"),
            id="R5-no-mail-domain",
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2026-01-01")},
            {"mx": {1: "domain_missing"}, "dns_healthy": False},
            ("keep", "CONSENT_VALID"),
            id="R5-never-when-dns-unhealthy",
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2026-01-01")},
            {"mx": {1: "unknown"}},
            ("keep", "CONSENT_VALID"),
            id="R5-unknown-never-discards",
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2026-01-01")},
            {"disposable": {1}},
            ("discard", "DISPOSABLE_DOMAIN"),
            id="R6-disposable",
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2026-01-01")},
            {"disposable": {1}, "policy": Policy(domains=DomainPolicy(discard_disposable=False))},
            ("keep", "CONSENT_VALID"),
            id="R6-off-by-policy",
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2026-01-01"), "consent_source": "Purchased list 2025"},
            {},
            ("discard", "THIRD_PARTY_LIST"),
            id="R7-bought-list",
        ),
        pytest.param({**GRANTED, "tags": ["Köpt lista"]}, {}, ("discard", "THIRD_PARTY_LIST"), id="R7-swedish-tag"),
        pytest.param(
            {
                **GRANTED,
                "consent_at": t("2026-01-01"),
                "confirmed_at": t("2026-01-01"),
                "consent_source": "co-registration",
            },
            {},
            ("keep", "CONSENT_VALID"),
            id="R7-own-double-opt-in-makes-it-direct",
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2022-11-28")}, {}, ("discard", "CONSENT_EXPIRED"), id="R8-48-months-and-a-day"
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2022-11-29")}, {}, ("reconfirm", "CONSENT_STALE"), id="R10-exactly-48-months"
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2026-01-01"), "consent_expires_at": t("2026-11-28")},
            {},
            ("discard", "CONSENT_EXPIRED"),
            id="R8-past-end-date",
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2026-01-01"), "consent_expires_at": t("2026-11-29")},
            {},
            ("keep", "CONSENT_VALID"),
            id="R8-end-date-today-still-valid",
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2024-11-29")}, {}, ("keep", "CONSENT_VALID"), id="R9-exactly-24-months"
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2024-11-28")}, {}, ("reconfirm", "CONSENT_STALE"), id="R10-24-months-and-a-day"
        ),
        pytest.param(
            {"consent_at": t("2026-01-01")}, {}, ("keep", "CONSENT_VALID"), id="R9-dated-consent-with-unknown-status"
        ),
        pytest.param(
            {"consent_status": "none", "confirmed_at": t("2026-01-01")},
            {},
            ("keep", "CONSENT_VALID"),
            id="R9-confirmation-is-evidence",
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2026-01-01")},
            {"policy": DOI},
            ("reconfirm", "NEEDS_DOUBLE_OPT_IN"),
            id="R9-double-opt-in-required",
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2026-01-01"), "confirmed_at": t("2026-01-02")},
            {"policy": DOI},
            ("keep", "CONSENT_VALID"),
            id="R9-double-opt-in-present",
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2020-01-01"), "last_activity_at": t("2026-10-01")},
            {},
            ("keep", "CONSENT_VALID"),
            id="R9-engagement-refreshes-consent",
        ),
        pytest.param(
            {**GRANTED, "consent_at": t("2020-01-01"), "last_activity_at": t("2026-10-01")},
            {"policy": Policy(consent=ConsentPolicy(engagement_refreshes_consent=False))},
            ("discard", "CONSENT_EXPIRED"),
            id="R8-engagement-ignored-by-policy",
        ),
        pytest.param(
            {"consent_status": "none", "last_activity_at": t("2026-10-01")},
            {},
            ("discard", "NO_CONSENT"),
            id="R15-engagement-never-creates-consent",
        ),
        pytest.param(
            {"consent_status": "pending", "consent_at": t("2026-10-30")},
            {},
            ("reconfirm", "DOI_PENDING"),
            id="R11-pending-30-days",
        ),
        pytest.param(
            {"consent_status": "pending", "consent_at": t("2026-10-29")},
            {},
            ("discard", "DOI_NEVER_CONFIRMED"),
            id="R11-pending-31-days",
        ),
        pytest.param(
            {"consent_status": "pending", "created_at": t("2026-11-20")},
            {},
            ("reconfirm", "DOI_PENDING"),
            id="R11-pending-dated-by-creation",
        ),
        pytest.param({"consent_status": "pending"}, {}, ("discard", "DOI_NEVER_CONFIRMED"), id="R11-pending-undated"),
        pytest.param(
            {"is_customer": True, "last_purchase_at": t("2024-11-29")},
            {},
            ("keep", "SOFT_OPT_IN"),
            id="R12-purchase-exactly-24-months",
        ),
        pytest.param(
            {"is_customer": True, "last_purchase_at": t("2024-11-28")},
            {},
            ("discard", "NO_CONSENT"),
            id="R15-purchase-24-months-and-a-day",
        ),
        pytest.param(
            {"is_customer": True, "last_purchase_at": t("2026-01-01")},
            {"policy": Policy(soft_opt_in=SoftOptInPolicy(enabled=False))},
            ("discard", "NO_CONSENT"),
            id="R12-off-by-policy",
        ),
        pytest.param(GRANTED, {}, ("reconfirm", "CONSENT_UNPROVEN"), id="R13-claimed-without-date"),
        pytest.param({"lawful_basis": ["consent"]}, {}, ("reconfirm", "CONSENT_UNPROVEN"), id="R13-consent-basis"),
        pytest.param(
            GRANTED,
            {"policy": Policy(consent=ConsentPolicy(unproven_consent="discard"))},
            ("discard", "CONSENT_UNPROVEN"),
            id="R13-discard-by-policy",
        ),
        pytest.param(
            {"lawful_basis": ["legitimate_interest"]},
            {},
            ("discard", "LEGITIMATE_INTEREST_ONLY"),
            id="R14-legitimate-interest-only",
        ),
        pytest.param(
            {"lawful_basis": ["legitimate_interest"]},
            {"policy": Policy(legitimate_interest=LegitimateInterestPolicy(action="keep"))},
            ("keep", "LEGITIMATE_INTEREST_ONLY"),
            id="R14-keep-by-policy",
        ),
        pytest.param(
            {"lawful_basis": ["contract", "legitimate_interest"]},
            {},
            ("discard", "NO_CONSENT"),
            id="R15-contract-and-interest",
        ),
        pytest.param({"consent_status": "none"}, {}, ("discard", "NO_CONSENT"), id="R15-nothing"),
    ],
)
def test_decision_table(record: dict[str, Any], kwargs: dict[str, Any], expected: tuple[str, str]) -> None:
    assert verdict(record, **kwargs) == expected


def test_evidence_merges_across_records_of_one_address() -> None:
    out = judge(
        {"email": "Anna@Example.se", "consent_status": "granted"},
        {"email": "anna@example.se", "consent_at": t("2026-01-01"), "source_file": "other.csv"},
    )
    assert out["class"].to_list() == ["discard", "keep"]
    assert out["reason"].to_list() == ["DUPLICATE", "CONSENT_VALID"]
    assert out["survivor_id"].to_list() == ["r2", None]
    assert out["cluster_id"].n_unique() == 1


def test_an_opt_out_in_one_source_discards_every_record_of_the_address() -> None:
    out = judge(
        {**GRANTED, "consent_at": t("2026-01-01"), "confirmed_at": t("2026-01-01")},
        {"email": "ANNA@example.se", "opted_out": True},
    )
    assert out["reason"].to_list() == ["OPTED_OUT", "OPTED_OUT"]
    assert all("SOURCE_CONFLICT" not in f for f in out["flags"].to_list())


def test_sources_that_disagree_about_an_address_are_flagged() -> None:
    out = judge({"consent_status": "granted"}, {"consent_status": "withdrawn"})
    assert all("SOURCE_CONFLICT" in f for f in out["flags"].to_list())


def test_representative_has_the_latest_evidenced_consent_then_latest_activity() -> None:
    out = judge(
        {**GRANTED, "consent_at": t("2025-01-01"), "last_activity_at": t("2026-11-01")},
        {**GRANTED, "consent_at": t("2026-01-01")},
        {**GRANTED, "consent_at": t("2026-01-01"), "last_activity_at": t("2026-02-01")},
    )
    assert out["class"].to_list() == ["discard", "discard", "keep"]
    assert out["survivor_id"].to_list() == ["r3", "r3", None]


def test_representative_falls_back_to_input_order() -> None:
    out = judge({**GRANTED}, {**GRANTED})
    assert out["reason"].to_list() == ["CONSENT_UNPROVEN", "DUPLICATE"]


def test_an_invalid_record_is_judged_alone() -> None:
    out = judge({"email": "broken"}, {**GRANTED, "consent_at": t("2026-01-01")})
    assert out["reason"].to_list() == ["INVALID_EMAIL", "CONSENT_VALID"]
    assert out["survivor_id"].to_list() == [None, None]


def test_an_objection_spreads_to_the_persons_other_addresses() -> None:
    out = judge(
        {"email": "anna@work.se", **GRANTED, "consent_at": t("2026-01-01")},
        {"email": "anna@private.se", "opted_out": True},
        {"email": "anna@old.se", "hard_bounced": True},
        persons={1: "p", 2: "p", 3: "p"},
    )
    assert out["reason"].to_list() == ["OPTED_OUT", "OPTED_OUT", "HARD_BOUNCE"]
    assert out["flags"].to_list() == [["VIA_DUPLICATE"], [], []]


def test_objections_stay_put_when_propagation_is_off() -> None:
    out = judge(
        {"email": "anna@work.se", **GRANTED, "consent_at": t("2026-01-01")},
        {"email": "anna@private.se", "opted_out": True},
        persons={1: "p", 2: "p"},
        policy=Policy(consent=ConsentPolicy(propagate_opt_out=False)),
    )
    assert out["reason"].to_list() == ["CONSENT_VALID", "OPTED_OUT"]


def test_one_survivor_per_person_keep_beats_reconfirm() -> None:
    out = judge(
        {"email": "anna@work.se", **GRANTED, "consent_at": t("2023-01-01")},
        {"email": "anna@private.se", **GRANTED, "consent_at": t("2026-01-01")},
        persons={1: "p", 2: "p"},
    )
    assert out["reason"].to_list() == ["DUPLICATE", "CONSENT_VALID"]
    assert out["survivor_id"].to_list() == ["r2", None]


def test_among_equal_classes_the_latest_reference_time_survives() -> None:
    out = judge(
        {"email": "anna@work.se", **GRANTED, "consent_at": t("2025-01-01")},
        {"email": "anna@private.se", **GRANTED, "consent_at": t("2026-01-01")},
        {"email": "anna@else.se", **GRANTED, "consent_at": t("2025-06-01")},
        persons={1: "p", 2: "p", 3: "p"},
    )
    assert out["reason"].to_list() == ["DUPLICATE", "CONSENT_VALID", "DUPLICATE"]


def test_evidence_on_one_address_never_strengthens_another() -> None:
    out = judge(
        {"email": "anna@work.se", **GRANTED},
        {"email": "anna@private.se", "consent_status": "none", "confirmed_at": t("2026-01-01")},
        persons={1: "p", 2: "p"},
    )
    assert out["reason"].to_list() == ["DUPLICATE", "CONSENT_VALID"]
    work = judge({"email": "anna@work.se", **GRANTED})
    assert work["reason"].to_list() == ["CONSENT_UNPROVEN"]


def test_unparseable_flags_travel_with_the_record() -> None:
    out = judge({**GRANTED, "flags": ["UNPARSEABLE_CONSENT_AT"]})
    assert out["flags"].to_list() == [["UNPARSEABLE_CONSENT_AT"]]
    assert out["reason"].to_list() == ["CONSENT_UNPROVEN"]
