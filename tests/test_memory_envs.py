"""The memory tasks: Gymnasium's env checker, seeded determinism, the rules, CLI discovery."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import biocredit.envs  # noqa: F401  (registers the tasks)
from biocredit.errors import ConfigError

IDS = ["MaskedCartPole-v1", "CuedTMaze-v0"]


@pytest.mark.parametrize("env_id", IDS)
def test_env_checker_passes(env_id):
    check_env(gym.make(env_id).unwrapped, skip_render_check=True)


def rollout(env_id: str, seed: int, steps: int = 60, **kwargs) -> list:
    env = gym.make(env_id, **kwargs)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        trace += [obs, reward, terminated]
        if terminated or truncated:
            trace.append(env.reset()[0])
    return trace


@pytest.mark.parametrize("env_id", IDS)
def test_seeded_runs_repeat_and_seeds_differ(env_id):
    first, again = rollout(env_id, 3), rollout(env_id, 3)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    other = [rollout(env_id, seed) for seed in range(4, 10)]
    assert any(not all(np.array_equal(a, b) for a, b in zip(first, o, strict=False)) for o in other)


def test_masked_cartpole_is_cartpole_without_velocities():
    masked, full = gym.make("MaskedCartPole-v1"), gym.make("CartPole-v1")
    assert masked.observation_space.shape == (2,)
    assert masked.spec.max_episode_steps == 500
    obs_m, _ = masked.reset(seed=7)
    obs_f, _ = full.reset(seed=7)
    np.testing.assert_array_equal(obs_m, obs_f[[0, 2]])
    for action in [0, 1, 1, 0, 1, 1, 1, 0]:
        obs_m, r_m, term_m, _, _ = masked.step(action)
        obs_f, r_f, term_f, _, _ = full.step(action)
        np.testing.assert_array_equal(obs_m, obs_f[[0, 2]])
        assert (r_m, term_m) == (r_f, term_f)


@pytest.mark.parametrize("correct", [True, False])
def test_tmaze_shows_the_cue_once_and_pays_the_cued_turn(correct):
    env = gym.make("CuedTMaze-v0", delay=5)
    obs, info = env.reset(seed=0)
    cue = info["cue"]
    assert obs.tolist() == [cue, 1.0, 0.0]
    for _ in range(5):  # the corridor: no cue, no reward, whatever the action
        obs, reward, terminated, _, _ = env.step(int(env.action_space.sample()))
        assert not terminated and reward == 0.0 and obs[0] == 0.0
    assert obs.tolist() == [0.0, 0.0, 1.0]  # the junction
    turn = (0 if cue == 1 else 1) if correct else (1 if cue == 1 else 0)
    _, reward, terminated, _, info = env.step(turn)
    assert terminated and reward == (1.0 if correct else -1.0) and info["success"] is correct


def test_tmaze_cues_are_balanced():
    env = gym.make("CuedTMaze-v0", delay=1)
    cues = [env.reset(seed=seed)[1]["cue"] for seed in range(200)]
    assert 70 < cues.count(1) < 130


@pytest.mark.parametrize("delay", [0, 2.5, "20", True])
def test_tmaze_bad_delay(delay):
    with pytest.raises(
        ConfigError, match=r"CuedTMaze 'delay' must be an integer >= 1, got .*env_kwargs"
    ):
        gym.make("CuedTMaze-v0", delay=delay)


@pytest.mark.slow
def test_cli_trains_on_a_memory_task(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "biocredit.cli", "train", "--env", "CuedTMaze-v0"]
    args += ["--steps", "256", "--no-progress", "--out", str(out), "--set", "eval_episodes=2"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (out / "summary.json").exists()
