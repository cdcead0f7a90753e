"""The policy: one frozen, typed object loaded from TOML and passed to every stage."""

from __future__ import annotations

import hashlib
import re
import tomllib
import zoneinfo
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError

DEFAULT_POLICY_PATH = Path(str(resources.files("cleansing.data").joinpath("policy.default.toml")))


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ConsentPolicy(_Section):
    refresh_after_months: int = Field(default=24, ge=0, le=1200)
    """Dated consent younger than this keeps the contact (R9)."""
    expire_after_months: int = Field(default=48, ge=0, le=1200)
    """Dated consent older than this is discarded as expired (R8); in between it is reconfirmed (R10)."""
    engagement_refreshes_consent: bool = True
    """Opens and clicks after the consent count as a newer reference time; they never create consent."""
    require_double_opt_in: bool = False
    """Without a confirmation date, dated consent goes to reconfirm as NEEDS_DOUBLE_OPT_IN."""
    pending_max_days: int = Field(default=30, ge=0, le=3650)
    """A double opt-in pending for longer than this is discarded as never confirmed (R11)."""
    unproven_consent: Literal["reconfirm", "discard"] = "reconfirm"
    """What to do with consent the source claims but cannot date (R13)."""
    reoptin_after_optout: bool = True
    """Evidenced consent later than an opt-out lifts it; when false, any opt-out stands."""
    propagate_opt_out: bool = True
    """An opt-out on one address of a person discards the person's other addresses."""
    third_party_patterns: tuple[str, ...] = (
        r"(?:purchased|bought|rented|leased|acquired) (?:e-?mail )?(?:lists?|leads?|data(?:base)?|contacts?|addresses)",
        r"list (?:rental|purchase)",
        r"(?:lead|data|list) ?(?:vendor|broker)s?",
        r"third[- ]?party",
        r"3rd[- ]?party",
        r"co-?reg(?:istration)?",
        r"partner ?lists?",
        r"partnerlist(?:a|an|or)",
        r"köpta? (?:e-?post)?(?:lista|listan|listor|adresser|leads|register|data)",
        r"hyrda? (?:lista|listan|listor|adresser|register)",
        r"tredje ?parts?\w*",
    )
    """Case-insensitive regular expressions on consent_source and tags that mark a bought, rented or
    partner list. Each matches whole words: "purchased list" is one, "Purchase confirmation page" is not."""

    @field_validator("third_party_patterns")
    @classmethod
    def _compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regular expression ({exc})") from exc
        return value


class SoftOptInPolicy(_Section):
    enabled: bool = True
    """Existing customers may get marketing of similar products without consent (R12)."""
    max_months: int = Field(default=24, ge=0, le=1200)
    """How recent the last purchase must be for the soft opt-in."""


class LegitimateInterestPolicy(_Section):
    action: Literal["discard", "reconfirm", "keep"] = "discard"
    """What to do when legitimate interest is the only recorded basis (R14)."""


class DomainPolicy(_Section):
    check_mx: bool = True
    """Look up every email domain in DNS."""
    discard_disposable: bool = True
    """Discard addresses at disposable mail providers (R6)."""
    canaries: tuple[str, ...] = ("gmail.com", "outlook.com", "yahoo.com")
    """Domains that must resolve for DNS to count as healthy."""
    max_transient_share: float = Field(default=0.2, ge=0, le=1)
    """DNS is unhealthy when more than this share of the run's domains is unknown."""


class ContactPolicy(_Section):
    default_region: str = Field(default="SE", pattern=r"^[A-Z]{2}$")
    """Region (ISO 3166 alpha-2) for phone numbers written without a country code."""
    local_timezone: str = "Europe/Stockholm"
    """Time zone of times written without an offset by tools that export local time (Brevo, Salesforce reports)."""

    @field_validator("local_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Stockholm") from exc
        return value


class ReportPolicy(_Section):
    quarantine_warn_share: float = Field(default=0.01, ge=0, le=1)
    """A run whose quarantine share is above this ends in a warning."""


class OutputPolicy(_Section):
    spreadsheets: Literal["auto", "always", "never"] = "auto"
    """keep.xlsx, reconfirm.xlsx and discard.xlsx beside the CSVs, for people who open the lists in Excel:
    every cell is text (or a row number), so nothing runs as a formula and no locale splits a row. ``auto``
    writes them when the run has at most ``spreadsheet_max_records`` records: they cost about 16 s per
    100,000 rows, and a list that long is past what a spreadsheet is good for."""
    spreadsheet_max_records: int = Field(default=50_000, ge=0)


class ReconfirmPolicy(_Section):
    answer_days: int = Field(default=30, ge=1, le=3650)
    """Days a person has to answer a reconfirmation (recorded with cleanse reconfirm-sent) before the
    address is discarded as RECONFIRM_UNANSWERED (R16); until then it waits as RECONFIRM_PENDING."""


class RetentionPolicy(_Section):
    keep_runs: int = Field(default=7, ge=1)
    """After a run is published, run folders older than the newest ``keep_runs`` lose their personal-data
    files (the lists, decisions, review); manifest.json, report.json and report.html stay."""
    keep_days: int = Field(default=30, ge=0)
    """So do run folders published more than ``keep_days`` days ago, whichever limit is reached first."""


class SchedulePolicy(_Section):
    cron: str = "0 2 * * *"
    """When the nightly deployment runs."""
    timezone: str = "Europe/Stockholm"
    """The time zone of the cron schedule."""


class Policy(_Section):
    """Every decision the pipeline makes that a data-protection officer may want to change."""

    version: str = "default"
    consent: ConsentPolicy = ConsentPolicy()
    soft_opt_in: SoftOptInPolicy = SoftOptInPolicy()
    legitimate_interest: LegitimateInterestPolicy = LegitimateInterestPolicy()
    domains: DomainPolicy = DomainPolicy()
    contacts: ContactPolicy = ContactPolicy()
    report: ReportPolicy = ReportPolicy()
    output: OutputPolicy = OutputPolicy()
    retention: RetentionPolicy = RetentionPolicy()
    reconfirm: ReconfirmPolicy = ReconfirmPolicy()
    schedule: SchedulePolicy = SchedulePolicy()


@dataclass(frozen=True)
class LoadedPolicy:
    """The policy with the text and hash it came from, for the manifest."""

    policy: Policy
    path: str
    text: str
    sha256: str


def load_policy(path: str | Path | None = None) -> LoadedPolicy:
    """Load and validate a policy TOML; every problem is reported at once in one ConfigError."""
    source = Path(path) if path is not None else DEFAULT_POLICY_PATH
    fix = "Compare it with data/policy.default.toml and correct the keys named."
    if not source.is_file():
        raise ConfigError(
            "the policy file does not exist.",
            path=source,
            fix="Pass an existing TOML file with --policy, or leave --policy out for the default.",
        )
    text = source.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the policy file is not valid TOML ({exc}).", path=source, fix=fix) from exc
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: "
            f"{'unknown key' if err['type'] == 'extra_forbidden' else err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"the policy has {exc.error_count()} problem(s): {problems}.", path=source, fix=fix) from exc
    return LoadedPolicy(policy, str(source), text, hashlib.sha256(text.encode()).hexdigest())
