"""Every plausibility flag that a configuration claims is checked here, for every configuration
in the registry (``biocredit learners``), so a new learner or variant is covered by its flags.

- P2, no weight transport: credit assignment runs with every forward weight poisoned in its
  transport direction (any use other than carrying activity forward, ``h W^T`` or ``W v``, or a
  synapse reading its own weight, elementwise, as Oja's decay ``u_i^2 W_ij`` does, returns NaN).
  Forward weights are the network's and every learned synapse of the learner's own that the
  recorded forward pass uses to carry activity (local's readouts); the updates are the network's
  and those the learner writes into its own parameters (learned feedback, readouts,
  synthetic-gradient modules). A configuration gets finite updates exactly when it claims P2.
- LP, local plasticity: the kernels that compute a layer's weight change take only pre- and
  post-synaptic activity, the signal delivered to the layer and scalars; and that signal is
  delivered without weight transport (P2) or by the network's own settling (P6).
- P4, no activation derivative needed: with the derivative ``f'`` replaced by NaN, updates stay
  finite exactly when the configuration claims P4.
- UL, update unlocked: a configuration that claims it updates every layer bitwise alike with the
  weights and biases of all the layers above it poisoned (NaN) after the forward pass.
- =BP: a configuration that claims to equal backprop gives backprop's gradients; no other does.
"""

import dataclasses
import inspect
import math

import pytest
import torch
from torch.overrides import TorchFunctionMode

from biocredit.learners import LocalNetwork, NetworkSpec, learner_class, make_learner
from biocredit.learners.base import (
    ErrorDrivenLearner,
    ModulatorDrivenLearner,
    RunContext,
    SignalFreeLearner,
)
from biocredit.learners.registry import configurations

SPEC = NetworkSpec(5, (16, 12, 8), 3, "tanh")
CONFIGURATIONS = configurations()
IDS = [label for label, _, _ in CONFIGURATIONS]
#: what a weight kernel may read: activities of its own layer (a unit's summed input
#: ``potential``, its slope ``f'(a)``), the signal delivered to it, traces kept at its synapses,
#: the synapse's own weight (read elementwise only: the P2 probe poisons any other use), the
#: broadcast modulator or phase (positive or negative data) and scalars
LOCAL_ARGUMENTS = {
    "pre", "post", "delta", "error", "beta", "potential", "slope", "weight",
    "pre_a", "post_a", "pre_b", "post_b", "span", "phase", "threshold",
    "trace", "trace_w", "trace_b", "decay", "modulator", "out",
    "geometry",  # a conv layer's fixed wiring (kernel size, stride, padding): no activity
}  # fmt: skip
FORWARD_MATMULS = {"mm", "matmul", "__matmul__", "addmm", "addmm_", "linear"}
VIEWS = {"t", "transpose", "T", "mT"}
#: elementwise ops through which a synapse may combine its own weight with terms of its own
#: pre- or post-synaptic unit (broadcast); the result, shaped like the weight, stays synapse by
#: synapse and may only be combined so again or written into ``.grad``
ELEMENTWISE = {
    "mul", "mul_", "__mul__", "__rmul__", "div", "div_", "__truediv__",
    "add", "add_", "__add__", "__radd__", "sub", "sub_", "__sub__", "__rsub__",
    "neg", "neg_", "__neg__",
}  # fmt: skip
SLOTS = {"grad", "shape", "dtype", "device"}  # where the update is written, and metadata


class TransportProbe(TorchFunctionMode):
    """Poisons every use of a forward weight other than carrying activity forward."""

    def __init__(self, weights: list[torch.Tensor], poison: bool = True) -> None:
        super().__init__()
        self.forward = {id(w): w for w in weights}  # W, shaped (n_out, n_in)
        self.transposed: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # W^T -> (W^T, W)
        self.own: dict[int, torch.Tensor] = {}  # synapse-by-synapse terms of a weight
        self.transports = 0
        self.poison = poison  # False: only watch which weights carry activity forward
        self.carried: dict[int, torch.Tensor] = {}  # the weights that did, by id

    def kind(self, value) -> str | None:
        if id(value) in self.forward:
            return "W"
        if id(value) in self.transposed:
            return "WT"
        if id(value) in self.own:
            return "own"
        return None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        kinds = [self.kind(a) for a in args]
        if not any(kinds):
            return out
        if name in ("__get__", "__set__"):  # attribute access: name the attribute instead
            name = getattr(getattr(func, "__self__", None), "__name__", name)
            if name in SLOTS:
                return out
        if name in VIEWS and kinds[0] in ("W", "WT"):
            if kinds[0] == "W":
                self.transposed[id(out)] = (out, args[0])
            else:
                self.forward[id(out)] = out
            return out
        synapse_wise = isinstance(out, torch.Tensor) and all(
            arg.shape == out.shape for arg, kind in zip(args, kinds, strict=True) if kind
        )
        if name in ELEMENTWISE and "WT" not in kinds and synapse_wise:
            self.own[id(out)] = out
            return out
        operands = [*(args[1:3] if name.startswith("addmm") else args[:2]), None][:2]
        left, right = (self.kind(a) for a in operands)
        forward_use = name in FORWARD_MATMULS and (
            (name == "linear" and right == "W") or right == "WT" or left == "W"
        )
        if forward_use and "W" not in (right,) and "WT" not in (left,):
            for operand, kind in zip(operands, (left, right), strict=True):
                if kind in ("W", "WT"):
                    weight = operand if kind == "W" else self.transposed[id(operand)][1]
                    self.carried[id(weight)] = weight
            return out
        self.transports += 1
        if not self.poison:
            return out
        if not isinstance(out, torch.Tensor):
            raise AssertionError(f"{name} reads a forward weight during credit assignment")
        return torch.full_like(out, math.nan)


def credit_under_probe(label: str, name: str, options: dict) -> tuple[list[torch.Tensor], int]:
    """Every parameter update of one credit-assignment step taken under the probe."""
    torch.manual_seed(0)
    net = LocalNetwork(SPEC, name, RunContext(n_envs=4), **options)
    learner = net.learner
    x = torch.randn(4, SPEC.in_features)
    own = list(learner.parameters())
    with torch.no_grad(), TransportProbe(own, poison=False) as watch:
        y, cache = learner.forward_pass(net.layers, x, record=True)
    probe = TransportProbe([layer.weight for layer in net.layers] + list(watch.carried.values()))
    signal = torch.randn_like(y)
    with torch.no_grad(), probe:
        if isinstance(learner, ErrorDrivenLearner):
            grad_x, grads = learner.assign_credit(net.layers, cache, signal, input_grad=True)
            updates = [*grads, grad_x]
        elif isinstance(learner, ModulatorDrivenLearner):
            learner.accumulate(net.layers, cache, signal)
            learner.modulate(net.layers, torch.randn(4))
            updates = [p.grad for p in net.parameters_in_order()]
        elif isinstance(learner, SignalFreeLearner):
            learner.learn(net.layers, cache, torch.randn(4))
            updates = [p.grad for p in net.parameters_in_order()]
        else:
            pytest.fail(f"{label}: no probe for the {learner.signal} signal kind yet")
    updates += [p.grad for p in own if p.grad is not None]
    return updates, probe.transports


@pytest.mark.parametrize(("label", "name", "options"), CONFIGURATIONS, ids=IDS)
def test_weight_transport_flag_is_what_the_rule_does(label, name, options):
    updates, transports = credit_under_probe(label, name, options)
    finite = all(bool(u.isfinite().all()) for u in updates)
    claims = make_learner(name, **options).plausibility.p2_weight_transport
    assert finite == claims, (label, "claims P2" if claims else "does not claim P2", transports)


def test_the_probe_lets_forward_uses_through_and_stops_transport():
    w = torch.randn(3, 5)
    h, e = torch.randn(2, 5), torch.randn(2, 3)
    post = torch.randn(3, 1)
    with TransportProbe([w]) as probe:
        forward = [h.mm(w.t()), torch.addmm(torch.zeros(3), h, w.t()), w.mm(h.t())]
        decay = post * w  # each synapse reads its own weight: Oja's decay
        own = [decay, e.t().mm(h).sub_(decay).neg()]
        transport = [
            e.mm(w),
            w.t().mm(e.t()),
            w.square().sum(0),
            decay.sum(0),
            decay.t(),
            w * w.t().t().flip(0),
        ]
    assert all(bool(t.isfinite().all()) for t in [*forward, *own])
    assert not any(bool(t.isfinite().any()) for t in transport) and probe.transports == 6


@pytest.mark.parametrize(("label", "name", "options"), CONFIGURATIONS, ids=IDS)
def test_derivative_free_flag_is_what_the_rule_does(label, name, options):
    torch.manual_seed(0)
    net = LocalNetwork(SPEC, name, RunContext(n_envs=4), **options)
    learner = net.learner
    x = torch.randn(4, SPEC.in_features)
    with torch.no_grad():
        y, cache = learner.forward_pass(net.layers, x, record=True)
        learner.activation = dataclasses.replace(
            learner.activation,
            derivative=lambda a, h: torch.full_like(a, math.nan),
            fused_gate=None,
        )  # the fused gate is the same derivative in one kernel: without it, f' is read
        signal = torch.randn_like(y)
        if isinstance(learner, ErrorDrivenLearner):
            updates = learner.assign_credit(net.layers, cache, signal, input_grad=False)[1]
        elif isinstance(learner, SignalFreeLearner):
            learner.learn(net.layers, cache, torch.randn(4))
            updates = [p.grad for p in net.parameters_in_order()]
        else:
            learner.accumulate(net.layers, cache, signal)
            learner.modulate(net.layers, torch.randn(4))
            updates = [p.grad for p in net.parameters_in_order()]
    finite = all(bool(u.isfinite().all()) for u in updates)
    assert finite == learner.plausibility.p4_constraints, label


@pytest.mark.parametrize(("label", "name", "options"), CONFIGURATIONS, ids=IDS)
def test_local_plasticity_flag_is_backed_by_the_kernels(label, name, options):
    flags = make_learner(name, **options).plausibility
    if not flags.local_plasticity:
        pytest.skip(f"{label} does not claim local plasticity")
    kernels = learner_class(name).update_kernels
    assert kernels, f"{label} claims LP but names no update kernel"
    for kernel in kernels:
        arguments = set(inspect.signature(kernel).parameters)
        assert arguments <= LOCAL_ARGUMENTS, (label, kernel.__name__, arguments - LOCAL_ARGUMENTS)
    assert flags.p2_weight_transport or flags.p6_inference_learning, label


def credit_with_layers_poisoned(name: str, options: dict, poisoned_from: int) -> list:
    """Every parameter update of one credit-assignment step taken after the recorded forward
    pass, with the weights and biases of the weight layers from ``poisoned_from`` up set to NaN."""
    torch.manual_seed(0)
    net = LocalNetwork(SPEC, name, RunContext(n_envs=4), **options)
    learner = net.learner
    x = torch.randn(4, SPEC.in_features)
    with torch.no_grad():
        y, cache = learner.forward_pass(net.layers, x, record=True)
        signal = torch.randn_like(y)
        for layer in net.layers[poisoned_from:]:
            layer.weight.fill_(math.nan)
            layer.bias.fill_(math.nan)
        if isinstance(learner, ErrorDrivenLearner):
            return learner.assign_credit(net.layers, cache, signal, input_grad=False)[1]
        if isinstance(learner, SignalFreeLearner):
            learner.learn(net.layers, cache, torch.randn(4))
        else:
            learner.accumulate(net.layers, cache, signal)
            learner.modulate(net.layers, torch.randn(4))
        return [p.grad for p in net.parameters_in_order()]


@pytest.mark.parametrize(("label", "name", "options"), CONFIGURATIONS, ids=IDS)
def test_update_unlocked_flag_is_backed_by_a_poisoning_probe(label, name, options):
    """UL: no layer's update waits for anything to come down through the layers above it, so
    poisoning them leaves it bitwise unchanged. Checked where claimed (fa's locking, through
    feedback matrices rather than the forward weights, would slip past this probe)."""
    if not make_learner(name, **options).plausibility.update_unlocked:
        pytest.skip(f"{label} does not claim update unlocking")
    n_layers = len(SPEC.sizes) - 1
    clean = credit_with_layers_poisoned(name, options, n_layers)
    assert all(bool(g.isfinite().all()) for g in clean), label
    for above in range(1, n_layers):
        poisoned = credit_with_layers_poisoned(name, options, above)
        for got, want in zip(poisoned[: 2 * above], clean[: 2 * above], strict=True):
            assert torch.equal(got, want), (label, above)


def test_the_update_unlocking_probe_catches_backprop():
    poisoned = credit_with_layers_poisoned("bp", {}, len(SPEC.sizes) - 2)
    assert not bool(poisoned[0].isfinite().all())


@pytest.mark.parametrize(("label", "name", "options"), CONFIGURATIONS, ids=IDS)
def test_equals_backprop_flag(label, name, options):
    """``=BP`` configurations give backprop's gradients on a random network; the rest do not."""
    cls = learner_class(name)
    if not issubclass(cls, ErrorDrivenLearner):
        pytest.skip(f"{label} is not reached by a loss")
    torch.manual_seed(0)
    net = LocalNetwork(SPEC, name, **options)
    bp = LocalNetwork(SPEC, "bp")
    bp.load_state_dict(net.state_dict(), strict=False)
    x, target = torch.randn(16, SPEC.in_features), torch.randn(16, SPEC.out_features)
    grads = []
    for model in (net, bp):
        model.zero_grad()
        ((model(x) - target).pow(2).sum() / 2).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters_in_order()]))
    cosine = float(torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0))
    claims = net.learner.plausibility.equals_backprop
    assert (cosine > 0.9999) == claims, (label, cosine)


def test_the_watch_records_the_weights_that_carry_activity_forward():
    """With ``poison=False`` the probe only watches: a weight used forward is recorded (so a
    learner's own readout joins the forward weights), one used only as feedback is not."""
    readout, feedback = torch.randn(3, 5), torch.randn(3, 5)
    h, e = torch.randn(2, 5), torch.randn(2, 3)
    with TransportProbe([readout, feedback], poison=False) as watch:
        forward = torch.addmm(torch.zeros(3), h, readout.t())
        message = e.mm(feedback)
    assert list(watch.carried.values()) == [readout] and watch.transports == 1
    assert bool(forward.isfinite().all()) and bool(message.isfinite().all())
