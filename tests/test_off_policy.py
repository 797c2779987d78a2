"""SAC, TD3 and DQN with biocredit policies: every network local, targets copied, round trips."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import DQN, SAC, TD3
from stable_baselines3.common.utils import polyak_update

from biocredit.cli import main
from biocredit.errors import ConfigError
from biocredit.learners import LocalNetwork
from biocredit.sb3 import (
    BioCnnExtractor,
    BioCnnSACPolicy,
    BioCnnTD3Policy,
    BioDQNPolicy,
    BioSACPolicy,
    BioTD3Policy,
)

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
    # the full state, feedback matrices of actor, critics and targets included: predictions
    # alone would not see a scrambled feedback buffer
    saved, restored = model.policy.state_dict(), loaded.policy.state_dict()
    assert saved.keys() == restored.keys()
    assert any("feedback" in key for key in saved)
    for key, value in saved.items():
        assert torch.equal(value, restored[key]), key


def test_critic_learner_differs_from_actor():
    model = make("sac", critic_learner="bp")
    assert model.policy.actor.network.learner.name == "dfa"
    assert model.policy.critic.qf0.learner.name == "bp"


@pytest.mark.slow
@pytest.mark.parametrize("name, learner", [("sac", "fa"), ("td3", "dfa"), ("dqn", "dfa")])
def test_cli_runs_write_their_folders_and_resume(name, learner, tmp_path):
    """train, eval and train --resume through the CLI's entry point, in process (the console
    script as a subprocess is tested in test_cli.py)."""
    env = "CartPole-v1" if name == "dqn" else "Pendulum-v1"
    out = str(tmp_path / "run")
    settings = ["--set", "eval_episodes=1", "--set", "algo_kwargs.learning_starts=100"]
    if name == "dqn":  # the Zoo's train_freq 256 would collect past the 300 and 400 steps
        settings += ["--set", "algo_kwargs.train_freq=4", "--set", "algo_kwargs.gradient_steps=1"]
    train = ["train", "--algo", name, "--learner", learner, "--env", env, "--no-progress"]
    assert main([*train, "--steps", "300", "--out", out, *settings]) == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["algo"] == name
    assert main(["eval", out, "--episodes", "1"]) == 0
    assert main(["train", "--resume", out, "--steps", "400", "--no-progress"]) == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 400


def _action_grads(model, obs, actions, first_critic=False):
    x = actions.clone().requires_grad_(True)
    if first_critic:
        model.critic.q1_forward(obs, x).sum().backward()
    else:
        torch.cat(model.critic(obs, x), dim=1).min(dim=1).values.sum().backward()
    return x.grad


@pytest.mark.parametrize("name", ["sac", "td3"])
def test_perturbation_action_grad_matches_the_exact_one_for_a_bp_critic(name):
    """Central differences of the critic equal backprop's dQ/da (smooth tanh critic)."""
    exact = make(name, learner="bp", activation_fn=torch.nn.Tanh)
    perturbed = make(name, learner="bp", activation_fn=torch.nn.Tanh)
    perturbed.policy.critic.action_grad = "perturbation"
    perturbed.policy.load_state_dict(exact.policy.state_dict())
    torch.manual_seed(0)
    obs, actions = torch.randn(16, 3), torch.rand(16, 1) * 2 - 1
    want, got = _action_grads(exact, obs, actions), _action_grads(perturbed, obs, actions)
    torch.testing.assert_close(got, want, rtol=1e-2, atol=1e-4)
    assert want.abs().mean() > 1e-3  # a real gradient, not two zeros
    assert all(p.grad is None for p in perturbed.policy.critic.parameters())  # actor loss only


def test_perturbation_gives_a_dfa_critic_a_state_dependent_action_grad(tmp_path):
    model = make("sac", critic_action_grad="perturbation")
    learner_grad = make("sac")
    torch.manual_seed(1)
    obs, actions = torch.randn(64, 3), torch.rand(64, 1) * 2 - 1
    learner_grad.policy.load_state_dict(model.policy.state_dict())
    by_learner = _action_grads(learner_grad, obs, actions, first_critic=True)
    by_perturbation = _action_grads(model, obs, actions, first_critic=True)
    # dfa's input error is e D_0 with e = 1 here: one value for all states; the estimate varies
    assert torch.allclose(by_learner, by_learner[0].expand_as(by_learner))
    assert torch.sign(by_learner).unique().numel() == 1
    assert torch.sign(by_perturbation).unique().numel() == 2
    model.learn(100)
    model.save(tmp_path / "model.zip")
    loaded = SAC.load(tmp_path / "model.zip", device="cpu")
    assert loaded.policy.critic.action_grad == "perturbation"


def test_unknown_critic_action_grad_is_refused():
    with pytest.raises(ValueError, match="Unknown critic_action_grad 'finite'"):
        make("sac", critic_action_grad="finite")


@pytest.mark.parametrize("delta", [0.0, -0.1, float("nan"), "much", True])
def test_a_bad_critic_action_delta_is_refused_by_name(delta):
    with pytest.raises(ConfigError, match=r"policy_kwargs 'critic_action_delta' must be .*\. Try"):
        make("sac", critic_action_grad="perturbation", critic_action_delta=delta)


def test_perturbation_under_the_min_of_two_critics_equals_every_row_perturbed():
    """Only the rows each critic wins in ``min(Q_1, Q_2)`` are perturbed; the others would be
    multiplied by zero, so the action gradient is that of perturbing every row of both."""
    from biocredit.sb3.off_policy import perturbation_action_grad

    model = make("sac", critic_action_grad="perturbation")
    critic = model.policy.critic
    with torch.no_grad():  # the second critic mirrors the first: each is the lower one somewhere
        critic.q_networks[1].load_state_dict(critic.q_networks[0].state_dict())
        critic.q_networks[1].layers[-1].weight.neg_()
    torch.manual_seed(2)
    obs, actions = torch.randn(64, 3), torch.rand(64, 1) * 2 - 1
    with torch.no_grad():
        inputs = torch.cat([obs, actions], dim=1)
        q = torch.cat([q_net(inputs) for q_net in critic.q_networks], dim=1)
        every_row = [
            perturbation_action_grad(
                lambda f, a, net=q_net: net(torch.cat([f, a], dim=1)), obs, actions, 0.05
            )
            for q_net in critic.q_networks
        ]
    winner = q.argmin(dim=1, keepdim=True)
    assert 0 < winner.sum() < len(winner)  # both critics win some rows
    want = torch.where(winner == 0, every_row[0], every_row[1])
    torch.testing.assert_close(_action_grads(model, obs, actions), want, rtol=1e-4, atol=1e-5)


class ImageReach(gym.Env):
    """A 1-D reach task seen as a uint8 image (the position lit in a 12x12 map), continuous
    actions: enough for SAC and TD3 to run their conv policies."""

    observation_space = spaces.Box(0, 255, (1, 12, 12), np.uint8)
    action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = float(self.np_random.uniform(-1, 1))
        return self.image(), {}

    def image(self):
        image = np.zeros((1, 12, 12), np.uint8)
        image[0, 6, int((self.x + 1) * 5.5)] = 255
        return image

    def step(self, action):
        self.x = float(np.clip(self.x + 0.2 * action[0], -1, 1))
        return self.image(), -abs(self.x), False, False, {}


@pytest.mark.parametrize("name", ["sac", "td3"])
def test_cnn_policies_train_their_conv_layers_by_the_learner(name):
    """BioCnnSACPolicy / BioCnnTD3Policy: actor and critic each read the images through their
    own BioCnnExtractor, learning by the policy's learner; a few updates move both."""
    algo, policy = {"sac": (SAC, BioCnnSACPolicy), "td3": (TD3, BioCnnTD3Policy)}[name]
    convs = [{"channels": 4, "kernel": 3, "stride": 2}]
    model = algo(
        policy,
        gym.wrappers.TimeLimit(ImageReach(), 20),
        learning_starts=20,
        batch_size=16,
        seed=0,
        device="cpu",
        policy_kwargs=dict(learner="dfa", features_extractor_kwargs={"convs": convs}),
        **({"policy_delay": 1} if name == "td3" else {}),  # the actor updates every step
    )
    actor_cnn = model.policy.actor.features_extractor
    critic_cnn = model.policy.critic.features_extractor
    assert isinstance(actor_cnn, BioCnnExtractor) and actor_cnn is not critic_cnn
    assert actor_cnn.network.learner.name == critic_cnn.network.learner.name == "dfa"
    firsts = [cnn.network.parameters_in_order()[0] for cnn in (actor_cnn, critic_cnn)]
    before = [p.detach().clone() for p in firsts]
    model.learn(40)
    for weight, start in zip(firsts, before, strict=True):
        assert bool(weight.isfinite().all()) and not torch.equal(weight, start)
