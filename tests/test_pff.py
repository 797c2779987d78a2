"""Predictive forward-forward: its settling, both circuits' updates against their formulas on a
tiny float64 network, its reduction to ff without context, what it learns on a toy task, and
its use as an agent's perception and as an SB3 features extractor (its own rule, nothing else)."""

import copy
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3 import PPO

from biocredit.agents import ModularAgent, agent_config
from biocredit.errors import ConfigError
from biocredit.learners import LocalNetwork, NetworkSpec, make_learner
from biocredit.learners.cost import measure_cost
from biocredit.learners.pff import SettledCache
from biocredit.sb3 import BioActorCriticPolicy, BioFeaturesExtractor

SPEC = NetworkSpec(3, (5, 4), 2, "tanh")
WIDTHS = (5, 4, 2)


def network(spec: NetworkSpec = SPEC, seed: int = 0, **options) -> LocalNetwork:
    torch.manual_seed(seed)
    net = LocalNetwork(spec, "pff", **options).double()
    net.learner.remember(torch.randn(16, spec.in_features, dtype=torch.float64))
    return net


def recorded(net: LocalNetwork, x: torch.Tensor) -> SettledCache:
    with torch.no_grad():
        cache = net.learner.forward_pass(net.layers, x, record=True)[1]
    assert isinstance(cache, SettledCache)
    return cache


def rms(z: torch.Tensor) -> torch.Tensor:
    return z / (z.square().mean(1, keepdim=True).sqrt() + 1e-8)


def settle_by_hand(net: LocalNetwork, x: torch.Tensor, steps: int, damping: float) -> list:
    """States ``[z_1, z_2, z_3]`` after each step, written out: ff's pass, then every layer at
    once from ``W s_below + b + V s_above`` of the previous step, damped."""
    w = [layer.weight.detach() for layer in net.layers]
    b = [layer.bias.detach() for layer in net.layers]
    v = [net.learner.context_0.detach(), net.learner.context_1.detach()]
    z1 = torch.tanh(x @ w[0].T + b[0])
    z2 = torch.tanh(rms(z1) @ w[1].T + b[1])
    z3 = rms(z2) @ w[2].T + b[2]
    trajectory = []
    for _ in range(steps):
        a1 = x @ w[0].T + b[0] + rms(z2) @ v[0].T
        a2 = rms(z1) @ w[1].T + b[1] + rms(z3) @ v[1].T
        a3 = rms(z2) @ w[2].T + b[2]
        pairs = ((z1, torch.tanh(a1)), (z2, torch.tanh(a2)), (z3, a3))
        z1, z2, z3 = (damping * z + (1 - damping) * h for z, h in pairs)
        trajectory.append([z1, z2, z3])
    return trajectory


def test_settling_is_the_formula():
    """Top-down context from the layer above, RMS-normalised activity sent both ways, damping,
    a linear top layer; the output is the settled top layer."""
    net = network(steps=3, damping=0.3)
    x = torch.randn(4, 3, dtype=torch.float64)
    cache = recorded(net, x)
    by_hand = settle_by_hand(net, x, 3, 0.3)
    for got, want in zip(cache.states, by_hand, strict=True):
        for z, expected in zip(got, want, strict=True):
            torch.testing.assert_close(z, expected)
    torch.testing.assert_close(cache.output, by_hand[-1][2])
    with torch.no_grad():
        torch.testing.assert_close(net(x), by_hand[-1][2])  # inference settles too
    # the context matters: without it the hidden states stay at the feedforward pass's
    feedforward = torch.tanh(x @ net.layers[0].weight.detach().T + net.layers[0].bias.detach())
    assert not torch.allclose(cache.states[-1][0], feedforward)


def test_representation_update_is_each_layers_own_loss_gradient():
    """Every layer's W, b and top-down V get autograd's gradient of that layer's logistic
    goodness loss alone, at every settling step with everything it receives held fixed (its
    inputs and its own previous state), positive and negative settling, mean over batch and
    steps; here with a modulator that flips, skips and doubles rows."""
    steps, damping, threshold = 2, 0.4, 0.7
    net = network(steps=steps, damping=damping, threshold=threshold)
    learner = net.learner
    x = torch.randn(4, 3, dtype=torch.float64)
    modulator = torch.tensor([1.0, -1.0, 0.0, 2.0], dtype=torch.float64)
    cache = recorded(net, x)
    rng = torch.get_rng_state()
    learner.learn(net.layers, cache, modulator)
    torch.set_rng_state(rng)  # the same negatives: the bank after remembering x, the same draw
    negative_cache = recorded(net, learner.negatives(4))
    contexts = [learner.context_0, learner.context_1, None]
    for l, layer in enumerate(net.layers):
        params = [layer.weight, layer.bias] + ([contexts[l]] if contexts[l] is not None else [])
        loss = 0.0
        for phase_cache, phase in ((cache, 1.0), (negative_cache, -1.0)):
            for t in range(steps):
                sent = phase_cache.sent[t]  # [x, s_1(t-1), ...]: what the layers receive
                a = F.linear(sent[l], layer.weight, layer.bias)
                if contexts[l] is not None:
                    a = a + sent[l + 2] @ contexts[l].T
                h = a if l == 2 else torch.tanh(a)
                z_previous = (
                    phase_cache.states[t - 1][l] if t > 0 else _start_state(net, phase_cache, l)
                )
                z = damping * z_previous + (1 - damping) * h
                goodness = z.square().sum(1)
                term = F.softplus(-phase * (goodness - threshold * WIDTHS[l]))
                loss = loss + (modulator * term).mean() / steps
        expected = torch.autograd.grad(loss, params)
        got = [p.grad for p in params]
        for g, e in zip(got, expected, strict=True):
            torch.testing.assert_close(g, e)


def _start_state(net: LocalNetwork, cache: SettledCache, l: int) -> torch.Tensor:
    """``z_l(0)``, the feedforward pass's state, from what the start sent (``s = rms(z)``) and
    the weights."""
    with torch.no_grad():
        x = cache.sent[0][0]
        z1 = torch.tanh(F.linear(x, net.layers[0].weight, net.layers[0].bias))
        z2 = torch.tanh(F.linear(rms(z1), net.layers[1].weight, net.layers[1].bias))
        z3 = F.linear(rms(z2), net.layers[2].weight, net.layers[2].bias)
    return (z1, z2, z3)[l]


def test_generative_update_is_the_predictive_coding_rule():
    """``G_l.grad = -mean_b |m_b| eps_b s_l(T)^T`` with ``eps = z_{l-1}(T) - (G_l s_l(T) +
    c_l)``: the prediction of each settled layer (the input for l = 1) from the one above, the
    gradient of ``mean_b |m_b| ||eps_b||^2 / 2``; the representation's own rule does not touch
    the generative synapses, nor they the representation."""
    net = network(steps=2, damping=0.3)
    learner = net.learner
    x = torch.randn(5, 3, dtype=torch.float64)
    modulator = torch.tensor([1.0, -1.0, 0.0, 2.0, 1.0], dtype=torch.float64)
    cache = recorded(net, x)
    learner.learn(net.layers, cache, modulator)
    values = [x, *cache.states[-1]]
    sent = [x, *(rms(z) for z in cache.states[-1])]
    for l in range(3):
        g = getattr(learner, f"generative_{l}")
        c = getattr(learner, f"generative_bias_{l}")
        with torch.no_grad():
            eps = values[l] - (sent[l + 1] @ g.T + c)
            weights = modulator.abs()[:, None]
            by_hand = -sum(weights[b] * torch.outer(eps[b], sent[l + 1][b]) for b in range(5)) / 5
        torch.testing.assert_close(g.grad, by_hand)
        torch.testing.assert_close(c.grad, -(weights * eps).mean(0))
        g_, c_ = g.detach().clone().requires_grad_(), c.detach().clone().requires_grad_()
        energy = (modulator.abs() * (values[l] - sent[l + 1] @ g_.T - c_).square().sum(1)).mean()
        auto = torch.autograd.grad(energy / 2, [g_, c_])
        torch.testing.assert_close(g.grad, auto[0])
        torch.testing.assert_close(c.grad, auto[1])
    # the same representation, other generative synapses: the same features and updates
    other = network(steps=2, damping=0.3)
    other.load_state_dict(net.state_dict())
    with torch.no_grad():
        for l in range(3):
            getattr(other.learner, f"generative_{l}").mul_(-3.0)
    torch.testing.assert_close(recorded(other, x).output, cache.output)


@pytest.mark.parametrize("damping", [0.0, 0.5])
def test_without_top_down_context_pff_is_ff(damping):
    """With the top-down synapses at zero the settling stays at ff's forward pass, so the
    network's output is ff's and every layer's update is ff's times ``1 - damping`` (the share of
    the new drive in the damped state), with the same bank and the same negatives."""
    torch.manual_seed(3)
    spec = NetworkSpec(4, (6, 5), 3, "tanh")
    pff = LocalNetwork(spec, "pff", threshold=0.6, bank_size=8, steps=3, damping=damping).double()
    ff = LocalNetwork(spec, "ff", threshold=0.6, bank_size=8).double()
    ff.load_state_dict(
        {k: v for k, v in pff.state_dict().items() if not k.startswith("learner.")}, strict=False
    )
    with torch.no_grad():
        pff.learner.context_0.zero_()
        pff.learner.context_1.zero_()
    bank = torch.randn(8, 4, dtype=torch.float64)
    pff.learner.remember(bank)
    ff.learner.remember(bank)
    x = torch.randn(5, 4, dtype=torch.float64)
    modulator = torch.tensor([1.0, -1.0, 1.0, 0.5, 1.0], dtype=torch.float64)
    rng = torch.get_rng_state()
    pff_cache = recorded(pff, x)
    pff.learner.learn(pff.layers, pff_cache, modulator)
    torch.set_rng_state(rng)
    with torch.no_grad():
        y, ff_cache = ff.learner.forward_pass(ff.layers, x, record=True)
        ff.learner.learn(ff.layers, ff_cache, modulator)
    torch.testing.assert_close(pff_cache.output, y)
    for got, want in zip(pff.parameters_in_order(), ff.parameters_in_order(), strict=True):
        torch.testing.assert_close(got.grad, want.grad * (1 - damping))


@pytest.mark.slow
def test_goodness_separates_positives_from_negatives_and_predictions_improve():
    """Observations near four patterns against negatives that mix their features: after
    training, every layer's settled goodness is above its threshold for most positives and
    below it for most negatives, and the generative circuit's error in predicting the input from
    the first layer falls to under half of its start."""
    torch.manual_seed(0)
    n = 8
    patterns = torch.randn(4, n)

    def observations(batch: int) -> torch.Tensor:
        return patterns[torch.randint(4, (batch,))] + 0.1 * torch.randn(batch, n)

    net = LocalNetwork(NetworkSpec(n, (32,), 16, "relu"), "pff", threshold=0.5, steps=3)
    learner = net.learner

    def accuracies() -> list[float]:
        test = observations(512)
        learner.remember(test)
        right = []
        for x, positive in ((test, True), (learner.negatives(512), False)):
            states = recorded(net, x).states[-1]
            for z, width in zip(states, (32, 16), strict=True):
                right.append(float(((z.square().sum(1) > 0.5 * width) == positive).float().mean()))
        return right

    def input_prediction_error() -> float:
        x = observations(512)
        cache = recorded(net, x)
        with torch.no_grad():
            mu = rms(cache.states[-1][0]) @ learner.generative_0.T + learner.generative_bias_0
        return float((x - mu).square().sum(1).mean())

    assert max(accuracies()[:2]) < 0.5  # positives' goodness starts low
    start_error = input_prediction_error()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(600):
        learner.learn(net.layers, recorded(net, observations(64)))
        optimizer.step()
    assert min(accuracies()) > 0.8
    assert input_prediction_error() < 0.5 * start_error


@pytest.mark.parametrize("policy", ["hebbian3f", "dfa"])
def test_native_perception_changes_by_its_own_rule_alone(policy):
    """A few steps of a neuromodulated-ac agent with pff perception: every perception parameter
    (layers, top-down and generative synapses) moves by minus lr times the rule's update on the
    observations, whatever the policy's learner sends back; the actor learns too."""
    modules = {
        "perception": {"learner": "pff", "hidden": [8], "features": 5, "lr": 0.1},
        "policy": {"actor": {"learner": policy}, "critic": {"learner": policy}},
    }
    config = agent_config(
        "neuromodulated-ac", {"modules": modules, "normalize_observations": False}, None
    )
    torch.manual_seed(0)
    agent = ModularAgent(spaces.Box(-1.0, 1.0, (4,), dtype=np.float32), spaces.Discrete(3),
                         config, 2)  # fmt: skip
    net = agent.networks["perception"]
    actor_before = [p.detach().clone() for p in agent.networks["actor"].parameters()]
    observations = torch.randn(4, 2, 4)
    for step in range(3):
        obs = observations[step]
        rule = copy.deepcopy(net)
        agent.act(obs)
        rng = torch.get_rng_state()
        with torch.no_grad():
            _, cache = rule.learner.forward_pass(rule.layers, obs, record=True)
        rule.learner.learn(rule.layers, cache)
        torch.set_rng_state(rng)
        agent.learn(torch.ones(2), torch.tensor([False, False]), observations[step + 1],
                    torch.tensor([False, False]))  # fmt: skip
        for old, new in zip(rule.parameters(), net.parameters(), strict=True):
            torch.testing.assert_close(new.detach(), old.detach() - 0.1 * old.grad)
    actor_after = agent.networks["actor"].parameters()
    assert any(not torch.equal(a, b) for a, b in zip(actor_before, actor_after, strict=True))


def test_sb3_extractor_changes_by_its_own_rule_alone():
    """One PPO rollout, one minibatch holding all of it: the pff extractor's new parameters are
    the old ones minus lr times its rule's update on that minibatch (as the extractor received
    it, with torch's RNG as it was then, which draws the negatives), whatever the PPO loss and
    the dfa heads did."""
    model = PPO(
        BioActorCriticPolicy, "CartPole-v1", n_steps=32, batch_size=32, n_epochs=1, seed=0,
        device="cpu", policy_kwargs=dict(
            learner="dfa", net_arch=[8], features_extractor_class=BioFeaturesExtractor,
            features_extractor_kwargs=dict(learner="pff", hidden=[8], features_dim=5, lr=0.1),
        ),
    )  # fmt: skip
    extractor = model.policy.features_extractor
    before = copy.deepcopy(extractor.network)
    seen = []

    def keep(module, args):
        if module.training and torch.is_grad_enabled():
            seen.append((args[0].clone(), torch.get_rng_state()))

    extractor.register_forward_pre_hook(keep)
    model.learn(32)
    assert len(seen) == 1
    observations, rng = seen[0]
    torch.set_rng_state(rng)
    with torch.no_grad():
        _, cache = before.learner.forward_pass(before.layers, observations, record=True)
    before.learner.learn(before.layers, cache)
    for old, new in zip(before.parameters(), extractor.network.parameters(), strict=True):
        torch.testing.assert_close(new.detach(), old.detach() - 0.1 * old.grad)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"steps": 0}, "pff 'steps' must be an integer >= 1, got 0"),
        ({"steps": 2.5}, "pff 'steps' must be an integer >= 1"),
        ({"damping": 1.0}, "pff 'damping' must be in [0, 1), got 1.0"),
        ({"damping": "high"}, "pff 'damping' must be a number"),
        ({"threshold": 0}, "pff 'threshold' must be > 0"),
        ({"bank_size": 1}, "pff 'bank_size' must be an integer >= 2"),
    ],
)
def test_bad_options_are_refused_clearly(options, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        make_learner("pff", **options)


def test_cost_is_the_hand_count():
    """``[3, 4, 5, 2]``, batch 5, 3 steps: a pass ``P = B sum_l n_{l-1} n_l``, the top-down
    products ``C = B sum_l n_l n_{l+1}`` per step; the recorded pass is ``P + T (P + C)`` at
    depth ``L + T``; an update settles the negatives so, takes every layer's W and V updates at
    every step of both settlings (``2 T (P + C)``) and the generative predictions and updates
    (``2 P``), at depth ``L + T + 1``."""
    b, steps = 5, 3
    p = b * (3 * 4 + 4 * 5 + 5 * 2)
    c = b * (4 * 5 + 5 * 2)
    cost = measure_cost("pff", None, NetworkSpec(3, (4, 5), 2), b)
    forward = p + steps * (p + c)
    assert (cost.forward_macs, cost.forward_depth) == (forward, 3 + steps)
    assert cost.credit_macs == forward + 2 * steps * (p + c) + 2 * p
    assert cost.credit_depth == 3 + steps + 1
