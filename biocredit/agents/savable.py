"""``save`` / ``load`` for native agents: what an agent is rebuilt from, gathered here; the
folder itself is written and read by :mod:`biocredit.checkpoints` (safetensors and JSON, no
pickle)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

from gymnasium import spaces
from torch import nn

from biocredit.checkpoints import (
    load_module,
    read_agent_meta,
    replaced_folder,
    resolve_checkpoint,
    space_from_json,
    space_to_json,
    write_module,
)
from biocredit.learners.network import trained_by


class SavableAgent(nn.Module):
    """An agent rebuilt from ``(observation_space, action_space, config, n_envs)``: subclasses
    set ``config_from_dict`` (a dict -> their config dataclass) and those four attributes."""

    config_from_dict: ClassVar[Callable[[dict[str, Any]], Any]]
    observation_space: spaces.Space
    action_space: spaces.Space
    config: Any
    n_envs: int

    def checkpoint_meta(self) -> dict[str, Any]:
        """What :meth:`load` rebuilds the agent from: config, spaces and ``n_envs`` (JSON);
        training runs write it into their checkpoints too, so ``load(run_dir)`` works."""
        return {
            "agent_config": asdict(self.config),
            "observation_space": space_to_json(self.observation_space),
            "action_space": space_to_json(self.action_space),
            "n_envs": self.n_envs,
            "networks": trained_by(self),  # every module's learner and its options
        }

    def save(self, path: str | Path) -> None:
        """Save to the folder ``path`` (replaced whole): weights, learner state and buffers in
        safetensors, the config and spaces in JSON."""
        with replaced_folder(Path(path)) as directory:
            write_module(directory, self, self.checkpoint_meta())

    @classmethod
    def load(cls, path: str | Path) -> Any:
        """An agent saved by :meth:`save`, or the newest complete checkpoint of a run folder
        (or one of its checkpoint folders), ready to ``predict`` or to keep learning."""
        directory = resolve_checkpoint(Path(path))
        meta = read_agent_meta(directory)
        agent = cls(  # type: ignore[call-arg]
            space_from_json(meta["observation_space"]),
            space_from_json(meta["action_space"]),
            cls.config_from_dict(meta["agent_config"]),
            meta["n_envs"],
        )
        load_module(agent, directory)
        return agent
