"""Each update kernel against its analytic formula, and the known equivalences."""

import pytest
import torch

from biocredit.errors import BiocreditError
from biocredit.learners import LocalNetwork, NetworkSpec
from biocredit.learners.activations import ACTIVATIONS
from biocredit.learners.dfa import dfa_delta
from biocredit.learners.fa import fa_delta

SPEC = NetworkSpec(5, (7, 6), 3, "tanh")


def grads_of(net: LocalNetwork, x: torch.Tensor, target: torch.Tensor):
    """Parameter gradients and input gradient for a squared error through ``net``."""
    x = x.clone().requires_grad_(True)
    net.zero_grad()
    loss = 0.5 * (net(x) - target).pow(2).sum()
    loss.backward()
    return [p.grad.clone() for p in net.parameters_in_order()], x.grad.clone()


def reference_mlp(net: LocalNetwork, x: torch.Tensor) -> torch.Tensor:
    """The same network in plain torch, for autograd's gradients."""
    h = x
    for layer in net.layers[:-1]:
        h = torch.tanh(layer(h))
    return net.layers[-1](h)


pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


@pytest.fixture
def batch():
    torch.manual_seed(1)
    return torch.randn(4, 5), torch.randn(4, 3)


def test_bp_matches_autograd(batch):
    x, target = batch
    net = LocalNetwork(SPEC, "bp")
    grads, grad_x = grads_of(net, x, target)
    xr = x.clone().requires_grad_(True)
    loss = 0.5 * (reference_mlp(net, xr) - target).pow(2).sum()
    expected = torch.autograd.grad(loss, [*net.parameters_in_order(), xr])
    for got, want in zip([*grads, grad_x], expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-10, rtol=0)


def test_fa_with_transposed_weights_equals_bp(batch):
    x, target = batch
    bp = LocalNetwork(SPEC, "bp")
    fa = LocalNetwork(SPEC, "fa")
    fa.load_state_dict(bp.state_dict(), strict=False)
    for l, layer in enumerate(fa.layers):
        getattr(fa.learner, f"feedback_{l}").copy_(layer.weight)  # B_l = W_l, i.e. B^T = W^T
    for got, want in zip(*[grads_of(net, x, target)[0] for net in (fa, bp)], strict=True):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_fa_with_random_feedback_differs_from_bp(batch):
    x, target = batch
    bp = LocalNetwork(SPEC, "bp")
    fa = LocalNetwork(SPEC, "fa", seed=3)
    fa.load_state_dict(bp.state_dict(), strict=False)
    g_fa, g_bp = grads_of(fa, x, target)[0], grads_of(bp, x, target)[0]
    torch.testing.assert_close(g_fa[-2:], g_bp[-2:])  # output layer: same local rule
    assert not torch.allclose(g_fa[0], g_bp[0])  # first layer: random feedback path


def test_dfa_hidden_update_by_hand(batch):
    x, target = batch
    net = LocalNetwork(SPEC, "dfa", seed=0)
    grads, grad_x = grads_of(net, x, target)
    W1, b1, W2, b2, W3, b3 = [p.detach() for p in net.parameters_in_order()]
    D0, D1, D2 = (getattr(net.learner, f"feedback_{l}") for l in range(3))
    h1 = torch.tanh(x @ W1.T + b1)
    h2 = torch.tanh(h1 @ W2.T + b2)
    e = (h2 @ W3.T + b3) - target  # dL/dy of the squared error
    d2 = (e @ D2) * (1 - h2**2)  # (B e) * f'(a), written with row vectors
    d1 = (e @ D1) * (1 - h1**2)
    expected = [d1.T @ x, d1.sum(0), d2.T @ h1, d2.sum(0), e.T @ h2, e.sum(0)]
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-10, rtol=0)
    torch.testing.assert_close(grad_x, e @ D0)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_kernels_match_their_formulas(name):
    torch.manual_seed(2)
    activation = ACTIVATIONS[name]
    delta, B, a, e, D = (
        torch.randn(4, 3),
        torch.randn(3, 6),
        torch.randn(4, 6),
        torch.randn(4, 2),
        torch.randn(2, 6),
    )
    h = activation.fn(a)
    fprime = activation.derivative(a, h)
    torch.testing.assert_close(fa_delta(delta, B, activation, a, h), (delta @ B) * fprime)
    torch.testing.assert_close(dfa_delta(e, D, activation, a, h), (e @ D) * fprime)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_the_gate_is_autograds_step_through_the_activation(name):
    """``gate(g, a, h) = g * f'(a)``, the vector-Jacobian product autograd computes for f."""
    torch.manual_seed(3)
    activation = ACTIVATIONS[name]
    a = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    g = torch.randn(5, 7, dtype=torch.float64)
    h = activation.fn(a)
    (want,) = torch.autograd.grad(h, a, g)
    torch.testing.assert_close(activation.gate(g, a.detach(), h.detach()), want)


def _transport_garbage(net: LocalNetwork, x: torch.Tensor) -> LocalNetwork:
    """A copy of ``net`` whose upper weights W_2, W_3 change in directions orthogonal to their
    inputs on this batch: same forward pass, different transposes."""
    twin = LocalNetwork(net.spec, net.learner.name)
    twin.load_state_dict(net.state_dict())
    with torch.no_grad():
        inputs = [x]
        for layer in net.layers[:-1]:
            inputs.append(torch.tanh(layer(inputs[-1])))
        for l in (1, 2):
            h = inputs[l]  # (batch, width), batch < width so a null direction exists
            null = torch.linalg.svd(h, full_matrices=True).Vh[-1]  # h @ null = 0
            twin.layers[l].weight.add_(5.0 * torch.randn(twin.layers[l].out_features, 1) * null)
    return twin


@pytest.mark.parametrize("learner", ["fa", "dfa"])
def test_no_weight_transport(learner, batch):
    x, target = batch
    torch.manual_seed(5)
    net = LocalNetwork(SPEC, learner, seed=0)
    twin = _transport_garbage(net, x)
    torch.testing.assert_close(net(x), twin(x))  # the forward pass is unchanged on the batch
    g_net, g_twin = grads_of(net, x, target)[0], grads_of(twin, x, target)[0]
    for got, want in zip(g_twin[:4], g_net[:4], strict=True):  # hidden layers
        torch.testing.assert_close(got, want, atol=1e-10, rtol=0)


def test_bp_does_use_weight_transport(batch):
    """The garbage-transpose probe can fail: backprop's hidden gradients do change."""
    x, target = batch
    net = LocalNetwork(SPEC, "bp")
    twin = _transport_garbage(net, x)
    torch.testing.assert_close(net(x), twin(x))
    assert not torch.allclose(grads_of(net, x, target)[0][0], grads_of(twin, x, target)[0][0])


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_derivatives_match_autograd(name):
    act = ACTIVATIONS[name]
    a = torch.linspace(-3, 3, 61).requires_grad_(True)
    h = act.fn(a)
    (expected,) = torch.autograd.grad(h.sum(), a)
    torch.testing.assert_close(act.derivative(a.detach(), h.detach()), expected)


def test_gradients_accumulate_like_autograd(batch):
    """Two backward passes add into .grad, as torch users expect."""
    x, target = batch
    net = LocalNetwork(SPEC, "dfa", seed=0)
    once, _ = grads_of(net, x, target)
    net.zero_grad()
    for _ in range(2):
        (0.5 * (net(x) - target).pow(2).sum()).backward()
    for g1, g2 in zip(once, (p.grad for p in net.parameters_in_order()), strict=True):
        torch.testing.assert_close(g2, 2 * g1)


def test_no_grad_forward_matches_recorded_forward(batch):
    x, _ = batch
    net = LocalNetwork(SPEC, "fa")
    with torch.no_grad():
        plain = net(x)
    torch.testing.assert_close(net(x).detach(), plain)


@pytest.mark.parametrize("fan", ["output", "layer"])
def test_dfa_feedback_spread(fan):
    """D_l (n_out x n_l): entries within 1/sqrt(n_out) by default; with fan="layer" within
    1/sqrt(n_l), like the forward weights of a layer reading layer l (fa's B for the last one)."""
    spec = NetworkSpec(4, (64, 32), 2, "tanh")
    net = LocalNetwork(spec, "dfa", seed=0, fan=fan)
    for l, width in enumerate(spec.sizes[:-1]):
        D = getattr(net.learner, f"feedback_{l}")
        bound = (width if fan == "layer" else 2) ** -0.5
        assert D.shape == (2, width)
        assert bound * 0.8 < D.abs().max() <= bound
    if fan == "layer":
        fa = LocalNetwork(spec, "fa", seed=0)
        B_last, D_last = fa.learner.feedback_2, net.learner.feedback_2  # both (2, 32)
        assert B_last.shape == D_last.shape
        assert abs(float(B_last.std() / D_last.std()) - 1) < 0.35


def test_dfa_rejects_an_unknown_fan():
    with pytest.raises(BiocreditError, match="fan"):
        LocalNetwork(SPEC, "dfa", fan="input")


@pytest.mark.parametrize("name", ["fa", "dfa", "pc-random", "lra", "dni-random", "hebbian3f"])
def test_feedback_follows_the_network_to_another_dtype(name):
    """``.double()`` replaces buffers: a learner must read its feedback synapses as they are
    now, not keep the tensors it registered (the update then runs in float64 throughout)."""
    variants = {"pc-random": ("pc", "random"), "dni-random": ("dni", "random")}
    label, feedback = variants.get(name, (name, None))
    options = {"feedback": feedback} if feedback else {}
    net = LocalNetwork(NetworkSpec(3, (5, 4), 2), label, **options).double()
    assert all(b.dtype == torch.float64 for b in net.learner.own_feedback())
    assert net.learner.own_feedback(), "the learner has feedback synapses to check"
    if name == "hebbian3f":
        return  # modulator-driven: no loss reaches it; its feedback's dtype is the point
    net(torch.randn(6, 3, dtype=torch.float64)).square().sum().backward()
    grads = [p.grad for p in net.parameters_in_order()]  # the forward weights and biases
    assert all(g is not None and g.dtype == torch.float64 for g in grads)
