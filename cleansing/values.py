"""Value parsing as polars expressions: dates, booleans, consent statuses, lawful bases.

Each parser returns ``(value, unparseable)``: the typed value, and a boolean that is true where the
text was present but could not be read (the record is then flagged ``UNPARSEABLE_<FIELD>`` and the
value counts as absent evidence).
"""

from __future__ import annotations

import unicodedata

import polars as pl

UTC_DATETIME = pl.Datetime("us", "UTC")

_DATE_FORMAT = "%Y-%m-%d %H:%M:%S%.f%:z"

TRUE_WORDS = ("true", "yes", "y", "1", "x", "ja", "sant")
FALSE_WORDS = ("false", "no", "n", "0", "nej", "falskt")

# Keys are normalised with ``fold``; values are canonical consent statuses.
# ``denied`` is a refusal in words: the person was asked and said no (it counts as an opt-out).
# ``none`` is a machine value for "no consent recorded" (an unticked box, a list never joined).
STATUS_WORDS: dict[str, str] = {
    **{
        w: "granted"
        for w in (
            "yes",
            "true",
            "1",
            "ja",
            "y",
            "sant",
            "subscribed",
            "optedin",
            "granted",
            "optin",
            "prenumererar",
            # HubSpot "Marketing email confirmation status": every "confirmed" is a claim without a
            # date (the export has none), so none of them is a double opt-in here.
            "confirmed",
            "userclickedconfirmation",
            "hubspotrepmarkedconfirmed",
            "customermarkedconfirmed",
            "confirmedfrompreviousbehavior",
            "confirmedduetoform",
        )
    },
    **{
        w: "withdrawn"
        for w in (
            "unsubscribed",
            "optedout",
            "withdrawn",
            "avregistrerad",
            "optout",
            "optoutpending",
            "avanmald",
            "suppressed",
        )
    },
    **{
        w: "pending"
        for w in (
            "pending",
            "unconfirmed",
            "optinpending",
            "confirmationpending",
            "confirmationemailsent",
            "awaitingdoubleoptin",
            "userhasnotclickedsentlink",
            "vantande",
        )
    },
    **{
        w: "none"
        for w in ("none", "false", "0", "n", "falskt", "never", "neversubscribed", "seen", "notseen", "nonsubscribed")
    },
    **{
        w: "denied"
        for w in (
            "no",
            "nej",
            "nejtack",
            "notack",
            "nothanks",
            "nothankyou",
            "declined",
            "denied",
            "refused",
            "rejected",
            "avbojt",
            "avbojd",
            "avbojer",
            "avstar",
            "avstatt",
            "villinte",
            "villej",
        )
    },
    **{w: "unknown" for w in ("unknown", "okand")},
}
# Every canonical status, least mailable first: where several columns give one, the first wins.
STATUS_PRECEDENCE = ("withdrawn", "denied", "unreadable", "pending", "granted", "none", "unknown")

# A status text that is not one of the words above but says no in a sentence ("Nej, vill inte ha
# nyhetsbrev", "declined at checkout") is a refusal too. Matched on ``words_expr`` text.
REFUSAL_PATTERN = (
    r"\b(?:no|nej|inte|ej|aldrig|never|do not|don t|dont|declined?|denied|refused?|rejected|avboj\w*|avsta\w*)\b"
)

BASIS_WORDS: dict[str, str] = {
    # HubSpot's "Freely given consent from contact" is a basis for processing the contact's data, not a
    # subscription to email (knowledge.hubspot.com, "Enable GDPR tools in HubSpot").
    "freelygivenconsentfromcontact": "processing_consent",
    "consent": "consent",
    "samtycke": "consent",
    "legitimateinterestexistingcustomer": "legitimate_interest",
    "legitimateinterestcustomer": "legitimate_interest",
    "legitimateinterestprospectlead": "legitimate_interest",
    "legitimateinterestlead": "legitimate_interest",
    "legitimateinterestother": "legitimate_interest",
    "legitimateinterest": "legitimate_interest",
    "berattigatintresse": "legitimate_interest",
    "performanceofacontract": "contract",
    "contract": "contract",
    "avtal": "contract",
    "notapplicable": "not_applicable",
    "none": "not_applicable",
}


def fold(text: str) -> str:
    """Case- and accent-folded, with everything but letters and digits removed: ``Förnamn`` → ``fornamn``."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if c.isalnum() and not unicodedata.combining(c))


def words_expr(expr: pl.Expr) -> pl.Expr:
    """Lowercase words without accents, one space between them: ``Nej, TACK!`` → ``nej tack``."""
    return (
        expr.str.normalize("NFKD")
        .str.replace_all(r"\p{M}", "")
        .str.to_lowercase()
        .str.replace_many(["ø", "æ", "ß", "ł", "đ"], ["o", "ae", "ss", "l", "d"])
        .str.replace_all(r"[^a-z0-9]+", " ")
        .str.strip_chars()
    )


def fold_expr(expr: pl.Expr) -> pl.Expr:
    """``fold`` as an expression: ``words_expr`` without the spaces."""
    return words_expr(expr).str.replace_all(" ", "", literal=True)


def present(expr: pl.Expr) -> pl.Expr:
    """True where a text value is there (not null, not blank)."""
    return expr.is_not_null() & (expr.str.strip_chars() != "")


def parse_datetime(
    expr: pl.Expr, *, month_first: bool = False, local_zone: str | None = None
) -> tuple[pl.Expr, pl.Expr]:
    """ISO 8601 (date, date-time with ``T`` or space, ``Z`` or offset), ``YYYY/MM/DD``, ``DD.MM.YYYY``
    and Unix epoch seconds (10 digits) or milliseconds (13 digits), as UTC.

    ``month_first`` also reads US dates ``M/D/YYYY`` with an optional ``H:MM[:SS] AM|PM`` (Salesforce
    reports in a US locale); without it a slashed day-first or month-first date is ambiguous and
    unreadable. Times without an offset are UTC, or local time in ``local_zone`` when the tool writes
    local time (a date alone stays a UTC calendar date: it has no time of day to shift).

    Every accepted form is first rewritten into ``YYYY-MM-DD HH:MM:SS[.f]`` plus an offset when the
    text has one, so that one ``strptime`` pass per kind reads them all.
    """
    raw = expr.str.strip_chars()
    text = raw
    if month_first:
        us = raw.str.extract_groups(
            r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?)?$"
        )
        hour = us.struct.field("4").cast(pl.Int32)
        meridiem = us.struct.field("7").str.to_lowercase()
        hour = pl.when(meridiem == "pm").then(hour % 12 + 12).when(meridiem == "am").then(hour % 12).otherwise(hour)

        def two(part: pl.Expr) -> pl.Expr:
            return part.cast(pl.String).str.zfill(2)

        date_part = pl.concat_str(
            [us.struct.field("3"), two(us.struct.field("1")), two(us.struct.field("2"))], separator="-"
        )
        time_part = pl.concat_str(
            [two(hour), two(us.struct.field("5")), two(us.struct.field("6").fill_null("00"))], separator=":"
        )
        rewritten = (
            pl.when(hour.is_not_null()).then(pl.concat_str([date_part, time_part], separator=" ")).otherwise(date_part)
        )
        text = pl.when(us.struct.field("1").is_not_null()).then(rewritten).otherwise(raw)
    text = (
        text.str.replace(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})", "${3}-${2}-${1}")
        .str.replace(r"^(\d{4})/(\d{1,2})/(\d{1,2})", "${1}-${2}-${3}")
        .str.replace(r"^(\d{4}-\d{1,2}-\d{1,2})[Tt ]", "${1} ")
        .str.replace(r"^(\d{4}-\d{1,2}-\d{1,2})$", "${1} 00:00:00Z")
        .str.replace(r"^(\d{4}-\d{1,2}-\d{1,2} \d{1,2}:\d{2})($|[^:\d])", "${1}:00${2}")
        .str.replace(r"[Zz]$", "+00:00")
        .str.replace(r"\s?([+-]\d{2}):?(\d{2})$", "${1}:${2}")
    )
    with_offset = text.str.to_datetime(_DATE_FORMAT, strict=False, time_unit="us", time_zone="UTC")
    naive = text.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us")
    if local_zone:
        naive = naive.dt.replace_time_zone(local_zone, ambiguous="earliest", non_existent="null")
        naive = naive.dt.convert_time_zone("UTC")
    else:
        naive = naive.dt.replace_time_zone("UTC")
    digits = pl.when(raw.str.contains(r"^\d{10}$|^\d{13}$")).then(raw.cast(pl.Int64, strict=False))
    epoch = pl.when(raw.str.len_chars() == 13).then(digits * 1000).otherwise(digits * 1_000_000)
    from_epoch = pl.from_epoch(epoch, time_unit="us").dt.replace_time_zone("UTC")
    value = pl.coalesce(from_epoch, with_offset, naive)
    return value, present(expr) & value.is_null()


def parse_bool(expr: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """``true/false, yes/no, y/n, 1/0, x/(empty), ja/nej, sant/falskt``; empty is false."""
    word = expr.str.strip_chars().str.to_lowercase()
    value = (
        pl.when(word.is_in(TRUE_WORDS))
        .then(True)
        .when(word.is_in(FALSE_WORDS) | ~present(expr))
        .then(False)
        .otherwise(None)
    )
    return value, present(expr) & value.is_null()


def parse_flag_or_date(
    expr: pl.Expr, *, objection: bool = False, local_zone: str | None = None, month_first: bool = False
) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """A boolean or a date (a date means true, on that date): ``(flag, date, unparseable)``.

    For an ``objection`` (opt-out, erasure, bounce, suppression) a value that is neither is still
    an objection, with its date unknown: ``Ja, per telefon`` or ``03/04/2025`` in an opt-out column
    means the person objected, not that nothing is known.
    """
    flag, _ = parse_bool(expr)
    date, _ = parse_datetime(expr, local_zone=local_zone, month_first=month_first)
    unparseable = present(expr) & flag.is_null() & date.is_null()
    value = pl.when(date.is_not_null()).then(True).otherwise(flag)
    return value.fill_null(objection), date, unparseable


def parse_status(expr: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """Consent status text to ``granted``/``pending``/``withdrawn``/``denied``/``none``/``unknown``.

    Absent is ``unknown``. A refusal in words is ``denied``. Text that is neither a status word nor a
    refusal is ``unreadable`` and flagged: it may be a yes or a no, so it never counts as proof.
    """
    known = fold_expr(expr).replace_strict(STATUS_WORDS, default=None, return_dtype=pl.String)
    value = (
        pl.when(known.is_not_null())
        .then(known)
        .when(words_expr(expr).str.contains(REFUSAL_PATTERN))
        .then(pl.lit("denied"))
        .when(present(expr))
        .then(pl.lit("unreadable"))
        .otherwise(pl.lit("unknown"))
    )
    return value, value == "unreadable"


def parse_bases(expr: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """``;``-separated lawful bases to a sorted list of canonical bases."""
    parts = (
        expr.str.split(";")
        .list.eval(fold_expr(pl.element()).replace_strict(BASIS_WORDS, default="?", return_dtype=pl.String))
        .list.eval(pl.element().filter(pl.element() != ""))
        .list.unique()
        .list.sort()
    )
    cleaned = parts.list.eval(pl.element().filter(pl.element() != "?"))
    unreadable = present(expr) & parts.list.contains("?")
    return cleaned.fill_null(pl.lit([], dtype=pl.List(pl.String))), unreadable


def parse_tags(expr: pl.Expr) -> pl.Expr:
    """Tags from ``"VIP","Blog"`` (Mailchimp) or ``VIP; Blog`` to a list of names."""
    return (
        expr.str.replace_all(r'"', "")
        .str.replace_all(";", ",", literal=True)
        .str.split(",")
        .list.eval(pl.element().str.strip_chars().filter(pl.element() != ""))
        .fill_null(pl.lit([], dtype=pl.List(pl.String)))
    )
