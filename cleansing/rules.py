"""The decision table: one row per outcome, in the order the rules are tried (first match wins).

The one place that says which condition gives which reason and class under a policy. Classification
(classify.py) evaluates the rows in this order, and the report prints them with these words, so the
table a data-protection officer reads is the table the run applied.
"""

from __future__ import annotations

from dataclasses import dataclass

from .policy import Policy
from .reasons import Klass, Reason


@dataclass(frozen=True)
class Rule:
    rule: str
    condition: str
    reason: Reason
    klass: Klass
    active: bool = True  # False: the policy switches this row off, and it never matches

    def as_dict(self) -> dict[str, str]:
        return {
            "rule": self.rule,
            "condition": self.condition + ("" if self.active else " (off by policy)"),
            "reason": self.reason.value,
            "class": self.klass.value,
        }


def decision_table(policy: Policy) -> list[Rule]:
    """Every row of the decision table under ``policy``, with its numbers in the words."""
    c = policy.consent
    D, K, R = Klass.DISCARD, Klass.KEEP, Klass.RECONFIRM
    since_optout = ", with no evidenced consent since" if c.reoptin_after_optout else ""
    doi = c.require_double_opt_in
    return [
        Rule("R0", "the email address is missing or not a valid address (judged per record)", Reason.INVALID_EMAIL, D),
        Rule(
            "R1",
            "the address is on the suppression list" + since_optout + ", and today's inputs hold no erasure "
            "request or opt-out of it (R2 and R3 name those)",
            Reason.SUPPRESSED,
            D,
        ),
        Rule("R2", "erasure requested", Reason.ERASURE_REQUESTED, D),
        Rule(
            "R3",
            "opted out or refused" + since_optout + " (an unreadable or undated objection always stands)",
            Reason.OPTED_OUT,
            D,
        ),
        Rule(
            "R4",
            "the source marks the address undeliverable (hard bounce, cleaned), unless it was confirmed after that",
            Reason.HARD_BOUNCE,
            D,
        ),
        Rule(
            "R5",
            "the domain is a known slip of a major mail provider's (gmial.com for gmail.com): mail sent there "
            "reaches a stranger; the address with the provider's domain is in suggested_email",
            Reason.DOMAIN_TYPO,
            D,
        ),
        Rule(
            "R5",
            "the domain does not exist or takes no mail (only when the domain check ran and DNS was healthy)",
            Reason.NO_MAIL_DOMAIN,
            D,
        ),
        Rule(
            "R6",
            "the domain, or a domain it is under, is a disposable (throw-away) mail provider",
            Reason.DISPOSABLE_DOMAIN,
            D,
            active=policy.domains.discard_disposable,
        ),
        Rule("R7", "from a bought, rented or partner list (third party)", Reason.THIRD_PARTY_LIST, D),
        Rule(
            "R8",
            f"evidenced consent older than {c.expire_after_months} months, or past its end date",
            Reason.CONSENT_EXPIRED,
            D,
        ),
        Rule(
            "R16",
            f"a reconfirmation was sent (cleanse reconfirm-sent) less than {policy.reconfirm.answer_days} days ago "
            "and no consent is dated since",
            Reason.RECONFIRM_PENDING,
            R,
        ),
        Rule(
            "R16",
            f"a reconfirmation was sent {policy.reconfirm.answer_days} days ago or more and no consent is dated since",
            Reason.RECONFIRM_UNANSWERED,
            D,
        ),
        Rule(
            "R9",
            f"evidenced consent within {c.refresh_after_months} months, and no confirmed double opt-in, which "
            "the policy requires",
            Reason.NEEDS_DOUBLE_OPT_IN,
            R,
            active=doi,
        ),
        Rule(
            "R9",
            f"evidenced consent within {c.refresh_after_months} months"
            + (", confirmed by double opt-in" if doi else ""),
            Reason.CONSENT_VALID,
            K,
        ),
        Rule(
            "R10",
            f"evidenced consent within {c.expire_after_months} months (older than {c.refresh_after_months})",
            Reason.CONSENT_STALE,
            R,
        ),
        Rule(
            "R11",
            f"double opt-in pending, started within {c.pending_max_days} days",
            Reason.DOI_PENDING,
            R,
        ),
        Rule(
            "R11",
            f"double opt-in pending, started more than {c.pending_max_days} days ago or undated",
            Reason.DOI_NEVER_CONFIRMED,
            D,
        ),
        Rule(
            "R12",
            f"a customer with a purchase within {policy.soft_opt_in.max_months} months and no refusal (soft opt-in)",
            Reason.SOFT_OPT_IN,
            K,
            active=policy.soft_opt_in.enabled,
        ),
        Rule(
            "R13",
            "consent claimed without a date or proof, or in words that cannot be read",
            Reason.CONSENT_UNPROVEN,
            Klass(c.unproven_consent),
        ),
        Rule(
            "R14",
            "legitimate interest is the only basis recorded",
            Reason.LEGITIMATE_INTEREST_ONLY,
            Klass(policy.legitimate_interest.action),
        ),
        Rule("R15", "anything else: no consent recorded", Reason.NO_CONSENT, D),
        Rule(
            "dedupe",
            "another record of the same address or person survives in keep or reconfirm (after the rules above)",
            Reason.DUPLICATE,
            D,
        ),
        Rule(
            "read",
            "the row could not be read (bad quoting, wrong number of fields, undecodable bytes)",
            Reason.UNREADABLE_ROW,
            Klass.QUARANTINE,
        ),
    ]
