"""The shared ``check_*`` validators."""

from __future__ import annotations

import math

import pytest

from unlearn_audit._validation import check_nonnegative
from unlearn_audit.errors import ConfigError


def test_check_nonnegative_accepts_and_converts() -> None:
    assert check_nonnegative(0, "alpha") == 0.0
    assert isinstance(check_nonnegative(2, "alpha"), float)
    assert check_nonnegative(0.5, "lr", positive=True) == 0.5


@pytest.mark.parametrize(
    ("value", "positive", "message"),
    [
        (-1, False, r"^`w` must be a finite number >= 0; got -1\.$"),
        (math.inf, False, r"^`w` must be a finite number >= 0; got inf\.$"),
        (math.nan, True, r"^`w` must be a finite number > 0; got nan\.$"),
        (0, True, r"^`w` must be a finite number > 0; got 0\.$"),
        (True, False, r"^`w` must be a finite number >= 0; got True\.$"),
        ("1", False, r"^`w` must be a finite number >= 0; got '1'\.$"),
    ],
)
def test_check_nonnegative_rejects(value: object, positive: bool, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_nonnegative(value, "w", positive=positive)


def test_check_nonnegative_says_what_zero_means() -> None:
    with pytest.raises(ConfigError, match=r"^`lr` must be a number > 0, or 0 for the default; "):
        check_nonnegative(-0.1, "lr", expected="a number > 0, or 0 for the default")
