"""Named agents: default module configurations that YAML and ``--set`` refine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from gymnasium import spaces

from biocredit.agents.active_inference import ActiveInferenceAgent
from biocredit.agents.active_inference_config import (
    ActiveInferenceConfig,
    active_inference_config_from_dict,
    pc_network,
)
from biocredit.agents.base import OnlineAgent
from biocredit.agents.config import AgentConfig, agent_config_from_dict
from biocredit.agents.modular import ModularAgent
from biocredit.errors import unknown_name
from biocredit.mappings import merge

Agent = OnlineAgent  # every named agent implements the contract of agents/base.py
AnyAgentConfig = AgentConfig | ActiveInferenceConfig


def _pc_module() -> dict[str, Any]:
    """The active-inference agent's default network (:func:`pc_network`) as a mapping."""
    return asdict(pc_network())


AGENTS: dict[str, dict[str, Any]] = {
    "neuromodulated-ac": {
        "description": "actor and critic trained by hebbian3f with the TD error as the third "
        "factor on eligibility traces; online, batch of one per env, no replay",
        "class": ModularAgent,
        "config": agent_config_from_dict,
        "learner_roles": (("policy", "actor"), ("policy", "critic")),
        # the hidden units' feedback spread (std 0.025 per output unit) keeps them slower than
        # the output units, which start at zero; observations normalised by running statistics
        "defaults": {
            "normalize_observations": True,
            "zero_output_init": True,
            "modules": {
                "policy": {
                    "actor": {
                        "learner": "hebbian3f",
                        "learner_kwargs": {"init": "gaussian", "scale": 0.06},
                        "hidden": [64, 64],
                        "lr": 1e-3,
                    },
                    "critic": {
                        "learner": "hebbian3f",
                        "learner_kwargs": {"scale": 0.025},
                        "hidden": [64, 64],
                        "lr": 3e-3,
                    },
                },
            },
        },
    },
    "eqprop-memory-ac": {
        "description": "energy-based recurrent memory learned by equilibrium propagation "
        "(state persists across steps, no BPTT) feeding an actor-critic whose learners send it "
        "their input errors; for partially observable tasks",
        "class": ModularAgent,
        "config": agent_config_from_dict,
        "learner_roles": (("policy", "actor"), ("policy", "critic")),
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
    "active-inference": {
        "description": "predictive-coding world model (surprise = epistemic value), instrumental "
        "and epistemic Q networks, actions by expected free energy over candidate actions; "
        "every network learns by pc, replay buffer",
        "class": ActiveInferenceAgent,
        "config": active_inference_config_from_dict,
        "learner_roles": (("world_model",), ("value",), ("epistemic",)),
        "defaults": {
            "modules": {
                "world_model": _pc_module(),
                "value": _pc_module(),
                "epistemic": _pc_module(),
            },
        },
    },
}


def list_agents() -> dict[str, str]:
    """Agent names and one-line descriptions."""
    return {name: entry["description"] for name, entry in AGENTS.items()}


def agent_config(name: str, agent_kwargs: dict[str, Any], learner: str | None) -> AnyAgentConfig:
    """The named agent's defaults refined by ``agent_kwargs``; ``learner`` replaces the learners
    of the agent's learner roles (neuromodulated-ac: actor and critic, whereas perception and
    world model keep theirs, as they need errors; active-inference: every module)."""
    if name not in AGENTS:
        raise unknown_name("agent", name, AGENTS)
    entry = AGENTS[name]
    defaults = merge(entry["defaults"], {})
    # the defaults' learner options belong to the defaults' learners: a role given another
    # learner (by ``learner`` or in ``agent_kwargs``) starts from that learner's own defaults
    for path in entry["learner_roles"]:
        default, chosen = _role_nodes(defaults, (path,)), _role_nodes(agent_kwargs, (path,))
        new = learner if learner is not None else (chosen[0].get("learner") if chosen else None)
        if default and new is not None and default[0].get("learner") != new:
            default[0].pop("learner_kwargs", None)
    data = merge(defaults, agent_kwargs)
    if learner is not None:
        for node in _role_nodes(data, entry["learner_roles"]):
            node["learner"] = learner
    build: Callable[[dict[str, Any]], AnyAgentConfig] = entry["config"]
    return build(data)


def _role_nodes(data: dict[str, Any], paths: tuple[tuple[str, ...], ...]) -> list[dict]:
    """The module mappings at ``modules.<path>`` that are present."""
    nodes = []
    for path in paths:
        node = data.get("modules")
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            nodes.append(node)
    return nodes


def make_agent(
    name: str,
    agent_kwargs: dict[str, Any],
    learner: str | None,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    n_envs: int,
) -> Agent:
    """The named agent, configured, for these spaces and ``n_envs`` parallel envs."""
    config = agent_config(name, agent_kwargs, learner)
    return AGENTS[name]["class"](observation_space, action_space, config, n_envs)
