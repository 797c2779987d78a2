"""Resolve a run's config from its layers (defaults, Zoo hyperparameters, file, flags, --set)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from biocredit.mappings import merge
from biocredit.training.config import (
    RunConfig,
    apply_override,
    config_from_dict,
    parse_override,
    read_yaml,
)
from biocredit.training.hyperparams import zoo_entry


def resolve_config(
    config_file: str | Path | None = None,
    flags: dict[str, Any] | None = None,
    overrides: list[str] | None = None,
) -> RunConfig:
    """Merge, lowest priority first: defaults, ``experiments/hyperparams/<algo>.yaml[env]``,
    ``config_file``, ``flags`` (command-line options that were given) and ``overrides``
    (``key.sub=value`` strings).
    """
    user: dict[str, Any] = read_yaml(config_file) if config_file else {}
    config_from_dict(_agent_defaults(user), source=str(config_file))  # file mistakes first
    user = merge(user, {k: v for k, v in (flags or {}).items() if v is not None})
    for text in overrides or []:
        apply_override(user, *parse_override(text))
    user = _agent_defaults(user)
    chosen = config_from_dict(user, source="the command line")  # validates env/algo keys too
    if chosen.agent is not None:
        tuned = zoo_entry(chosen.agent, chosen.env, kwargs_key="agent_kwargs")
    else:
        tuned = zoo_entry(chosen.algo, chosen.env)
    layered = merge(tuned, user)
    return config_from_dict(layered, source="the resolved config")


def _agent_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """A native agent runs with ``algo: online`` and, unless told, its modules' own learners."""
    if data.get("agent") is None:
        return data
    return {"algo": "online", "learner": None, **data}
