"""Checks of a learner's options, one message form for every learner.

A learner's options arrive from YAML, ``--set`` or Python, so a number may come as a string, a
boolean, a NaN or an infinity. Each check names the learner, the option, what it must be and the
value it got, says what the option does where that helps, and suggests a value:

    dtp 'inverse_rate' must be in (0, 1], got 1.5. Try inverse_rate: 0.5.
    ff 'bank_size' must be an integer >= 2, got 1: negatives mix the features of that many
    recent observations. Try bank_size: 1024.
"""

from __future__ import annotations

import math
from typing import Any

from biocredit.errors import ConfigError

CLOSED_ENDS = ("", "low", "high", "both")


def _message(owner: str, key: str, requirement: str, value: Any, why: str, hint: Any) -> str:
    text = f"{owner} '{key}' must be {requirement}, got {value!r}"
    text += f": {why}." if why else "."
    return text + (f" Try {key}: {hint}." if hint is not None else "")


def check_number(
    owner: str,
    key: str,
    value: Any,
    low: float = 0.0,
    high: float = math.inf,
    *,
    closed: str = "",
    why: str = "",
    hint: Any = None,
) -> float:
    """``value`` as a float if it is a finite number between ``low`` and ``high``, else a
    :class:`ConfigError` naming ``owner``'s option ``key``.

    :param closed: the ends that belong to the interval: ``""`` (``(low, high)``), ``"low"``
        (``[low, high)``), ``"high"`` (``(low, high]``) or ``"both"`` (``[low, high]``)
    :param why: what the option does, said after the refused value
    :param hint: a value to suggest
    """
    assert closed in CLOSED_ENDS, closed
    low_closed, high_closed = closed in ("low", "both"), closed in ("high", "both")
    if high == math.inf:
        requirement = f"{'>=' if low_closed else '>'} {low:g}"
    else:
        left, right = "[" if low_closed else "(", "]" if high_closed else ")"
        requirement = f"in {left}{low:g}, {high:g}{right}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(_message(owner, key, f"a number {requirement}", value, why, hint))
    above = value >= low if low_closed else value > low
    below = value <= high if high_closed else value < high
    if not (above and below and math.isfinite(value)):
        raise ConfigError(_message(owner, key, requirement, value, why, hint))
    return float(value)


def check_count(
    owner: str,
    key: str,
    value: Any,
    low: int = 1,
    *,
    optional: bool = False,
    why: str = "",
    hint: Any = None,
) -> int | None:
    """``value`` if it is an integer ``>= low`` (or ``None`` when ``optional``), else a
    :class:`ConfigError` naming ``owner``'s option ``key``; booleans and ``2.0`` are refused."""
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        requirement = f"an integer >= {low}" + (" or null" if optional else "")
        raise ConfigError(_message(owner, key, requirement, value, why, hint))
    return value


def check_flag(owner: str, key: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False``, else a :class:`ConfigError`."""
    if not isinstance(value, bool):
        raise ConfigError(f"{owner} '{key}' must be true or false, got {value!r}.")
    return value
