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
STATUS_WORDS: dict[str, str] = {
    **{
        w: "granted"
        for w in (
            "yes",
            "true",
            "1",
            "ja",
            "subscribed",
            "optedin",
            "granted",
            "optin",
            "confirmed",
            "userclickedconfirmation",
            "prenumererar",
            "sant",
            "y",
        )
    },
    **{
        w: "withdrawn"
        for w in ("unsubscribed", "optedout", "withdrawn", "avregistrerad", "optout", "optoutpending", "avanmald")
    },
    **{
        w: "pending"
        for w in ("pending", "unconfirmed", "optinpending", "confirmationpending", "confirmationemailsent", "vantande")
    },
    **{
        w: "none"
        for w in (
            "none",
            "no",
            "false",
            "0",
            "nej",
            "never",
            "neversubscribed",
            "seen",
            "notseen",
            "nonsubscribed",
            "falskt",
            "n",
        )
    },
    **{w: "unknown" for w in ("unknown", "okand")},
}

BASIS_WORDS: dict[str, str] = {
    "freelygivenconsentfromcontact": "consent",
    "consent": "consent",
    "samtycke": "consent",
    "legitimateinterestexistingcustomer": "legitimate_interest",
    "legitimateinterestprospectlead": "legitimate_interest",
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


def fold_expr(expr: pl.Expr) -> pl.Expr:
    """``fold`` as an expression, for the ASCII-plus-Nordic letters values normally hold."""
    return (
        expr.str.to_lowercase()
        .str.replace_many(
            ["å", "ä", "ö", "é", "è", "ü", "ø", "æ", "–", "—"], ["a", "a", "o", "e", "e", "u", "o", "ae", "-", "-"]
        )
        .str.replace_all(r"[^a-z0-9]", "")
    )


def present(expr: pl.Expr) -> pl.Expr:
    """True where a text value is there (not null, not blank)."""
    return expr.is_not_null() & (expr.str.strip_chars() != "")


def parse_datetime(expr: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """ISO 8601 (date, date-time with ``T`` or space, ``Z`` or offset), ``YYYY/MM/DD`` and
    ``DD.MM.YYYY``, as UTC. Naive times are taken as UTC.

    Every accepted form is first rewritten into ``YYYY-MM-DD HH:MM:SS[.f]+HH:MM`` so that one
    ``strptime`` pass reads them all.
    """
    text = (
        expr.str.strip_chars()
        .str.replace(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})", "${3}-${2}-${1}")
        .str.replace(r"^(\d{4})/(\d{1,2})/(\d{1,2})", "${1}-${2}-${3}")
        .str.replace(r"^(\d{4}-\d{1,2}-\d{1,2})[Tt ]", "${1} ")
        .str.replace(r"^(\d{4}-\d{1,2}-\d{1,2})$", "${1} 00:00:00")
        .str.replace(r"^(\d{4}-\d{1,2}-\d{1,2} \d{1,2}:\d{2})($|[^:\d])", "${1}:00${2}")
        .str.replace(r"[Zz]$", "+00:00")
        .str.replace(r"\s?([+-]\d{2}):?(\d{2})$", "${1}:${2}")
        .str.replace(r"^(\d{4}-\d{1,2}-\d{1,2} \d{1,2}:\d{2}:\d{2}(?:\.\d+)?)$", "${1}+00:00")
    )
    value = text.str.to_datetime(_DATE_FORMAT, strict=False, time_unit="us", time_zone="UTC")
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


def parse_flag_or_date(expr: pl.Expr) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """A boolean or a date (a date means true, on that date): ``(flag, date, unparseable)``."""
    flag, _ = parse_bool(expr)
    date, _ = parse_datetime(expr)
    value = pl.when(date.is_not_null()).then(True).otherwise(flag)
    return value.fill_null(False), date, present(expr) & flag.is_null() & date.is_null()


def parse_status(expr: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """Consent status text to ``granted``/``pending``/``withdrawn``/``none``; absent or unreadable is ``unknown``."""
    value = fold_expr(expr).replace_strict(STATUS_WORDS, default=None, return_dtype=pl.String)
    return value.fill_null("unknown"), present(expr) & value.is_null()


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
