"""Local losses (``biocredit.learners.local``): each layer's update against its readout loss's
gradient, the top layer against backprop, the locality of every update (no layer reads another's
weights), the averaged output and DQN with per-layer Q."""

import math
import re

import pytest
import torch

from biocredit.errors import ConfigError
from biocredit.learners import LocalNetwork, NetworkSpec
from biocredit.learners.base import error_rms
from biocredit.learners.local import readout_delta, readout_error

SPEC = NetworkSpec(5, (7, 6), 3, "tanh")
CONFIGS = [
    {"readout": readout, "output": output}
    for readout in ("learned", "fixed")
    for output in ("top", "mean")
]
IDS = [f"{c['readout']}-{c['output']}" for c in CONFIGS]


pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


def batch(seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(4, 5, generator=generator), torch.randn(4, 3, generator=generator)


def credit(net: LocalNetwork, x: torch.Tensor, error: torch.Tensor, input_grad: bool = False):
    """The updates the learner writes for an output error ``e`` (any loss with ``dL/dy = e``)."""
    net.zero_grad()
    x = x.clone().requires_grad_(input_grad)
    (net(x) * error).sum().backward()
    grads = [p.grad.clone() for p in net.parameters_in_order()]
    return grads, (x.grad.clone() if input_grad else None)


def readouts(net: LocalNetwork) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    return net.learner._readouts


def test_readout_error_kernel():
    """``((r - y) - shift) / beta`` is the readout loss's gradient, and ``e`` at ``r = y``."""
    r, y, e = torch.randn(4, 3), torch.randn(4, 3), torch.randn(4, 3)
    beta = 0.1 / error_rms(e)
    shift = -beta * e
    torch.testing.assert_close(readout_error(y, y, shift, beta), e, atol=1e-12, rtol=0)
    r_var = r.clone().requires_grad_(True)
    loss = (r_var - (y + shift)).pow(2).sum() / (2 * beta)
    (expected,) = torch.autograd.grad(loss, r_var)
    torch.testing.assert_close(readout_error(r, y, shift, beta), expected)
    readout_w, fprime = torch.randn(3, 7), torch.rand(4, 7)
    err = readout_error(r, y, shift, beta)
    torch.testing.assert_close(
        readout_delta(err.clone(), readout_w, fprime), err @ readout_w * fprime
    )


@pytest.mark.parametrize("options", CONFIGS, ids=IDS)
def test_every_update_is_its_own_readout_losss_gradient(options):
    """Layer ``l`` changes by the gradient of ``||R_l f(W_l h_{l-1} + b_l) + c_l - y*||^2 /
    (2 beta)`` with ``y* = y - beta e`` (autograd through that one layer and its readout), the
    top layer by its own readout's loss; learned readouts by the same loss."""
    torch.manual_seed(0)
    net = LocalNetwork(SPEC, "local", **options)
    x, error = batch()
    grads, _ = credit(net, x, error)
    with torch.no_grad():
        y, cache = net.learner.forward_pass(net.layers, x, record=True)
    beta = net.learner.nudge / error_rms(error)
    target = y - beta * error
    layers = list(net.layers)
    for l, layer in enumerate(layers):
        w, b = layer.weight.detach().clone(), layer.bias.detach().clone()
        w.requires_grad_(True), b.requires_grad_(True)
        a = cache.inputs[l] @ w.t() + b
        if l == len(layers) - 1:
            prediction, own = a, []
        else:
            readout_w, readout_b = readouts(net)[l + 1]
            readout_w = readout_w.detach().clone().requires_grad_(True)
            prediction = torch.tanh(a) @ readout_w.t()
            own = [readout_w]
            if readout_b is not None:
                readout_b = readout_b.detach().clone().requires_grad_(True)
                prediction = prediction + readout_b
                own.append(readout_b)
        loss = (prediction - target).pow(2).sum() / (2 * beta)
        expected = torch.autograd.grad(loss, [w, b, *own])
        torch.testing.assert_close(grads[2 * l], expected[0])
        torch.testing.assert_close(grads[2 * l + 1], expected[1])
        if options["readout"] == "learned" and own:
            readout_w, readout_b = readouts(net)[l + 1]
            torch.testing.assert_close(readout_w.grad, expected[2])
            torch.testing.assert_close(readout_b.grad, expected[3])


@pytest.mark.parametrize("readout", ["learned", "fixed"])
def test_top_update_is_backprops_last_layer_gradient(readout):
    torch.manual_seed(0)
    net = LocalNetwork(SPEC, "local", readout=readout)
    bp = LocalNetwork(SPEC, "bp")
    bp.load_state_dict(net.state_dict(), strict=False)
    x, error = batch()
    got, want = credit(net, x, error)[0], credit(bp, x, error)[0]
    for g, w in zip(got[-2:], want[-2:], strict=True):
        torch.testing.assert_close(g, w, atol=1e-12, rtol=1e-12)
    assert not torch.allclose(got[0], want[0])  # the hidden layers learn otherwise


@pytest.mark.parametrize("options", CONFIGS, ids=IDS)
def test_no_update_reads_another_layers_weights_or_readout(options):
    """Poisoning probe: after the forward pass every weight, bias and readout except layer
    ``l``'s own is NaN; layer ``l``'s update is unchanged. Backprop's hidden layers, poisoned
    alike, get NaN (the probe bites)."""
    x, error = batch()
    torch.manual_seed(0)
    clean = credit(LocalNetwork(SPEC, "local", **options), x, error)[0]
    n_layers = SPEC.n_layers
    for keep in range(n_layers):
        torch.manual_seed(0)
        net = LocalNetwork(SPEC, "local", **options)
        learner = net.learner
        with torch.no_grad():
            _, cache = learner.forward_pass(net.layers, x, record=True)
            for l, layer in enumerate(net.layers):
                if l != keep:
                    layer.weight.fill_(math.nan), layer.bias.fill_(math.nan)
            for l, (readout_w, readout_b) in enumerate(readouts(net)):
                if l != keep + 1:
                    readout_w.fill_(math.nan)
                    if readout_b is not None:
                        readout_b.fill_(math.nan)
            _, grads = learner.assign_credit(net.layers, cache, error, input_grad=False)
        own = slice(2 * keep, 2 * keep + 2)
        for got, want in zip(grads[own], clean[own], strict=True):
            torch.testing.assert_close(got, want, atol=0, rtol=0)
    torch.manual_seed(0)
    bp = LocalNetwork(SPEC, "bp")
    with torch.no_grad():
        _, cache = bp.learner.forward_pass(bp.layers, x, record=True)
        bp.layers[-1].weight.fill_(math.nan)
        _, grads = bp.learner.assign_credit(bp.layers, cache, error, input_grad=False)
    assert not bool(grads[0].isfinite().any())


@pytest.mark.parametrize("readout", ["learned", "fixed"])
def test_mean_output_is_the_average_of_every_readout(readout):
    torch.manual_seed(0)
    net = LocalNetwork(SPEC, "local", readout=readout, output="mean")
    x, _ = batch()
    with torch.no_grad():
        y_infer = net(x)
        y_record, cache = net.learner.forward_pass(net.layers, x, record=True)
        h1, h2 = cache.inputs[1], cache.inputs[2]
        (r1w, r1b), (r2w, r2b) = readouts(net)[1], readouts(net)[2]
        r1 = h1 @ r1w.t() + (0 if r1b is None else r1b)
        r2 = h2 @ r2w.t() + (0 if r2b is None else r2b)
        top = net.layers[-1](h2)
    torch.testing.assert_close(y_infer, (r1 + r2 + top) / 3)
    torch.testing.assert_close(y_record, y_infer, atol=0, rtol=0)
    top_net = LocalNetwork(SPEC, "local", readout=readout)
    top_net.load_state_dict(net.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(top_net(x), top)


def test_mean_readout_errors_average_to_the_output_error():
    """``sum_l (r_l - y) = 0`` when ``y`` is their mean, so the readouts' errors average to e."""
    torch.manual_seed(0)
    net = LocalNetwork(SPEC, "local", output="mean")
    x, error = batch()
    with torch.no_grad():
        y, cache = net.learner.forward_pass(net.layers, x, record=True)
    beta = 0.1 / error_rms(error)
    errors = [readout_error(r, y, -beta * error, beta) for r in cache.readouts[1:]]
    torch.testing.assert_close(torch.stack(errors).mean(0), error)


@pytest.mark.parametrize("readout", ["learned", "fixed"])
def test_input_error_is_the_input_readouts(readout):
    """An upstream module gets its own readout's error: the gradient of
    ``||R_0 x + c_0 - y*||^2 / (2 beta)`` with respect to ``x``."""
    torch.manual_seed(0)
    net = LocalNetwork(SPEC, "local", readout=readout)
    x, error = batch()
    _, grad_x = credit(net, x, error, input_grad=True)
    with torch.no_grad():
        y = net(x)
    beta = 0.1 / error_rms(error)
    readout_w, readout_b = readouts(net)[0]
    xv = x.clone().requires_grad_(True)
    prediction = xv @ readout_w.detach().t() + (0 if readout_b is None else readout_b.detach())
    loss = (prediction - (y - beta * error)).pow(2).sum() / (2 * beta)
    torch.testing.assert_close(grad_x, torch.autograd.grad(loss, xv)[0])


def test_squared_error_with_an_absolute_unit_nudge_regresses_every_readout_on_the_target():
    """``relative_nudge=False, nudge=1`` and ``||y - t||^2 / 2`` make ``y* = t``: each learned
    readout's gradient is that of ``||r_l - t||^2 / 2``, the papers' local loss."""
    torch.manual_seed(0)
    net = LocalNetwork(SPEC, "local", relative_nudge=False, nudge=1.0)
    x, target = batch()
    net.zero_grad()
    (0.5 * (net(x) - target).pow(2).sum()).backward()
    with torch.no_grad():
        _, cache = net.learner.forward_pass(net.layers, x, record=True)
    readout_w, readout_b = readouts(net)[2]
    torch.testing.assert_close(readout_b.grad, (cache.readouts[2] - target).sum(0))
    torch.testing.assert_close(readout_w.grad, (cache.readouts[2] - target).t() @ cache.inputs[2])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"readout": "random"}, "Unknown local readout 'random'"),
        ({"output": "last"}, "Unknown local output 'last'"),
        ({"scale": 0.0}, "'scale' must be > 0"),
        ({"init": "normal"}, "Unknown feedback init 'normal'"),
        ({"nudge": 0.0}, "local 'nudge' must be > 0"),
    ],
)
def test_bad_options_are_clear(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        LocalNetwork(SPEC, "local", **kwargs)


@pytest.mark.parametrize("output", ["top", "mean"])
def test_dqn_with_per_layer_q(output):
    """DQN trains a local network (per-layer Q predictions); the target network carries the
    readouts it forwards with."""
    from stable_baselines3 import DQN

    from biocredit.sb3 import BioDQNPolicy

    torch.set_default_dtype(torch.float32)
    kwargs = dict(learner="local", learner_kwargs={"output": output}, net_arch=[16, 16])
    model = DQN(
        BioDQNPolicy, "CartPole-v1", learning_starts=32, batch_size=16, train_freq=4,
        target_update_interval=8, seed=0, policy_kwargs=kwargs, device="cpu",
    )  # fmt: skip
    before = {k: v.clone() for k, v in model.policy.q_net.state_dict().items()}
    model.learn(128)
    after = model.policy.q_net.state_dict()
    assert all(bool(v.isfinite().all()) for v in after.values())
    changed = {k for k, v in after.items() if not torch.equal(v, before[k])}
    assert "q_net.learner.readout_1" in changed and "q_net.layers.0.weight" in changed
    model.policy.q_net_target.load_state_dict(model.policy.q_net.state_dict())
    obs = torch.randn(5, 4)
    with torch.no_grad():
        torch.testing.assert_close(model.policy.q_net(obs), model.policy.q_net_target(obs))
