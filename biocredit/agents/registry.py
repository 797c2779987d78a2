"""Named agents: default module configurations that YAML and ``--set`` refine."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from biocredit.agents.actor_critic import ActorCriticConfig
from biocredit.agents.networks import NetworkConfig
from biocredit.errors import ConfigError, closest, unknown_name

AGENTS: dict[str, dict[str, Any]] = {
    "neuromodulated-ac": {
        "description": "actor and critic trained by hebbian3f, TD error as the third factor; "
        "online, batch of one per env, no replay",
        "defaults": {
            "actor": {"learner": "hebbian3f", "hidden": [64, 64], "lr": 1e-3},
            "critic": {"learner": "hebbian3f", "hidden": [64, 64], "lr": 1e-3},
        },
    },
}


def list_agents() -> dict[str, str]:
    """Agent names and one-line descriptions."""
    return {name: entry["description"] for name, entry in AGENTS.items()}


def _check_keys(data: dict[str, Any], cls: type, where: str) -> None:
    valid = [f.name for f in fields(cls)]
    for key in data:
        if key not in valid:
            hint = closest(key, valid)
            raise ConfigError(
                f"Unknown key '{key}' in {where}.{f' Did you mean {hint!r}?' if hint else ''} "
                f"Valid keys: {', '.join(valid)}."
            )


def agent_config(name: str, agent_kwargs: dict[str, Any], learner: str | None) -> ActorCriticConfig:
    """The named agent's defaults refined by ``agent_kwargs``; ``learner`` sets every module's."""
    if name not in AGENTS:
        raise unknown_name("agent", name, AGENTS)
    _check_keys(agent_kwargs, ActorCriticConfig, "agent_kwargs")
    defaults = AGENTS[name]["defaults"]
    roles = {}
    for role in ("actor", "critic"):
        data = {**defaults[role], **agent_kwargs.get(role, {})}
        if learner is not None:
            data["learner"] = learner
        _check_keys(data, NetworkConfig, f"agent_kwargs.{role}")
        roles[role] = NetworkConfig(**data)
    rest = {k: v for k, v in agent_kwargs.items() if k not in roles}
    return ActorCriticConfig(**roles, **rest)
