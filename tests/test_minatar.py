"""MinAtar from the CLI: its ids register on first use, its binary maps reach the policy as float
images (channels first, 0/1), PPO picks the conv policy and trains its conv layers by the
learner, a run folder loads back into the same actions, and every game's state comes back exactly
from a checkpoint's plain data, so a resumed run is bitwise the uninterrupted one. Skipped without
``minatar``."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from safetensors.torch import load_file

pytest.importorskip("minatar")

from biocredit.checkpoints import newest_checkpoint
from biocredit.envs import check_env_id, make_sb3_vec_env
from biocredit.envs.images import BinaryImageObservation, image_observations
from biocredit.envs.minatar import GAMES
from biocredit.envs.state import capture_env, restore_env
from biocredit.errors import ConfigError
from biocredit.sb3 import BioActorCriticPolicy, BioCnnDQNPolicy, BioCnnExtractor, BioCnnPolicy
from biocredit.sb3.conv_features import image_kind
from biocredit.training.config import RunConfig
from biocredit.training.evaluation import load_run_policy
from biocredit.training.resolve import resolve_config
from biocredit.training.run_folder import read_run_config
from biocredit.training.sb3_runner import SB3Run

BREAKOUT = "MinAtar/Breakout-v1"
# one rollout of 32 steps, one epoch of one minibatch: a single PPO update
SHORT = ["algo_kwargs.n_steps=32", "algo_kwargs.batch_size=32", "algo_kwargs.n_epochs=1"]


def breakout_config(tmp_path, learner="dfa", **flags) -> RunConfig:
    return resolve_config(
        flags={"env": BREAKOUT, "learner": learner, "n_envs": 1, "out": str(tmp_path / "run"),
               **flags},
        overrides=SHORT,
    )  # fmt: skip


def breakout_run(tmp_path, learner="dfa", **flags) -> SB3Run:
    return SB3Run(breakout_config(tmp_path, learner, **flags))


def test_the_wrapper_hands_on_float_maps_channels_first():
    check_env_id(BREAKOUT)  # registers MinAtar's ids
    raw = gym.make(BREAKOUT)
    assert raw.observation_space.dtype == np.bool_ and raw.observation_space.shape == (10, 10, 4)
    env = image_observations(gym.make(BREAKOUT))
    assert isinstance(env, BinaryImageObservation)
    assert env.observation_space == spaces.Box(0.0, 1.0, (4, 10, 10), np.float32)
    want, _ = raw.reset(seed=3)
    got, _ = env.reset(seed=3)
    assert got.dtype == np.float32 and got.shape == (4, 10, 10)
    assert set(np.unique(got)) <= {0.0, 1.0} and got.any()
    np.testing.assert_array_equal(got, np.moveaxis(want, -1, 0).astype(np.float32))
    assert env.observation_space.contains(got)
    want, *_ = raw.step(1)
    got, *_ = env.step(1)
    np.testing.assert_array_equal(got, np.moveaxis(want, -1, 0))
    assert image_observations(gym.make("CartPole-v1")).spec.id == "CartPole-v1"  # unwrapped
    assert not isinstance(image_observations(gym.make("CartPole-v1")), BinaryImageObservation)


def test_image_kinds_follow_sb3s_rules():
    assert image_kind(spaces.Box(0, 255, (36, 36, 3), np.uint8)) == "uint8"
    assert image_kind(spaces.Box(0.0, 1.0, (4, 10, 10), np.float32)) == "normalized"
    assert image_kind(spaces.Box(0.0, 1.0, (10, 10, 4), np.float32)) is None  # channel-last
    assert image_kind(spaces.Box(-1.0, 1.0, (4, 10, 10), np.float32)) is None
    assert image_kind(spaces.Box(0.0, 1.0, (4,), np.float32)) is None


def test_every_env_biocredit_builds_gets_float_maps():
    env = make_sb3_vec_env("MinAtar/Seaquest-v1", 2, seed=0)  # 10 channels: a 10x10x10 cube
    assert env.observation_space == spaces.Box(0.0, 1.0, (10, 10, 10), np.float32)
    observations = env.reset()
    assert observations.dtype == np.float32 and observations.shape == (2, 10, 10, 10)
    env.close()


def test_a_ppo_step_through_the_cli_path_trains_the_conv_network_by_dfa(tmp_path):
    run = breakout_run(tmp_path)
    policy = run.algo.policy
    assert type(policy) is BioCnnPolicy and not policy.normalize_images
    extractor = policy.features_extractor
    assert isinstance(extractor, BioCnnExtractor)
    spec = extractor.network.spec  # MinAtar's network, from experiments/hyperparams/ppo.yaml
    assert spec.in_shape == (4, 10, 10) and spec.out_features == 128
    assert [(c.channels, c.kernel, c.stride) for c in spec.convs] == [(16, 3, 1)]
    assert extractor.network.learner.name == "dfa"
    assert policy.mlp_extractor.policy_net.learner.name == "dfa"
    conv = extractor.network.parameters_in_order()[0]
    assert conv.shape == (16, 4, 3, 3)
    before = conv.detach().clone()
    run.algo.learn(64)  # two updates: lin_2.5e-4 reaches 0 at the last
    assert bool(conv.isfinite().all()) and not torch.equal(conv, before)
    run.env.close()


def test_dqn_picks_the_conv_policy_and_trains_its_conv_layers_by_the_learner(tmp_path):
    """The Zoo-format DQN entry (MinAtar's network): BioCnnDQNPolicy, the Q layer directly on
    the 128 features, the conv layer moved by dfa; the target network's copy does not learn."""
    config = resolve_config(
        flags={"env": BREAKOUT, "algo": "dqn", "learner": "dfa", "out": str(tmp_path / "run")},
        overrides=["algo_kwargs.learning_starts=16", "algo_kwargs.buffer_size=500"],
    )
    run = SB3Run(config)
    policy = run.algo.policy
    assert type(policy) is BioCnnDQNPolicy and not policy.normalize_images
    extractor = policy.q_net.features_extractor
    assert isinstance(extractor, BioCnnExtractor) and extractor.network.learner.name == "dfa"
    assert [layer.out_features for layer in policy.q_net.q_net.layers] == [3]  # net_arch []
    conv = extractor.network.parameters_in_order()[0]
    target = policy.q_net_target.features_extractor.network.parameters_in_order()[0]
    before = conv.detach().clone()
    run.algo.learn(64)
    assert bool(conv.isfinite().all()) and not torch.equal(conv, before)
    assert torch.equal(target, before)  # target_update_interval 1000 not reached
    run.env.close()


def test_a_named_extractor_keeps_the_dense_policy(tmp_path):
    flatten = {"features_extractor_class": "FlattenExtractor"}
    with pytest.raises(ConfigError, match=r"Unknown key .convs. in policy_kwargs\.features_extr"):
        breakout_run(tmp_path, policy_kwargs=flatten)  # the entry's conv layers do not fit
    run = breakout_run(tmp_path, policy_kwargs={**flatten, "features_extractor_kwargs": None})
    assert type(run.algo.policy) is BioActorCriticPolicy
    run.env.close()


@pytest.mark.slow
def test_a_run_folder_loads_back_into_the_same_actions(tmp_path):
    run = SB3Run.start(breakout_config(tmp_path, learner="fa", steps=64, eval_episodes=1))
    run.run(progress=False)
    loaded, _ = load_run_policy(tmp_path / "run")
    assert type(loaded) is BioCnnPolicy
    env = make_sb3_vec_env(BREAKOUT, 1, seed=7)
    observations = np.concatenate([env.reset()] + [env.step([a])[0] for a in (0, 1, 2, 1, 0)])
    env.close()
    want, _ = run.algo.policy.predict(observations, deterministic=True)
    got, _ = loaded.predict(observations, deterministic=True)
    np.testing.assert_array_equal(got, want)
    for key, value in run.algo.policy.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def play(env, actions) -> list[tuple]:
    """Observation, reward, termination after each action; a new episode after each end."""
    transitions = []
    for action in actions:
        observation, reward, terminated, truncated, _ = env.step(action)
        transitions.append((observation.tobytes(), float(reward), terminated, truncated))
        if terminated or truncated:
            env.reset()
    return transitions


@pytest.mark.parametrize("game", GAMES)
def test_a_game_restored_from_plain_data_plays_on_exactly(game):
    env_id = f"MinAtar/{game}-v1"
    check_env_id(env_id)
    env = gym.make(env_id)
    env.reset(seed=11)
    rng = np.random.default_rng(0)
    play(env, rng.integers(env.action_space.n, size=150))  # mid-game: objects, timers, ramps
    state = json.loads(json.dumps(capture_env(env)))  # as a checkpoint's JSON holds it
    restored = gym.make(env_id)
    restore_env(restored, state)
    game_state = restored.unwrapped.game
    assert game_state.random is game_state.env.random  # one RNG: sticky actions and the game
    actions = rng.integers(env.action_space.n, size=400)
    want = play(env, actions)
    assert play(restored, actions) == want
    # and the check can fail: a new game started from the same seed plays differently
    fresh = gym.make(env_id)
    fresh.reset(seed=11)
    assert play(fresh, actions) != want


def checkpoint_tensors(run_dir) -> dict[str, torch.Tensor]:
    state = {}
    for name in ("model", "resume"):
        path = newest_checkpoint(run_dir) / f"{name}.safetensors"
        state.update({f"{name}/{k}": v for k, v in load_file(str(path)).items()})
    return state


@pytest.mark.slow
def test_a_resumed_ppo_run_ends_bitwise_equal_to_an_uninterrupted_one(tmp_path):
    # constant schedules: a linear one follows the total, which the first half's run changes
    overrides = [
        "n_envs=2",
        "eval_episodes=1",
        "algo_kwargs.n_steps=64",
        "algo_kwargs.batch_size=64",
        "algo_kwargs.n_epochs=1",
        "algo_kwargs.learning_rate=0.00025",
        "algo_kwargs.clip_range=0.1",
    ]

    def config(out, steps):
        flags = {"env": BREAKOUT, "learner": "dfa", "steps": steps, "seed": 3, "out": str(out)}
        return resolve_config(flags=flags, overrides=overrides)

    SB3Run.start(config(tmp_path / "one", 2048)).run(progress=False)
    SB3Run.start(config(tmp_path / "two", 1024)).run(progress=False)
    resumed = read_run_config(tmp_path / "two")
    resumed.steps = 2048
    assert SB3Run.resume(resumed, tmp_path / "two").run(progress=False)["steps"] == 2048
    one, two = checkpoint_tensors(tmp_path / "one"), checkpoint_tensors(tmp_path / "two")
    assert one.keys() == two.keys()
    different = [key for key in one if not torch.equal(one[key], two[key])]
    assert not different, different
