import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from cleansing.errors import ConfigError, InputError
from cleansing.mapping import detect_preset, load_mapping, map_table
from cleansing.read import parse_delimited
from schemas.contacts import MappedContacts

UTC = dt.UTC


def mapped(name: str, text: str, preset: str = "auto", mapping: object = None) -> tuple[list[dict], str]:
    table, _ = parse_delimited(name, text)
    frame, used = map_table(table, preset, mapping)  # type: ignore[arg-type]
    MappedContacts.validate(frame)
    return frame.to_dicts(), used


MAILCHIMP_HEADER = (
    '"Email Address","First Name","Last Name","Address","Phone Number",MEMBER_RATING,OPTIN_TIME,'
    "OPTIN_IP,CONFIRM_TIME,CONFIRM_IP,LATITUDE,LONGITUDE,GMTOFF,DSTOFF,TIMEZONE,CC,REGION,"
    "LAST_CHANGED,LEID,EUID,NOTES,TAGS"
)


def test_mailchimp_subscribed_with_signup_form_gives_dated_confirmed_consent() -> None:
    text = (
        MAILCHIMP_HEADER + "\n"
        '"anna@example.se","Anna","Ek","","",2,"2024-03-01 10:00:00","192.0.2.1","2024-03-01 10:04:00",'
        '"192.0.2.1","","","","","","SE","","2024-05-01 00:00:00","123","ab12","","""VIP"",""Blog"""\n'
    )
    (row,), preset = mapped("subscribed_email_audience_export_abc.csv", text)
    assert preset == "mailchimp"
    assert row["consent_status"] == "granted" and row["record_id"] == "123" and row["country"] == "SE"
    assert row["consent_at"] == dt.datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    assert row["confirmed_at"] == dt.datetime(2024, 3, 1, 10, 4, tzinfo=UTC)
    assert row["tags"] == ["VIP", "Blog"] and "192.0.2.1" in row["consent_proof"]


def test_mailchimp_imported_member_confirm_time_proves_nothing() -> None:
    text = (
        MAILCHIMP_HEADER + "\n"
        '"bo@example.se","Bo","","","",2,"","","2023-01-01 00:00:00","","","","","","","SE","","","124","","",""\n'
    )
    (row,), _ = mapped("subscribed_members_export_99.csv", text)
    assert row["consent_at"] is None and row["confirmed_at"] is None and row["consent_status"] == "granted"


def test_mailchimp_file_names_give_status_optout_and_bounce() -> None:
    unsub = (
        MAILCHIMP_HEADER + ",UNSUB_TIME,UNSUB_CAMPAIGN_TITLE,UNSUB_CAMPAIGN_ID,UNSUB_REASON,UNSUB_REASON_OTHER\n"
        '"c@example.se","","","","",1,"","","","","","","","","","","","","1","","","",'
        '"2025-02-02 08:00:00","x","y","NORMAL",""\n'
    )
    (row,), _ = mapped("unsubscribed_email_audience_export_abc.csv", unsub)
    assert row["consent_status"] == "withdrawn" and row["opted_out"]
    assert row["opted_out_at"] == dt.datetime(2025, 2, 2, 8, tzinfo=UTC)
    cleaned = (
        MAILCHIMP_HEADER + ",CLEAN_TIME,CLEAN_CAMPAIGN_TITLE,CLEAN_CAMPAIGN_ID\n"
        '"d@example.se","","","","",1,"","","","","","","","","","","","","2","","","","2025-03-03 00:00:00","",""\n'
    )
    (row,), _ = mapped("cleaned_email_audience_export_abc.csv", cleaned)
    assert row["hard_bounced"] and row["bounced_at"] == dt.datetime(2025, 3, 3, tzinfo=UTC)
    (row,), _ = mapped(
        "nonsubscribed_email_audience_export_abc.csv",
        MAILCHIMP_HEADER + '\n"e@example.se","","","","",1,"","","","","","","","","","","","","3","","",""\n',
    )
    assert row["consent_status"] == "none"


HUBSPOT = (
    "Record ID,First Name,Last Name,Email,Phone Number,Company Name,Lifecycle Stage,Create Date,"
    "Last Activity Date,Legal basis for processing contact's data,Unsubscribed from all email,"
    "Marketing email confirmation status,Invalid email address,Original Source,Marketing contact status\n"
)


def test_hubspot_legal_basis_and_confirmation_status_are_claims_without_dates() -> None:
    text = HUBSPOT + (
        "501,Anna,Ek,anna@example.se,,Nordvik AB,lead,2024-01-01 10:00,2025-06-01 09:00,"
        "Freely given consent from contact;Legitimate interest – existing customer,false,Confirmed,false,"
        "Organic search,Marketing contact\n"
        "502,Bo,Ek,bo@example.se,,,customer,2024-01-01 10:00,,Performance of a contract,true,"
        "Confirmation Pending,true,Offline sources,Non-marketing contact\n"
    )
    first, second = mapped("hubspot.csv", text)[0]
    assert first["record_id"] == "501" and first["consent_status"] == "granted"
    assert first["lawful_basis"] == ["consent", "legitimate_interest"] and first["is_customer"]
    assert first["consent_at"] is None and first["last_activity_at"] == dt.datetime(2025, 6, 1, 9, tzinfo=UTC)
    assert second["opted_out"] and second["opted_out_at"] is None and second["hard_bounced"]
    assert second["consent_status"] == "pending" and second["is_customer"] and second["lawful_basis"] == ["contract"]


def test_hubspot_opted_out_of_one_subscription_type_is_an_opt_out() -> None:
    text = "Record ID,Email,Create Date,Opted out of email: Newsletter\n7,a@example.se,2024-01-01,true\n"
    (row,), preset = mapped("hs.csv", text)
    assert preset == "hubspot" and row["opted_out"]


def test_salesforce_consent_fields_map_with_iso_utc_times() -> None:
    text = (
        "Id,FirstName,LastName,Email,LeadSource,HasOptedOutOfEmail,PrivacyConsentStatus,CaptureDate,"
        "CaptureSource,DoubleConsentCaptureDate,EffectiveTo,EmailBouncedDate,ShouldForget\n"
        "003A,Anna,Ek,anna@example.se,Web,false,OptIn,2024-03-01T10:00:00.000Z,Form 7,"
        "2024-03-01T10:05:00.000Z,2027-01-01,,false\n"
        "003B,Bo,Ek,bo@example.se,Purchased List,TRUE,OptOutPending,,,,,2025-01-01T00:00:00.000Z,true\n"
    )
    first, second = mapped("sf.csv", text)[0]
    assert first["consent_status"] == "granted" and first["consent_source"] == "Form 7; Web"
    assert first["confirmed_at"] == dt.datetime(2024, 3, 1, 10, 5, tzinfo=UTC)
    assert first["consent_expires_at"] == dt.datetime(2027, 1, 1, tzinfo=UTC)
    assert second["opted_out"] and second["consent_status"] == "withdrawn" and second["erasure_requested"]
    assert second["hard_bounced"] and second["bounced_at"] == dt.datetime(2025, 1, 1, tzinfo=UTC)


def test_brevo_export_maps_added_time_and_double_opt_in_claim() -> None:
    text = (
        "EMAIL;FIRSTNAME;LASTNAME;SMS;ADDED_TIME;DOUBLE_OPT-IN\n"
        "anna@example.se;Anna;Ek;+46701234567;2024-05-06 07:08:09;Yes\n"
    )
    (row,), preset = mapped("brevo.csv", text)
    assert preset == "brevo" and row["consent_status"] == "granted"
    assert row["created_at"] == dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC) and row["phone"] == "+46701234567"


def test_klaviyo_export_maps_consent_and_suppressions() -> None:
    text = (
        "Email,First Name,Last Name,Email Marketing Consent,Email Marketing Consent Timestamp,Profile Created On,"
        "Email Suppressions\n"
        "a@example.se,A,B,SUBSCRIBED,2025-01-02T03:04:05Z,2024-12-01,\n"
        "b@example.se,B,C,UNSUBSCRIBED,,2024-12-01,UNSUBSCRIBE\n"
        "c@example.se,C,D,NEVER_SUBSCRIBED,,2024-12-01,HARD_BOUNCE\n"
    )
    a, b, c = mapped("klaviyo.csv", text)[0]
    assert a["consent_status"] == "granted" and a["consent_at"] == dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert b["consent_status"] == "withdrawn" and b["opted_out"] and not b["hard_bounced"]
    assert c["consent_status"] == "none" and c["hard_bounced"] and not c["opted_out"]


def test_swedish_spreadsheet_headers_map_by_synonym() -> None:
    text = (
        "Förnamn;Efternamn;E-post;Telefon;Företag;Postnummer;Samtycke;Samtyckesdatum;Källa;Kund;Senaste köp;"
        "Avregistrerad\n"
        "Åsa;Öberg;asa@example.se;070-123 45 67;Nordvik AB;01234;ja;01.02.2025;Mässa;ja;2025-10-01;nej\n"
    )
    (row,), preset = mapped("kunder.csv", text)
    assert preset == "generic"
    assert (row["first_name"], row["last_name"], row["company"], row["postcode"]) == (
        "Åsa",
        "Öberg",
        "Nordvik AB",
        "01234",
    )
    assert row["consent_status"] == "granted" and row["consent_at"] == dt.datetime(2025, 2, 1, tzinfo=UTC)
    assert row["is_customer"] and row["last_purchase_at"] == dt.datetime(2025, 10, 1, tzinfo=UTC)
    assert not row["opted_out"] and row["consent_source"] == "Mässa"


@pytest.mark.parametrize(
    ("headers", "preset"),
    [
        (["Email Address", "LEID", "OPTIN_TIME"], "mailchimp"),
        (["Record ID", "Email", "Lifecycle Stage"], "hubspot"),
        (["ID", "EMAIL", "hasOptedOutOfEmail"], "salesforce"),
        (["EMAIL", "ADDED_TIME"], "brevo"),
        (["Email", "Email Marketing Consent"], "klaviyo"),
        (["E-post", "Förnamn"], "generic"),
    ],
)
def test_auto_detection_picks_the_preset_by_signature_headers(headers: list[str], preset: str) -> None:
    assert detect_preset(headers) == preset


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-01", dt.datetime(2024, 3, 1, tzinfo=UTC)),
        ("2024-03-01T10:00:00Z", dt.datetime(2024, 3, 1, 10, tzinfo=UTC)),
        ("2024-03-01 10:00:00+01:00", dt.datetime(2024, 3, 1, 9, tzinfo=UTC)),
        ("2024-03-01T10:00:00.123+0200", dt.datetime(2024, 3, 1, 8, 0, 0, 123000, tzinfo=UTC)),
        ("2024/03/01", dt.datetime(2024, 3, 1, tzinfo=UTC)),
        ("01.03.2024", dt.datetime(2024, 3, 1, tzinfo=UTC)),
    ],
)
def test_dates_in_every_accepted_form_parse_to_utc(value: str, expected: dt.datetime) -> None:
    (row,), _ = mapped("c.csv", f"email;consent date\na@example.se;{value}\n")
    assert row["consent_at"] == expected and row["flags"] == []


@pytest.mark.parametrize("value", ["31/12/2024", "yesterday", "2024-02-30"])
def test_an_unreadable_date_is_flagged_kept_as_text_and_counts_as_absent(value: str) -> None:
    (row,), _ = mapped("c.csv", f"email;consent date\na@example.se;{value}\n")
    assert row["consent_at"] is None
    assert row["flags"] == ["UNPARSEABLE_CONSENT_AT"] and row["unparsed"] == f"consent_at={value}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("x", True),
        ("ja", True),
        ("Y", True),
        ("1", True),
        ("sant", True),
        ("nej", False),
        ("", False),
        ("falskt", False),
        ("2025-01-01", True),
    ],
)
def test_boolean_or_date_columns_accept_every_listed_word(value: str, expected: bool) -> None:
    (row,), _ = mapped("c.csv", f"email;unsubscribed\na@example.se;{value}\n")
    assert row["opted_out"] is expected and row["flags"] == []


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ("yes", "granted"),
        ("Opted in", "granted"),
        ("unsubscribed", "withdrawn"),
        ("Avregistrerad", "withdrawn"),
        ("unconfirmed", "pending"),
        ("never", "none"),
        ("nej", "none"),
        ("", "unknown"),
    ],
)
def test_consent_status_words_map_to_canonical_statuses(value: str, status: str) -> None:
    (row,), _ = mapped("c.csv", f"email;consent\na@example.se;{value}\n")
    assert row["consent_status"] == status


def test_an_unreadable_status_is_flagged_and_unknown() -> None:
    (row,), _ = mapped("c.csv", "email;consent\na@example.se;perhaps\n")
    assert row["consent_status"] == "unknown" and row["flags"] == ["UNPARSEABLE_CONSENT_STATUS"]


def test_records_without_a_source_id_get_a_stable_id_from_file_and_row() -> None:
    rows, _ = mapped("c.csv", "email\na@example.se\nb@example.se\n")
    again, _ = mapped("c.csv", "email\na@example.se\nb@example.se\n")
    assert [r["record_id"] for r in rows] == [r["record_id"] for r in again]
    assert len({r["record_id"] for r in rows}) == 2


def test_a_mapping_file_names_columns_no_preset_knows(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    path.write_text('[columns]\n"Kontakt e-brev" = "email"\n"Ja tack" = "consent_status"\n')
    (row,), _ = mapped("c.csv", "Kontakt e-brev;Ja tack\na@example.se;ja\n", mapping=load_mapping(path))
    assert row["email"] == "a@example.se" and row["consent_status"] == "granted"


def test_a_bad_mapping_file_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    path.write_text('colour = 1\n[columns]\n"A" = "emial"\n"B" = "phone"\n')
    with pytest.raises(ConfigError) as err:
        load_mapping(path)
    assert "unknown key 'colour'" in str(err.value) and "'emial'" in str(err.value)


def test_no_email_column_names_the_headers_seen_and_the_fix() -> None:
    table, _ = parse_delimited("people.csv", "Name;Phone\nAnna;070\n")
    with pytest.raises(InputError) as err:
        map_table(table)
    message = str(err.value)
    assert "people.csv" in message and "'Name', 'Phone'" in message and "--mapping" in message


def test_mapped_frame_passes_the_boundary_schema_and_rejects_bad_values() -> None:
    table, _ = parse_delimited("c.csv", "email\na@example.se\n")
    frame, _ = map_table(table)
    MappedContacts.validate(frame)
    with pytest.raises(Exception, match="consent_status"):
        MappedContacts.validate(frame.with_columns(pl.lit("maybe").alias("consent_status")))
