"""One exception hierarchy for user mistakes.

Every error a user can cause (a wrong name, a bad config value, an unreadable file) is a
:class:`BiocreditError`. The CLI prints it as one paragraph and exits with code 2; anything else
is an internal bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BiocreditError(Exception):
    """A user mistake: what was received, what was expected, how to fix it."""


class ConfigError(BiocreditError, ValueError):
    """A configuration key, type or value that cannot be used."""


class UnknownNameError(ConfigError, KeyError):
    """A name (learner, algorithm, environment, activation ...) that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class RunDirError(BiocreditError, FileNotFoundError):
    """A run folder or checkpoint that is missing or unreadable."""


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The valid choice closest to ``name``, or ``None`` when nothing is close."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return matches[0] if matches else None


def check_keys(keys: Iterable[str], valid: Iterable[str], where: str) -> None:
    """Raise a :class:`ConfigError` for the first of ``keys`` not in ``valid``, suggesting the
    closest valid key: "Unknown key 'stpes' in <where>. Did you mean 'steps'? Valid keys: ..."."""
    valid = list(valid)
    for key in keys:
        if key not in valid:
            suggestion = closest(key, valid)
            hint = f" Did you mean '{suggestion}'?" if suggestion else ""
            raise ConfigError(
                f"Unknown key '{key}' in {where}.{hint} Valid keys: {', '.join(valid)}."
            )


MAX_LISTED = 12


def unknown_name(
    kind: str, name: str, choices: Iterable[str], full_list: str = "", where: str = ""
) -> UnknownNameError:
    """Build the error for an unknown ``kind`` called ``name``, suggesting the closest choice.

    Up to :data:`MAX_LISTED` choices are listed; past that, the nearest few and ``full_list``
    (how to see them all). ``where`` (a key path, a file) says where the name was given.
    """
    choices = sorted(choices)
    suggestion = closest(name, choices)
    hint = f" Did you mean '{suggestion}'?" if suggestion else ""
    if len(choices) <= MAX_LISTED:
        listing = f"Valid choices: {', '.join(choices)}."
    else:
        near = difflib.get_close_matches(name, choices, n=5, cutoff=0.0)
        listing = f"Nearest of {len(choices)} valid choices: {', '.join(near)}. {full_list}"
    at = f" in {where}" if where else ""
    return UnknownNameError(f"Unknown {kind} '{name}'{at}.{hint} {listing}".strip())
