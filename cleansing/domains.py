"""Domain check: the mail status of every distinct email domain.

Only the switched-off form exists yet: every record gets ``mx_status = not_checked`` and DNS
counts as healthy, so R5 and R6 never fire.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

NOT_CHECKED = "not_checked"
PERMANENT_FAILURES = ["domain_missing", "no_mail", "mx_unusable"]


@dataclass(frozen=True)
class DnsHealth:
    checked: bool
    healthy: bool
    detail: str


def check_domains(contacts: pl.DataFrame) -> tuple[pl.DataFrame, DnsHealth]:
    """Add ``mx_status`` and ``disposable`` per record."""
    out = contacts.with_columns(
        pl.lit(NOT_CHECKED).alias("mx_status"),
        pl.lit(False).alias("disposable"),
    )
    return out, DnsHealth(checked=False, healthy=True, detail="the domain check was not run")
