"""Observation/return normalisation: Zoo options, statistics saved without pickle, frozen eval."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from stable_baselines3.common.noise import NormalActionNoise

from biocredit.checkpoints import newest_checkpoint
from biocredit.envs import make_sb3_vec_env
from biocredit.envs.normalize import (
    frozen,
    load_statistics,
    normalize_options,
    statistics_tensors,
    wrap_normalize,
)
from biocredit.errors import ConfigError
from biocredit.training.evaluation import evaluate_run
from biocredit.training.resolve import resolve_config
from biocredit.training.sb3_runner import SB3Run, algo_kwargs

MUJOCO = ["InvertedPendulum-v5", "InvertedDoublePendulum-v5", "Reacher-v5", "Hopper-v5"]


def test_zoo_forms_of_the_option():
    assert normalize_options(True) == {} and normalize_options(False) is None
    zoo = "{'norm_obs': True, 'norm_reward': False}"
    assert normalize_options(zoo) == {"norm_obs": True, "norm_reward": False}
    with pytest.raises(ConfigError, match="Did you mean 'norm_obs'"):
        normalize_options({"norm_ob": True})
    with pytest.raises(ConfigError, match="must be a mapping like the RL Zoo's"):
        normalize_options("yes please")


@pytest.mark.parametrize("env", [*MUJOCO, "HalfCheetah-v5"])
def test_zoo_hyperparameters_resolve_for_every_mujoco_env(env):
    ppo = resolve_config(flags={"env": env, "learner": "bp"})
    assert ppo.normalize is True and ppo.steps == 1_000_000  # the Zoo normalises PPO on MuJoCo
    sac = resolve_config(flags={"env": env, "learner": "bp", "algo": "sac"})
    assert sac.normalize is False
    td3 = resolve_config(flags={"env": env, "learner": "bp", "algo": "td3"})
    assert td3.normalize is False


def test_zoo_noise_becomes_sb3_action_noise():
    config = resolve_config(flags={"env": "Hopper-v5", "learner": "bp", "algo": "td3"})
    noise = algo_kwargs(config, action_dim=3)["action_noise"]
    assert isinstance(noise, NormalActionNoise)
    np.testing.assert_array_equal(noise._sigma, np.full(3, 0.1))
    assert "noise_type" not in algo_kwargs(config, 3)


def test_statistics_round_trip_and_frozen_normalisation():
    env = wrap_normalize(make_sb3_vec_env("Pendulum-v1", 2, 0), {}, gamma=0.9)
    env.reset()
    for _ in range(50):
        env.step(np.stack([env.action_space.sample() for _ in range(2)]))
    tensors = statistics_tensors(env)
    assert all(t.dtype == torch.float64 for t in tensors.values())
    raw = np.array([[0.5, -0.5, 3.0]], dtype=np.float32)
    evaluation = frozen(make_sb3_vec_env("Pendulum-v1", 1, 1), {}, tensors)
    mean, var = env.obs_rms.mean, env.obs_rms.var
    expected = np.clip((raw - mean) / np.sqrt(var + 1e-8), -10, 10)
    np.testing.assert_allclose(evaluation.normalize_obs(raw), expected, rtol=1e-6)
    assert not evaluation.training and not evaluation.norm_reward
    evaluation.reset()
    evaluation.step(np.zeros((1, 1), dtype=np.float32))
    np.testing.assert_array_equal(evaluation.obs_rms.mean, mean)  # frozen: never updated
    fresh = wrap_normalize(make_sb3_vec_env("Pendulum-v1", 2, 0), {}, gamma=0.9)
    load_statistics(fresh, tensors)
    np.testing.assert_array_equal(fresh.normalize_obs(raw), env.normalize_obs(raw))
    np.testing.assert_array_equal(fresh.returns, env.returns)


def test_a_normalised_run_saves_its_statistics_and_evaluates_with_them(tmp_path):
    out = tmp_path / "run"
    config = resolve_config(
        flags={"env": "InvertedPendulum-v5", "learner": "fa", "steps": 256, "out": str(out)},
        overrides=["eval_episodes=2"],
    )
    summary = SB3Run.start(config).run(progress=False)
    saved = load_file(str(newest_checkpoint(out) / "normalize.safetensors"))
    assert saved["obs_rms.count"].item() > 256  # SB3 starts counting at 1e-4, plus the reset
    result = evaluate_run(out, episodes=2)
    assert result["return_mean"] == summary["final_return_mean"]  # same statistics, same seed
    after = load_file(str(newest_checkpoint(out) / "normalize.safetensors"))
    assert all(torch.equal(saved[key], after[key]) for key in saved)
    assert json.loads((out / "summary.json").read_text())["steps"] == 256


def test_normalize_is_refused_for_native_agents():
    with pytest.raises(ConfigError, match="normalize is for SB3 runs"):
        resolve_config(flags={"agent": "neuromodulated-ac"}, overrides=["normalize=true"])
