"""No silent backprop: the SB3 policies default to the CLI's learner, a bp policy says so in its
repr, and every run folder, checkpoint and saved agent records each network's learner and its
options (defaults included)."""

import json
import subprocess
import sys

import pytest
import yaml
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3

from biocredit.checkpoints import newest_checkpoint
from biocredit.learners import LocalNetwork, make_learner
from biocredit.learners.registry import DEFAULT_LEARNER
from biocredit.sb3 import BioActorCriticPolicy, BioDQNPolicy, BioSACPolicy, BioTD3Policy
from biocredit.training.config import RunConfig

POLICIES = {
    "ppo": (PPO, BioActorCriticPolicy, "CartPole-v1"),
    "a2c": (A2C, BioActorCriticPolicy, "CartPole-v1"),
    "dqn": (DQN, BioDQNPolicy, "CartPole-v1"),
    "sac": (SAC, BioSACPolicy, "Pendulum-v1"),
    "td3": (TD3, BioTD3Policy, "Pendulum-v1"),
}


@pytest.mark.parametrize("algo", POLICIES)
def test_every_policy_defaults_to_the_clis_learner(algo):
    algo_class, policy, env = POLICIES[algo]
    model = algo_class(policy, env, device="cpu")
    learners = {m.learner.name for m in model.policy.modules() if isinstance(m, LocalNetwork)}
    assert learners == {RunConfig().learner} == {DEFAULT_LEARNER} == {"dfa"}
    assert "backprop" not in repr(model.policy)


@pytest.mark.parametrize("algo", POLICIES)
def test_a_bp_policy_says_so_in_its_repr(algo):
    algo_class, policy, env = POLICIES[algo]
    model = algo_class(policy, env, device="cpu", policy_kwargs=dict(learner="bp"))
    first = repr(model.policy).splitlines()[1]
    assert first.startswith("  learner=bp(seed=None) [backprop: no local credit assignment]")


def test_the_repr_lists_every_option_and_the_critics_learner():
    model = PPO(
        BioActorCriticPolicy,
        "CartPole-v1",
        device="cpu",
        policy_kwargs=dict(learner="dfa", learner_kwargs={"scale": 0.5}, critic_learner="bp"),
    )
    assert repr(model.policy).splitlines()[1] == (
        "  learner=dfa(init='uniform', scale=0.5, fan='output', seed=None), "
        "critic_learner=bp(seed=None) [backprop: no local credit assignment]"
    )


def test_options_hold_the_defaults_and_what_was_given():
    assert make_learner("fa", scale=2.0).options == {"init": "uniform", "scale": 2.0, "seed": None}
    assert make_learner("bp").options == {"seed": None}


def train(tmp_path, *flags):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "biocredit.cli", "train", "--steps", "64", "--out", str(out)]
    command += ["--no-progress", "--set", "n_envs=1", "--set", "eval_episodes=1"]
    command += ["--set", "algo_kwargs={n_steps: 32, batch_size: 32, n_epochs: 1}", *flags]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return out, result.stdout


@pytest.mark.slow
def test_a_bp_run_says_so_in_its_summary(tmp_path):
    out, printed = train(tmp_path, "--learner", "bp")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trained_by_backprop"] == ["mlp_extractor.policy_net", "mlp_extractor.value_net"]
    assert "trained_by_backprop" in printed and "mlp_extractor.policy_net: bp" in printed


@pytest.mark.slow
def test_a_run_records_every_networks_learner_and_options(tmp_path):
    out, _ = train(tmp_path, "--learner", "dfa", "--set", "learner_kwargs.scale=0.5")
    options = {"init": "uniform", "scale": 0.5, "fan": "output", "seed": None}
    expected = {"learner": "dfa", "options": options, "equals_backprop": False}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trained_by_backprop"] == []
    assert summary["networks"] == {
        "mlp_extractor.policy_net": expected,
        "mlp_extractor.value_net": expected,
    }
    checkpoint = json.loads((newest_checkpoint(out) / "checkpoint.json").read_text())
    assert checkpoint["networks"] == summary["networks"]
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert (config["learner"], config["learner_kwargs"]) == ("dfa", {"scale": 0.5})
