"""The signal-free features extractor under SB3: its layers learn by their own rule and
optimizer from the observations the algorithm trains on, the heads by theirs from its features,
and no loss reaches the extractor."""

import copy
import re

import pytest
import torch
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from biocredit.errors import ConfigError
from biocredit.sb3 import BioActorCriticPolicy, BioFeaturesExtractor
from biocredit.training.resolve import resolve_config
from biocredit.training.sb3_runner import SB3Run, policy_kwargs


class LinearExtractor(BaseFeaturesExtractor):
    """A features extractor with a plain ``nn.Linear``: backprop would train it."""

    def __init__(self, observation_space, features_dim: int = 8) -> None:
        super().__init__(observation_space, features_dim)
        self.linear = torch.nn.Linear(observation_space.shape[0], features_dim)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(observations)


def ppo(extractor: dict, **kwargs) -> PPO:
    options = dict(learner="dfa", net_arch=[8], features_extractor_class=BioFeaturesExtractor)
    return PPO(
        BioActorCriticPolicy, "CartPole-v1", n_steps=32, batch_size=32, n_epochs=1, seed=0,
        device="cpu", policy_kwargs=dict(options, features_extractor_kwargs=extractor), **kwargs,
    )  # fmt: skip


def test_a_ppo_step_changes_the_extractor_by_the_rule_alone():
    """One rollout, one minibatch holding all of it: the extractor's new weights are the old
    ones minus lr times the softhebb update on the rollout's observations, whatever the PPO
    loss, its clipping and the heads' learner did."""
    model = ppo(dict(learner="softhebb", hidden=[8], features_dim=5, lr=0.1))
    extractor = model.policy.features_extractor
    before = copy.deepcopy(extractor.network)
    heads = [p.detach().clone() for p in model.policy.mlp_extractor.parameters()]
    model.learn(32)
    observations = torch.as_tensor(model.rollout_buffer.observations).reshape(32, 4)
    with torch.no_grad():
        _, cache = before.learner.forward_pass(before.layers, observations, record=True)
    before.learner.learn(before.layers, cache)
    for old, new in zip(before.parameters(), extractor.network.parameters(), strict=True):
        torch.testing.assert_close(new.detach(), old.detach() - 0.1 * old.grad)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(heads, model.policy.mlp_extractor.parameters(), strict=True)
    )


def test_no_loss_reaches_the_extractor():
    model = ppo(dict(learner="ff", hidden=[8], features_dim=5))
    policy = model.policy
    extractor = policy.features_extractor
    in_policy_optimizer = {
        id(p) for group in policy.optimizer.param_groups for p in group["params"]
    }
    assert not in_policy_optimizer & {id(p) for p in extractor.parameters()}
    policy.set_training_mode(True)
    observations = torch.randn(6, 4)
    values, log_prob, _ = policy.evaluate_actions(observations, torch.zeros(6))
    assert extractor(observations).grad_fn is None  # features: no path back into it
    (values.sum() + log_prob.sum()).backward()
    assert all(p.grad is None for p in extractor.parameters())  # its own step cleared them


def test_the_extractor_learns_only_while_the_algorithm_trains():
    model = ppo(dict(learner="hebbian", hidden=[8], features_dim=5))
    extractor = model.policy.features_extractor
    before = [p.detach().clone() for p in extractor.parameters()]
    model.predict(torch.randn(4).numpy())
    model.policy.set_training_mode(True)
    with torch.no_grad():
        model.policy(torch.randn(3, 4))
    assert all(torch.equal(a, b) for a, b in zip(before, extractor.parameters(), strict=True))


def test_a2c_and_separate_extractors_learn():
    model = A2C(
        BioActorCriticPolicy, "CartPole-v1", n_steps=8, seed=0, device="cpu",
        policy_kwargs=dict(
            learner="fa", net_arch=[8], share_features_extractor=False,
            features_extractor_class=BioFeaturesExtractor,
            features_extractor_kwargs=dict(learner="softhebb", hidden=[], features_dim=6),
        ),
    )  # fmt: skip
    policy = model.policy
    extractors = (policy.pi_features_extractor, policy.vf_features_extractor)
    before = [[p.detach().clone() for p in e.parameters()] for e in extractors]
    model.learn(16)
    for extractor, old in zip(extractors, before, strict=True):
        assert any(not torch.equal(a, b) for a, b in zip(old, extractor.parameters(), strict=True))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ppo(dict(learner="dfa")), "learns from an error signal, but the extractor"),
        (lambda: ppo(dict(optimizer="adagrad")), "Unknown features extractor optimizer 'adagrad'"),
        (lambda: ppo(dict(lr=0.0)), "features_extractor_kwargs 'lr' must be > 0, got 0.0"),
        (lambda: ppo(dict(learner="ff", learner_kwargs={"bank_size": 1})), "'bank_size'"),
        (
            lambda: PPO(
                BioActorCriticPolicy,
                "CartPole-v1",
                device="cpu",
                policy_kwargs=dict(features_extractor_class=LinearExtractor),
            ),
            "features_extractor_class=LinearExtractor has trainable layers",
        ),
        (
            lambda: PPO(
                BioActorCriticPolicy,
                "CartPole-v1",
                device="cpu",
                policy_kwargs=dict(learner="softhebb"),
            ),
            "'softhebb' can train the features extractor instead",
        ),
    ],
)
def test_bad_extractor_options_are_refused_clearly(make, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        make()


def test_the_runner_takes_the_extractor_by_name_for_actor_critic_algorithms():
    overrides = [
        "policy_kwargs.features_extractor_class=BioFeaturesExtractor",
        "policy_kwargs.features_extractor_kwargs={learner: softhebb}",
    ]
    kwargs = policy_kwargs(resolve_config(flags={"learner": "dfa"}, overrides=overrides))
    assert kwargs["features_extractor_class"] is BioFeaturesExtractor
    wrong = ["policy_kwargs.features_extractor_class=NatureCNN"]
    with pytest.raises(ConfigError, match="Unknown features_extractor_class 'NatureCNN'"):
        policy_kwargs(resolve_config(flags={"learner": "dfa"}, overrides=wrong))
    with pytest.raises(ConfigError, match="Unknown key 'features_extractor_class'"):
        policy_kwargs(resolve_config(flags={"learner": "dfa", "algo": "dqn"}, overrides=wrong))


def test_a_rollback_scales_the_extractor_rate_too():
    overrides = [
        "policy_kwargs.features_extractor_class=BioFeaturesExtractor",
        "policy_kwargs.features_extractor_kwargs={learner: softhebb, lr: 0.01}",
    ]
    run = SB3Run(resolve_config(flags={"learner": "dfa"}, overrides=overrides))
    run.scale_learning_rates(0.5)
    assert run.algo.policy.features_extractor.optimizer.param_groups[0]["lr"] == 0.005
    run.env.close()
