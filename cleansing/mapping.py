"""Map: each tool's export headers to the canonical contact, with its values parsed.

A preset is data: rules ``(header, target, convert)`` that say which folded header feeds which
canonical field, plus constants taken from the file name (Mailchimp) and a fix-up after parsing.
``auto`` picks the preset whose signature headers are present; ``generic`` knows English and
Swedish synonyms; a ``--mapping`` TOML extends or overrides any of them.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from .errors import ConfigError, InputError
from .read import ROW, RawTable
from .reasons import unparseable_flag
from .values import (
    UTC_DATETIME,
    fold,
    fold_expr,
    parse_bases,
    parse_bool,
    parse_datetime,
    parse_flag_or_date,
    parse_status,
    parse_tags,
    present,
)

CONTACT_FIELDS = (
    "email",
    "first_name",
    "last_name",
    "full_name",
    "phone",
    "company",
    "street",
    "postcode",
    "city",
    "country",
)
TEXT_FIELDS = ("record_id", *CONTACT_FIELDS, "consent_source", "consent_proof")
DATE_FIELDS = ("consent_at", "confirmed_at", "consent_expires_at", "last_purchase_at", "last_activity_at", "created_at")
# A boolean that may also be given as a date; the date goes to the second column.
FLAG_DATE_FIELDS = {
    "opted_out": "opted_out_at",
    "erasure_requested": None,
    "hard_bounced": "bounced_at",
    "is_customer": None,
}
TARGETS = (*TEXT_FIELDS, "tags", "consent_status", "lawful_basis", *DATE_FIELDS, *FLAG_DATE_FIELDS)
TARGET_ALIASES = {
    "opted_out_at": "opted_out",
    "withdrawn": "opted_out",
    "unsubscribed": "opted_out",
    "bounced_at": "hard_bounced",
    "hard_bounce": "hard_bounced",
    "email_address": "email",
}
JOINED_TEXT = {"consent_proof", "consent_source"}
PRESETS_NAMES = ("auto", "mailchimp", "hubspot", "salesforce", "brevo", "klaviyo", "generic")

Convert = Callable[[pl.Expr], pl.Expr]


@dataclass(frozen=True)
class Rule:
    """Header (folded; a trailing ``*`` matches a prefix) feeds ``target``, through ``convert``."""

    header: str
    target: str
    convert: Convert | None = None

    def matches(self, folded: str) -> bool:
        if self.header.endswith("*"):
            return folded.startswith(self.header[:-1])
        return folded == self.header


@dataclass(frozen=True)
class Preset:
    name: str
    detect: Callable[[set[str]], bool]
    rules: tuple[Rule, ...]
    constants: Callable[[str], dict[str, str]] = field(default=lambda _name: {})
    post: Callable[[pl.DataFrame], pl.DataFrame] = field(default=lambda frame: frame)
    has_record_id: bool = True


def _true_if(pattern: str) -> Convert:
    """Text matching ``pattern`` (case-insensitive) means ``true``; anything else says nothing."""
    return lambda e: pl.when(e.str.contains(f"(?i){pattern}")).then(pl.lit("true")).otherwise(None)


def _any_text_true(e: pl.Expr) -> pl.Expr:
    return pl.when(present(e)).then(pl.lit("true")).otherwise(None)


def _rules(pairs: Mapping[str, str | tuple[str, Convert]]) -> tuple[Rule, ...]:
    out = []
    for header, target in pairs.items():
        for h in header.split("|"):
            if isinstance(target, tuple):
                out.append(Rule(h, target[0], target[1]))
            else:
                out.append(Rule(h, target))
    return tuple(out)


# ---- generic synonyms (English and Swedish), folded ----
GENERIC_SYNONYMS: dict[str, tuple[str, ...]] = {
    "email": (
        "email",
        "e-mail",
        "email address",
        "mail",
        "e-post",
        "epost",
        "e-postadress",
        "mejl",
        "mejladress",
        "emailaddress",
    ),
    "first_name": ("first name", "given name", "firstname", "förnamn"),
    "last_name": ("last name", "surname", "family name", "efternamn"),
    "full_name": ("name", "full name", "contact", "namn", "kontaktperson"),
    "phone": (
        "phone",
        "phone number",
        "telephone",
        "mobile",
        "mobile phone",
        "cell",
        "telefon",
        "telefonnummer",
        "tel",
        "mobil",
        "mobilnummer",
    ),
    "company": (
        "company",
        "company name",
        "organisation",
        "organization",
        "account",
        "account name",
        "företag",
        "företagsnamn",
        "bolag",
    ),
    "street": ("address", "street", "mailing street", "street address", "adress", "gatuadress"),
    "postcode": ("zip", "zip code", "postcode", "postal code", "postnummer"),
    "city": ("city", "town", "mailing city", "ort", "stad", "postort"),
    "country": ("country", "country/region", "mailing country", "land"),
    "record_id": ("id", "contact id", "customer id", "kund-id", "kundnummer"),
    "consent_status": (
        "consent",
        "opt in",
        "subscribed",
        "marketing consent",
        "samtycke",
        "prenumererar",
        "marknadsföringssamtycke",
    ),
    "consent_at": (
        "consent date",
        "opt in date",
        "subscribed at",
        "samtycke datum",
        "samtyckesdatum",
        "datum för samtycke",
    ),
    "confirmed_at": ("double opt in", "confirmed at", "confirmation date", "bekräftad", "bekräftelsedatum"),
    "consent_source": ("source", "lead source", "signup source", "källa", "ursprung"),
    "consent_proof": ("consent proof", "opt in ip", "samtyckesbevis"),
    "opted_out": ("unsubscribed", "opted out", "unsubscribe date", "avregistrerad", "avanmäld", "avregistreringsdatum"),
    "erasure_requested": ("erasure", "forget", "delete request", "radering", "radera", "glöm"),
    "hard_bounced": ("bounced", "hard bounce", "studsad"),
    "is_customer": ("customer", "kund"),
    "last_purchase_at": ("last purchase", "last order", "senaste köp", "senaste order"),
    "last_activity_at": ("last activity", "last engagement", "last open", "senaste aktivitet"),
    "created_at": ("created", "created at", "create date", "skapad"),
    "lawful_basis": ("lawful basis", "legal basis", "rättslig grund"),
    "tags": ("tags", "taggar"),
}
GENERIC_RULES = tuple(Rule(fold(s), target) for target, words in GENERIC_SYNONYMS.items() for s in words)


def _has(*names: str) -> Callable[[set[str]], bool]:
    return lambda headers: all(n in headers for n in names)


def _mailchimp_constants(name: str) -> dict[str, str]:
    status = re.match(r"(subscribed|unsubscribed|cleaned|nonsubscribed)_", Path(name).name.lower())
    if not status:
        return {}
    return {
        "subscribed": {"consent_status": "granted"},
        "unsubscribed": {"consent_status": "withdrawn", "opted_out": "true"},
        "cleaned": {"hard_bounced": "true"},
        "nonsubscribed": {"consent_status": "none"},
    }[status.group(1)]


def _mailchimp_post(frame: pl.DataFrame) -> pl.DataFrame:
    # An imported member has no OPTIN_TIME and a CONFIRM_TIME equal to the import: that proves nothing.
    proven = pl.col("consent_at").is_not_null() & (pl.col("confirmed_at") >= pl.col("consent_at"))
    return frame.with_columns(pl.when(proven).then(pl.col("confirmed_at")).otherwise(None).alias("confirmed_at"))


PRESETS: dict[str, Preset] = {
    "mailchimp": Preset(
        "mailchimp",
        lambda h: "emailaddress" in h and bool(h & {"leid", "euid", "optintime", "memberrating"}),
        _rules(
            {
                "emailaddress": "email",
                "firstname": "first_name",
                "lastname": "last_name",
                "address": "street",
                "phonenumber|phone": "phone",
                "company": "company",
                "optintime": "consent_at",
                "confirmtime": "confirmed_at",
                "optinip|confirmip": "consent_proof",
                "unsubtime": "opted_out",
                "cleantime": "hard_bounced",
                "leid": "record_id",
                "tags": "tags",
                "cc": "country",
            }
        ),
        constants=_mailchimp_constants,
        post=_mailchimp_post,
    ),
    "hubspot": Preset(
        "hubspot",
        lambda h: (
            "recordid" in h
            and "email" in h
            and bool(
                h
                & {
                    "createdate",
                    "lifecyclestage",
                    "contactowner",
                    "legalbasisforprocessingcontactsdata",
                    "marketingcontactstatus",
                    "lastactivitydate",
                    "marketingemailconfirmationstatus",
                    "unsubscribedfromallemail",
                    "originalsource",
                    "associatedcompany",
                }
            )
        ),
        _rules(
            {
                "recordid": "record_id",
                "email": "email",
                "firstname": "first_name",
                "lastname": "last_name",
                "phonenumber|mobilephonenumber": "phone",
                "companyname|associatedcompany": "company",
                "streetaddress": "street",
                "postalcode": "postcode",
                "city": "city",
                "countryregion": "country",
                "legalbasisforprocessingcontactsdata": "lawful_basis",
                "unsubscribedfromallemail|optedoutofemail*": "opted_out",
                "marketingemailconfirmationstatus": "consent_status",
                "invalidemailaddress|emailaddressquarantined": "hard_bounced",
                "emailhardbouncereason": ("hard_bounced", _any_text_true),
                "lifecyclestage": (
                    "is_customer",
                    lambda e: (
                        pl.when(fold_expr(e) == "customer").then(pl.lit("true")).when(present(e)).then(pl.lit("false"))
                    ),
                ),
                "createdate": "created_at",
                "lastactivitydate|lastengagementdate": "last_activity_at",
                "originalsource": "consent_source",
            }
        )
        + (Rule("legalbasisforprocessingcontactsdata", "is_customer", _true_if("existing customer")),),
    ),
    "salesforce": Preset(
        "salesforce",
        lambda h: "id" in h and "email" in h and bool(h & {"hasoptedoutofemail", "leadsource", "individualid"}),
        _rules(
            {
                "id": "record_id",
                "email": "email",
                "firstname": "first_name",
                "lastname": "last_name",
                "name": "full_name",
                "phone|mobilephone": "phone",
                "company|accountname": "company",
                "mailingstreet|street": "street",
                "mailingpostalcode|postalcode": "postcode",
                "mailingcity|city": "city",
                "mailingcountry|country": "country",
                "hasoptedoutofemail|hasoptedoutsolicit": "opted_out",
                "privacyconsentstatus": "consent_status",
                "capturedate": "consent_at",
                "capturesource|leadsource": "consent_source",
                "doubleconsentcapturedate": "confirmed_at",
                "effectiveto": "consent_expires_at",
                "emailbounceddate": "hard_bounced",
                "shouldforget": "erasure_requested",
                "createddate": "created_at",
                "lastactivitydate": "last_activity_at",
            }
        ),
    ),
    "brevo": Preset(
        "brevo",
        lambda h: "email" in h and bool(h & {"addedtime", "doubleoptin"}),
        _rules(
            {
                "email": "email",
                "firstname|prenom": "first_name",
                "lastname|nom": "last_name",
                "sms|phone": "phone",
                "company": "company",
                "addedtime": "created_at",
                "doubleoptin": ("consent_status", lambda e: pl.when(parse_bool(e)[0]).then(pl.lit("granted"))),
                "optindate|optin": "consent_at",
                "emailblacklisted|blacklisted": "opted_out",
                "lastopen|lastclick": "last_activity_at",
            }
        ),
        has_record_id=False,
    ),
    "klaviyo": Preset(
        "klaviyo",
        _has("email", "emailmarketingconsent"),
        _rules(
            {
                "email": "email",
                "firstname": "first_name",
                "lastname": "last_name",
                "phonenumber": "phone",
                "organization": "company",
                "address|address1": "street",
                "zipcode": "postcode",
                "city": "city",
                "country": "country",
                "emailmarketingconsent": "consent_status",
                "emailmarketingconsenttimestamp": "consent_at",
                "profilecreatedon": "created_at",
                "lastactive": "last_activity_at",
                "klaviyoid|id": "record_id",
                # The suppression column says why: only a bounce is a bounce, the rest is an opt-out.
                "emailsuppressions|emailmarketingsuppressionreason": ("hard_bounced", _true_if("bounce")),
            }
        )
        + (Rule("emailsuppressions", "opted_out", _true_if("unsubscrib|spam|complain|manual")),),
    ),
    "generic": Preset("generic", lambda h: True, GENERIC_RULES, has_record_id=True),
}


@dataclass(frozen=True)
class UserMapping:
    """A ``--mapping`` file: ``[columns]`` of ``"Source header" = "canonical_field"``."""

    rules: tuple[Rule, ...]
    preset: str | None = None


def load_mapping(path: str | Path | None) -> UserMapping | None:
    if path is None:
        return None
    source = Path(path)
    example = 'Write it as [columns] with lines like "E-mail Adress" = "email".'
    if not source.is_file():
        raise ConfigError("the mapping file does not exist.", path=source, fix=example)
    try:
        raw = tomllib.loads(source.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"the mapping file is not valid TOML ({exc}).", path=source, fix=example) from exc
    problems = [f"unknown key {k!r}" for k in raw if k not in {"columns", "preset"}]
    columns = raw.get("columns", {})
    if not isinstance(columns, dict) or not columns:
        problems.append("it has no [columns] table")
        columns = {}
    rules = []
    for header, target in columns.items():
        canonical = TARGET_ALIASES.get(str(target), str(target))
        if canonical not in TARGETS:
            problems.append(f"{header!r} maps to unknown field {target!r}")
        else:
            rules.append(Rule(fold(header), canonical))
    preset = raw.get("preset")
    if preset is not None and preset not in PRESETS:
        problems.append(f"unknown preset {preset!r} (one of {', '.join(PRESETS)})")
    if problems:
        raise ConfigError(
            "the mapping has problems: " + "; ".join(problems) + ".",
            path=source,
            fix=example + f" Fields: {', '.join(TARGETS)}.",
        )
    return UserMapping(tuple(rules), preset)


def detect_preset(headers: Sequence[str]) -> str:
    folded = {fold(h) for h in headers}
    for name, preset in PRESETS.items():
        if name != "generic" and preset.detect(folded):
            return name
    return "generic"


def _sources(table: RawTable, preset: Preset, user: UserMapping | None) -> dict[str, list[pl.Expr]]:
    """Which column expressions feed each target in this file."""
    sources: dict[str, list[pl.Expr]] = {}
    used: set[str] = set()
    headers = [c for c in table.frame.columns if c != ROW]
    folded = {h: fold(h) for h in headers}
    if user:
        for h in headers:
            for rule in user.rules:
                if rule.matches(folded[h]):
                    sources.setdefault(rule.target, []).append(pl.col(h))
                    used.add(h)
    for rule in preset.rules:
        if rule.target in sources and user and any(r.target == rule.target for r in user.rules):
            continue  # the user's mapping overrides the preset for this field
        for h in headers:
            if h not in used and rule.matches(folded[h]):
                expr = pl.col(h) if rule.convert is None else rule.convert(pl.col(h))
                sources.setdefault(rule.target, []).append(expr)
    consumed = used | {h for h in headers for r in preset.rules if r.matches(folded[h])}
    # Contact fields a tool leaves to custom columns (Mailchimp's "Company") come from the synonyms.
    for rule in GENERIC_RULES:
        if rule.target in CONTACT_FIELDS and rule.target not in sources:
            for h in headers:
                if h not in consumed and rule.matches(folded[h]):
                    sources.setdefault(rule.target, []).append(pl.col(h))
    for target, value in preset.constants(table.source_file).items():
        sources.setdefault(target, []).append(pl.lit(value))
    return sources


def map_table(
    table: RawTable, preset_name: str = "auto", user: UserMapping | None = None, where: str | None = None
) -> tuple[pl.DataFrame, str]:
    """Map one file to the canonical frame; returns the frame and the preset used."""
    headers = [c for c in table.frame.columns if c != ROW]
    chosen = (user.preset if user and user.preset else None) or preset_name
    name = detect_preset(headers) if chosen == "auto" else chosen
    preset = PRESETS[name]
    sources = _sources(table, preset, user)
    if "email" not in sources:
        seen = ", ".join(repr(h) for h in headers) or "none"
        raise InputError(
            f"no column holds email addresses (preset {name}; headers seen: {seen}).",
            path=where or table.source_file,
            fix='Pass --mapping FILE with a TOML table [columns] naming the email column, e.g. "Mejl" = "email", '
            "or --preset if the file comes from a known tool.",
        )

    def blank(e: pl.Expr) -> pl.Expr:
        e = e.cast(pl.String).str.strip_chars()
        return pl.when(e == "").then(None).otherwise(e)

    # Phase 1: one text column per source of each field. Phase 2: parse each source once.
    # Phase 3: combine the sources of each field, and collect flags for what could not be read.
    texts: dict[str, pl.Expr] = {}
    names: dict[str, list[str]] = {}
    for target, exprs_t in sources.items():
        for i, e in enumerate(exprs_t):
            column = f"__{target}__{i}"
            texts[column] = blank(e)
            names.setdefault(target, []).append(column)
    for target in ("consent_status", "lawful_basis", "tags"):
        columns = names.get(target, [])
        if len(columns) > 1:  # several columns feed one field: read them as one text
            parts = [texts.pop(c) for c in columns]
            texts[columns[0]] = (
                pl.coalesce(parts)
                if target == "consent_status"
                else pl.concat_str(parts, separator=";", ignore_nulls=True)
            )
            names[target] = [columns[0]]

    parsed: list[pl.Expr] = []
    bad: list[tuple[str, str]] = []  # (bad-flag column, text column) per source

    def src(target: str) -> list[str]:
        return names.get(target, [])

    for target in DATE_FIELDS:
        for c in src(target):
            value, unreadable = parse_datetime(pl.col(c))
            parsed += [value.alias(f"{c}__v"), unreadable.alias(f"{c}__bad")]
            bad.append((target, c))
    for target in FLAG_DATE_FIELDS:
        for c in src(target):
            flag, date, unreadable = parse_flag_or_date(pl.col(c))
            parsed += [flag.alias(f"{c}__v"), date.alias(f"{c}__d"), unreadable.alias(f"{c}__bad")]
            bad.append((target, c))
    for c in src("consent_status"):
        value, unreadable = parse_status(pl.col(c))
        parsed += [value.alias(f"{c}__v"), unreadable.alias(f"{c}__bad")]
        bad.append(("consent_status", c))
    for c in src("lawful_basis"):
        value, unreadable = parse_bases(pl.col(c))
        parsed += [value.alias(f"{c}__v"), unreadable.alias(f"{c}__bad")]
        bad.append(("lawful_basis", c))

    out: list[pl.Expr] = []
    for target in TEXT_FIELDS:
        cols = [pl.col(c) for c in src(target)]
        if not cols:
            out.append(pl.lit(None, pl.String).alias(target))
        elif target in JOINED_TEXT:
            joined = pl.concat_str(cols, separator="; ", ignore_nulls=True)
            out.append(pl.when(joined != "").then(joined).alias(target))
        else:
            out.append(pl.coalesce(cols).alias(target))
    out.append(parse_tags(pl.col(src("tags")[0]) if src("tags") else pl.lit(None, pl.String)).alias("tags"))
    status = src("consent_status")
    out.append((pl.col(f"{status[0]}__v") if status else pl.lit("unknown")).alias("consent_status"))
    bases = src("lawful_basis")
    out.append((pl.col(f"{bases[0]}__v") if bases else pl.lit([], pl.List(pl.String))).alias("lawful_basis"))
    for target in DATE_FIELDS:
        cols = [pl.col(f"{c}__v") for c in src(target)]
        out.append((pl.max_horizontal(cols) if cols else pl.lit(None, UTC_DATETIME)).alias(target))
    for target, date_col in FLAG_DATE_FIELDS.items():
        cols = [pl.col(f"{c}__v") for c in src(target)]
        out.append((pl.any_horizontal(cols) if cols else pl.lit(False)).alias(target))
        if date_col:
            dates = [pl.col(f"{c}__d") for c in src(target)]
            out.append((pl.max_horizontal(dates) if dates else pl.lit(None, UTC_DATETIME)).alias(date_col))
    flags = [pl.when(pl.col(f"{c}__bad")).then(pl.lit(unparseable_flag(t))) for t, c in bad]
    notes = [pl.when(pl.col(f"{c}__bad")).then(pl.concat_str([pl.lit(f"{t}="), pl.col(c)])) for t, c in bad]
    joined_notes = pl.concat_str(notes, separator="; ", ignore_nulls=True) if notes else pl.lit("")
    file_key = hashlib.sha256(table.source_file.encode()).hexdigest()[:8]
    mapped = (
        table.frame.lazy()
        .select(pl.col(ROW), *[e.alias(c) for c, e in texts.items()])
        .with_columns(parsed)
        .select(
            pl.lit(table.source_file).alias("source_file"),
            pl.col(ROW).alias("source_row"),
            pl.lit(table.input_index, pl.Int32).alias("input_index"),
            pl.lit(name).alias("preset"),
            *out,
            (pl.concat_list(flags).list.drop_nulls() if flags else pl.lit([], pl.List(pl.String))).alias("flags"),
            pl.when(joined_notes != "").then(joined_notes).alias("unparsed"),
        )
        .collect()
    )
    # Fields no column feeds are literals, which polars keeps as scalar columns; horizontal
    # expressions (max_horizontal) on those return one row instead of many (polars 1.44), so
    # materialise them.
    mapped = pl.DataFrame(mapped.get_columns())
    if not preset.has_record_id or "record_id" not in sources:
        mapped = mapped.with_columns(pl.lit(None, pl.String).alias("record_id"))
    mapped = mapped.with_columns(
        pl.coalesce(pl.col("record_id"), pl.format("r{}-{}", pl.lit(file_key), pl.col("source_row"))).alias(
            "record_id"
        ),
        pl.col("flags").list.unique(maintain_order=True),
    )
    return preset.post(mapped), name


def map_tables(
    tables: Sequence[RawTable], preset: str = "auto", user: UserMapping | None = None
) -> tuple[pl.DataFrame, dict[str, str]]:
    """Map every table and stack them in input order; returns the frame and the preset per file."""
    if preset not in PRESETS_NAMES:
        raise ConfigError(f"unknown preset {preset!r}.", fix=f"Use one of: {', '.join(PRESETS_NAMES)}.")
    frames, used = [], {}
    for table in tables:
        mapped, name = map_table(table, preset, user)
        frames.append(mapped)
        used[table.source_file] = name
    if not frames:
        return empty_contacts(), used
    return pl.concat(frames, how="vertical"), used


def empty_contacts() -> pl.DataFrame:
    """The mapped schema with no rows."""
    table = RawTable(
        "empty",
        pl.DataFrame({"email": []}, schema={"email": pl.String}).with_columns(pl.Series(ROW, [], dtype=pl.Int64)),
    )
    return map_table(table, "generic")[0]
