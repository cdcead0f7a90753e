import datetime as dt
import random
from pathlib import Path

import polars as pl
import pytest

from cleansing.errors import ConfigError, InputError
from cleansing.mapping import _unreadable_flags, detect_preset, load_mapping, map_table
from cleansing.read import parse_delimited
from cleansing.reasons import unparseable_flag
from schemas.contacts import MappedContacts

from .records import SALESFORCE_REPORT_FOOTER

UTC = dt.UTC


def mapped(name: str, text: str, preset: str = "auto", mapping: object = None) -> tuple[list[dict], str]:
    table, _ = parse_delimited(name, text)
    frame, used = map_table(table, preset, mapping, local_zone="Europe/Stockholm")  # type: ignore[arg-type]
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
    # "Freely given consent from contact" is a basis for processing, not a subscription to email.
    text = HUBSPOT + (
        "501,Anna,Ek,anna@example.se,,Nordvik AB,lead,2024-01-01 10:00,2025-06-01 09:00,"
        "Freely given consent from contact;Legitimate interest – existing customer,false,Confirmed,false,"
        "Organic search,Marketing contact\n"
        "502,Bo,Ek,bo@example.se,,,customer,2024-01-01 10:00,,Performance of a contract,true,"
        "Confirmation Pending,true,Offline sources,Non-marketing contact\n"
    )
    first, second = mapped("hubspot.csv", text)[0]
    assert first["record_id"] == "501" and first["consent_status"] == "granted"
    assert first["lawful_basis"] == ["legitimate_interest", "processing_consent"] and first["is_customer"]
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


def test_brevo_export_maps_added_time_in_local_time_and_double_opt_in_claim() -> None:
    text = (
        "EMAIL;FIRSTNAME;LASTNAME;SMS;ADDED_TIME;DOUBLE_OPT-IN\n"
        "anna@example.se;Anna;Ek;+46701234567;2024-05-06 07:08:09;Yes\n"
    )
    (row,), preset = mapped("brevo.csv", text)
    assert preset == "brevo" and row["consent_status"] == "granted"
    # Stockholm is UTC+2 in May.
    assert row["created_at"] == dt.datetime(2024, 5, 6, 5, 8, 9, tzinfo=UTC) and row["phone"] == "+46701234567"


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
        ("false", "none"),
        ("nej", "denied"),
        ("Nej tack", "denied"),
        ("", "unknown"),
    ],
)
def test_consent_status_words_map_to_canonical_statuses(value: str, status: str) -> None:
    (row,), _ = mapped("c.csv", f"email;consent\na@example.se;{value}\n")
    assert row["consent_status"] == status


def test_an_unreadable_status_is_flagged_and_unreadable_not_unknown() -> None:
    (row,), _ = mapped("c.csv", "email;consent\na@example.se;perhaps\n")
    assert row["consent_status"] == "unreadable" and row["flags"] == ["UNPARSEABLE_CONSENT_STATUS"]


def test_each_unreadable_field_is_flagged_once_in_source_order_whatever_the_rows_combine(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    path.write_text(
        '[columns]\n"Mejl" = "email"\n"Datum" = "consent_at"\n"Datum 2" = "consent_at"\n"Status" = "consent_status"\n'
    )
    text = (
        "Mejl;Datum;Datum 2;Status\n"
        "a@example.se;igår;i förrgår;kanske\n"  # both dates and the status unreadable
        "b@example.se;2024-03-01;i förrgår;ja\n"  # the second date alone
        "c@example.se;2024-03-01;2024-03-02;kanske\n"  # the status alone
        "d@example.se;2024-03-01;;ja\n"  # nothing
    )
    rows, _ = mapped("c.csv", text, mapping=load_mapping(path))
    assert [r["flags"] for r in rows] == [
        ["UNPARSEABLE_CONSENT_AT", "UNPARSEABLE_CONSENT_STATUS"],
        ["UNPARSEABLE_CONSENT_AT"],
        ["UNPARSEABLE_CONSENT_STATUS"],
        [],
    ]


@pytest.mark.parametrize("sources", [3, 6, 63], ids=["few combinations", "over 32 combinations", "over 62 sources"])
def test_unreadable_flags_are_each_fields_flag_once_in_source_order_for_any_number_of_sources(sources: int) -> None:
    chance = random.Random(sources)
    bad = [(f"field_{i % 5}", f"c{i}") for i in range(sources)]  # several sources feed each field
    rows: list[list[bool | None]] = [[chance.random() < 0.4 for _ in range(sources)] for _ in range(300)]
    rows += [[True] * sources, [False] * sources, [None] * sources]  # a value not read at all is not unreadable
    frame = pl.DataFrame({f"c{i}__bad": [row[i] for row in rows] for i in range(sources)})
    flags = frame.select(_unreadable_flags(frame, bad).alias("flags"))["flags"].to_list()
    expected = [
        list(dict.fromkeys(unparseable_flag(f) for (f, _), b in zip(bad, row, strict=True) if b)) for row in rows
    ]
    assert flags == expected


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


@pytest.mark.parametrize(
    ("header", "row"),
    [
        ("Email,Given name,Surname,Address line 1,Address line 2,City,Postcode,State", "a@b.se,A,B,S 1,c/o X,C,1,NSW"),
        ("E-post;Förnamn;Efternamn;Adress;Adress 2;Ort;Postnummer;Län", "a@b.se;A;B;S 1;c/o X;C;1;NSW"),
        ("Email,First Name,Last Name,Street Address,City,Postal Code,State/Region", "a@b.se,A,B,S 1,C,1,NSW"),
        (
            "Id,Email,FirstName,LastName,MailingStreet,MailingCity,MailingState,HasOptedOutOfEmail",
            "1,a@b.se,A,B,S 1,C,NSW,0",
        ),
        ("Email,Email Marketing Consent,Address,Address 2,City,Region,Zip Code", "a@b.se,SUBSCRIBED,S 1,c/o X,C,NSW,1"),
    ],
    ids=["generic", "generic-swedish", "hubspot", "salesforce", "klaviyo"],
)
def test_a_second_address_line_and_the_state_or_region_are_read(header: str, row: str) -> None:
    (contact,), _ = mapped("contacts.csv", f"{header}\n{row}\n")
    assert contact["street"] == "S 1" and contact["region"] == "NSW"
    if "2" in header:
        assert contact["street2"] == "c/o X"


def test_without_requiring_email_a_file_with_names_and_no_email_column_is_read() -> None:
    table, _ = parse_delimited("postal.csv", "Given name,Surname,Street\nAnna,Berg,Storgatan 1\n")
    frame, _ = map_table(table, require_email=False)
    MappedContacts.validate(frame)
    assert frame.select("first_name", "last_name", "email").row(0) == ("Anna", "Berg", None)
    with pytest.raises(InputError, match="no column holds email addresses"):
        map_table(table)  # a run judges consent by address: it still needs one


def test_without_requiring_email_a_file_with_neither_names_nor_email_is_refused() -> None:
    table, _ = parse_delimited("streets.csv", "Street;City\nStorgatan 1;Malmö\n")
    with pytest.raises(InputError) as err:
        map_table(table, require_email=False)
    message = str(err.value)
    assert "email addresses or names" in message and "'Street', 'City'" in message and "full_name" in message


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


# ---- fail-safe reading of objections ----


@pytest.mark.parametrize(
    ("header", "value", "field", "flag"),
    [
        pytest.param("unsubscribed", "Ja, per telefon", "opted_out", "UNPARSEABLE_OPTED_OUT", id="opt-out-words"),
        pytest.param("unsubscribed", "03/04/2025", "opted_out", "UNPARSEABLE_OPTED_OUT", id="opt-out-ambiguous-date"),
        pytest.param("radera", "ja tack", "erasure_requested", "UNPARSEABLE_ERASURE_REQUESTED", id="erasure-words"),
        pytest.param("hard bounce", "hard", "hard_bounced", "UNPARSEABLE_HARD_BOUNCED", id="bounce-words"),
    ],
)
def test_an_unreadable_objection_value_is_an_objection_of_unknown_date(
    header: str, value: str, field: str, flag: str
) -> None:
    (row,), _ = mapped("c.csv", f"email;{header}\na@example.se;{value}\n")
    assert row[field] is True and flag in row["flags"] and row["unparsed"] == f"{field}={value}"
    assert row.get("opted_out_at") is None and row.get("bounced_at") is None


def test_an_unreadable_customer_value_is_not_a_customer() -> None:
    (row,), _ = mapped("c.csv", "email;kund\na@example.se;kanske\n")
    assert row["is_customer"] is False and row["flags"] == ["UNPARSEABLE_IS_CUSTOMER"]


@pytest.mark.parametrize(
    "header",
    [
        "Avslutat prenumeration (manuellt)",
        "Unsubscribe reason",
        "Avregistreringsorsak",
        "Spärrad",
        "Do Not Email",
        "Bounce status",
        "Suppression list",
        "Blacklisted",
        "Blocklist",
        "Right to be forgotten",
        "Ska raderas",
        "OPT-OUT",
    ],
)
def test_an_unmapped_column_that_reads_as_an_objection_stops_the_run(header: str) -> None:
    table, _ = parse_delimited("kunder.csv", f"E-post;{header}\na@example.se;x\n")
    with pytest.raises(InputError) as err:
        map_table(table)
    message = str(err.value)
    assert "kunder.csv" in message and repr(header) in message
    assert "--mapping" in message and "ignore = [" in message


@pytest.mark.parametrize("header", ["Anteckning", "Prenumeration", "Sign-up form", "Nyhetsbrev", "Kundnummer"])
def test_other_unmapped_columns_do_not_stop_the_run(header: str) -> None:
    table, _ = parse_delimited("kunder.csv", f"E-post;{header}\na@example.se;x\n")
    assert map_table(table)[0].height == 1


def test_an_objection_column_is_used_once_mapped_or_passed_once_ignored(tmp_path: Path) -> None:
    text = "E-post;Avslutat prenumeration (manuellt)\na@example.se;x\n"
    as_optout = tmp_path / "map.toml"
    as_optout.write_text('[columns]\n"Avslutat prenumeration (manuellt)" = "opted_out"\n')
    (row,), _ = mapped("kunder.csv", text, mapping=load_mapping(as_optout))
    assert row["opted_out"] is True
    ignored = tmp_path / "ignore.toml"
    ignored.write_text('ignore = ["Avslutat prenumeration (manuellt)"]\n')
    (row,), _ = mapped("kunder.csv", text, mapping=load_mapping(ignored))
    assert row["opted_out"] is False


def test_a_user_mapping_adds_to_a_presets_objection_columns_and_never_replaces_them(tmp_path: Path) -> None:
    path = tmp_path / "map.toml"
    path.write_text('[columns]\n"Manual unsub" = "opted_out"\n')
    text = "Record ID,Email,Create Date,Unsubscribed from all email,Manual unsub\n7,a@example.se,2024-01-01,true,\n"
    (row,), preset = mapped("hs.csv", text, mapping=load_mapping(path))
    assert preset == "hubspot" and row["opted_out"] is True


# ---- presets as the tools write them; the source of each layout is cited in cleansing/mapping.py ----


SALESFORCE_REPORT = (
    '"Contact ID","First Name","Last Name","Email","Phone","Account Name","Mailing Street","Mailing City",'
    '"Mailing Zip/Postal Code","Mailing Country","Lead Source","Email Opt Out","Email Bounced Date",'
    '"Email Bounced Reason","Created Date"\n'
    '"0035g00000AbCdE","Anna","Ek","anna@example.se","08-123 45 67","Nordvik AB","Storgatan 1","Stockholm",'
    '"111 22","Sweden","Web","1","","","3/5/2024 10:22 AM"\n'
    '"0035g00000AbCdF","Bo","Ek","bo@example.se","","","","","","","Web","0","11/2/2025",'
    '"550 5.1.1 user unknown","12/31/2023"\n' + SALESFORCE_REPORT_FOOTER
)


def test_salesforce_report_export_labels_us_dates_and_footer() -> None:
    table, quarantine = parse_delimited("report1732870000000.csv", SALESFORCE_REPORT)
    assert table.frame.height == 2 and quarantine.height == 0  # the footer is not data
    (anna, bo), preset = mapped("report1732870000000.csv", SALESFORCE_REPORT)
    assert preset == "salesforce" and anna["record_id"] == "0035g00000AbCdE"
    assert anna["opted_out"] is True and anna["postcode"] == "111 22" and anna["company"] == "Nordvik AB"
    # Report times are the user's local time (Stockholm, UTC+1 in March).
    assert anna["created_at"] == dt.datetime(2024, 3, 5, 9, 22, tzinfo=UTC)
    assert bo["opted_out"] is False and bo["hard_bounced"] is True
    assert bo["bounced_at"] == dt.datetime(2025, 11, 2, tzinfo=UTC)
    assert bo["created_at"] == dt.datetime(2023, 12, 31, tzinfo=UTC)


def test_salesforce_api_names_with_relationships_bounce_and_dont_process() -> None:
    text = (
        "Id,Email,FirstName,LeadSource,IsEmailBounced,Individual.ShouldForget,Individual.HasOptedOutProcessing,"
        "Individual.HasOptedOutTracking\n"
        "003A,a@example.se,A,Web,true,false,false,true\n"
        "003B,b@example.se,B,Web,false,true,false,false\n"
        "003C,c@example.se,C,Web,false,false,true,false\n"
    )
    (a, b, c), preset = mapped("contacts.csv", text)
    assert preset == "salesforce"
    assert a["hard_bounced"] and not a["opted_out"]  # tracking opt-out says nothing about email
    assert b["erasure_requested"] and not b["hard_bounced"]
    assert c["opted_out"]


def test_salesforce_consent_rows_count_only_for_email_and_belong_to_their_party() -> None:
    text = (
        "Id,PartyId,Email,ContactPointType,PrivacyConsentStatus,CaptureDate,CaptureSource\n"
        "0ZY1,0PK1,a@example.se,Email,OptIn,2026-06-01T10:00:00.000Z,Web form\n"
        "0ZY2,0PK1,a@example.se,Phone,OptOut,2026-07-01T10:00:00.000Z,Call\n"
    )
    (email, phone), preset = mapped("consents.csv", text)
    assert preset == "salesforce" and email["record_id"] == "0PK1" and phone["record_id"] == "0PK1"
    assert email["consent_status"] == "granted" and email["consent_at"] == dt.datetime(2026, 6, 1, 10, tzinfo=UTC)
    assert phone["consent_status"] == "unknown" and phone["consent_at"] is None and not phone["opted_out"]


def test_hubspot_internal_names_with_epoch_milliseconds() -> None:
    text = (
        "hs_object_id,email,firstname,lastname,phone,company,lifecyclestage,createdate,hs_email_optout,"
        "hs_legal_basis,hs_emailconfirmationstatus,hs_email_quarantined\n"
        "101,anna@example.se,Anna,Ek,,Nordvik AB,customer,1704067200000,true,Legitimate interest - Customer,"
        "Confirmed,false\n"
        "102,bo@example.se,Bo,Ek,,,lead,1704067200,false,Legitimate interest - Lead,,true\n"
    )
    (anna, bo), preset = mapped("hubspot-crm-exports-all-contacts.csv", text)
    assert preset == "hubspot" and anna["record_id"] == "101"
    assert anna["created_at"] == dt.datetime(2024, 1, 1, tzinfo=UTC) == bo["created_at"]
    assert anna["opted_out"] and anna["is_customer"] and anna["lawful_basis"] == ["legitimate_interest"]
    assert bo["opted_out"] and not bo["hard_bounced"] and not bo["is_customer"]


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ("Confirmed", "granted"),
        ("User clicked confirmation", "granted"),
        ("HubSpot Rep. marked confirmed", "granted"),
        ("Customer marked confirmed", "granted"),
        ("Confirmed from previous behavior", "granted"),
        ("Confirmed due to form", "granted"),
        ("Confirmation Pending", "pending"),
        ("Confirmation Email Sent", "pending"),
        ("Awaiting Double Opt In", "pending"),
        ("User has not clicked sent link", "pending"),
    ],
)
def test_hubspot_confirmation_statuses_are_claims_or_pending_never_dated_double_opt_in(value: str, status: str) -> None:
    text = f"Record ID,Email,Marketing email confirmation status\n7,a@example.se,{value}\n"
    (row,), _ = mapped("hs.csv", text)
    assert row["consent_status"] == status and row["confirmed_at"] is None and row["flags"] == []


@pytest.mark.parametrize(
    ("value", "opted_out", "bounced"),
    [
        ("USER_SUPPRESSED", True, False),
        ("UNSUBSCRIBE", True, False),
        ("SPAM_REPORT", True, False),
        ("HARD_BOUNCE", False, True),
        ("INVALID_EMAIL", False, True),
        ("SOMETHING_NEW", True, False),
        ("", False, False),
    ],
)
def test_klaviyo_every_suppression_suppresses(value: str, opted_out: bool, bounced: bool) -> None:
    text = f"Email,Email Marketing Consent,Email Suppressions\na@example.se,SUBSCRIBED,{value}\n"
    (row,), _ = mapped("klaviyo.csv", text)
    assert (row["opted_out"], row["hard_bounced"]) == (opted_out, bounced)


def test_klaviyo_older_layout_with_a_consent_list() -> None:
    text = (
        "Email,First Name,Klaviyo ID,Consent,$consent_timestamp\n"
        "a@example.se,A,01ABC,\"['email', 'sms']\",2025-03-01T10:00:00Z\n"
        "b@example.se,B,01ABD,\"['sms']\",2025-03-01T10:00:00Z\n"
    )
    (a, b), preset = mapped("klaviyo-profiles.csv", text)
    assert preset == "klaviyo" and a["record_id"] == "01ABC"
    assert a["consent_status"] == "granted" and a["consent_at"] == dt.datetime(2025, 3, 1, 10, tzinfo=UTC)
    assert b["consent_status"] == "none"


def test_brevo_opt_in_holds_yes_or_no_not_a_date() -> None:
    text = (
        "EMAIL;FIRSTNAME;OPT_IN;DOUBLE_OPT-IN;EMAIL_BLACKLISTED;SMS_BLACKLISTED;ADDED_TIME;MODIFIED_TIME\n"
        "a@example.se;A;Yes;No;No;Yes;2025-01-10 12:00:00;2025-02-10 12:00:00\n"
        "b@example.se;B;No;No;Yes;No;2025-01-10T12:00:00Z;2025-02-10 12:00:00\n"
    )
    (a, b), preset = mapped("brevo-contacts.csv", text)
    assert preset == "brevo" and a["flags"] == [] and a["consent_at"] is None
    assert a["consent_status"] == "granted" and not a["opted_out"]  # an SMS blacklist is not about email
    assert b["consent_status"] == "none" and b["opted_out"]
    assert a["created_at"] == dt.datetime(2025, 1, 10, 11, tzinfo=UTC)  # Stockholm, UTC+1 in January
    assert b["created_at"] == dt.datetime(2025, 1, 10, 12, tzinfo=UTC)  # the export said UTC


def test_mailchimp_unsubscribed_export_with_its_reason_columns_maps_without_stopping() -> None:
    text = (
        MAILCHIMP_HEADER + ",UNSUB_TIME,UNSUB_CAMPAIGN_TITLE,UNSUB_CAMPAIGN_ID,UNSUB_REASON,UNSUB_REASON_OTHER\n"
        '"c@example.se","","","","",1,"","","","","","","","","","","","","1","","","",'
        '"2025-02-02 08:00:00","x","y","NORMAL",""\n'
    )
    (row,), preset = mapped("unsubscribed_email_audience_export_abc.csv", text)
    assert preset == "mailchimp" and row["opted_out"]


@pytest.mark.parametrize(
    ("header_line", "preset"),
    [
        pytest.param(SALESFORCE_REPORT.splitlines()[0], "salesforce", id="salesforce-report-labels"),
        pytest.param("Id,Email,IsEmailBounced,Individual.ShouldForget", "salesforce", id="salesforce-relationships"),
        pytest.param("hs_object_id,email,firstname,hs_email_optout,createdate", "hubspot", id="hubspot-internal"),
        pytest.param("Record ID,First Name,Email,Opted out of email: Newsletter", "hubspot", id="hubspot-labels"),
        pytest.param("Email,First Name,Klaviyo ID,Consent,$consent_timestamp", "klaviyo", id="klaviyo-older"),
        pytest.param("EMAIL;OPT_IN;EMAIL_BLACKLISTED", "brevo", id="brevo-without-added-time"),
    ],
)
def test_auto_detection_picks_the_preset_from_real_export_headers(header_line: str, preset: str) -> None:
    table, _ = parse_delimited("export.csv", header_line + "\n")
    assert detect_preset([c for c in table.frame.columns if c != "source_row"]) == preset
