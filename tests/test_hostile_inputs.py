"""Odd and hostile inputs: clashing names, ZIP bombs, links out, NUL bytes, UTF-16 without BOM, contacts
where the header should be, unusable output folders. Each is refused up front with exit 2 or read safely."""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from pathlib import Path

import polars as pl
import pytest

from cleansing.errors import InputError, mask_text
from cleansing.pipeline import RunRequest, check_inputs, run_pipeline
from cleansing.read import read_sources
from flows.cli import main

AS_OF = dt.date(2026, 11, 2)
CSV = "email,first name,consent,consent date\n{}@example.se,Anna,yes,2026-01-01\n"


def run(tmp: Path, *sources: Path) -> pl.DataFrame:
    ctx = run_pipeline(
        RunRequest(
            sources=tuple(str(s) for s in sources),
            as_of=AS_OF,
            out_dir=str(tmp / "out"),
            state=str(tmp / "s.sqlite"),
            check_mx=False,
        )
    )
    assert ctx.run_dir is not None
    return pl.read_parquet(ctx.run_dir / "decisions.parquet")


def cli(tmp: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["run", *args, "--state", str(tmp / "s.sqlite"), "--no-mx", "--as-of", "2026-11-02"])
    return code, capsys.readouterr().err


def test_the_same_file_name_in_two_folders_is_told_apart_by_its_relative_path(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / "exports" / folder).mkdir(parents=True)
        (tmp_path / "exports" / folder / "contacts.csv").write_text(CSV.format(folder), encoding="utf-8")
    decisions = run(tmp_path, tmp_path / "exports")
    assert decisions["source_file"].to_list() == ["a/contacts.csv", "b/contacts.csv"]
    assert decisions["record_id"].n_unique() == 2


def test_two_files_of_one_name_given_directly_get_their_folder_added(tmp_path: Path) -> None:
    paths = []
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        paths.append(tmp_path / folder / "contacts.csv")
        paths[-1].write_text(CSV.format(folder), encoding="utf-8")
    decisions = run(tmp_path, *paths)
    assert sorted(decisions["source_file"].to_list()) == ["x/contacts.csv", "y/contacts.csv"]
    # Ids are stable: the same inputs give the same record ids in a second run.
    assert run(tmp_path, *paths)["record_id"].to_list() == decisions["record_id"].to_list()


def test_zip_members_of_one_name_in_two_folders_are_told_apart(tmp_path: Path) -> None:
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/contacts.csv", CSV.format("a"))
        zf.writestr("b/contacts.csv", CSV.format("b"))
    decisions = run(tmp_path, archive)
    assert decisions["source_file"].to_list() == ["a/contacts.csv", "b/contacts.csv"]


def bomb(path: Path, inflated: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("contacts.csv", "email\n")
        with zf.open("huge.csv", "w", force_zip64=True) as member:
            block = b"\x00" * (1 << 20)
            for _ in range(inflated >> 20):
                member.write(block)
    return path


def test_a_zip_bomb_is_exit_2_naming_the_archive_and_the_member_before_prefect_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = bomb(tmp_path / "audience.zip", 256 << 20)
    assert archive.stat().st_size < 1 << 20
    code, err = cli(tmp_path, capsys, str(archive), "--out", str(tmp_path / "out"))
    assert code == 2 and "audience.zip (huge.csv)" in err and "ZIP bomb" in err
    assert "starting" not in err and not (tmp_path / "out").exists()  # refused before Prefect started


def test_the_streaming_check_stops_a_member_the_header_check_let_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cleansing.read as read

    archive = bomb(tmp_path / "audience.zip", 64 << 20)
    monkeypatch.setattr(read, "RATIO_CHECK_FROM", 1 << 40)
    members = read.archive_members(archive)  # as for a header that understates the member's size
    monkeypatch.setattr(read, "RATIO_CHECK_FROM", 16 << 20)
    with pytest.raises(InputError, match=r"audience.zip \(huge.csv\).*ZIP bomb"):
        for member in members:
            assert member is not None
            read._read_member(archive, member)


def test_a_member_over_the_size_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cleansing.read as read

    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("contacts.csv", "email\n" + "anna@example.se\n" * 5000)
    monkeypatch.setattr(read, "MAX_INPUT_BYTES", 10_000)
    with pytest.raises(InputError, match=r"big.zip \(contacts.csv\).*more than one input may hold"):
        read_sources([archive])


def test_a_link_out_of_the_source_folder_and_hidden_folders_are_skipped(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    (exports / ".cache").mkdir(parents=True)
    (exports / "contacts.csv").write_text(CSV.format("anna"), encoding="utf-8")
    (exports / ".cache" / "old.csv").write_text(CSV.format("old"), encoding="utf-8")
    outside = tmp_path / "secret.csv"
    outside.write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    (exports / "passwd.csv").symlink_to(outside)
    (exports / "inside.csv").symlink_to(exports / "contacts.csv")
    result = read_sources([exports])
    assert [t.source_file for t in result.tables] == ["contacts.csv"]
    assert any("passwd.csv" in w and "outside" in w for w in result.warnings)
    assert check_inputs(RunRequest(sources=(str(exports),))) == result.warnings


def test_a_nul_byte_inside_a_field_is_removed_and_flagged(tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_bytes(b"email,first name,consent\nanna@example.se,An\x00na,yes\nbo@example.se,Bo,yes\n")
    ctx = run_pipeline(
        RunRequest(sources=(str(source),), as_of=AS_OF, out_dir=str(tmp_path / "out"), state=str(tmp_path / "s"))
    )
    assert ctx.run_dir is not None
    assert b"\x00" not in b"".join(p.read_bytes() for p in ctx.run_dir.iterdir() if p.suffix == ".csv")
    records = ctx.contacts.sort("source_row")
    assert records["first_name"].to_list() == ["Anna", "Bo"]
    assert ["NUL_REMOVED" in f for f in records["flags"].to_list()] == [True, False]


def test_a_utf16_file_without_bom_is_read(tmp_path: Path) -> None:
    text = "email;förnamn;samtycke\nåsa@example.se;Åsa;ja\nbo@example.se;Bo;ja\n"
    for encoding in ("utf-16-le", "utf-16-be"):
        source = tmp_path / f"{encoding}.csv"
        source.write_bytes(text.encode(encoding))
        (table,) = read_sources([source]).tables
        assert table.encoding == encoding and table.frame["förnamn"].to_list() == ["Åsa", "Bo"]


@pytest.mark.parametrize("bom", [b"\xff\xfe", b""])
def test_a_utf16_file_with_a_broken_tail_quarantines_only_the_broken_rows(tmp_path: Path, bom: bytes) -> None:
    good = "email,first name\nanna@example.se,Anna\nbo@example.se,Bo\n".encode("utf-16-le")
    broken = "cia@example.se,Cia\n".encode("utf-16-le")[:-1]  # cut off in the middle of a character
    source = tmp_path / "c.csv"
    source.write_bytes(bom + good + broken)
    result = read_sources([source])
    assert result.tables[0].frame["first name"].to_list() == ["Anna", "Bo"]
    assert result.quarantine["source_row"].to_list() == [3] and result.rows_in == 3


def test_a_second_email_column_with_other_addresses_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "c.csv"
    source.write_text("Email,E-post,consent\nanna@example.se,anna@example.se,yes\nbo@example.se,bosse@x.se,yes\n")
    code, err = cli(tmp_path, capsys, str(source), "--out", str(tmp_path / "out"))
    assert code == 2 and "'Email', 'E-post'" in err and "1 row(s)" in err and "--mapping" in err
    assert "bosse" not in err


def test_a_second_email_column_that_agrees_is_read(tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_text("Email,E-post,consent\nanna@example.se,ANNA@example.se,yes\nbo@example.se,,yes\n")
    assert run(tmp_path, source).height == 2


def test_a_contact_where_the_header_should_be_is_not_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "c.csv"
    source.write_text(
        "Anna,Berg,anna.berg@example.se,+46 70 123 45 67,19850101-1234\nBo,Ek,bo@example.se,0701234567,1\n"
    )
    code, err = cli(tmp_path, capsys, str(source), "--out", str(tmp_path / "out"))
    assert code == 2 and "looks like a contact, not a header" in err
    for personal in ("anna", "Berg", "123 45", "19850101"):
        assert personal not in err
    assert "starting" not in err  # refused before Prefect started


@pytest.mark.parametrize(
    "text",
    [
        "anna.berg@example.se failed",
        "phone +46 70-123 45 67 and 08-123 456 78",
        "personnummer 198501011234",
    ],
)
def test_masking_hides_addresses_phones_and_long_numbers(text: str) -> None:
    masked = mask_text(text)
    assert "@example" not in masked and "123" not in masked and "1985" not in masked
    assert mask_text("row 12 on 2026-11-02: 3 fields") == "row 12 on 2026-11-02: 3 fields"


def test_an_empty_folder_and_a_missing_column_are_exit_2_before_prefect_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    code, err = cli(tmp_path, capsys, str(tmp_path / "empty"), "--out", str(tmp_path / "out"))
    assert code == 2 and "no input files were found" in err and "starting" not in err
    source = tmp_path / "c.csv"
    source.write_text("name,phone number\nAnna,1\n" + "Bo,2\n" * 200_000)
    code, err = cli(tmp_path, capsys, str(source), "--out", str(tmp_path / "out"))
    assert code == 2 and "no column holds email addresses" in err and "starting" not in err
    assert "starting" not in err  # Prefect never started


@pytest.mark.parametrize("kind", ["file", "read-only", "under-a-file"])
def test_an_unusable_out_folder_is_exit_2_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    source = tmp_path / "c.csv"
    source.write_text(CSV.format("anna"))
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    out = {"file": blocker, "read-only": Path("/sys/cleanse-out"), "under-a-file": blocker / "out"}[kind]
    code, err = cli(tmp_path, capsys, str(source), "--out", str(out))
    assert code == 2 and ("--out" in err or "output folder" in err)
    assert "starting" not in err


def test_dedupe_checks_its_out_file_before_reading(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "c.csv"
    source.write_text(CSV.format("anna"))
    (tmp_path / "clusters.csv").mkdir()
    code = main(["dedupe", str(source), "--out", str(tmp_path / "clusters.csv"), "--state", str(tmp_path / "s")])
    assert code == 2 and "must name a file" in capsys.readouterr().err


def test_the_manifest_records_the_versions_that_made_the_decisions(tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_text(CSV.format("anna"))
    ctx = run_pipeline(
        RunRequest(sources=(str(source),), as_of=AS_OF, out_dir=str(tmp_path / "out"), state=str(tmp_path / "s"))
    )
    assert ctx.run_dir is not None
    versions = json.loads((ctx.run_dir / "manifest.json").read_text())["versions"]
    assert set(versions) >= {"polars", "email-validator", "disposable-email-domains", "dnspython", "prefect"}
    assert versions["polars"] == pl.__version__


def test_a_damaged_archive_member_is_an_input_error_naming_it(tmp_path: Path) -> None:
    archive = tmp_path / "audience.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("contacts.csv", "email,first name\n" + "".join(f"p{i}@example.se,Namn{i}\n" for i in range(2000)))
    data = bytearray(archive.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # zeroes over the compressed stream
    archive.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"audience.zip \(contacts.csv\): the archive member cannot be unpacked"):
        read_sources([archive])


def test_a_workbook_whose_parts_inflate_like_a_bomb_is_refused(tmp_path: Path) -> None:
    workbook = bomb(tmp_path / "contacts.xlsx", 64 << 20)
    with pytest.raises(InputError, match=r"contacts.xlsx: the workbook part 'huge.csv' inflates"):
        read_sources([workbook])
