"""Fail-safe evidence (consent-policy.md, "Fail-safe evidence"): files as tools and people write them,
read, mapped and judged end to end; what cannot be read never makes a contact more mailable."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from cleansing.classify import classify
from cleansing.dedupe import assign_persons
from cleansing.domains import check_domains
from cleansing.mapping import map_table
from cleansing.policy import Policy
from cleansing.read import parse_delimited
from cleansing.state import hash_keys
from cleansing.validate import validate

from .records import SALESFORCE_REPORT_FOOTER

AS_OF = dt.date(2026, 11, 29)
NO_SUPPRESSION = pl.DataFrame(schema={"address_hash": pl.String, "suppressed_at": pl.Datetime("us", "UTC")})


def decide(name: str, text: str, policy: Policy | None = None) -> list[dict[str, object]]:
    """Every row of one file through map → validate → dedupe → classify (no DNS): class, reason, flags."""
    policy = policy or Policy()
    table, _ = parse_delimited(name, text)
    mapped, _ = map_table(table, local_zone=policy.contacts.local_timezone)
    frame = mapped.with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64))
    frame = assign_persons(check_domains(validate(frame), policy.domains, None)[0])
    frame = frame.with_columns(hash_keys(frame["address_key"], b"k").alias("address_hash"))
    out, _ = classify(frame, policy, AS_OF, NO_SUPPRESSION)
    return out.sort("_row").select("class", "reason", "flags").to_dicts()


def verdict(name: str, text: str) -> tuple[str, str]:
    (row,) = decide(name, text)
    return str(row["class"]), str(row["reason"])


SHEET = "E-post;Samtycke;Samtyckesdatum;{column}\nanna@example.se;ja;2026-06-01;{value}\n"


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        pytest.param("Avregistrerad", "Ja, per telefon", "OPTED_OUT", id="opt-out-in-words"),
        pytest.param("Avregistrerad", "03/04/2025", "OPTED_OUT", id="opt-out-ambiguous-date"),
        pytest.param("Unsubscribed", "ja tack", "OPTED_OUT", id="opt-out-ja-tack"),
        pytest.param("Radera", "ja tack", "ERASURE_REQUESTED", id="erasure-in-words"),
        pytest.param("Hard bounce", "hard", "HARD_BOUNCE", id="bounce-in-words"),
        pytest.param("Avregistrerad", "nej", "CONSENT_VALID", id="a-readable-no-is-no-objection"),
    ],
)
def test_an_objection_value_that_cannot_be_read_is_an_objection(column: str, value: str, expected: str) -> None:
    (row,) = decide("kunder.csv", SHEET.format(column=column, value=value))
    assert row["reason"] == expected
    if expected != "CONSENT_VALID":
        assert any(str(f).startswith("UNPARSEABLE_") for f in row["flags"])  # type: ignore[union-attr]


def test_an_unreadable_opt_out_is_not_lifted_by_later_consent() -> None:
    text = "E-post;Samtycke;Samtyckesdatum;Avregistrerad\nanna@example.se;ja;2026-11-01;sedan i våras\n"
    assert verdict("kunder.csv", text) == ("discard", "OPTED_OUT")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param("Nej tack", ("discard", "OPTED_OUT"), id="nej-tack"),
        pytest.param("no thanks", ("discard", "OPTED_OUT"), id="no-thanks"),
        pytest.param("declined", ("discard", "OPTED_OUT"), id="declined"),
        pytest.param("avböjt", ("discard", "OPTED_OUT"), id="avbojt"),
        pytest.param("Avstår", ("discard", "OPTED_OUT"), id="avstar"),
        pytest.param("vill inte", ("discard", "OPTED_OUT"), id="vill-inte"),
        pytest.param("Nej, vill inte ha nyhetsbrev", ("discard", "OPTED_OUT"), id="refusal-in-a-sentence"),
        pytest.param("Ja, per telefon", ("reconfirm", "CONSENT_UNPROVEN"), id="unreadable-with-date"),
        pytest.param("kanske", ("reconfirm", "CONSENT_UNPROVEN"), id="unreadable-maybe"),
        pytest.param("ja", ("keep", "CONSENT_VALID"), id="yes-with-date"),
        pytest.param("", ("keep", "CONSENT_VALID"), id="no-status-with-date-is-evidence"),
    ],
)
def test_consent_status_in_words(status: str, expected: tuple[str, str]) -> None:
    text = f"E-post;Samtycke;Samtyckesdatum\nanna@example.se;{status};2026-06-01\n"
    assert verdict("kunder.csv", text) == expected


def test_an_unreadable_status_without_a_date_is_no_consent() -> None:
    assert verdict("kunder.csv", "E-post;Samtycke\nanna@example.se;kanske\n") == ("discard", "NO_CONSENT")


def test_a_consent_date_after_the_as_of_date_is_not_evidence_and_is_flagged() -> None:
    (row,) = decide("kunder.csv", "E-post;Samtycke;Samtyckesdatum\nanna@example.se;ja;2027-03-01\n")
    assert (row["class"], row["reason"]) == ("reconfirm", "CONSENT_UNPROVEN")
    assert "FUTURE_DATE" in row["flags"]  # type: ignore[operator]


def test_a_future_consent_date_does_not_lift_an_earlier_opt_out() -> None:
    text = "E-post;Samtycke;Samtyckesdatum;Avregistrerad\nanna@example.se;ja;2027-03-01;2025-05-01\n"
    assert verdict("kunder.csv", text) == ("discard", "OPTED_OUT")


def test_a_future_opt_out_date_is_an_objection_of_unknown_date() -> None:
    text = "E-post;Samtycke;Samtyckesdatum;Avregistrerad\nanna@example.se;ja;2026-10-01;2027-01-01\n"
    assert verdict("kunder.csv", text) == ("discard", "OPTED_OUT")


CUSTOMERS = "E-post;Samtycke;Kund;Senaste köp\nanna@example.se;{status};ja;2026-10-01\n"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param("", ("keep", "SOFT_OPT_IN"), id="customer-without-refusal"),
        pytest.param("nej", ("discard", "OPTED_OUT"), id="customer-who-said-no"),
        pytest.param("nej tack", ("discard", "OPTED_OUT"), id="customer-who-said-no-thanks"),
        pytest.param("kanske", ("discard", "NO_CONSENT"), id="customer-with-unreadable-answer"),
        pytest.param("false", ("keep", "SOFT_OPT_IN"), id="customer-with-no-consent-recorded"),
    ],
)
def test_soft_opt_in_needs_a_customer_who_did_not_refuse(status: str, expected: tuple[str, str]) -> None:
    assert verdict("kunder.csv", CUSTOMERS.format(status=status)) == expected


@pytest.mark.parametrize(
    ("source", "third_party"),
    [
        pytest.param("partner list", True, id="partner-list"),
        pytest.param("Partnerlista Q3", True, id="partnerlista"),
        pytest.param("3rd-party leads", True, id="3rd-party"),
        pytest.param("Third party", True, id="third-party"),
        pytest.param("Köpt lista 2025", True, id="kopt-lista"),
        pytest.param("Purchased List", True, id="purchased-list"),
        pytest.param("tredjepartsdata", True, id="tredjepart"),
        pytest.param("co-registration", True, id="co-registration"),
        pytest.param("Purchase confirmation page", False, id="purchase-confirmation"),
        pytest.param("Köpt i butik", False, id="bought-in-store"),
        pytest.param("Partnership event", False, id="partnership"),
        pytest.param("Webbformulär", False, id="web-form"),
    ],
)
def test_third_party_patterns_match_words_not_fragments(source: str, third_party: bool) -> None:
    text = f"E-post;Samtycke;Samtyckesdatum;Källa\nanna@example.se;ja;2026-06-01;{source}\n"
    expected = ("discard", "THIRD_PARTY_LIST") if third_party else ("keep", "CONSENT_VALID")
    assert verdict("kunder.csv", text) == expected


# ---- presets, with values as each tool writes them (formats cited in cleansing/mapping.py) ----


def test_klaviyo_user_suppressed_profile_with_dated_subscription_is_discarded() -> None:
    text = (
        "Email,First Name,Email Marketing Consent,Email Marketing Consent Timestamp,Email Suppressions\n"
        "a@example.se,A,SUBSCRIBED,2026-06-01T10:00:00Z,USER_SUPPRESSED\n"
        "b@example.se,B,SUBSCRIBED,2026-06-01T10:00:00Z,SPAM_REPORT\n"
        "c@example.se,C,SUBSCRIBED,2026-06-01T10:00:00Z,INVALID_EMAIL\n"
        "d@example.se,D,SUBSCRIBED,2026-06-01T10:00:00Z,\n"
    )
    assert [r["reason"] for r in decide("klaviyo.csv", text)] == [
        "OPTED_OUT",
        "OPTED_OUT",
        "HARD_BOUNCE",
        "CONSENT_VALID",
    ]


def test_salesforce_report_export_opt_out_and_bounce_are_honoured() -> None:
    text = (
        '"Contact ID","First Name","Last Name","Email","Email Opt Out","Email Bounced Date",'
        '"Email Bounced Reason","Created Date","Mailing Zip/Postal Code","Lead Source"\n'
        '"0035g00000AbCdE","Anna","Ek","anna@example.se","1","","","3/5/2024 10:22 AM","11122","Web"\n'
        '"0035g00000AbCdF","Bo","Ek","bo@example.se","0","9/1/2026","550 5.1.1 user unknown","3/5/2024","11122",'
        '"Web"\n'
        '"0035g00000AbCdG","Cia","Ek","cia@example.se","0","","","3/5/2024","11122","Purchased List"\n'
        + SALESFORCE_REPORT_FOOTER
    )
    assert [(r["class"], r["reason"]) for r in decide("report1732870000000.csv", text)] == [
        ("discard", "OPTED_OUT"),
        ("discard", "HARD_BOUNCE"),
        ("discard", "THIRD_PARTY_LIST"),
    ]


def test_hubspot_internal_names_keep_the_opt_out() -> None:
    text = (
        "hs_object_id,email,firstname,hs_email_optout,hs_legal_basis,createdate,hs_emailconfirmationstatus\n"
        "101,anna@example.se,Anna,true,Legitimate interest - Lead,1704067200000,Confirmed\n"
        "102,bo@example.se,Bo,false,Legitimate interest - Lead,1704067200000,\n"
    )
    assert [r["reason"] for r in decide("hubspot-crm-exports-all-contacts-2026-11-29.csv", text)] == [
        "OPTED_OUT",
        "LEGITIMATE_INTEREST_ONLY",
    ]


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        pytest.param("Email Address Quarantined", "true", "OPTED_OUT", id="quarantined-is-a-suppression"),
        pytest.param(
            "Email hard bounce reason", "550 5.1.1 The email account does not exist", "HARD_BOUNCE", id="dead"
        ),
        pytest.param("Email hard bounce reason", "552 5.2.2 Mailbox full", "CONSENT_UNPROVEN", id="mailbox-full"),
        pytest.param("Opted out of email: Marketing Information", "true", "OPTED_OUT", id="marketing-type"),
        pytest.param("Opted out of email: One to One", "true", "CONSENT_UNPROVEN", id="one-to-one-does-not-count"),
    ],
)
def test_hubspot_suppressions_and_subscription_types(column: str, value: str, expected: str) -> None:
    text = (
        f"Record ID,Email,Marketing email confirmation status,Create Date,{column}\n"
        f"7,anna@example.se,Confirmed,2024-01-01 10:00,{value}\n"
    )
    (row,) = decide("hubspot.csv", text)
    assert row["reason"] == expected
