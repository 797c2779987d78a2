"""The learners' option checks: one message form, and every numeric option of every registered
learner refuses a value of the wrong type or out of range by name."""

from __future__ import annotations

import inspect
import math

import pytest

from biocredit.errors import ConfigError
from biocredit.learners.options import check_count, check_flag, check_number
from biocredit.learners.registry import learner_class, list_learners


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"value": 0}, "x 'k' must be > 0, got 0."),
        ({"value": -1, "closed": "low"}, "x 'k' must be >= 0, got -1."),
        ({"value": 1.5, "high": 1, "closed": "high"}, "x 'k' must be in (0, 1], got 1.5."),
        ({"value": 1, "high": 1, "closed": "low"}, "x 'k' must be in [0, 1), got 1."),
        ({"value": 2, "high": 1, "closed": "both"}, "x 'k' must be in [0, 1], got 2."),
        ({"value": "much"}, "x 'k' must be a number > 0, got 'much'."),
        ({"value": True}, "x 'k' must be a number > 0, got True."),
        ({"value": None}, "x 'k' must be a number > 0, got None."),
        ({"value": math.nan}, "x 'k' must be > 0, got nan."),
        ({"value": math.inf}, "x 'k' must be > 0, got inf."),
        ({"value": 0, "why": "what it does", "hint": 0.5}, "got 0: what it does. Try k: 0.5."),
    ],
)
def test_check_number_refuses_with_one_message_form(kwargs, message):
    with pytest.raises(ConfigError) as info:
        check_number("x", "k", **kwargs)
    assert message in str(info.value)


def test_check_number_returns_a_float_inside_the_interval():
    assert check_number("x", "k", 1) == 1.0 and isinstance(check_number("x", "k", 1), float)
    assert check_number("x", "k", 0, closed="low") == 0.0
    assert check_number("x", "k", 1, 0, 1, closed="both") == 1.0


@pytest.mark.parametrize("value", [0, 2.0, True, "3", -1])
def test_check_count_refuses_what_is_not_an_integer_at_least_low(value):
    with pytest.raises(ConfigError, match=r"x 'k' must be an integer >= 1, got"):
        check_count("x", "k", value)


def test_check_count_takes_null_only_when_optional():
    assert check_count("x", "k", None, optional=True) is None
    assert check_count("x", "k", 3, optional=True) == 3
    with pytest.raises(ConfigError, match=r"an integer >= 1, got None"):
        check_count("x", "k", None)
    with pytest.raises(ConfigError, match=r"an integer >= 0 or null, got -1"):
        check_count("x", "k", -1, 0, optional=True)


def test_check_flag():
    assert check_flag("x", "k", False) is False
    with pytest.raises(ConfigError, match=r"x 'k' must be true or false, got 'yes'"):
        check_flag("x", "k", "yes")


def _numeric_options() -> list[tuple[str, str]]:
    """(learner, option) for every option whose default is a number (not a flag, not null)."""
    options = []
    for name in list_learners():
        for param in inspect.signature(learner_class(name)).parameters.values():
            default = param.default
            if isinstance(default, int | float) and not isinstance(default, bool):
                options.append((name, param.name))
    return options


@pytest.mark.parametrize("learner, option", _numeric_options())
@pytest.mark.parametrize("value", ["much", math.nan, -1])
def test_every_numeric_learner_option_refuses_bad_values_by_name(learner, option, value):
    with pytest.raises(ConfigError) as info:
        learner_class(learner)(**{option: value})
    assert f"'{option}' must be" in str(info.value)
