"""BioCnnPolicy: PPO on images with a local conv network as the features extractor, its layers
trained by the learner's rule, SB3's image preprocessing, save/load."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.vec_env import VecTransposeImage

from biocredit.errors import ConfigError
from biocredit.learners import ConvNetwork
from biocredit.sb3 import BioCnnExtractor, BioCnnPolicy

SMALL = dict(
    convs=[{"channels": 4, "kernel": 8, "stride": 4}, {"channels": 8, "kernel": 3, "stride": 2}],
    features_dim=16,
)


class BrighterSide(gym.Env):
    """36x36 RGB uint8 images (channel last, as envs render them); reward 1 for naming the
    brighter half (0 left, 1 right); 8 steps an episode."""

    observation_space = spaces.Box(0, 255, (36, 36, 3), np.uint8)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._observe(), {}

    def _observe(self):
        self.side = int(self.np_random.integers(2))
        image = self.np_random.integers(0, 128, (36, 36, 3), dtype=np.uint8)
        half = slice(18, 36) if self.side else slice(0, 18)
        image[:, half] += 100
        return image

    def step(self, action):
        reward = float(action == self.side)
        self.t += 1
        return self._observe(), reward, False, self.t >= 8, {}


def model(learner: str = "dfa", **policy_kwargs) -> PPO:
    kwargs = {"learner": learner, "features_extractor_kwargs": dict(SMALL), **policy_kwargs}
    return PPO(
        BioCnnPolicy, BrighterSide(), n_steps=32, batch_size=32, n_epochs=1, seed=0,
        policy_kwargs=kwargs, device="cpu",
    )  # fmt: skip


def images(n: int = 6) -> np.ndarray:
    env = BrighterSide()
    env.reset(seed=1)
    return np.stack([env._observe() for _ in range(n)])


def test_ppo_step_trains_the_conv_network_channels_first():
    ppo = model()
    assert isinstance(ppo.get_env(), VecTransposeImage)  # SB3 moved the channels first
    extractor = ppo.policy.features_extractor
    assert isinstance(extractor, BioCnnExtractor) and isinstance(extractor.network, ConvNetwork)
    assert extractor.network.spec.in_shape == (3, 36, 36)
    assert extractor.network.learner.name == "dfa"
    assert ppo.policy.mlp_extractor.policy_net.spec.hidden == ()  # CnnPolicy's heads
    before = [p.detach().clone() for p in ppo.policy.parameters()]
    ppo.learn(32)
    after = list(ppo.policy.parameters())
    assert all(bool(p.isfinite().all()) for p in after)
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_a2c_step_trains_the_conv_network():
    a2c = A2C(
        BioCnnPolicy, BrighterSide(), n_steps=8, seed=0, device="cpu",
        policy_kwargs={"learner": "fa", "features_extractor_kwargs": dict(SMALL)},
    )  # fmt: skip
    net = a2c.policy.features_extractor.network
    before = [p.detach().clone() for p in net.parameters()]
    a2c.learn(16)
    assert all(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_conv_layers_get_dfa_updates_not_backprop():
    """A PPO-shaped loss on both heads: the conv network's ``.grad`` is dfa's rule applied to
    the error its boundary received, and is not backprop's gradient."""
    policy = model().policy
    net = policy.features_extractor.network
    received = {}

    def keep_error(module, inputs, y):
        y.register_hook(lambda e: received.update(e=e))

    net.register_forward_hook(keep_error)
    obs = torch.as_tensor(images()).permute(0, 3, 1, 2)
    actions = torch.tensor([0, 1, 0, 1, 1, 0])
    values, log_prob, entropy = policy.evaluate_actions(obs, actions)
    policy.zero_grad()
    (-log_prob.mean() + values.pow(2).mean() - 0.01 * entropy.mean()).backward()
    x = preprocess_obs(obs, policy.observation_space, normalize_images=True)
    assert float(x.max()) <= 1.0  # SB3 scaled the uint8 images
    _, cache = net.forward_pass(x, record=True)
    _, want = net.assign_credit(cache, received["e"], input_grad=False)
    params = net.parameters_in_order()
    for param, grad in zip(params, want, strict=True):
        torch.testing.assert_close(param.grad, grad)
    with torch.enable_grad():
        y, _ = net.forward_pass(x, record=False)
        backprop = torch.autograd.grad(y, params[:2], grad_outputs=received["e"])
    cosine = torch.nn.functional.cosine_similarity(
        backprop[0].flatten(), params[0].grad.flatten(), dim=0
    )
    assert float(cosine) < 0.99


def test_save_load_round_trip_predicts_the_same_actions(tmp_path):
    ppo = model("fa")
    ppo.learn(32)
    ppo.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip", device="cpu")
    assert isinstance(loaded.policy, BioCnnPolicy)
    observations = images(16)
    want, _ = ppo.predict(observations, deterministic=True)
    got, _ = loaded.predict(observations, deterministic=True)
    np.testing.assert_array_equal(got, want)
    original, restored = ppo.policy.state_dict(), loaded.policy.state_dict()
    assert original.keys() == restored.keys()
    assert any("feedback" in key for key in original)  # fa's kernels B travel with the model
    for key, value in original.items():
        assert torch.equal(value, restored[key]), key


def test_a_learner_without_a_conv_rule_is_refused():
    refusal = r"'pc' cannot train a convolutional network.*bp, dfa, fa"
    with pytest.raises(ConfigError, match=refusal):
        model("pc")


def test_the_extractor_can_have_its_own_learner():
    ppo = model("dfa", features_extractor_kwargs=dict(SMALL, learner="bp"))
    assert ppo.policy.features_extractor.network.learner.name == "bp"
    assert ppo.policy.mlp_extractor.policy_net.learner.name == "dfa"


def test_non_image_observations_are_refused():
    with pytest.raises(ConfigError, match="BioCnnExtractor reads images"):
        PPO(BioCnnPolicy, "CartPole-v1", device="cpu")
