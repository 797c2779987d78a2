"""Running observation normalisation: statistics by hand, the formula, and who updates them."""

import numpy as np
import torch
from gymnasium import spaces

from biocredit.agents import ModularAgent, agent_config
from biocredit.agents.normalization import ObservationNorm


def test_statistics_are_those_of_all_observations_seen():
    torch.manual_seed(0)
    norm = ObservationNorm(3)
    batches = [torch.randn(n, 3) * torch.tensor([0.1, 2.0, 50.0]) + 7.0 for n in (1, 8, 5, 8)]
    for batch in batches:
        norm.update(batch)
    seen = torch.cat(batches).double()
    # the prior, mean 0 and variance 1, counts as 1e-4 of an observation
    prior, total = 1e-4, 1e-4 + len(seen)
    mean = seen.sum(0) / total
    var = (prior * 1.0 + seen.square().sum(0)) / total - mean.square()
    torch.testing.assert_close(norm.mean, mean.float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(norm.var, var.float(), rtol=1e-4, atol=1e-6)
    assert norm.count == 22.0 + 1e-4
    restored = ObservationNorm(3)
    restored.load_state_dict(norm.state_dict())  # the count travels with the buffers
    assert restored.count == norm.count and torch.equal(restored.var, norm.var)


def test_first_batch_replaces_the_prior():
    norm = ObservationNorm(2)
    batch = torch.tensor([[1.0, 10.0], [3.0, 30.0]])
    norm.update(batch)
    torch.testing.assert_close(norm.mean, torch.tensor([2.0, 20.0]), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(norm.var, torch.tensor([1.0, 100.0]), rtol=1e-3, atol=1e-3)


def test_forward_centres_scales_and_clips_without_updating():
    norm = ObservationNorm(2, clip=3.0)
    norm.mean.copy_(torch.tensor([1.0, -2.0]))
    norm.var.copy_(torch.tensor([4.0, 0.25]))
    before = {k: v.clone() for k, v in norm.state_dict().items()}
    x = torch.tensor([[3.0, -2.5], [1.0, 10.0]])
    want = torch.tensor([[1.0, -1.0], [0.0, 3.0]])  # (x - mean) / sqrt(var), 24 clipped to 3
    torch.testing.assert_close(norm(x), want, rtol=1e-6, atol=1e-6)
    for key, value in norm.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_agent_updates_statistics_when_acting_only():
    obs_space = spaces.Box(-np.inf, np.inf, (4,), dtype=np.float32)
    config = agent_config("neuromodulated-ac", {"normalize_observations": True}, None)
    agent = ModularAgent(obs_space, spaces.Discrete(2), config, n_envs=2)
    assert agent.obs_norm is not None
    obs = torch.randn(2, 4) * 100.0
    agent.act(obs)
    seen = agent.obs_norm.count, agent.obs_norm.mean.clone()
    agent.learn(
        torch.ones(2), torch.zeros(2, dtype=torch.bool), obs, torch.zeros(2, dtype=torch.bool)
    )
    agent.predict(obs.numpy(), deterministic=True)
    assert agent.obs_norm.count == seen[0] and torch.equal(agent.obs_norm.mean, seen[1])
    torch.testing.assert_close(agent.obs_norm.mean, obs.mean(0), rtol=1e-4, atol=1e-2)
    # the networks see the normalised observation
    state = agent.encode_infer(obs)
    torch.testing.assert_close(state, agent.obs_norm(obs))


def test_off_leaves_observations_raw():
    config = agent_config("neuromodulated-ac", {"normalize_observations": False}, None)
    agent = ModularAgent(spaces.Box(-1.0, 1.0, (4,)), spaces.Discrete(2), config)
    obs = torch.randn(1, 4)
    assert agent.obs_norm is None and torch.equal(agent.encode_infer(obs), obs)
