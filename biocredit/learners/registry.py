"""Learner registry: ``make_learner("dfa", **kwargs)``, ``list_learners()`` and the lists of
learners of one signal kind that messages and docs print."""

from __future__ import annotations

from typing import Any, TypeVar

from biocredit.errors import ConfigError, unknown_name
from biocredit.learners.base import Learner

#: the learner used when none is named: the CLI's and every biocredit SB3 policy's default
DEFAULT_LEARNER = "dfa"

_REGISTRY: dict[str, type[Learner]] = {}

L = TypeVar("L", bound=type[Learner])


def register(cls: L) -> L:
    """Class decorator adding a learner to the registry under ``cls.name``."""
    if cls.name in _REGISTRY:
        raise RuntimeError(f"Learner name '{cls.name}' is registered twice.")
    _REGISTRY[cls.name] = cls
    return cls


def list_learners(kind: type[Learner] = Learner) -> list[str]:
    """Names of the registered learners that are subclasses of ``kind``, sorted."""
    return sorted(name for name, cls in _REGISTRY.items() if issubclass(cls, kind))


def learners_of_kind(kind: type[Learner]) -> str:
    """``"bp, dfa, fa ..."``: the learners of one kind, for error messages and docs."""
    return ", ".join(list_learners(kind))


def configurations() -> list[tuple[str, str, dict[str, Any]]]:
    """``(label, learner name, options)`` for every learner's defaults and named variants."""
    return [
        (label, name, options)
        for name in list_learners()
        for label, options in _REGISTRY[name].configurations().items()
    ]


SIGNAL_PHRASES = {
    "error": "an error signal",
    "target": "a target signal",
    "modulator": "a modulator signal",
    "none": "its inputs alone",
}


def learns_from(name: str) -> str:
    """What learner ``name`` learns from, for messages: ``"a modulator signal"``, ``"its inputs
    alone"`` ..."""
    signal = learner_class(name).signal
    return SIGNAL_PHRASES.get(signal, f"a {signal} signal")


def learner_class(name: str) -> type[Learner]:
    """The class registered as ``name``; unknown names raise with the closest valid one."""
    if name not in _REGISTRY:
        raise unknown_name("learner", name, _REGISTRY)
    return _REGISTRY[name]


def make_learner(name: str, **kwargs: Any) -> Learner:
    """Create a learner by name; bad keyword arguments raise a :class:`ConfigError`."""
    cls = learner_class(name)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(
            f"Learner '{name}' does not accept these options: {exc}. "
            f"See `biocredit learners` and the {cls.__name__} docstring for its options."
        ) from None
