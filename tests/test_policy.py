from pathlib import Path

import pytest
from pydantic import ValidationError

from cleansing.errors import ConfigError
from cleansing.policy import DEFAULT_POLICY_PATH, load_policy


def test_bundled_default_policy_matches_the_spec_values() -> None:
    loaded = load_policy()
    p = loaded.policy
    assert loaded.path == str(DEFAULT_POLICY_PATH)
    assert (p.consent.refresh_after_months, p.consent.expire_after_months) == (24, 48)
    assert p.consent.pending_max_days == 30 and p.consent.unproven_consent == "reconfirm"
    assert p.soft_opt_in.max_months == 24 and p.legitimate_interest.action == "discard"
    assert p.schedule.cron == "0 2 * * *" and p.schedule.timezone == "Europe/Stockholm"
    assert len(loaded.sha256) == 64


def test_policy_is_frozen() -> None:
    policy = load_policy().policy
    with pytest.raises(ValidationError):
        policy.consent.refresh_after_months = 1  # type: ignore[misc]


def test_every_problem_of_a_bad_policy_is_reported_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "policy.toml"
    bad.write_text(
        '[consent]\nrefresh_after_months = -3\ncolour = "blue"\nthird_party_patterns = ["(unclosed"]\n'
        '[legitimate_interest]\naction = "maybe"\n[nonsense]\nx = 1\n'
    )
    with pytest.raises(ConfigError) as err:
        load_policy(bad)
    message = str(err.value)
    for part in (
        "consent.refresh_after_months",
        "consent.colour: unknown key",
        "third_party_patterns",
        "legitimate_interest.action",
        "nonsense: unknown key",
        str(bad),
    ):
        assert part in message


def test_a_policy_that_is_not_toml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "p.toml"
    bad.write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_policy(bad)


def test_a_missing_policy_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_policy(tmp_path / "nope.toml")
