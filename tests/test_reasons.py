import dataclasses

import pytest

from cleansing.policy import Policy
from cleansing.reasons import Klass, Reason
from cleansing.report import rule_table
from cleansing.rules import decision_table


@pytest.mark.parametrize("reason", list(Reason), ids=lambda r: r.value)
def test_every_reason_has_plain_words_and_one_row_in_the_decision_table(reason: Reason) -> None:
    info = reason.info
    assert len(info.text) > 20 and info.text.endswith(".")
    assert len(info.action) > 5
    rows = [row for row in decision_table(Policy()) if row.reason == reason]
    assert len(rows) == 1 and isinstance(rows[0].klass, Klass) and rows[0].rule


def test_rules_r0_to_r15_each_have_a_reason() -> None:
    rules = {row.rule for row in decision_table(Policy())}
    assert {f"R{i}" for i in range(16)} <= rules


def test_no_two_rows_of_the_rule_table_share_a_condition() -> None:
    for policy in (Policy(), Policy.model_validate({"consent": {"require_double_opt_in": True}})):
        conditions = [row["condition"] for row in rule_table(policy)]
        assert len(conditions) == len(set(conditions))


def test_the_rule_table_gives_the_class_the_policy_sets() -> None:
    strict = Policy.model_validate(
        {"consent": {"unproven_consent": "discard"}, "legitimate_interest": {"action": "keep"}}
    )
    table = {row["reason"]: row for row in rule_table(strict)}
    assert table["CONSENT_UNPROVEN"]["class"] == "discard" and table["LEGITIMATE_INTEREST_ONLY"]["class"] == "keep"
    default = {row["reason"]: row for row in rule_table(Policy())}
    assert default["NEEDS_DOUBLE_OPT_IN"]["condition"].endswith("(off by policy)")
    assert "double opt-in" not in default["CONSENT_VALID"]["condition"]
    doi = Policy.model_validate({"consent": {"require_double_opt_in": True}})
    rows = {row.reason: row for row in decision_table(doi)}
    assert rows[Reason.NEEDS_DOUBLE_OPT_IN].active and "confirmed" in rows[Reason.CONSENT_VALID].condition
    assert not dataclasses.asdict(rows[Reason.NEEDS_DOUBLE_OPT_IN])["condition"].endswith("(off by policy)")
