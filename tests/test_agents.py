"""Modular agents: assembly from config, signal fit, bad input, and a short learning run."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from gymnasium import spaces

from biocredit.agents import ModularAgent, agent_config
from biocredit.errors import BiocreditError
from biocredit.learners.base import ErrorDrivenLearner, SignalFreeLearner
from biocredit.learners.registry import list_learners
from biocredit.training.evaluation import evaluate_run
from biocredit.training.online import train_online
from biocredit.training.resolve import resolve_config

OBS = spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)
ACTION_SPACES = [spaces.Discrete(3), spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)]
ERROR_LEARNERS = list_learners(ErrorDrivenLearner)
SIGNAL_FREE_LEARNERS = list_learners(SignalFreeLearner)


def run_steps(agent: ModularAgent, n: int = 3) -> None:
    for _ in range(n):
        action = agent.act(torch.randn(2, 4))
        assert agent.env_action(action).shape[0] == 2
        agent.learn(
            torch.ones(2),
            torch.tensor([False, True]),
            torch.randn(2, 4),
            torch.tensor([False, True]),
        )


def changed(module, run) -> bool:
    before = [p.detach().clone() for p in module.parameters()]
    run()
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


@pytest.mark.parametrize("action_space", ACTION_SPACES)
@pytest.mark.parametrize("actor", ["hebbian3f", *ERROR_LEARNERS])
@pytest.mark.parametrize("critic", ["hebbian3f", "dfa"])
def test_any_learner_in_the_policy_roles(action_space, actor, critic):
    modules = {"policy": {"actor": {"learner": actor}, "critic": {"learner": critic}}}
    agent = ModularAgent(
        OBS, action_space, agent_config("neuromodulated-ac", {"modules": modules}, None), n_envs=2
    )
    assert changed(agent.networks["actor"], lambda: run_steps(agent))
    assert changed(agent.networks["critic"], lambda: run_steps(agent))


@pytest.mark.parametrize("action_space", ACTION_SPACES)
@pytest.mark.parametrize("learner", ERROR_LEARNERS)
def test_perception_and_world_model_learn_from_errors(action_space, learner):
    modules = {
        "perception": {"learner": learner, "hidden": [8], "features": 5},
        "memory": {"kind": "passthrough"},
        "world_model": {"learner": learner, "hidden": [8]},
    }
    config = agent_config("neuromodulated-ac", {"modules": modules}, None)
    agent = ModularAgent(OBS, action_space, config, n_envs=2)
    assert agent.networks["perception"].spec.out_features == 5
    assert changed(agent.networks["perception"], lambda: run_steps(agent))
    assert changed(agent.networks["world_model"], lambda: run_steps(agent))
    assert agent.surprise > 0


def test_perception_gets_the_actor_error_without_a_world_model():
    modules = {
        "perception": {"learner": "fa", "hidden": [8], "features": 5},
        "policy": {"actor": {"learner": "dfa"}},
    }
    agent = ModularAgent(
        OBS,
        ACTION_SPACES[0],
        agent_config("neuromodulated-ac", {"modules": modules}, None),
        n_envs=2,
    )
    assert changed(agent.networks["perception"], lambda: run_steps(agent))


@pytest.mark.parametrize("policy", ["hebbian3f", "dfa"])
@pytest.mark.parametrize("learner", SIGNAL_FREE_LEARNERS)
def test_signal_free_perception_learns_under_any_policy(learner, policy):
    modules = {
        "perception": {"learner": learner, "hidden": [8], "features": 5},
        "policy": {"actor": {"learner": policy}, "critic": {"learner": policy}},
    }
    config = agent_config("neuromodulated-ac", {"modules": modules}, None)
    agent = ModularAgent(OBS, ACTION_SPACES[0], config, n_envs=2)
    assert changed(agent.networks["perception"], lambda: run_steps(agent))
    assert changed(agent.networks["actor"], lambda: run_steps(agent))


def perception_after(
    learner: str, rewards: list[float], modulator: str = "none", frozen: bool = False
) -> list:
    """Perception weights after steps with these rewards (same seeds and observations), under
    a dfa actor and critic, whose errors reach their input."""
    perception = {"learner": learner, "hidden": [8], "features": 5, "modulator": modulator}
    perception["frozen"] = frozen
    modules = {
        "perception": perception,
        "policy": {"actor": {"learner": "dfa"}, "critic": {"learner": "dfa"}},
    }
    torch.manual_seed(0)
    agent = ModularAgent(
        OBS, ACTION_SPACES[0], agent_config("neuromodulated-ac", {"modules": modules}, None), 2
    )
    torch.manual_seed(1)
    observations = torch.randn(len(rewards) + 1, 2, 4)
    for step, reward in enumerate(rewards):
        agent.act(observations[step])
        agent.learn(
            torch.full((2,), reward), torch.tensor([False, False]), observations[step + 1],
            torch.tensor([False, False]),
        )  # fmt: skip
    return [p.detach().clone() for p in agent.networks["perception"].parameters()]


@pytest.mark.parametrize("learner", SIGNAL_FREE_LEARNERS)
def test_no_error_reaches_a_signal_free_perception(learner):
    """Other rewards give other TD errors and other input errors from the dfa actor and critic,
    and the same perception weights: it learns from its inputs only. With modulator td_sign
    the TD error's sign scales its update, so then the weights differ."""
    same, other = perception_after(learner, [1, 1, 1]), perception_after(learner, [-5, 9, 0.3])
    assert all(torch.equal(a, b) for a, b in zip(same, other, strict=True))
    modulated = perception_after(learner, [1.0, 1.0, 1.0], "td_sign")
    other = perception_after(learner, [-5, 9, 0.3], "td_sign")
    assert any(not torch.equal(a, b) for a, b in zip(modulated, other, strict=True))


@pytest.mark.parametrize("learner", ["dfa", "softhebb"])
def test_a_frozen_perception_keeps_its_initial_weights(learner):
    """Neither the policy's errors (dfa perception) nor its own rule (softhebb) move a frozen
    perception; the same perception unfrozen moves."""
    initial = perception_after(learner, [], frozen=True)  # the same network, no step taken
    frozen = perception_after(learner, [1.0, -2.0, 0.5], frozen=True)
    assert all(torch.equal(a, b) for a, b in zip(initial, frozen, strict=True))
    learned = perception_after(learner, [1.0, -2.0, 0.5])
    assert any(not torch.equal(a, b) for a, b in zip(frozen, learned, strict=True))


def test_signal_free_perception_update_is_the_rule_alone():
    """One step: the perception's new weights are its old ones minus lr times the rule's
    update on the observations (raw: the agent's observation normalisation is off), nothing
    else."""
    modules = {
        "perception": {"learner": "softhebb", "hidden": [8], "features": 5, "lr": 0.1},
        "policy": {"actor": {"learner": "dfa"}, "critic": {"learner": "bp"}},
    }
    agent = ModularAgent(
        OBS,
        ACTION_SPACES[0],
        agent_config(
            "neuromodulated-ac", {"modules": modules, "normalize_observations": False}, None
        ),
        2,
    )
    net = agent.networks["perception"]
    before = [p.detach().clone() for p in net.parameters()]
    obs = torch.randn(2, 4)
    with torch.no_grad():
        _, cache = net.learner.forward_pass(net.layers, obs, record=True)
    net.learner.learn(net.layers, cache)
    rule = [p.grad.clone() for p in net.parameters()]
    agent.act(obs)
    agent.learn(torch.ones(2), torch.tensor([False, False]), torch.randn(2, 4),
                torch.tensor([False, False]))  # fmt: skip
    for old, grad, new in zip(before, rule, net.parameters(), strict=True):
        torch.testing.assert_close(new.detach(), old - 0.1 * grad)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"modules": {"policy": {"actor": {"learner": "softhebb"}}}}, "learns from its inputs"),
        (
            {"modules": {"perception": {"learner": "dfa", "modulator": "td_sign"}}},
            "is for signal-free learners",
        ),
        (
            {"modules": {"perception": {"learner": "ff", "modulator": "td"}}},
            "Unknown perception modulator 'td'",
        ),
        ({"modules": {"world_model": {"learner": "softhebb"}}}, "only receives errors"),
        (
            {"modules": {"perception": {"learner": "hebbian3f"}, "world_model": {}}},
            "only receives errors",
        ),
        ({"modules": {"world_model": {"learner": "hebbian3f"}}}, "only receives errors"),
        ({"modules": {"perception": {"learner": "dfa"}}}, "would never learn"),
        ({"modules": {"policy": None}}, "Every agent needs a policy"),
        ({"modules": {"vision": {}}}, "Unknown key 'vision'"),
        ({"modules": {"memory": {"kind": "lstm"}}}, "Unknown memory kind 'lstm'"),
        ({"modulse": {}}, "Did you mean 'modules'"),
        ({"modules": {"policy": {"actr": {}}}}, "Did you mean 'actor'"),
        ({"modules": {"policy": {"actor": {"hiden": [8]}}}}, "Did you mean 'hidden'"),
        ({"modules": {"policy": {"actor": {"learner": "hebb"}}}}, "Unknown learner 'hebb'"),
        ({"modules": {"policy": {"critic": {"lr": -1.0}}}}, "must be > 0"),
        ({"modules": {"policy": {"critic": {"optimizer": "adan"}}}}, "Did you mean 'adam'"),
        ({"gamma": 1.5}, r"'agent_kwargs.gamma' \(discount\) must be in \[0, 1\], got 1.5"),
    ],
)
def test_bad_agent_config(kwargs, match):
    with pytest.raises(BiocreditError, match=match):
        agent_config("neuromodulated-ac", kwargs, None)


def test_learner_flag_replaces_the_policy_learners():
    config = agent_config("neuromodulated-ac", {}, "dfa")
    assert config.modules.policy.actor.learner == config.modules.policy.critic.learner == "dfa"
    assert config.modules.policy.actor.lr == 1e-3  # the rest of the defaults stay


def test_unknown_agent_name():
    with pytest.raises(BiocreditError, match="Did you mean 'neuromodulated-ac'"):
        agent_config("neuromodulated", {}, None)


def test_agent_with_sb3_algo_is_refused():
    with pytest.raises(BiocreditError, match="online"):
        resolve_config(flags={"agent": "neuromodulated-ac", "algo": "ppo"})


@pytest.mark.slow
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
def test_yaml_composition_runs_from_the_cli(tmp_path):
    config = tmp_path / "agent.yaml"
    config.write_text(
        "agent: neuromodulated-ac\nenv: CartPole-v1\nsteps: 256\nn_envs: 4\neval_episodes: 1\n"
        "agent_kwargs:\n  modules:\n    perception: {learner: dfa, hidden: [16], features: 8}\n"
        "    world_model: {learner: fa, hidden: [16]}\n"
    )
    out = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "biocredit.cli",
            "train",
            "--config",
            str(config),
            "--out",
            str(out),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "summary.json").read_text())["agent"] == "neuromodulated-ac"
    assert "agent/surprise" in (out / "progress.csv").read_text().splitlines()[0]


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


@pytest.mark.parametrize("action_space", ACTION_SPACES)
def test_agent_save_load_round_trip(action_space, tmp_path):
    modules = {
        "perception": {"learner": "fa", "hidden": [8], "features": 5},
        "world_model": {"learner": "dfa", "hidden": [8]},
    }
    config = agent_config("neuromodulated-ac", {"modules": modules}, None)
    agent = ModularAgent(OBS, action_space, config, n_envs=2)
    run_steps(agent, 5)
    agent.save(tmp_path / "agent")
    loaded = ModularAgent.load(tmp_path / "agent")
    obs = np.random.default_rng(0).uniform(-1, 1, size=(6, 4)).astype(np.float32)
    np.testing.assert_array_equal(
        loaded.predict(obs, deterministic=True)[0], agent.predict(obs, deterministic=True)[0]
    )
    for (key, value), (key2, value2) in zip(
        agent.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert key == key2 and torch.equal(value, value2), key


@pytest.mark.parametrize("action_space", ACTION_SPACES)
def test_zero_output_init_starts_uniform_with_zero_value(action_space):
    config = agent_config("neuromodulated-ac", {"zero_output_init": True}, None)
    agent = ModularAgent(OBS, action_space, config, n_envs=2)
    for role in ("actor", "critic"):
        out = agent.networks[role].layers[-1]
        assert not out.weight.any() and not out.bias.any(), role
        assert agent.networks[role].layers[0].weight.any(), role  # hidden layers stay random
    obs = torch.randn(2, 4)
    torch.testing.assert_close(agent.critic.infer(obs), torch.zeros(2, 1))
    torch.testing.assert_close(
        agent.actor.infer(obs), torch.zeros(2, agent.actor.net.spec.out_features)
    )


def test_neuromodulated_ac_first_update_is_the_td_error_times_the_eligibility():
    """One step of a fresh agent (zero traces, SGD): the output layers move by
    ``lr * sum_env delta * post h^T`` with ``delta = r + gamma V(s') - V(s)`` from the weights
    before the step, ``post = 1`` for the value and ``onehot(a) - pi(s)`` for the policy (a sign
    flip of the TD error or of the policy term fails here)."""
    torch.manual_seed(0)
    options = {"normalize_observations": False, "zero_output_init": False}
    config = agent_config("neuromodulated-ac", options, None)
    agent = ModularAgent(OBS, spaces.Discrete(3), config, n_envs=2)
    obs, next_obs = torch.randn(2, 4), torch.randn(2, 4)
    reward, terminated = torch.tensor([1.0, -0.5]), torch.tensor([False, True])
    actor, critic = agent.networks["actor"], agent.networks["critic"]
    before = {role: [p.detach().clone() for p in net.parameters_in_order()]
              for role, net in (("actor", actor), ("critic", critic))}  # fmt: skip

    def hidden(params, x):  # the last hidden layer's activity
        for weight, bias in zip(params[0:-2:2], params[1:-2:2], strict=True):
            x = torch.tanh(x @ weight.T + bias)
        return x

    def output(params, x):
        return hidden(params, x) @ params[-2].T + params[-1]

    action = agent.act(obs)
    delta = agent.learn(reward, terminated, next_obs, torch.tensor([False, True]))
    value, next_value = (
        output(before["critic"], obs)[:, 0],
        output(before["critic"], next_obs)[:, 0],
    )
    gamma = config.gamma
    torch.testing.assert_close(delta, reward + gamma * (~terminated) * next_value - value)
    policy = torch.softmax(output(before["actor"], obs), dim=1)
    post = torch.nn.functional.one_hot(action, 3).float() - policy
    for net, role, post_out in ((critic, "critic", torch.ones(2, 1)), (actor, "actor", post)):
        lr = getattr(config.modules.policy, role).lr
        h = hidden(before[role], obs)
        want = lr * torch.einsum("b,bo,bh->oh", delta, post_out, h)
        torch.testing.assert_close(net.layers[-1].weight.detach() - before[role][-2], want)
        torch.testing.assert_close(
            net.layers[-1].bias.detach() - before[role][-1], lr * delta @ post_out
        )


def test_every_named_agent_implements_the_online_contract():
    from biocredit.agents.base import OnlineAgent
    from biocredit.agents.registry import AGENTS
    from biocredit.agents.team import Team

    assert all(issubclass(entry["class"], OnlineAgent) for entry in AGENTS.values())
    assert issubclass(Team, OnlineAgent)  # a multi-agent team, of any of them

    class Incomplete(OnlineAgent):  # no act, learn ...: cannot be built
        pass

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()
