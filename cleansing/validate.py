"""Validate: email syntax and normalisation, the address key, phones in E.164.

Work is per **unique** value. Addresses in the common shape (a dot-atom local part of ASCII or
Latin-1 letters, a plain ASCII domain) are normalised by one vectorised expression whose result is
exactly what email-validator returns for them (the local part as given, the domain lowercased); every
other address goes through email-validator itself.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import phonenumbers
import polars as pl
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

from .frames import look_up

_ATOM = r"[A-Za-z0-9_+\-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
LOCAL_ATOM = rf"^{_ATOM}(?:\.{_ATOM})*$"
FAST_EMAIL = rf"^{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+[A-Za-z]{{2,63}}$"
# Internationalised local parts in the common shape: the same atoms with the letters of Latin-1
# (Swedish, German, French, …: À–Ö, Ø–ö, ø–ÿ), which are letters to Unicode, already in NFC, and safe by
# email-validator's checks, so the address is valid as given exactly when the ASCII shape would be.
_ATOM_LATIN = r"[A-Za-z0-9_+\-\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff]+"
FAST_EMAIL_LATIN = rf"^{_ATOM_LATIN}(?:\.{_ATOM_LATIN})*@(?:{_LABEL}\.)+[A-Za-z]{{2,63}}$"
LOCAL_ATOM_LATIN = rf"^{_ATOM_LATIN}(?:\.{_ATOM_LATIN})*$"
# Below this many addresses for email-validator itself, starting worker processes costs more than it saves.
PARALLEL_FROM = 20_000
# email-validator refuses these top-level names (special-use, RFC 6761 and friends).
SPECIAL_USE_TLDS = ["arpa", "invalid", "local", "localhost", "onion", "test"]
GMAIL_DOMAINS = ["gmail.com", "googlemail.com"]
EMAIL_STEP_SCHEMA = {
    "email": pl.String,
    "email_normalized": pl.String,
    "email_domain": pl.String,
    "email_error": pl.String,
}


def _local(email: pl.Expr) -> pl.Expr:
    return email.str.extract(r"^(.*)@")


def _domain(email: pl.Expr) -> pl.Expr:
    return email.str.extract(r"@([^@]*)$")


def _normalized_local(local: pl.Expr) -> pl.Expr:
    """email-validator lowercases the mailbox names RFC 2142 makes case-insensitive (``Info`` → ``info``)."""
    lowered = local.str.to_lowercase()
    return pl.when(lowered.is_in(CASE_INSENSITIVE_MAILBOX_NAMES)).then(lowered).otherwise(local)


def fast_path(email: pl.Expr) -> pl.Expr:
    """True where the vectorised normalisation is known to agree with email-validator."""
    at = email.str.find("@")
    tld = email.str.extract(r"\.([A-Za-z]+)$").str.to_lowercase()
    return (
        email.str.contains(FAST_EMAIL_LATIN)
        & (email.str.len_bytes() <= 254)
        & (at <= 64)
        & ~email.str.contains("--", literal=True)
        & ~tld.is_in(SPECIAL_USE_TLDS)
    ).fill_null(False)


# Under email-validator's defaults (no quoted local parts, no domain literals) an address with one of
# these can never be valid: they are neither atext nor allowed in a domain.
FAST_REJECT = r'[\s"(),:;<>\[\]\\]|\.\.'


def fast_reject(email: pl.Expr) -> pl.Expr:
    """True where the address is certainly invalid, without calling email-validator: not exactly one
    @-sign, a character no address may hold, or an ASCII domain without a period."""
    domain = _domain(email)
    return (
        (email.str.count_matches("@") != 1)
        | email.str.contains(FAST_REJECT)
        | (domain.str.contains(r"^[\x00-\x7f]*$") & ~domain.str.contains(".", literal=True))
    ).fill_null(True)


def _validate_one(address: str) -> tuple[str | None, str | None, str | None]:
    try:
        result = validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        return None, None, str(exc)
    return result.normalized, result.ascii_domain, None


def _validate_many(addresses: list[str]) -> list[tuple[str | None, str | None, str | None]]:
    return [_validate_one(a) for a in addresses]


def _validate_parallel(addresses: list[str]) -> list[tuple[str | None, str | None, str | None]]:
    """email-validator over many addresses, on every core when there are enough to pay for it."""
    workers = min(os.cpu_count() or 1, 4)
    if len(addresses) < PARALLEL_FROM or workers < 2:
        return _validate_many(addresses)
    size = -(-len(addresses) // workers)
    chunks = [addresses[i : i + size] for i in range(0, len(addresses), size)]
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        return [r for part in pool.map(_validate_many, chunks) for r in part]


def _frame(emails: list[str], checked: list[tuple[str | None, str | None, str | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "email": emails,
            "email_normalized": [c[0] for c in checked],
            "email_domain": [c[1] for c in checked],
            "email_error": [c[2] for c in checked],
        },
        schema=EMAIL_STEP_SCHEMA,
    )


def _international_domains(frame: pl.DataFrame) -> pl.DataFrame:
    """Plain ASCII local part at an internationalised domain: each distinct domain is checked once by
    email-validator, then joined back and held to email-validator's three length limits."""
    parts = frame.select("email", _local(pl.col("email")).alias("local"), _domain(pl.col("email")).alias("domain"))
    domains = parts["domain"].unique().to_list()
    checked = _validate_many([f"a@{d}" for d in domains])
    lookup = pl.DataFrame(
        {
            "domain": domains,
            "domain_normalized": [c[0][2:] if c[0] else None for c in checked],
            "email_domain": [c[1] for c in checked],
            "domain_error": [c[2] for c in checked],
        },
        schema={
            "domain": pl.String,
            "domain_normalized": pl.String,
            "email_domain": pl.String,
            "domain_error": pl.String,
        },
    )
    local = _normalized_local(pl.col("local"))
    normalized = pl.concat_str([local, pl.lit("@"), pl.col("domain_normalized")])
    ascii_email = pl.concat_str([local, pl.lit("@"), pl.col("email_domain")])
    too_long = (
        (pl.col("email").str.len_bytes() > 254)
        | (normalized.str.len_bytes() > 254)
        | (ascii_email.str.len_bytes() > 254)
    )
    return parts.join(lookup, on="domain", how="left").select(
        "email",
        pl.when(pl.col("domain_error").is_null() & ~too_long).then(normalized).alias("email_normalized"),
        pl.when(pl.col("domain_error").is_null() & ~too_long).then(pl.col("email_domain")).alias("email_domain"),
        pl.when(pl.col("domain_error").is_not_null())
        .then(pl.col("domain_error"))
        .when(too_long)
        .then(pl.lit("The email address is too long."))
        .alias("email_error"),
    )


def normalize_emails(emails: pl.Series) -> pl.DataFrame:
    """One row per distinct non-null address: ``email, email_normalized, email_domain, email_error``.

    ``email_domain`` is the ASCII (IDNA A-label) domain that DNS is asked about. Four routes, each
    agreeing with email-validator: the common ASCII shape by expression; certain rejects by
    expression; ASCII local parts at international domains by one check per domain; the rest by
    email-validator itself.
    """
    unique = pl.DataFrame({"email": emails.drop_nulls().unique()}, schema={"email": pl.String})
    e = pl.col("email")
    # The common shape first; only the rest is routed further (most addresses take the first route).
    # Lazily, collected by the streaming engine, which spreads one chunk's rows over the cores.
    unique = unique.lazy().with_columns(fast_path(e).alias("_common")).collect(engine="streaming")
    parts = e.str.split_exact("@", 1)  # an address of the common shape has exactly one "@"
    local, domain = parts.struct.field("field_0"), parts.struct.field("field_1").str.to_lowercase()
    fast = (
        unique.lazy()
        .filter(pl.col("_common"))
        .select(
            "email",
            pl.concat_str([_normalized_local(local), pl.lit("@"), domain]).alias("email_normalized"),
            domain.alias("email_domain"),
            pl.lit(None, pl.String).alias("email_error"),
        )
        .collect(engine="streaming")
    )
    routed = (
        unique.filter(~pl.col("_common"))
        .drop("_common")
        .with_columns(
            pl.when(fast_reject(e))
            .then(pl.lit("reject"))
            .when(
                _local(e).str.contains(LOCAL_ATOM)
                & (_local(e).str.len_bytes() <= 64)
                & ~_domain(e).str.contains(r"^[\x00-\x7f]*$")
            )
            .then(pl.lit("idn"))
            .when(
                # A Latin-1 local part at an international domain, far below every length limit.
                _local(e).str.contains(LOCAL_ATOM_LATIN)
                & (e.str.len_bytes() <= 200)
                & ~_domain(e).str.contains(r"^[\x00-\x7f]*$")
            )
            .then(pl.lit("idn"))
            .otherwise(pl.lit("slow"))
            .alias("route")
        )
    )
    rejected = routed.filter(pl.col("route") == "reject").select(
        "email",
        pl.lit(None, pl.String).alias("email_normalized"),
        pl.lit(None, pl.String).alias("email_domain"),
        pl.lit(
            "not a valid email address (no single @-sign, a character no address may hold, or no period in the domain)"
        ).alias("email_error"),
    )
    idn = _international_domains(routed.filter(pl.col("route") == "idn"))
    rest = routed.filter(pl.col("route") == "slow")["email"].to_list()
    slow = _frame(rest, _validate_parallel(rest))
    return pl.concat([fast, rejected, idn, slow])


def address_key(normalized: pl.Expr) -> pl.Expr:
    """The key that decides which records are one address: the normalised email with the local part
    lowercased; for Gmail (gmail.com and googlemail.com are one provider) dots and ``+tag`` removed."""
    domain = normalized.str.extract(r"@([^@]*)$")
    # Everything before the last "@" (a quoted local part may hold one), without a regex's backtracking.
    local = normalized.str.head(normalized.str.len_chars() - domain.str.len_chars() - 1).str.to_lowercase()
    gmail = domain.is_in(GMAIL_DOMAINS)
    folded_local = pl.when(gmail).then(local.str.replace(r"\+.*$", "").str.replace_all(".", "", literal=True))
    return pl.concat_str(
        [
            folded_local.otherwise(local),
            pl.lit("@"),
            pl.when(gmail).then(pl.lit("gmail.com")).otherwise(domain),
        ]
    )


# A Swedish number in any punctuation whose national part (after 0, +46, 0046 or +46 (0)) has a length
# and shape phonenumbers' plan for Sweden allows (every mobile, 07x with eight more digits, among them),
# with or without an extension (`` ext 12``, which E.164 leaves out): written in E.164 by an expression.
# Everything else goes through phonenumbers.
SE_NUMBER = r"^(?:0|\+46|0046|\+460|00460)([1-9]\d{5,11})$"
EXTENSION = r"(?i)\s+ext\.?\s*\d{1,6}$"


def _swedish_plan() -> tuple[str, list[int]]:
    meta = phonenumbers.PhoneMetadata.metadata_for_region("SE")
    assert meta is not None and meta.general_desc is not None
    return f"^(?:{meta.general_desc.national_number_pattern})$", list(meta.general_desc.possible_length)


def normalize_phones(phones: pl.Series, region: str) -> pl.DataFrame:
    """One row per distinct phone text: ``phone, phone_e164`` (null where it is not a possible number)."""
    unique = pl.DataFrame({"phone": phones.drop_nulls().unique()}, schema={"phone": pl.String})
    digits = pl.col("phone").str.replace_all(r"[\s\-().]", "")
    swedish = pl.lit(region == "SE") | digits.str.starts_with("+46")
    pattern, lengths = _swedish_plan()
    national = pl.col("phone").str.replace(EXTENSION, "").str.replace_all(r"[\s\-().]", "").str.extract(SE_NUMBER)
    planned = national.str.contains(pattern) & national.str.len_chars().is_in(lengths)
    fast = (
        unique.lazy()
        .with_columns(pl.when(swedish & planned).then(pl.concat_str([pl.lit("+46"), national])).alias("phone_e164"))
        .collect(engine="streaming")  # which spreads one chunk's rows over the cores, as eager does not
    )
    done = fast.filter(pl.col("phone_e164").is_not_null())
    rest = fast.filter(pl.col("phone_e164").is_null())["phone"].to_list()
    return pl.concat([done, _parse_phones(rest, region)])


def _parse_phones(unique: list[str], region: str) -> pl.DataFrame:
    out: list[str | None] = []
    for text in unique:
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            out.append(None)
            continue
        ok = phonenumbers.is_possible_number(number)
        out.append(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) if ok else None)
    return pl.DataFrame({"phone": unique, "phone_e164": out}, schema={"phone": pl.String, "phone_e164": pl.String})


# Exports that hide part of an address (``kar***@example.se``, ``k•••@…``): the syntax may pass, but it is
# nobody's address, and two people's masked addresses can look alike.
MASKED = r"\*\*|•|…"
MASKED_ERROR = "The address is masked (part of it hidden by the export): export the full address."


def validate(contacts: pl.DataFrame, region: str = "SE") -> pl.DataFrame:
    """Add ``email_normalized, email_domain, email_error, email_valid, address_key, phone_e164``."""
    emails = normalize_emails(contacts["email"])
    masked = pl.col("email").str.contains(MASKED)
    emails = (
        emails.lazy()
        .with_columns(
            pl.when(masked).then(None).otherwise(pl.col("email_normalized")).alias("email_normalized"),
            pl.when(masked).then(None).otherwise(pl.col("email_domain")).alias("email_domain"),
            pl.when(masked).then(pl.lit(MASKED_ERROR)).otherwise(pl.col("email_error")).alias("email_error"),
        )
        .with_columns(address_key(pl.col("email_normalized")).alias("address_key"))  # once per email
        .collect(engine="streaming")
    )
    phones = normalize_phones(contacts["phone"], region)
    out = look_up(look_up(contacts, emails, "email"), phones, "phone").with_columns(
        pl.col("email_normalized").is_not_null().alias("email_valid"),
        pl.when(pl.col("email").is_null())
        .then(pl.lit("the email address is missing"))
        .otherwise(pl.col("email_error"))
        .alias("email_error"),
    )
    # In the order the columns had when the key was computed per row.
    return out.select(pl.exclude("address_key"), "address_key")
