"""BioActorCriticPolicy inside real SB3 PPO and A2C."""

import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.env_util import make_vec_env
from torch import nn

from biocredit.errors import BiocreditError
from biocredit.learners import LocalNetwork
from biocredit.learners.base import ErrorDrivenLearner
from biocredit.learners.registry import list_learners
from biocredit.sb3 import BioActorCriticPolicy


def small_ppo(env_id: str, learner: str, seed: int = 0, **kwargs) -> PPO:
    env = make_vec_env(env_id, n_envs=2, seed=seed)
    return PPO(
        BioActorCriticPolicy,
        env,
        n_steps=32,
        batch_size=32,
        n_epochs=2,
        seed=seed,
        device="cpu",
        policy_kwargs=dict(learner=learner, net_arch=[16, 16]),
        **kwargs,
    )


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
@pytest.mark.parametrize("learner", list_learners(ErrorDrivenLearner))
def test_heads_belong_to_the_learner(env_id, learner):
    model = small_ppo(env_id, learner)
    policy = model.policy
    assert isinstance(policy.action_net, nn.Identity)
    assert isinstance(policy.value_net, nn.Identity)
    networks = [m for m in policy.modules() if isinstance(m, LocalNetwork)]
    assert [n.learner.name for n in networks] == [learner, learner]
    # every trainable parameter is a LocalNetwork parameter, except a Gaussian's free log_std
    local = {id(p) for n in networks for p in n.parameters()}
    others = [name for name, p in policy.named_parameters() if id(p) not in local]
    assert others == (["log_std"] if env_id == "Pendulum-v1" else [])
    n_actions = 2 if env_id == "CartPole-v1" else 1
    assert networks[0].spec.out_features == n_actions
    assert networks[1].spec.out_features == 1


@pytest.mark.parametrize("learner", [n for n in list_learners(ErrorDrivenLearner) if n != "bp"])
def test_ppo_update_goes_through_the_learner(learner, monkeypatch):
    """During PPO's update, every layer's gradient comes from the learner's assign_credit."""
    model = small_ppo("CartPole-v1", learner)
    calls = []
    for net in (m for m in model.policy.modules() if isinstance(m, LocalNetwork)):
        original = net.learner.assign_credit
        monkeypatch.setattr(
            net.learner,
            "assign_credit",
            lambda *a, _f=original, **k: calls.append(1) or _f(*a, **k),
        )
    nets = [m for m in model.policy.modules() if isinstance(m, LocalNetwork)]
    layers = [p for net in nets for p in net.parameters_in_order()]  # every layer, heads included
    before = [p.detach().clone() for p in layers]
    model.learn(64)
    assert calls, "the learner was never asked to assign credit"
    assert all(not torch.equal(a, b) for a, b in zip(before, layers, strict=True))


def test_a2c_with_box_actions_trains():
    env = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    model = A2C(
        BioActorCriticPolicy,
        env,
        n_steps=8,
        seed=0,
        device="cpu",
        policy_kwargs=dict(learner="dfa", net_arch=dict(pi=[16], vf=[32])),
    )
    model.learn(64)
    assert model.policy.mlp_extractor.value_net.spec.hidden == (32,)
    action, _ = model.predict(env.reset(), deterministic=True)
    assert action.shape == (2, 1)


def test_save_load_round_trip(tmp_path):
    model = small_ppo("CartPole-v1", "dfa")
    model.learn(128)
    model.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip", device="cpu")
    observations = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    expected, _ = model.predict(observations, deterministic=True)
    got, _ = loaded.predict(observations, deterministic=True)
    np.testing.assert_array_equal(got, expected)
    original, restored = model.policy.state_dict(), loaded.policy.state_dict()
    feedback = [k for k in original if "feedback" in k]
    assert len(feedback) == 6  # D_0, D_1, D_2 for the policy and for the value network
    for key in original:
        torch.testing.assert_close(restored[key], original[key])
    loaded.set_env(make_vec_env("CartPole-v1", n_envs=2, seed=1))
    loaded.learn(64, reset_num_timesteps=False)  # training continues after load
    assert loaded.num_timesteps == model.num_timesteps + 64


def test_critic_can_use_another_learner():
    env = make_vec_env("CartPole-v1", n_envs=1, seed=0)
    model = PPO(
        BioActorCriticPolicy,
        env,
        n_steps=16,
        batch_size=16,
        device="cpu",
        policy_kwargs=dict(learner="dfa", critic_learner="bp"),
    )
    extractor = model.policy.mlp_extractor
    assert (extractor.policy_net.learner.name, extractor.value_net.learner.name) == ("dfa", "bp")


def test_feedback_matrices_follow_the_seed():
    a, b, c = (small_ppo("CartPole-v1", "fa", seed=s) for s in (3, 3, 4))
    fa = [m.policy.mlp_extractor.policy_net.learner.feedback_0 for m in (a, b, c)]
    assert torch.equal(fa[0], fa[1])
    assert not torch.equal(fa[0], fa[2])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(activation_fn=nn.Softplus), "activation_fn"),
        (dict(learner="faa"), "Did you mean 'fa'"),
        (dict(learner="dfa", learner_kwargs=dict(sclae=2.0)), "sclae"),
        (dict(net_arch=dict(pi=[8])), "'vf'"),
    ],
)
def test_bad_policy_arguments(kwargs, match):
    env = make_vec_env("Pendulum-v1", n_envs=1, seed=0)
    with pytest.raises(BiocreditError, match=match):
        PPO(BioActorCriticPolicy, env, device="cpu", policy_kwargs=kwargs)


def test_gsde_is_refused():
    env = make_vec_env("Pendulum-v1", n_envs=1, seed=0)
    with pytest.raises(BiocreditError, match="use_sde"):
        PPO(BioActorCriticPolicy, env, device="cpu", use_sde=True)
