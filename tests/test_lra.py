"""Local representation alignment: kernels against their formulas, one update against the
paper's equations by hand, the equivalences with backprop when the error synapses are ``W``,
the learned error synapses' rule, options."""

import pytest
import torch
from torch.nn.functional import cosine_similarity

from biocredit.errors import ConfigError, UnknownNameError
from biocredit.learners import LocalNetwork, NetworkSpec, make_learner
from biocredit.learners.lra import error_message, error_units, layer_target, lra_weight_grads

SPEC = NetworkSpec(5, (7, 6), 3, "tanh")


pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


def test_kernels_match_their_formulas():
    torch.manual_seed(0)
    error, feedback, a, h, pre = (
        torch.randn(4, 3),
        torch.randn(3, 6),
        torch.randn(4, 6),
        torch.randn(4, 6),
        torch.randn(4, 5),
    )
    torch.testing.assert_close(error_message(error, feedback), error @ feedback)
    d = error @ feedback
    torch.testing.assert_close(layer_target(a, d, 0.3, torch.tanh), torch.tanh(a - 0.3 * d))
    torch.testing.assert_close(error_units(h, a), h - a)
    grad_w, grad_b = lra_weight_grads(h, pre, torch.tensor(0.2))
    torch.testing.assert_close(grad_w, h.t() @ pre / 0.2)
    torch.testing.assert_close(grad_b, h.sum(0) / 0.2)


def grads_of(net: LocalNetwork, x: torch.Tensor, target: torch.Tensor):
    x = x.clone().requires_grad_(True)
    net.zero_grad()
    (0.5 * (net(x) - target).pow(2).sum()).backward()
    return [p.grad.clone() for p in net.parameters_in_order()], x.grad.clone()


def test_one_update_follows_the_equations():
    """``e_L = beta e``; ``e_{l-1} = h_{l-1} - tanh(a_{l-1} - step e_l E_l)``;
    ``W_l.grad = e_l^T h_{l-1} / beta``; input error ``step e_1 E_1 / beta``."""
    torch.manual_seed(1)
    net = LocalNetwork(SPEC, "lra", step=0.7, nudge=0.4, relative_nudge=False, seed=0)
    x, target = torch.randn(8, 5), torch.randn(8, 3)
    grads, grad_x = grads_of(net, x, target)
    with torch.no_grad():
        _, cache = net.learner.forward_pass(net.layers, x, record=True)
        e = cache.output - target
        errors = [0.4 * e]
        for l in (2, 1):
            feedback = getattr(net.learner, f"feedback_{l}")
            message = errors[0] @ feedback
            z = torch.tanh(cache.pre_activations[l - 1] - 0.7 * message)
            errors.insert(0, cache.inputs[l] - z)
        for l, err in enumerate(errors):
            torch.testing.assert_close(grads[2 * l], err.t() @ cache.inputs[l] / 0.4)
            torch.testing.assert_close(grads[2 * l + 1], err.sum(0) / 0.4)
        torch.testing.assert_close(grad_x, 0.7 * errors[0] @ net.learner.feedback_0 / 0.4)


def with_feedback_equal_to_weights(
    spec: NetworkSpec, **options
) -> tuple[LocalNetwork, LocalNetwork]:
    torch.manual_seed(2)
    bp = LocalNetwork(spec, "bp")
    lra = LocalNetwork(spec, "lra", **options)
    lra.load_state_dict(bp.state_dict(), strict=False)
    with torch.no_grad():
        for l, layer in enumerate(lra.layers):
            getattr(lra.learner, f"feedback_{l}").copy_(layer.weight)  # E_l = W_l
    return bp, lra


def test_linear_network_with_error_synapses_equal_to_weights_is_backprop():
    """Identity units, ``E_l = W_l``, ``step = 1``: ``e_{l-1} = h - (a - e_l W_l) = e_l W_l``,
    backprop's delta, at any nudge."""
    bp, lra = with_feedback_equal_to_weights(NetworkSpec(5, (7, 6), 3, "identity"), nudge=0.5)
    x, target = torch.randn(8, 5), torch.randn(8, 3)
    (g_bp, x_bp), (g_lra, x_lra) = grads_of(bp, x, target), grads_of(lra, x, target)
    for got, want in zip([*g_lra, x_lra], [*g_bp, x_bp], strict=True):
        torch.testing.assert_close(got, want)


def test_tanh_network_with_error_synapses_equal_to_weights_tends_to_backprop():
    """``tanh(a) - tanh(a - step d) -> f'(a) step d`` as the nudge shrinks: backprop's deltas."""
    bp, lra = with_feedback_equal_to_weights(SPEC, nudge=1e-4)
    x, target = torch.randn(8, 5), torch.randn(8, 3)
    g_bp = torch.cat([g.flatten() for g in grads_of(bp, x, target)[0]])
    g_lra = torch.cat([g.flatten() for g in grads_of(lra, x, target)[0]])
    assert float(cosine_similarity(g_lra, g_bp, dim=0)) > 0.999999


def test_learned_error_synapses_get_their_twin_weights_gradient():
    torch.manual_seed(3)
    net = LocalNetwork(SPEC, "lra", feedback="learned", feedback_rate=0.5)
    grads, _ = grads_of(net, torch.randn(8, 5), torch.randn(8, 3))
    feedback = list(net.learner.parameters())
    assert len(feedback) == 3
    for l, synapses in enumerate(feedback):
        torch.testing.assert_close(synapses.grad, 0.5 * grads[2 * l])
    fixed = LocalNetwork(SPEC, "lra")
    assert list(fixed.learner.parameters()) == [] and len(list(fixed.learner.buffers())) == 3


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"step": 0}, ConfigError, "lra 'step' must be > 0, got 0"),
        ({"feedback": "learnt"}, UnknownNameError, "Did you mean 'learned'?"),
        ({"feedback_rate": -1}, ConfigError, "lra 'feedback_rate' must be > 0, got -1"),
        ({"init": "normal"}, UnknownNameError, "Unknown feedback init 'normal'"),
        ({"nudge": -0.1}, ConfigError, "lra 'nudge' must be > 0"),
        ({"beta": 0.1}, ConfigError, "does not accept these options"),
    ],
)
def test_bad_options_are_refused_clearly(options, error, message):
    with pytest.raises(error, match=message):
        make_learner("lra", **options)
