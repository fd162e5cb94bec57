"""unlearn_audit.functional.relearn: first step reaching a threshold."""

from __future__ import annotations

import pytest

from unlearn_audit.errors import ConfigError
from unlearn_audit.functional.relearn import relearn_time


def test_relearn_time_hand_computed() -> None:
    steps = [0, 10, 20, 30, 40]
    accuracies = [0.0, 0.2, 0.45, 0.5, 0.9]
    assert relearn_time(steps, accuracies, 0.5) == 30  # >= counts
    assert relearn_time(steps, accuracies, 0.4) == 20
    assert relearn_time(steps, accuracies, 0.0) == 0
    assert isinstance(relearn_time(steps, accuracies, 0.5), int)


def test_relearn_time_not_reached_is_none() -> None:
    assert relearn_time([0, 5, 10], [0.1, 0.2, 0.3], 0.31) is None
    assert relearn_time([7], [0.3], 0.5) is None


def test_relearn_time_first_crossing_even_if_it_drops_again() -> None:
    assert relearn_time([1, 2, 3, 4], [0.1, 0.6, 0.2, 0.7], 0.5) == 2


@pytest.mark.parametrize(
    ("steps", "accuracies", "threshold", "message"),
    [
        ([], [], 0.5, "`steps` must be an array with at least 1 rows"),
        ([0, 1], [0.5], 0.5, r"`accuracies` must be an array of shape \(2,\)"),
        ([0, 2, 1], [0.1, 0.2, 0.3], 0.5, "`steps` must be strictly increasing integers"),
        ([0, 0], [0.1, 0.2], 0.5, "`steps` must be strictly increasing integers"),
        ([0, 0.5], [0.1, 0.2], 0.5, "`steps` must be strictly increasing integers"),
        ([0, 1], [0.1, float("nan")], 0.5, "`accuracies` must be finite"),
        ([0, 1], [0.1, 0.2], float("inf"), "`threshold` must be a finite number"),
        ([0, 1], [0.1, 0.2], "half", "`threshold` must be a finite number"),
    ],
)
def test_relearn_time_validation(steps, accuracies, threshold, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        relearn_time(steps, accuracies, threshold)
