"""Native online agents: assembly from config, bad input, and a short learning run."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from gymnasium import spaces

from biocredit.agents import OnlineActorCritic, agent_config
from biocredit.errors import BiocreditError
from biocredit.training.evaluation import evaluate_run
from biocredit.training.online import train_online
from biocredit.training.resolve import resolve_config


@pytest.mark.parametrize("learner", ["hebbian3f", "bp", "fa", "dfa"])
@pytest.mark.parametrize(
    "action_space", [spaces.Discrete(3), spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)]
)
def test_any_learner_in_either_role_runs(learner, action_space):
    obs_space = spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)
    config = agent_config("neuromodulated-ac", {"critic": {"learner": "hebbian3f"}}, None)
    config.actor.learner = learner
    agent = OnlineActorCritic(obs_space, action_space, config, n_envs=2)
    before = [p.detach().clone() for p in agent.actor.net.parameters()]
    for _ in range(3):
        action = agent.act(torch.randn(2, 4))
        agent.learn(
            torch.ones(2),
            torch.tensor([False, True]),
            torch.randn(2, 4),
            torch.tensor([False, True]),
        )
    assert agent.env_action(action).shape[0] == 2
    after = list(agent.actor.net.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"actr": {}}, "Did you mean 'actor'"),
        ({"actor": {"hiden": [8]}}, "Did you mean 'hidden'"),
        ({"actor": {"learner": "hebb"}}, "Unknown learner 'hebb'"),
        ({"critic": {"lr": -1.0}}, "must be > 0"),
        ({"critic": {"optimizer": "adamw"}}, "Did you mean 'adam'"),
    ],
)
def test_bad_agent_config(kwargs, match):
    with pytest.raises(BiocreditError, match=match):
        agent_config("neuromodulated-ac", kwargs, None)


def test_unknown_agent_name():
    with pytest.raises(BiocreditError, match="Did you mean 'neuromodulated-ac'"):
        agent_config("neuromodulated", {}, None)


def test_agent_with_sb3_algo_is_refused():
    with pytest.raises(BiocreditError, match="online"):
        resolve_config(flags={"agent": "neuromodulated-ac", "algo": "ppo"})


def test_agents_cli_lists_the_named_agent():
    result = subprocess.run(
        [sys.executable, "-m", "biocredit.cli", "agents", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0
    assert "neuromodulated-ac" in json.loads(result.stdout)


@pytest.mark.slow
def test_neuromodulated_ac_learns_cartpole(tmp_path):
    config = resolve_config(
        flags={
            "agent": "neuromodulated-ac",
            "steps": 30_000,
            "seed": 0,
            "out": str(tmp_path / "run"),
        }
    )
    summary = train_online(config, progress=False)
    assert summary["steps"] >= 30_000
    assert summary["final_return_mean"] > 100, summary  # random CartPole play: about 22
    report = evaluate_run(tmp_path / "run", episodes=summary["eval_episodes"])
    assert report["return_mean"] == summary["final_return_mean"]  # checkpoint restores the agent
