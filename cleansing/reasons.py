"""Reason codes and flags: one enum, each code with its class, rule and plain-words text."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Klass(StrEnum):
    """The partition a record ends in."""

    KEEP = "keep"
    RECONFIRM = "reconfirm"
    DISCARD = "discard"
    QUARANTINE = "quarantine"


@dataclass(frozen=True)
class ReasonInfo:
    klass: Klass
    rule: str
    text: str
    action: str


class Reason(StrEnum):
    """Why a record ended where it did. ``Reason.X.info`` gives class, rule and explanation."""

    INVALID_EMAIL = "INVALID_EMAIL"
    SUPPRESSED = "SUPPRESSED"
    ERASURE_REQUESTED = "ERASURE_REQUESTED"
    OPTED_OUT = "OPTED_OUT"
    HARD_BOUNCE = "HARD_BOUNCE"
    NO_MAIL_DOMAIN = "NO_MAIL_DOMAIN"
    DISPOSABLE_DOMAIN = "DISPOSABLE_DOMAIN"
    THIRD_PARTY_LIST = "THIRD_PARTY_LIST"
    CONSENT_EXPIRED = "CONSENT_EXPIRED"
    CONSENT_VALID = "CONSENT_VALID"
    NEEDS_DOUBLE_OPT_IN = "NEEDS_DOUBLE_OPT_IN"
    CONSENT_STALE = "CONSENT_STALE"
    DOI_PENDING = "DOI_PENDING"
    DOI_NEVER_CONFIRMED = "DOI_NEVER_CONFIRMED"
    SOFT_OPT_IN = "SOFT_OPT_IN"
    CONSENT_UNPROVEN = "CONSENT_UNPROVEN"
    LEGITIMATE_INTEREST_ONLY = "LEGITIMATE_INTEREST_ONLY"
    NO_CONSENT = "NO_CONSENT"
    DUPLICATE = "DUPLICATE"
    UNREADABLE_ROW = "UNREADABLE_ROW"

    @property
    def info(self) -> ReasonInfo:
        return _INFO[self]


_D, _K, _R, _Q = Klass.DISCARD, Klass.KEEP, Klass.RECONFIRM, Klass.QUARANTINE

# The class given here is the default; R9, R11, R13 and R14 depend on the policy (see classify).
_INFO: dict[Reason, ReasonInfo] = {
    Reason.INVALID_EMAIL: ReasonInfo(
        _D,
        "R0",
        "The email address is missing or is not a valid address.",
        "Correct the address in the source if you know it; otherwise delete the record.",
    ),
    Reason.SUPPRESSED: ReasonInfo(
        _D,
        "R1",
        "The address is on the suppression list (an earlier opt-out or erasure request).",
        "Do not mail it and do not re-import it.",
    ),
    Reason.ERASURE_REQUESTED: ReasonInfo(
        _D,
        "R2",
        "The person asked to be forgotten; the address was added to the suppression list.",
        "Delete the record from every system that holds it.",
    ),
    Reason.OPTED_OUT: ReasonInfo(
        _D,
        "R3",
        "The person opted out (unsubscribed, objected or refused consent) and has not opted in again since.",
        "Never mail it, not even to ask again; keep it suppressed.",
    ),
    Reason.HARD_BOUNCE: ReasonInfo(
        _D,
        "R4",
        "The source marks the address as undeliverable (a hard bounce, repeated soft bounces, or invalid).",
        "Remove it from the mailing list.",
    ),
    Reason.NO_MAIL_DOMAIN: ReasonInfo(
        _D,
        "R5",
        "The address's domain does not exist or takes no mail.",
        "Remove it; fix the domain if it is a typo you can confirm.",
    ),
    Reason.DISPOSABLE_DOMAIN: ReasonInfo(
        _D, "R6", "The address is at a disposable (throw-away) mail provider.", "Remove it."
    ),
    Reason.THIRD_PARTY_LIST: ReasonInfo(
        _D,
        "R7",
        "The address came from a bought, rented or partner list, with no consent given to you.",
        "Delete it: consent given to someone else does not cover your email.",
    ),
    Reason.CONSENT_EXPIRED: ReasonInfo(
        _D,
        "R8",
        "The consent is too old (or past its end date) to rely on, even to ask again.",
        "Stop mailing and delete or archive the record.",
    ),
    Reason.CONSENT_VALID: ReasonInfo(_K, "R9", "Dated consent, recent enough to rely on.", "Keep mailing."),
    Reason.NEEDS_DOUBLE_OPT_IN: ReasonInfo(
        _R,
        "R9",
        "Dated consent, but the policy requires a confirmed double opt-in and there is none.",
        "Send one double opt-in request; keep only those who confirm.",
    ),
    Reason.CONSENT_STALE: ReasonInfo(
        _R,
        "R10",
        "Real, dated consent that is older than the refresh interval.",
        "Send one reconfirmation email; keep only those who confirm.",
    ),
    Reason.DOI_PENDING: ReasonInfo(
        _R,
        "R11",
        "A double opt-in was started recently and is not confirmed yet.",
        "Wait for the confirmation, or resend the confirmation email once.",
    ),
    Reason.DOI_NEVER_CONFIRMED: ReasonInfo(
        _D,
        "R11",
        "A double opt-in was started long ago (or undated) and never confirmed.",
        "Delete it; the person did not complete the sign-up.",
    ),
    Reason.SOFT_OPT_IN: ReasonInfo(
        _K,
        "R12",
        "An existing customer with a recent purchase (soft opt-in for similar products).",
        "Keep mailing about similar products, with an opt-out in every email.",
    ),
    Reason.CONSENT_UNPROVEN: ReasonInfo(
        _R,
        "R13",
        "The source claims consent but holds no date or proof of it.",
        "Ask for consent once, or find the proof; do not mail marketing until then.",
    ),
    Reason.LEGITIMATE_INTEREST_ONLY: ReasonInfo(
        _D,
        "R14",
        "Only legitimate interest is recorded, which does not cover email marketing to individuals.",
        "Do not mail marketing; delete it unless another basis applies.",
    ),
    Reason.NO_CONSENT: ReasonInfo(
        _D, "R15", "No consent is recorded at all.", "Do not mail it; delete it from the marketing list."
    ),
    Reason.DUPLICATE: ReasonInfo(
        _D,
        "dedupe",
        "Another record of the same person survives in keep or reconfirm.",
        "Merge it into the surviving record (survivor_id) in your CRM.",
    ),
    Reason.UNREADABLE_ROW: ReasonInfo(
        _Q,
        "read",
        "The row could not be read (bad quoting, wrong number of fields, undecodable bytes).",
        "Fix the row in the source file and run again.",
    ),
}


class Flag(StrEnum):
    """Flags travel with a record and feed the report; they never change its class."""

    ROLE_ACCOUNT = "ROLE_ACCOUNT"
    FREE_MAIL = "FREE_MAIL"
    TYPO_SUSPECTED = "TYPO_SUSPECTED"
    MX_UNVERIFIED = "MX_UNVERIFIED"
    VIA_DUPLICATE = "VIA_DUPLICATE"
    SOURCE_CONFLICT = "SOURCE_CONFLICT"
    FUTURE_DATE = "FUTURE_DATE"
    NUL_REMOVED = "NUL_REMOVED"


def unparseable_flag(field: str) -> str:
    """The flag for a present but unparseable evidence value: ``UNPARSEABLE_CONSENT_AT``."""
    return f"UNPARSEABLE_{field.upper()}"
