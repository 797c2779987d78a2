"""SAC, TD3 and DQN with biocredit policies: every network local, targets copied, round trips."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from stable_baselines3 import DQN, SAC, TD3
from stable_baselines3.common.utils import polyak_update

from biocredit.learners import LocalNetwork
from biocredit.sb3 import BioDQNPolicy, BioSACPolicy, BioTD3Policy

CASES = {
    "sac": (SAC, BioSACPolicy, "Pendulum-v1", [("critic", "critic_target"), ("actor", None)]),
    "td3": (
        TD3,
        BioTD3Policy,
        "Pendulum-v1",
        [("critic", "critic_target"), ("actor", "actor_target")],
    ),
    "dqn": (DQN, BioDQNPolicy, "CartPole-v1", [("q_net", "q_net_target")]),
}


def make(name, learner="dfa", **policy_kwargs):
    algo, policy, env, _ = CASES[name]
    return algo(
        policy,
        env,
        learning_starts=32,
        batch_size=32,
        seed=0,
        device="cpu",
        policy_kwargs=dict(learner=learner, net_arch=[16, 16], **policy_kwargs),
    )


@pytest.mark.parametrize("name", list(CASES))
def test_every_network_is_local(name):
    model = make(name)
    networks = {n for n, m in model.policy.named_modules() if isinstance(m, LocalNetwork)}
    assert networks
    for param_name, _ in model.policy.named_parameters():
        assert any(param_name.startswith(n + ".") for n in networks), param_name
    for network in networks:
        assert model.policy.get_submodule(network).learner.name == "dfa"


@pytest.mark.parametrize("name", list(CASES))
def test_targets_carry_the_learner_state(name):
    model = make(name)
    model.learn(100)
    for online, target in CASES[name][3]:
        if target is None:
            continue
        source, copy = model.policy.get_submodule(online), model.policy.get_submodule(target)
        polyak_update(source.parameters(), copy.parameters(), 1.0)  # a hard update
        for (key, value), (key2, value2) in zip(
            source.state_dict().items(), copy.state_dict().items(), strict=True
        ):
            assert key == key2 and torch.equal(value, value2), key


@pytest.mark.parametrize("name", list(CASES))
def test_save_load_round_trip(name, tmp_path):
    model = make(name, learner="fa")
    model.learn(100)
    model.save(tmp_path / "model.zip")
    loaded = CASES[name][0].load(tmp_path / "model.zip", device="cpu")
    obs = np.stack([model.observation_space.sample() for _ in range(8)])
    np.testing.assert_array_equal(
        loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0]
    )


def test_critic_learner_differs_from_actor():
    model = make("sac", critic_learner="bp")
    assert model.policy.actor.network.learner.name == "dfa"
    assert model.policy.critic.qf0.learner.name == "bp"


@pytest.mark.parametrize("name, learner", [("sac", "fa"), ("td3", "dfa"), ("dqn", "dfa")])
def test_cli_runs_write_their_folders_and_resume(name, learner, tmp_path):
    env = "CartPole-v1" if name == "dqn" else "Pendulum-v1"
    out = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "biocredit.cli",
        "train",
        "--algo",
        name,
        "--learner",
        learner,
        "--env",
        env,
        "--steps",
        "300",
        "--out",
        str(out),
        "--no-progress",
        "--set",
        "eval_episodes=1",
        "--set",
        "algo_kwargs.learning_starts=100",
    ]
    result = subprocess.run(args, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "summary.json").read_text())["algo"] == name
    evaluation = subprocess.run(
        [sys.executable, "-m", "biocredit.cli", "eval", str(out), "--episodes", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert evaluation.returncode == 0, evaluation.stderr
    resume = subprocess.run(
        [
            sys.executable,
            "-m",
            "biocredit.cli",
            "train",
            "--resume",
            str(out),
            "--steps",
            "400",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert resume.returncode == 0, resume.stderr
    assert json.loads((out / "summary.json").read_text())["steps"] == 400
