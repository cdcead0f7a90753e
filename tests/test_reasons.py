import pytest

from cleansing.reasons import Klass, Reason


@pytest.mark.parametrize("reason", list(Reason), ids=lambda r: r.value)
def test_every_reason_has_class_rule_and_plain_words(reason: Reason) -> None:
    info = reason.info
    assert isinstance(info.klass, Klass)
    assert info.rule
    assert len(info.text) > 20 and info.text.endswith(".")
    assert len(info.action) > 5


def test_rules_r0_to_r15_each_have_a_reason() -> None:
    rules = {r.info.rule for r in Reason}
    assert {f"R{i}" for i in range(16)} <= rules
