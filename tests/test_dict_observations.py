"""Dict observations in the biocredit SB3 policies: every key flattened and concatenated as SB3's
CombinedExtractor does its vector keys, no trained extractor, on real Gymnasium envs wrapped to
Dict observations (no mocks)."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.wrappers import TransformObservation
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor
from torch import nn

from biocredit.errors import ConfigError
from biocredit.learners import LocalNetwork
from biocredit.sb3 import (
    BioActorCriticPolicy,
    BioCombinedExtractor,
    BioDQNPolicy,
    BioSACPolicy,
    BioTD3Policy,
)
from biocredit.training.resolve import resolve_config
from biocredit.training.sb3_runner import SB3Run


def dict_cartpole() -> gym.Env:
    """CartPole-v1 observed as {cart: (x, x'), pole: (theta, theta'), side: x > 0} (Discrete)."""
    env = gym.make("CartPole-v1")
    box = env.observation_space
    space = spaces.Dict(
        cart=spaces.Box(box.low[:2], box.high[:2]),
        pole=spaces.Box(box.low[2:], box.high[2:]),
        side=spaces.Discrete(2),
    )
    return TransformObservation(
        env, lambda o: {"cart": o[:2], "pole": o[2:], "side": int(o[0] > 0)}, space
    )


def dict_pendulum() -> gym.Env:
    """Pendulum-v1 observed as {angle: (cos, sin), velocity: (omega,)}."""
    env = gym.make("Pendulum-v1")
    box = env.observation_space
    space = spaces.Dict(
        angle=spaces.Box(box.low[:2], box.high[:2]), velocity=spaces.Box(box.low[2:], box.high[2:])
    )
    return TransformObservation(env, lambda o: {"angle": o[:2], "velocity": o[2:]}, space)


def test_features_are_sb3s_combined_extractors():
    env = dict_cartpole()
    ours, theirs = (
        BioCombinedExtractor(env.observation_space),
        CombinedExtractor(env.observation_space),
    )
    assert ours.features_dim == theirs.features_dim == 2 + 2 + 2  # side one-hot
    assert not list(ours.parameters())
    env.observation_space.seed(0)
    batch = [env.observation_space.sample() for _ in range(16)]
    obs = {key: torch.as_tensor(np.stack([o[key] for o in batch])) for key in batch[0]}
    obs = preprocess_obs(obs, env.observation_space)
    torch.testing.assert_close(ours(obs), theirs(obs), rtol=0, atol=0)


@pytest.mark.parametrize("algo", [PPO, A2C])
def test_on_policy_run_steps_saves_and_loads(tmp_path, algo):
    env = make_vec_env(dict_cartpole, n_envs=2, seed=0)
    model = algo(BioActorCriticPolicy, env, n_steps=32, seed=0, device="cpu")
    assert isinstance(model.policy.features_extractor, BioCombinedExtractor)
    assert model.policy.mlp_extractor.policy_net.spec.in_features == 6
    before = model.policy.mlp_extractor.policy_net.layers[0].weight.detach().clone()
    model.learn(128)
    assert model.num_timesteps == 128
    assert not torch.equal(model.policy.mlp_extractor.policy_net.layers[0].weight, before)
    model.save(tmp_path / "model")
    loaded = algo.load(tmp_path / "model", device="cpu")
    obs = env.reset()
    np.testing.assert_array_equal(
        loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0]
    )
    assert loaded.policy.mlp_extractor.policy_net.learner.name == "dfa"


@pytest.mark.parametrize(
    ("algo", "policy", "make_env", "kwargs"),
    [
        (DQN, BioDQNPolicy, dict_cartpole, dict(learning_starts=16, train_freq=4)),
        (SAC, BioSACPolicy, dict_pendulum, dict(learning_starts=16)),
        (TD3, BioTD3Policy, dict_pendulum, dict(learning_starts=16)),
    ],
)
def test_off_policy_run_steps_saves_and_loads(tmp_path, algo, policy, make_env, kwargs):
    env = make_vec_env(make_env, n_envs=1, seed=0)
    model = algo(policy, env, buffer_size=1000, batch_size=16, seed=0, device="cpu", **kwargs)
    extractors = [m for m in model.policy.modules() if isinstance(m, BioCombinedExtractor)]
    assert extractors and all(not list(m.parameters()) for m in extractors)
    assert all(
        net.learner.name == "dfa" for net in model.policy.modules() if isinstance(net, LocalNetwork)
    )
    model.learn(64)
    model.save(tmp_path / "model")
    loaded = algo.load(tmp_path / "model", device="cpu")
    obs = env.reset()
    np.testing.assert_array_equal(
        loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0]
    )


@pytest.mark.parametrize(
    ("algo", "policy", "make_env"),
    [(PPO, BioActorCriticPolicy, dict_cartpole), (SAC, BioSACPolicy, dict_pendulum)],
)
def test_an_extractor_with_parameters_is_refused(algo, policy, make_env):
    env = make_vec_env(make_env, n_envs=1, seed=0)
    kwargs = dict(features_extractor_class=CombinedExtractor)
    accepted = algo(policy, env, device="cpu", policy_kwargs=kwargs)  # vector keys: no layers
    extractors = [m for m in accepted.policy.modules() if isinstance(m, CombinedExtractor)]
    assert extractors and all(not list(m.parameters()) for m in extractors)
    with pytest.raises(ConfigError, match=r"LinearExtractor has trainable layers.*behind"):
        kwargs = dict(features_extractor_class=LinearExtractor)
        algo(policy, env, device="cpu", policy_kwargs=kwargs)


class LinearExtractor(BaseFeaturesExtractor):
    """A user's extractor with a layer of its own: backprop would train it."""

    def __init__(self, observation_space: spaces.Dict) -> None:
        super().__init__(observation_space, features_dim=8)
        self.inner = BioCombinedExtractor(observation_space)
        self.linear = nn.Linear(self.inner.features_dim, 8)

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.linear(self.inner(observations))


def split_cartpole() -> gym.Env:
    """CartPole-v1 observed as {cart: (x, x'), pole: (theta, theta')}: flattened in key order,
    the plain observation."""
    env = gym.make("CartPole-v1")
    box = env.observation_space
    space = spaces.Dict(
        cart=spaces.Box(box.low[:2], box.high[:2]), pole=spaces.Box(box.low[2:], box.high[2:])
    )
    return TransformObservation(env, lambda o: {"cart": o[:2], "pole": o[2:]}, space)


@pytest.mark.parametrize("algo", [PPO, A2C])
def test_dict_observations_train_exactly_as_the_flat_observation(algo):
    """The same observation as a Dict and flat: the same run, weight for weight (what learns on
    CartPole-v1, tests/test_learning.py, learns on its Dict form)."""
    models = []
    for make_env in (split_cartpole, "CartPole-v1"):  # each seeded, then trained, in turn
        env = make_vec_env(make_env, n_envs=2, seed=0)
        models.append(algo(BioActorCriticPolicy, env, n_steps=64, seed=0, device="cpu"))
        models[-1].learn(512)
    dict_run, flat_run = (dict(m.policy.named_parameters()) for m in models)
    assert dict_run.keys() == flat_run.keys()
    for name, value in dict_run.items():
        assert torch.equal(value, flat_run[name]), name


def test_a_cli_run_on_dict_observations_is_refused_clearly():
    if "test/DictCartPole-v0" not in gym.registry:
        gym.register("test/DictCartPole-v0", entry_point=dict_cartpole)
    config = resolve_config(flags={"env": "test/DictCartPole-v0", "steps": 64})
    with pytest.raises(ConfigError, match=r"Dict observations.*from Python"):
        SB3Run(config)
