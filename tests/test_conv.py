"""Conv networks: each learner's conv kernels against the formula, in float64, and the refusal of
the learners whose rule does not extend to convolutions."""

import pytest
import torch
import torch.nn.functional as F

from biocredit.errors import ConfigError
from biocredit.learners import ConvNetwork, ConvSpec, list_learners
from biocredit.learners.conv import ConvLearner

# two conv layers (stride, padding, max and no pooling), a hidden dense layer, 5 outputs
SPEC = ConvSpec(
    (3, 13, 13),
    (
        {"channels": 4, "kernel": 3, "stride": 2, "padding": 1, "pool": 2},
        {"channels": 6, "kernel": 2, "stride": 1},
    ),
    (7,),
    5,
    "tanh",
)


@pytest.fixture(autouse=True)
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def credit(
    net: ConvNetwork, x: torch.Tensor, error: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The network's update and input error for the output error ``error``, through the
    boundary."""
    x = x.clone().requires_grad_(net.spec.input_error)
    net.zero_grad()
    net(x).backward(error)
    return x.grad, [p.grad.clone() for p in net.parameters_in_order()]


def network(name: str, spec: ConvSpec = SPEC, **options) -> ConvNetwork:
    torch.manual_seed(0)
    return ConvNetwork(spec, name, **options)


def test_spec_shapes():
    assert SPEC.map_shapes == [((4, 7, 7), (4, 3, 3)), ((6, 2, 2), (6, 2, 2))]
    assert SPEC.sizes == (3 * 13 * 13, 4 * 7 * 7, 6 * 2 * 2, 7, 5)
    assert SPEC.weight_shapes == [(4, 3, 3, 3), (6, 4, 2, 2), (7, 24), (5, 7)]


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_bp_equals_autograd(pooling):
    spec = ConvSpec(SPEC.in_shape, SPEC.convs, SPEC.hidden, 5, "tanh", pooling, input_error=True)
    net = network("bp", spec)
    x, error = torch.randn(4, 3, 13, 13), torch.randn(4, 5)
    grad_x, grads = credit(net, x, error)
    x = x.clone().requires_grad_(True)
    y, _ = net.forward_pass(x, record=False)
    reference = torch.autograd.grad(y, [x, *net.parameters_in_order()], grad_outputs=error)
    torch.testing.assert_close(grad_x, reference[0], rtol=0, atol=1e-12)
    for got, want in zip(grads, reference[1:], strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_fa_with_feedback_equal_to_the_weights_is_backprop():
    spec = ConvSpec(SPEC.in_shape, SPEC.convs, SPEC.hidden, 5, "tanh", input_error=True)
    fa, bp = network("fa", spec), network("bp", spec)
    with torch.no_grad():
        for b, layer in zip(fa.learner.feedback(), fa.layers, strict=True):
            b.copy_(layer.weight)
    x, error = torch.randn(4, 3, 13, 13), torch.randn(4, 5)
    fa_x, fa_grads = credit(fa, x, error)
    bp_x, bp_grads = credit(bp, x, error)
    torch.testing.assert_close(fa_x, bp_x, rtol=0, atol=1e-12)
    for got, want in zip(fa_grads, bp_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_fa_sends_the_error_through_its_random_kernel():
    """The first conv layer's error is the transposed convolution of the second's with ``B_2``
    (not ``W_2``), carried back through the max pooling, times ``f'``."""
    net = network("fa")
    x, error = torch.randn(4, 3, 13, 13), torch.randn(4, 5)
    _, grads = credit(net, x, error)
    _, cache = net.forward_pass(x, record=True)
    b = net.learner.feedback()
    conv1, conv2 = net.layers[0], net.layers[1]
    delta3 = error.mm(b[3]) * (1 - cache.activities[2] ** 2)  # hidden dense layer
    delta2 = delta3.mm(b[2]).view(4, 6, 2, 2) * (1 - cache.activities[1] ** 2)
    message = F.conv_transpose2d(delta2, b[1], stride=1)  # onto the pooled 3x3 map
    unpooled = F.max_unpool2d(message, cache.winners[0], 2, output_size=[7, 7])
    delta1 = unpooled * (1 - cache.activities[0] ** 2)
    want = torch.nn.grad.conv2d_weight(x, conv1.weight.shape, delta1, stride=2, padding=1)
    torch.testing.assert_close(grads[0], want, rtol=0, atol=1e-12)
    torch.testing.assert_close(grads[1], delta1.sum((0, 2, 3)), rtol=0, atol=1e-12)
    want2 = torch.nn.grad.conv2d_weight(cache.inputs[1], conv2.weight.shape, delta2)
    torch.testing.assert_close(grads[2], want2, rtol=0, atol=1e-12)


def test_dfa_conv_update_is_the_formula():
    """``delta_l = (e D_l) * f'(a_l)`` on the layer's full output map (before pooling),
    ``dW_l = conv2d_weight(h_{l-1}, delta_l)``; the output layer gets ``e`` itself."""
    net = network("dfa")
    x, error = torch.randn(4, 3, 13, 13), torch.randn(4, 5)
    grad_x, grads = credit(net, x, error)
    assert grad_x is None  # a first module: no D_0, no error for the input
    _, cache = net.forward_pass(x, record=True)
    d = net.learner.feedback()
    assert tuple(d[0].shape) == (5, 0) and tuple(d[1].shape) == (5, 4 * 7 * 7)
    for l, layer in enumerate(net.layers[:2]):
        fprime = 1 - cache.activities[l] ** 2
        delta = error.mm(d[l + 1]).view_as(fprime) * fprime
        weight = torch.nn.grad.conv2d_weight(
            cache.inputs[l], layer.weight.shape, delta, layer.stride, layer.padding
        )
        torch.testing.assert_close(grads[2 * l], weight, rtol=0, atol=1e-12)
        torch.testing.assert_close(grads[2 * l + 1], delta.sum((0, 2, 3)), rtol=0, atol=1e-12)
    delta = error.mm(d[3]) * (1 - cache.activities[2] ** 2)
    torch.testing.assert_close(grads[4], delta.t().mm(cache.inputs[2]), rtol=0, atol=1e-12)
    torch.testing.assert_close(grads[6], error.t().mm(cache.inputs[3]), rtol=0, atol=1e-12)


def test_dfa_update_ignores_the_forward_weights_above():
    """No weight transport: the conv layers' updates stay finite and unchanged when every
    forward weight above them is NaN after the forward pass."""
    net = network("dfa")
    x, error = torch.randn(4, 3, 13, 13), torch.randn(4, 5)
    _, cache = net.forward_pass(x, record=True)
    _, clean = net.assign_credit(cache, error, input_grad=False)
    with torch.no_grad():
        for layer in net.layers[1:]:
            layer.weight.fill_(float("nan"))
    _, poisoned = net.assign_credit(cache, error, input_grad=False)
    assert torch.equal(poisoned[0], clean[0]) and torch.equal(poisoned[1], clean[1])


def test_first_module_refuses_an_input_that_asks_for_an_error():
    net = network("bp")
    with pytest.raises(ConfigError, match="input_error=True"):
        net(torch.randn(2, 3, 13, 13, requires_grad=True))


def test_flat_rows_are_read_as_maps():
    net = network("dfa")
    x = torch.randn(2, 3, 13, 13)
    torch.testing.assert_close(net(x.flatten(1)), net(x))


@pytest.mark.parametrize("name", list_learners())
def test_learner_trains_convs_or_refuses_clearly(name):
    if name in list_learners(ConvLearner):
        net = network(name)
        net(torch.randn(2, 3, 13, 13)).sum().backward()
        assert all(p.grad is not None and p.grad.isfinite().all() for p in net.parameters())
        return
    with pytest.raises(ConfigError) as refused:
        network(name)
    message = str(refused.value)
    assert f"Learner '{name}' cannot train a convolutional network: " in message
    assert "Learners whose rule extends to conv layers: bp, dfa, fa." in message


def test_pc_refusal_gives_its_reason():
    with pytest.raises(ConfigError, match="'pc' cannot train a convolutional network: its "
                       "inference is written for dense layers"):  # fmt: skip
        network("pc")


@pytest.mark.parametrize(
    ("convs", "match"),
    [
        ([{"channels": 4, "kernel": 20}], "does not fit its 13x13 input map"),
        ([{"channels": 4, "kernal": 3}], "Did you mean 'kernel'"),
        ([{"channels": 0, "kernel": 3}], "channels=0 is not an integer >= 1"),
        ([], "at least one conv layer"),
    ],
)
def test_bad_specs_are_refused(convs, match):
    with pytest.raises(ConfigError, match=match):
        ConvSpec((3, 13, 13), convs, (), 2)
