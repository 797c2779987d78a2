"""Named agents: default module configurations that YAML and ``--set`` refine."""

from __future__ import annotations

from typing import Any

from biocredit.agents.config import AgentConfig, agent_config_from_dict
from biocredit.errors import unknown_name
from biocredit.mappings import merge

AGENTS: dict[str, dict[str, Any]] = {
    "neuromodulated-ac": {
        "description": "actor and critic trained by hebbian3f with the TD error as the third "
        "factor on eligibility traces; online, batch of one per env, no replay",
        "defaults": {
            "modules": {
                "policy": {
                    "actor": {"learner": "hebbian3f", "hidden": [64, 64], "lr": 1e-3},
                    "critic": {"learner": "hebbian3f", "hidden": [64, 64], "lr": 3e-4},
                },
            },
        },
    },
    "eqprop-memory-ac": {
        "description": "energy-based recurrent memory learned by equilibrium propagation "
        "(state persists across steps, no BPTT) feeding an actor-critic whose learners send it "
        "their input errors; for partially observable tasks",
        "defaults": {
            "modules": {
                "memory": {"kind": "eqprop", "units": 32},
                "policy": {
                    "actor": {"learner": "fa", "hidden": [64], "lr": 1e-3},
                    "critic": {"learner": "fa", "hidden": [64], "lr": 1e-3},
                },
            },
        },
    },
}


def list_agents() -> dict[str, str]:
    """Agent names and one-line descriptions."""
    return {name: entry["description"] for name, entry in AGENTS.items()}


def agent_config(name: str, agent_kwargs: dict[str, Any], learner: str | None) -> AgentConfig:
    """The named agent's defaults refined by ``agent_kwargs``; ``learner`` replaces the actor's
    and critic's learners (perception and world model keep theirs: they need errors)."""
    if name not in AGENTS:
        raise unknown_name("agent", name, AGENTS)
    data = merge(AGENTS[name]["defaults"], agent_kwargs)
    if learner is not None:
        policy = data.setdefault("modules", {}).setdefault("policy", {})
        for role in ("actor", "critic"):
            if isinstance(policy.get(role), dict):
                policy[role]["learner"] = learner
    return agent_config_from_dict(data)
