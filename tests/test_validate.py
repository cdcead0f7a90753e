import os
import xml.etree.ElementTree as ET

import polars as pl
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from cleansing.validate import address_key, normalize_emails, normalize_phones

from .conftest import CORPORA


def _control(text: str) -> str:
    """The corpora write control character n as U+2400 + n."""
    return "".join(chr(ord(c) - 0x2400) if 0x2400 <= ord(c) < 0x2420 else c for c in text)


def _xml_addresses(name: str) -> list[str]:
    root = ET.parse(CORPORA / name).getroot()
    return [_control(a.text or "") for a in root.iter("address")]


def _jmail() -> list[str]:
    valid = (CORPORA / "jmail_valid-addresses.csv").read_text(encoding="utf-8").splitlines()[1:]
    invalid = (CORPORA / "jmail_invalid-addresses.csv").read_text(encoding="utf-8").splitlines()[1:]
    return [line.split(",")[0] for line in valid if line] + [line.split(" ;")[0].rstrip() for line in invalid if line]


def _reference(address: str) -> str | None:
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def _ours(addresses: list[str]) -> dict[str, str | None]:
    result = normalize_emails(pl.Series(addresses, dtype=pl.String))
    return dict(zip(result["email"].to_list(), result["email_normalized"].to_list(), strict=True))


# The corpora live in ../shared/corpora beside the project; a clone of the project alone skips them,
# and CI (CLEANSE_REQUIRE_CORPORA=1 in .ci/run) fails instead of skipping.
needs_corpora = pytest.mark.skipif(
    not CORPORA.is_dir() and not os.environ.get("CLEANSE_REQUIRE_CORPORA"),
    reason=f"the public email corpora are not at {CORPORA} (they come with ../shared beside the project)",
)


@needs_corpora
@pytest.mark.parametrize(
    "corpus",
    ["isemail_tests.xml", "isemail_tests_original.xml", "pyisemail_tests.xml", "jmail"],
)
def test_email_step_agrees_with_email_validator_on_every_corpus_address(corpus: str) -> None:
    addresses = _jmail() if corpus == "jmail" else _xml_addresses(corpus)
    assert len(addresses) > 100
    ours = _ours(addresses)
    disagreements = [a for a in set(addresses) if ours[a] != _reference(a)]
    assert disagreements == []


LOCAL = st.text(alphabet="abcXYZ019._+-!#$%&'*/=?^`{|}~\"(),:;<>@[\\] \t\u00a0\u2003åé", min_size=0, max_size=70)
DOMAIN = st.text(alphabet="abcXY09.-_ äö", min_size=0, max_size=30).map(lambda d: d + "")
TLD = st.sampled_from(["se", "com", "COM", "test", "local", "x", "c0m", "xn--p1ai", "onion", "museum", ""])


@settings(max_examples=3000, deadline=None)
@given(local=LOCAL, domain=DOMAIN, tld=TLD)
def test_fast_path_and_email_validator_agree_on_generated_addresses(local: str, domain: str, tld: str) -> None:
    address = f"{local}@{domain}.{tld}" if tld else f"{local}@{domain}"
    assert _ours([address])[address] == _reference(address)


LATIN_LOCAL = st.text(alphabet="abZ09._+-åäöÅÄÖéüÿßØø×÷µ¿\u00c0\u00d6\u00f6\u00f8e\u0301 ", min_size=1, max_size=70)


@settings(max_examples=3000, deadline=None)
@given(local=LATIN_LOCAL, domain=st.sampled_from(["example.se", "EXAMPLE.com", "exämple.se", "a.test", "x--y.se"]))
def test_latin_local_parts_get_exactly_email_validators_answer(local: str, domain: str) -> None:
    address = f"{local}@{domain}"
    assert _ours([address])[address] == _reference(address)


def test_most_swedish_addresses_take_the_vectorised_route() -> None:
    from cleansing.validate import fast_path

    addresses = pl.DataFrame({"e": ["björn.smith@example.se", "Åsa.Öberg+news@gmail.com", "anna@example.se"]})
    assert addresses.select(fast_path(pl.col("e")))["e"].to_list() == [True, True, True]


@pytest.mark.parametrize(
    ("email", "key"),
    [
        pytest.param("Anna.Ek@Example.se", "anna.ek@example.se", id="local-part-lowercased"),
        pytest.param("a.n.n.a+news@gmail.com", "anna@gmail.com", id="gmail-dots-and-tag-folded"),
        pytest.param("Anna+x@GoogleMail.com", "anna@gmail.com", id="googlemail-is-gmail"),
        pytest.param("a.nna+x@outlook.com", "a.nna+x@outlook.com", id="other-providers-keep-dots-and-tags"),
    ],
)
def test_address_key_folds_what_the_provider_ignores(email: str, key: str) -> None:
    normalized = normalize_emails(pl.Series([email]))
    assert normalized.select(address_key(pl.col("email_normalized")))[0, 0] == key


def test_normalising_twice_changes_nothing() -> None:
    first = normalize_emails(pl.Series(["Anna@EXAMPLE.se", "ÅSA@exämple.se"]))["email_normalized"]
    second = normalize_emails(first)["email_normalized"]
    assert sorted(first.to_list()) == sorted(second.to_list())


def test_each_distinct_address_is_checked_once() -> None:
    result = normalize_emails(pl.Series(["a@example.se"] * 5 + ["bad"] * 3 + [None]))
    assert result.height == 2


@pytest.mark.parametrize(
    ("phone", "e164"),
    [
        ("070-123 45 67", "+46701234567"),
        ("+46 70 123 45 67", "+46701234567"),
        ("0046701234567", "+46701234567"),
        ("08-123 456 78", "+46812345678"),
        ("+44 20 7946 0958", "+442079460958"),
        ("not a phone", None),
    ],
)
def test_phones_are_written_in_e164_with_sweden_as_default_region(phone: str, e164: str | None) -> None:
    result = normalize_phones(pl.Series([phone]), "SE")
    assert result["phone_e164"].to_list() == [e164]


PHONE = st.builds(
    lambda prefix, digits, sep, extension: prefix + sep.join([digits[:2], digits[2:5], digits[5:]]) + extension,
    st.sampled_from(
        ["07", "+467", "00467", "+46 7", "08", "+4670", "0", "+44 7", "+1 ", "7", "(0)7"]
        + ["031", "+46 8", "+46 (0)8", "0046 31", "+460", "00460", "0046", "+46", "01", "09"]
    ),
    st.text(alphabet="0123456789", min_size=4, max_size=12),
    st.sampled_from(["", " ", "-", ".", "(", ")"]),
    st.sampled_from(["", " ext 12", " ext. 7", " EXT 123456", " ext1234567", " x 12"]),
)


@settings(max_examples=2000, deadline=None)
@given(phone=PHONE, region=st.sampled_from(["SE", "GB", "US"]))
def test_phone_fast_path_agrees_with_phonenumbers(phone: str, region: str) -> None:
    import phonenumbers

    try:
        number = phonenumbers.parse(phone, region)
        expected = (
            phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            if phonenumbers.is_possible_number(number)
            else None
        )
    except phonenumbers.NumberParseException:
        expected = None
    assert normalize_phones(pl.Series([phone]), region)["phone_e164"].to_list() == [expected]


@pytest.mark.parametrize(
    "address",
    [
        pytest.param("PostMaster@Example.com", id="rfc2142-mailbox-lowercased"),
        pytest.param("Info@Nordvik.SE", id="info-lowercased"),
        pytest.param("Anna@bücher.ch", id="idn-domain"),
        pytest.param("anna@BÜCHER.ch", id="idn-domain-uppercase"),
        pytest.param("anna@xn--bcher-kva.ch", id="a-label-domain"),
        pytest.param("anna@ex\u3002ample.se", id="ideographic-full-stop"),
        pytest.param("anna@exämple", id="idn-without-period"),
        pytest.param("anna@exämple.test", id="idn-special-use"),
        pytest.param("a" * 60 + "@" + "ä" * 60 + "." + "b" * 60 + "." + "c" * 60 + ".se", id="idn-too-long"),
        pytest.param("åsa@example.se", id="unicode-local"),
        pytest.param("anna@localhost", id="no-period"),
        pytest.param("a@b", id="short-no-period"),
        pytest.param("", id="empty"),
    ],
)
def test_every_route_agrees_with_email_validator(address: str) -> None:
    assert _ours([address])[address] == _reference(address)


def test_email_validator_runs_in_worker_processes_with_the_same_results(monkeypatch: pytest.MonkeyPatch) -> None:
    from cleansing import validate as module

    addresses = ["åsa@example.se", "bad@@x", "ösa@exämple.se", "x@y.se"] * 3
    monkeypatch.setattr(module, "PARALLEL_FROM", 4)
    assert module._validate_parallel(addresses) == module._validate_many(addresses)


@pytest.mark.parametrize("masked", ["kar***@example.se", "k****n@example.se", "k•••@example.se", "anna…@example.se"])
def test_an_address_an_export_masked_is_invalid_and_no_address_key(masked: str) -> None:
    from cleansing.validate import MASKED_ERROR, validate

    frame = pl.DataFrame(
        {"email": [masked, "karin@example.se"], "phone": [None, None]}, schema_overrides={"phone": pl.String}
    )
    out = validate(frame)
    assert out["email_valid"].to_list() == [False, True]
    assert out["address_key"].to_list() == [None, "karin@example.se"]
    assert out["email_error"][0] == MASKED_ERROR and "example" not in MASKED_ERROR
