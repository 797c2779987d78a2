"""A local conv network as the modular agent's perception module (image observations)."""

import numpy as np
import pytest
import torch
from gymnasium import spaces

from biocredit.agents.modular import ModularAgent
from biocredit.agents.registry import agent_config
from biocredit.errors import ConfigError
from biocredit.learners import ConvNetwork

IMAGES = spaces.Box(0.0, 1.0, (2, 12, 12), dtype=np.float32)
CONVS = [{"channels": 4, "kernel": 4, "stride": 2, "pool": 2}]


def agent(learner: str = "dfa", observation_space: spaces.Box = IMAGES) -> ModularAgent:
    modules = {
        "perception": {"learner": learner, "convs": CONVS, "hidden": [], "features": 8},
        "policy": {"actor": {"learner": "dfa"}, "critic": {"learner": "dfa"}},
    }
    config = agent_config("neuromodulated-ac", {"modules": modules}, None)
    return ModularAgent(observation_space, spaces.Discrete(3), config, n_envs=2)


@pytest.mark.parametrize("learner", ["bp", "fa", "dfa"])
def test_conv_perception_learns_from_the_policy_errors(learner):
    torch.manual_seed(0)
    bot = agent(learner)
    perception = bot.networks["perception"]
    assert isinstance(perception, ConvNetwork) and perception.spec.in_shape == (2, 12, 12)
    before = [p.detach().clone() for p in perception.parameters()]
    for _ in range(3):
        bot.act(torch.rand(2, 2, 12, 12))
        done = torch.tensor([False, False])
        bot.learn(torch.ones(2), done, torch.rand(2, 2, 12, 12), done)
    after = list(perception.parameters())
    assert all(bool(p.isfinite().all()) for p in after)
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_a_learner_without_a_conv_rule_is_refused():
    with pytest.raises(ConfigError, match="'softhebb' cannot train a convolutional network"):
        agent("softhebb")


def test_convs_need_image_observations():
    vector = spaces.Box(-1.0, 1.0, (6,), dtype=np.float32)
    with pytest.raises(ConfigError, match="convs reads image observations"):
        agent("dfa", vector)
