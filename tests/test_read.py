import io
import json
import zipfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cleansing.errors import InputError
from cleansing.read import read_sources

HEADER = ["Förnamn", "E-post", "Ort"]
ROWS = [["Åsa", "asa@example.se", "Malmö"], ["Per", "per@example.se", "Umeå"]]


def _text(delimiter: str) -> str:
    return "\r\n".join(delimiter.join(r) for r in [HEADER, *ROWS]) + "\r\n"


@pytest.mark.parametrize(
    ("encoding", "prefix"),
    [
        pytest.param("utf-8", b"", id="utf-8"),
        pytest.param("utf-8", b"\xef\xbb\xbf", id="utf-8-bom"),
        pytest.param("utf-16", b"", id="utf-16-bom"),
        pytest.param("cp1252", b"", id="windows-1252"),
    ],
)
@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"], ids=["comma", "semicolon", "tab", "pipe"])
def test_text_files_decode_and_split_in_every_encoding_and_delimiter(
    tmp_path: Path, encoding: str, prefix: bytes, delimiter: str
) -> None:
    path = tmp_path / "contacts.csv"
    path.write_bytes(prefix + _text(delimiter).encode(encoding))
    result = read_sources([path])
    frame = result.tables[0].frame
    assert frame.columns == [*HEADER, "source_row"]
    assert frame.select(HEADER).rows() == [tuple(r) for r in ROWS]
    assert frame["source_row"].to_list() == [1, 2]
    assert result.quarantine.height == 0 and result.rows_in == 2


def test_every_column_stays_text_so_leading_zeros_survive(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("email,postcode,phone\na@b.se,01234,0701234567\n")
    frame = read_sources([path]).tables[0].frame
    assert frame["postcode"].to_list() == ["01234"] and frame["phone"].dtype == pl.String


def test_a_ragged_row_is_quarantined_and_the_rest_read(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("email,name\na@b.se,A\nb@b.se,B,extra\nc@b.se,C\n")
    result = read_sources([path])
    assert result.tables[0].frame["email"].to_list() == ["a@b.se", "c@b.se"]
    q = result.quarantine.row(0, named=True)
    assert (q["source_file"], q["source_row"], q["raw"]) == ("c.csv", 2, "b@b.se,B,extra")
    assert "3 fields where the header has 2" in q["error"]


def test_a_broken_quote_does_not_swallow_the_rows_after_it(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text('email,name\na@b.se,"Anna\nb@b.se,"Bo"\nc@b.se,Ce\n')
    result = read_sources([path])
    assert result.tables[0].frame["email"].to_list() == ["b@b.se", "c@b.se"]
    assert result.tables[0].frame["source_row"].to_list() == [2, 3]
    assert result.quarantine["error"].to_list() == ["a quote is opened and never closed"]
    assert result.rows_in == 3


def test_a_quoted_field_may_hold_a_line_break(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text('email,street\na@b.se,"Storgatan 1\nLgh 1102"\nb@b.se,Ån 2\n')
    frame = read_sources([path]).tables[0].frame
    assert frame["street"].to_list() == ["Storgatan 1\nLgh 1102", "Ån 2"]
    assert frame["source_row"].to_list() == [1, 2]


def test_an_undecodable_row_in_a_utf8_file_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes("email,name\na@b.se,Åsa\n".encode() + b"b@b.se,B\xff\xfe\n" + "c@b.se,Öjvind\n".encode())
    result = read_sources([path])
    assert result.tables[0].frame["name"].to_list() == ["Åsa", "Öjvind"]
    assert result.quarantine["source_row"].to_list() == [2]
    assert "undecodable" in result.quarantine["error"][0]


def test_an_empty_line_is_a_quarantined_row_not_a_silent_drop(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("email,name\na@b.se,A\n\nc@b.se,C\n")
    result = read_sources([path])
    assert result.rows_in == 3 and result.quarantine["error"].to_list() == ["empty line"]


def test_a_header_without_rows_reads_as_zero_rows(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("Email,Name\n")
    result = read_sources([path])
    assert result.rows_in == 0 and result.tables[0].frame.columns == ["Email", "Name", "source_row"]


def test_xlsx_parquet_and_json_lines_are_read_as_text(tmp_path: Path) -> None:
    frame = pl.DataFrame({"email": ["a@b.se", "b@b.se"], "postcode": ["01234", "11122"], "n": ["1", "2"]})
    frame.write_excel(tmp_path / "a.xlsx")
    pl.DataFrame({"email": ["c@b.se"], "score": [3]}).write_parquet(tmp_path / "b.parquet")
    (tmp_path / "c.jsonl").write_text(json.dumps({"email": "d@b.se", "age": 4}) + "\n{not json\n")
    result = read_sources([tmp_path / "a.xlsx", tmp_path / "b.parquet", tmp_path / "c.jsonl"])
    xlsx, parquet, jsonl = (t.frame for t in result.tables)
    assert xlsx["postcode"].to_list() == ["01234", "11122"] and xlsx["n"].dtype == pl.String
    assert parquet["score"].to_list() == ["3"]
    assert jsonl["email"].to_list() == ["d@b.se"] and jsonl["age"].to_list() == ["4"]
    assert result.quarantine.select("source_file", "source_row").rows() == [("c.jsonl", 2)]
    assert result.rows_in == 5


def test_a_zip_is_read_member_by_member_with_member_names(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("subscribed_members_export_1.csv", "Email Address\na@b.se\n")
        zf.writestr("cleaned_members_export_1.csv", "Email Address\nb@b.se\nc@b.se\n")
        zf.writestr("__MACOSX/._junk", "x")
    (tmp_path / "audience.zip").write_bytes(buffer.getvalue())
    result = read_sources([tmp_path / "audience.zip"])
    assert [t.source_file for t in result.tables] == ["cleaned_members_export_1.csv", "subscribed_members_export_1.csv"]
    assert result.rows_in == 3 and len(result.inputs) == 1


def test_a_folder_reads_every_file_in_it(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("email\na@b.se\n")
    (tmp_path / "b.csv").write_text("email\nb@b.se\n")
    result = read_sources([tmp_path])
    assert [t.source_file for t in result.tables] == ["a.csv", "b.csv"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "does not exist", id="missing-path"),
        pytest.param(b"", r"empty \(zero bytes\)", id="empty-file"),
        pytest.param(b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00", "binary file", id="binary"),
    ],
)
def test_unusable_files_raise_input_errors_naming_the_file(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "contacts.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message) as err:
        read_sources([path])
    assert str(path) in str(err.value)


TOKENS = st.sampled_from(["a", "bé", ",", ";", '"', '""', "\n", "\r\n", " ", "\t", "x@y.se", "\n\n"])


@settings(max_examples=400, deadline=None)
@given(
    header=st.sampled_from(["email,name,consent\n", "email;namn\r\n", '"email","name"\n', "email\n", "a,b,c,d\n"]),
    body=st.lists(TOKENS, max_size=80),
    bad=st.sets(st.integers(min_value=2, max_value=30), max_size=3),
    nul=st.sets(st.integers(min_value=2, max_value=30), max_size=3),
)
def test_the_fast_reader_reads_exactly_as_the_careful_one(
    header: str, body: list[str], bad: set[int], nul: set[int]
) -> None:
    from cleansing.read import parse_careful, parse_delimited

    text = header + "".join(body)
    fast, fast_bad = parse_delimited("f.csv", text, bad, nul)
    careful, careful_bad = parse_careful("f.csv", text, bad, nul)
    assert fast.delimiter == careful.delimiter
    assert fast.frame.columns == careful.frame.columns
    assert fast.frame.rows() == careful.frame.rows()
    assert fast_bad.rows() == careful_bad.rows()
    assert fast.nul_rows == careful.nul_rows


LINE_TEXT = ["a", "é", ",", ";", '"', " ", "\t", "\n", "\x00"]


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(
        st.text(alphabet=st.sampled_from(LINE_TEXT), max_size=40),  # what polars splits
        st.text(alphabet=st.sampled_from([*LINE_TEXT, "\r", "\x1f"]), max_size=40),
    )
)
def test_lines_are_split_at_every_line_feed_with_everything_else_kept_as_python_splits_them(text: str) -> None:
    from cleansing.read import split_lines

    pieces = text.split("\n")
    expected = pieces[:-1] if text.endswith("\n") or not text else pieces
    assert split_lines(text).to_list() == expected
