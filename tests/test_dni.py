"""Synthetic gradients (``biocredit.learners.dni``): the updates and the modules' regression
against their formulas (targets by autograd through one layer), exact modules give backprop, the
update-unlocked flag (a hidden layer's update needs only its own forward quantities and module),
and the modules learning the gradient on a fixed batch."""

import math
import re

import pytest
import torch

from biocredit.errors import ConfigError
from biocredit.learners import LocalNetwork, NetworkSpec
from biocredit.learners.cost import measure_cost
from biocredit.learners.dni import bootstrap_target, synthetic_delta, synthetic_gradient

SPEC = NetworkSpec(5, (7, 6), 3, "tanh")
CONFIGS = [
    {"feedback": feedback, "conditioned": conditioned}
    for feedback in ("symmetric", "random")
    for conditioned in (False, True)
]
IDS = [f"{c['feedback']}-{'cdni' if c['conditioned'] else 'dni'}" for c in CONFIGS]


pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


def batch(seed: int = 1, n: int = 4):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=generator), torch.randn(n, 3, generator=generator)


def network(options: dict, seed: int = 0) -> LocalNetwork:
    """A dni network whose modules are random (they start at zero), so every term is tested."""
    torch.manual_seed(seed)
    net = LocalNetwork(SPEC, "dni", **options)
    with torch.no_grad():
        for p in net.learner.parameters():
            p.normal_(0.0, 0.3)
    return net


def modules(net: LocalNetwork):
    return net.learner._sg_modules


def credit(net: LocalNetwork, x: torch.Tensor, error: torch.Tensor, input_grad: bool = False):
    net.zero_grad()
    x = x.clone().requires_grad_(input_grad)
    (net(x) * error).sum().backward()
    grads = [p.grad.clone() for p in net.parameters_in_order()]
    return grads, (x.grad.clone() if input_grad else None)


def test_kernels_match_their_formulas():
    h, e, fprime = torch.randn(4, 7), torch.randn(4, 3), torch.rand(4, 7)
    weight, bias, context_w = torch.randn(7, 7), torch.randn(7), torch.randn(7, 3)
    torch.testing.assert_close(
        synthetic_gradient(h, weight, bias, None, None), h @ weight.t() + bias
    )
    torch.testing.assert_close(
        synthetic_gradient(h, weight, bias, e, context_w), h @ weight.t() + bias + e @ context_w.t()
    )
    g = torch.randn(4, 7)
    torch.testing.assert_close(synthetic_delta(g, fprime), g * fprime)
    feedback = torch.randn(7, 6)
    delta = torch.randn(4, 7)
    torch.testing.assert_close(bootstrap_target(delta, feedback), delta @ feedback)


def test_modules_start_at_zero_and_the_top_layer_gets_the_true_error():
    torch.manual_seed(0)
    net = LocalNetwork(SPEC, "dni")
    bp = LocalNetwork(SPEC, "bp")
    bp.load_state_dict(net.state_dict(), strict=False)
    assert all(not bool(p.any()) for p in net.learner.parameters())
    x, error = batch()
    got, want = credit(net, x, error)[0], credit(bp, x, error)[0]
    assert all(not bool(g.any()) for g in got[:-2])  # zero synthetic gradients: no change yet
    for g, w in zip(got[-2:], want[-2:], strict=True):
        torch.testing.assert_close(g, w, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("options", CONFIGS, ids=IDS)
def test_updates_and_module_regression_match_the_formulas(options):
    """Hidden ``dW_l = (g_l * f'(a_l))^T h_{l-1}``; top ``e^T h_{L-1}``; each module's gradient is
    that of ``||g_l - t_l||^2 / 2`` with ``t_l`` the next layer's error (``e`` at the top, the
    next module's ``g_{l+1}`` below) carried through that layer by autograd, with the layer's
    weights swapped for the feedback matrix when it is random."""
    net = network(options)
    x, error = batch()
    grads, grad_x = credit(net, x, error, input_grad=True)
    with torch.no_grad():
        _, cache = net.learner.forward_pass(net.layers, x, record=True)
    feedback = net.learner.feedback_matrices(net.layers)
    context = error if options["conditioned"] else None
    g = [synthetic_gradient(cache.inputs[l], *modules(net)[l][:2], context, modules(net)[l][2])
         for l in range(3)]  # fmt: skip
    torch.testing.assert_close(grad_x, g[0])
    for l in (1, 2):
        a = cache.pre_activations[l - 1]
        delta = g[l] * (1 - torch.tanh(a) ** 2)
        torch.testing.assert_close(grads[2 * l - 2], delta.t() @ cache.inputs[l - 1])
        torch.testing.assert_close(grads[2 * l - 1], delta.sum(0))
    torch.testing.assert_close(grads[-2], error.t() @ cache.inputs[2])
    for l in range(3):  # the target: the error above, through layer l+1 (its forward map)
        h = cache.inputs[l].clone().requires_grad_(True)
        signal = error if l == 2 else g[l + 1]
        if options["feedback"] == "symmetric":  # autograd through the layer itself
            above = h @ net.layers[l].weight.t() + net.layers[l].bias
            out = above if l == 2 else torch.tanh(above)
        else:  # the layer's Jacobian at the forward pass, with B in place of W
            fprime = 1.0 if l == 2 else 1 - cache.inputs[l + 1] ** 2
            out = (h @ feedback[l].t()) * fprime
        (target,) = torch.autograd.grad((out * signal).sum(), h)
        weight, bias, context_w = modules(net)[l]
        pred = synthetic_gradient(cache.inputs[l], weight, bias, context, context_w)
        torch.testing.assert_close(weight.grad, (pred - target).t() @ cache.inputs[l])
        torch.testing.assert_close(bias.grad, (pred - target).sum(0))
        if context_w is not None:
            torch.testing.assert_close(context_w.grad, (pred - target).t() @ error)


def test_exact_synthetic_gradients_are_backprop():
    """In a linear network ``dL/dh_l = e W_L ... W_{l+1}`` whatever ``h``: conditioned modules
    set to that product predict it exactly, the updates are backprop's and the modules' own
    gradients vanish (an exact module is a fixed point of its regression)."""
    spec = NetworkSpec(5, (7, 6), 3, "identity")
    torch.manual_seed(0)
    net = LocalNetwork(spec, "dni", conditioned=True)
    bp = LocalNetwork(spec, "bp")
    bp.load_state_dict(net.state_dict(), strict=False)
    w = [layer.weight.detach() for layer in net.layers]
    with torch.no_grad():
        modules(net)[2][2].copy_(w[2].t())  # C_2^T = W_3
        modules(net)[1][2].copy_((w[2] @ w[1]).t())  # C_1^T = W_3 W_2
        modules(net)[0][2].copy_((w[2] @ w[1] @ w[0]).t())
    x, error = batch()
    got, got_x = credit(net, x, error, input_grad=True)
    want, want_x = credit(bp, x, error, input_grad=True)
    for g, v in zip([*got, got_x], [*want, want_x], strict=True):
        torch.testing.assert_close(g, v)
    for p in net.learner.parameters():
        torch.testing.assert_close(p.grad, torch.zeros_like(p), atol=1e-12, rtol=0)


@pytest.mark.parametrize("options", CONFIGS, ids=IDS)
def test_update_unlocked_each_hidden_layer_needs_only_its_own_forward_and_module(options):
    """Backs the UL flag. After the forward pass, poison (NaN) every other layer's weights and
    bias, every other module and every feedback matrix, and (without conditioning) the output
    error itself: no error has come down, nothing else is known. Each hidden layer's update is
    unchanged, and equals ``(M_l(h_l) * f'(a_l))^T h_{l-1}`` computed from the layer's own forward
    quantities and module. Backprop and dfa, poisoned alike, get NaN."""
    x, error = batch()
    clean = credit(network(options), x, error)[0]
    for keep in (1, 2):  # hidden layer ``keep``: weights layers[keep - 1], module ``keep``
        net = network(options)
        learner = net.learner
        with torch.no_grad():
            _, cache = learner.forward_pass(net.layers, x, record=True)
            own = learner.synthetic_gradient(keep, cache.inputs[keep], error)
            fprime = 1 - cache.inputs[keep] ** 2
            expected = ((own * fprime).t() @ cache.inputs[keep - 1], (own * fprime).sum(0))
            for k, layer in enumerate(net.layers):
                if k != keep - 1:
                    layer.weight.fill_(math.nan), layer.bias.fill_(math.nan)
            for l, module in enumerate(modules(net)):
                for p in module if l != keep else ():
                    if p is not None:
                        p.fill_(math.nan)
            for b in learner.own_feedback():
                b.fill_(math.nan)
            signal = error if options["conditioned"] else torch.full_like(error, math.nan)
            _, grads = learner.assign_credit(net.layers, cache, signal, input_grad=False)
        got = grads[2 * keep - 2 : 2 * keep]
        for g, c, e in zip(got, clean[2 * keep - 2 : 2 * keep], expected, strict=True):
            torch.testing.assert_close(g, c, atol=0, rtol=0)
            torch.testing.assert_close(g, e)
    for name in ("bp", "dfa"):
        torch.manual_seed(0)
        other = LocalNetwork(SPEC, name)
        with torch.no_grad():
            _, cache = other.learner.forward_pass(other.layers, x, record=True)
            other.layers[-1].weight.fill_(math.nan)
            nan_error = torch.full_like(error, math.nan)
            _, grads = other.learner.assign_credit(other.layers, cache, nan_error, False)
        assert not bool(grads[0].isfinite().any()), name


def test_credit_depth_does_not_grow_with_the_layers():
    """Update-unlocked, counted: no chain of products runs through the layers, so one update's
    sequential depth is the same for 2 and 6 hidden layers (bp's grows by one per layer)."""
    shallow, deep = NetworkSpec(4, (8, 8), 2), NetworkSpec(4, (8,) * 6, 2)
    for label in ("dni", "dni-random", "dni-conditioned"):
        assert measure_cost(label, None, shallow, 5).credit_depth == 3
        assert measure_cost(label, None, deep, 5).credit_depth == 3
    assert measure_cost("bp", None, deep, 5).credit_depth == 7


@pytest.mark.parametrize("feedback", ["symmetric", "random"])
def test_modules_learn_the_gradient_on_a_fixed_batch(feedback):
    """With the network held still, SGD on the modules alone: the top module's prediction
    approaches the true ``dL/dh`` (``e W_L``, or ``e B_L`` through random feedback) and, with
    symmetric feedback, the hidden updates (zero at the start) come to point where backprop's
    do (cosine > 0.99 per layer) while the lower module bootstraps from the top one."""
    torch.manual_seed(0)
    net = LocalNetwork(SPEC, "dni", feedback=feedback)
    bp = LocalNetwork(SPEC, "bp")
    bp.load_state_dict(net.state_dict(), strict=False)
    x, error = batch()
    reference = credit(bp, x, error)[0]
    top = net.learner.feedback_matrices(net.layers)[2].detach()

    def residual() -> float:
        with torch.no_grad():
            _, cache = net.learner.forward_pass(net.layers, x, record=True)
            g_top = net.learner.synthetic_gradient(2, cache.inputs[2], error)
        return float((g_top - error @ top).norm() / (error @ top).norm())

    optimizer = torch.optim.SGD(net.learner.parameters(), lr=0.1)
    assert residual() == 1.0  # zero modules
    for _ in range(750):
        grads = credit(net, x, error)[0]
        optimizer.step()
    assert residual() < 0.5
    if feedback == "symmetric":
        for k in (0, 2):  # the hidden layers' weights
            cosine = torch.nn.functional.cosine_similarity(
                grads[k].flatten(), reference[k].flatten(), dim=0
            )
            assert float(cosine) > 0.99, (k, float(cosine))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"feedback": "transpose"}, "Unknown dni feedback 'transpose'"),
        ({"conditioned": "yes"}, "dni 'conditioned' must be true or false, got 'yes'"),
        ({"scale": -1.0}, "'scale' must be > 0"),
        ({"init": "normal"}, "Unknown feedback init 'normal'"),
    ],
)
def test_bad_options_are_clear(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        LocalNetwork(SPEC, "dni", **kwargs)
