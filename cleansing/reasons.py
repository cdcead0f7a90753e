"""Reason codes and flags, each with its plain words. Which rule gives a reason, and its class under a
policy, is the decision table's to say (rules.py)."""

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
    text: str
    action: str


class Reason(StrEnum):
    """Why a record ended where it did. ``Reason.X.info`` gives what it means and what to do."""

    INVALID_EMAIL = "INVALID_EMAIL"
    SUPPRESSED = "SUPPRESSED"
    ERASURE_REQUESTED = "ERASURE_REQUESTED"
    OPTED_OUT = "OPTED_OUT"
    HARD_BOUNCE = "HARD_BOUNCE"
    NO_MAIL_DOMAIN = "NO_MAIL_DOMAIN"
    DOMAIN_TYPO = "DOMAIN_TYPO"
    DISPOSABLE_DOMAIN = "DISPOSABLE_DOMAIN"
    THIRD_PARTY_LIST = "THIRD_PARTY_LIST"
    CONSENT_EXPIRED = "CONSENT_EXPIRED"
    RECONFIRM_PENDING = "RECONFIRM_PENDING"
    RECONFIRM_UNANSWERED = "RECONFIRM_UNANSWERED"
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


_INFO: dict[Reason, ReasonInfo] = {
    Reason.INVALID_EMAIL: ReasonInfo(
        "The email address is missing or is not a valid address.",
        "Correct the address in the source if you know it; otherwise delete the record.",
    ),
    Reason.SUPPRESSED: ReasonInfo(
        "The address is on the suppression list (an earlier opt-out or erasure request).",
        "Do not mail it and do not re-import it.",
    ),
    Reason.ERASURE_REQUESTED: ReasonInfo(
        "The person asked to be forgotten; the address was added to the suppression list.",
        "Delete the record from every system that holds it.",
    ),
    Reason.OPTED_OUT: ReasonInfo(
        "The person opted out (unsubscribed, objected or refused consent) and has not opted in again since.",
        "Never mail it, not even to ask again; keep it suppressed.",
    ),
    Reason.HARD_BOUNCE: ReasonInfo(
        "The source marks the address as undeliverable (a hard bounce, repeated soft bounces, or invalid).",
        "Remove it from the mailing list.",
    ),
    Reason.NO_MAIL_DOMAIN: ReasonInfo(
        "The address's domain does not exist or takes no mail.",
        "Remove it; fix the domain if it is a typo you can confirm.",
    ),
    Reason.DOMAIN_TYPO: ReasonInfo(
        "The domain is a known slip of a major mail provider's (gmial.com for gmail.com); mail sent there "
        "reaches a stranger, not the person.",
        "Do not mail it; correct the address to suggested_email in the source if the person confirms it.",
    ),
    Reason.DISPOSABLE_DOMAIN: ReasonInfo("The address is at a disposable (throw-away) mail provider.", "Remove it."),
    Reason.THIRD_PARTY_LIST: ReasonInfo(
        "The address came from a bought, rented or partner list, with no consent given to you.",
        "Delete it: consent given to someone else does not cover your email.",
    ),
    Reason.CONSENT_EXPIRED: ReasonInfo(
        "The consent is too old (or past its end date) to rely on, even to ask again.",
        "Stop mailing and delete or archive the record.",
    ),
    Reason.RECONFIRM_PENDING: ReasonInfo(
        "A reconfirmation was sent and the time to answer it has not run out yet.",
        "Wait for the answer; do not ask again.",
    ),
    Reason.RECONFIRM_UNANSWERED: ReasonInfo(
        "A reconfirmation was sent and not answered in time.",
        "Delete it from the marketing list; do not ask again.",
    ),
    Reason.CONSENT_VALID: ReasonInfo("Dated consent, recent enough to rely on.", "Keep mailing."),
    Reason.NEEDS_DOUBLE_OPT_IN: ReasonInfo(
        "Dated consent, but the policy requires a confirmed double opt-in and there is none.",
        "Send one double opt-in request; keep only those who confirm.",
    ),
    Reason.CONSENT_STALE: ReasonInfo(
        "Real, dated consent that is older than the refresh interval.",
        "Send one reconfirmation email; keep only those who confirm.",
    ),
    Reason.DOI_PENDING: ReasonInfo(
        "A double opt-in was started recently and is not confirmed yet.",
        "Wait for the confirmation, or resend the confirmation email once.",
    ),
    Reason.DOI_NEVER_CONFIRMED: ReasonInfo(
        "A double opt-in was started long ago (or undated) and never confirmed.",
        "Delete it; the person did not complete the sign-up.",
    ),
    Reason.SOFT_OPT_IN: ReasonInfo(
        "An existing customer with a recent purchase (soft opt-in for similar products).",
        "Keep mailing about similar products, with an opt-out in every email.",
    ),
    Reason.CONSENT_UNPROVEN: ReasonInfo(
        "The source claims consent but holds no date or proof of it.",
        "Ask for consent once, or find the proof; do not mail marketing until then.",
    ),
    Reason.LEGITIMATE_INTEREST_ONLY: ReasonInfo(
        "Only legitimate interest is recorded, which does not cover email marketing to individuals.",
        "Do not mail marketing; delete it unless another basis applies.",
    ),
    Reason.NO_CONSENT: ReasonInfo(
        "No consent is recorded at all.", "Do not mail it; delete it from the marketing list."
    ),
    Reason.DUPLICATE: ReasonInfo(
        "Another record of the same person survives in keep or reconfirm.",
        "Merge it into the surviving record (survivor_id) in your CRM.",
    ),
    Reason.UNREADABLE_ROW: ReasonInfo(
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


FLAG_TEXT: dict[str, str] = {
    Flag.ROLE_ACCOUNT: "A role mailbox (info@, sales@, support@, …) rather than one person's: consent from a "
    "shared mailbox is hard to show.",
    Flag.FREE_MAIL: "An address at a free-mail provider (gmail.com, hotmail.com, …); it says nothing about consent.",
    Flag.TYPO_SUSPECTED: "The domain looks like a slip of a common mail domain; suggested_email holds the likely "
    "address.",
    Flag.MX_UNVERIFIED: "The domain could not be checked (a lookup failed, or DNS was not trusted), so no domain "
    "rule discarded it.",
    Flag.VIA_DUPLICATE: "Discarded because another address of the same person carries an opt-out or erasure.",
    Flag.SOURCE_CONFLICT: "The records of this address disagree about its consent status (one granted, another "
    "withdrawn or none); the rules weighed all of it, objections first.",
    Flag.FUTURE_DATE: "A date lies after the as-of date, so it was not taken as evidence.",
    Flag.NUL_REMOVED: "NUL characters were removed from a cell of this row.",
}


def flag_text(flag: str) -> str:
    """What a flag means, in plain words: the ``UNPARSEABLE_<FIELD>`` family included."""
    if flag in FLAG_TEXT:
        return FLAG_TEXT[flag]
    if flag.startswith("UNPARSEABLE_"):
        field = flag.removeprefix("UNPARSEABLE_").lower()
        return (
            f"The source's {field} could not be read; an unreadable objection counts as an objection, and "
            "unreadable consent as none."
        )
    return "A flag this version does not describe."
