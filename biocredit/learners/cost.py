"""What one update costs each learner, counted from the kernels it actually runs.

A :class:`OpCounter` (a ``torch.overrides.TorchFunctionMode``) watches every torch call while a
learner assigns credit once, on a network of a given shape and batch, and counts:

- **multiply-accumulates (MACs)** of the matrix products: ``mm``, ``addmm``, ``matmul`` / ``@``,
  ``linear``, ``bmm``, ``baddbmm``, ``mv``, ``addmv``, ``dot`` (``output elements x contraction
  length``; the added term of the ``add*`` forms and every elementwise op cost nothing) and
  ``einsum`` (the product of the sizes of all its distinct indices, a direct contraction);
- **sequential depth**: the longest chain of dependent matrix products. Every tensor gets a
  depth: tensors the step did not make (weights, buffers, the recorded forward pass, the error)
  have 0; a product's output has ``1 + max`` over its factors, and at least the depth of the
  term an ``add*`` form adds to it (the product can run beside that term); any other op's
  output has the ``max`` over its tensor inputs (in-place ops include the tensor they modify).
  The step's depth is the largest depth of any tensor it made. Backprop and feedback alignment
  on ``L`` weight layers have depth ``L``, direct feedback alignment 2;

and, after the step, the **bytes of learner state**: the learner's buffers and its own
parameters (feedback matrices, traces, learned error synapses), not the network's weights nor
any optimizer state.

One credit-assignment step is what the learner's signal kind prescribes: ``assign_credit`` on
a recorded forward pass for error- and target-driven learners (no error is sent to the
network's input, as for an observation), ``accumulate`` then ``modulate`` for
modulator-driven ones (one env per row of the batch, one trace per env), ``learn`` for
signal-free ones. The recorded forward pass is counted apart, for reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

from biocredit.errors import ConfigError, unknown_name
from biocredit.learners.base import (
    ErrorDrivenLearner,
    ForwardCache,
    Learner,
    ModulatorDrivenLearner,
    RunContext,
    SignalFreeLearner,
)
from biocredit.learners.network import LocalNetwork
from biocredit.learners.registry import configurations, learner_class
from biocredit.learners.spec import NetworkSpec

#: matrix products, by the position of their left factor: ``(left, right, added term)``
PRODUCTS: dict[str, tuple[int, int, int | None]] = {
    "mm": (0, 1, None),
    "matmul": (0, 1, None),
    "__matmul__": (0, 1, None),
    "__rmatmul__": (1, 0, None),
    "linear": (0, 1, None),
    "bmm": (0, 1, None),
    "mv": (0, 1, None),
    "dot": (0, 1, None),
    "addmm": (1, 2, 0),
    "addmm_": (1, 2, 0),
    "baddbmm": (1, 2, 0),
    "baddbmm_": (1, 2, 0),
    "addmv": (1, 2, 0),
    "addmv_": (1, 2, 0),
}
DEFAULT_SHAPE = (4, 64, 64, 2)
DEFAULT_BATCH = 64


def product_macs(name: str, args: tuple[Any, ...], out: Tensor) -> int:
    """Multiply-accumulates of one matrix product: output elements times the contraction
    length (the left factor's last dimension); ``einsum``: the product of all index sizes."""
    if name == "einsum":
        return einsum_macs(args[0], _tensors(args[1:]))
    left = args[PRODUCTS[name][0]]
    return out.numel() * left.shape[-1]


def einsum_macs(equation: str, operands: list[Tensor]) -> int:
    """``prod`` of the sizes of every distinct index in ``equation`` (a direct contraction)."""
    inputs = equation.replace(" ", "").split("->")[0].split(",")
    sizes: dict[str, int] = {}
    for letters, operand in zip(inputs, operands, strict=True):
        if "..." in letters:
            raise ConfigError(f"einsum '{equation}': ellipses are not counted; name the indices.")
        sizes.update(zip(letters, operand.shape, strict=True))
    return math.prod(sizes.values())


def _tensors(values: Any) -> list[Tensor]:
    """The tensors in ``values``, looking into lists and tuples (``torch.cat([...])``)."""
    if isinstance(values, Tensor):
        return [values]
    if isinstance(values, list | tuple):
        return [t for v in values for t in _tensors(v)]
    return []


class OpCounter(TorchFunctionMode):
    """Counts the MACs of the matrix products run under it and the sequential depth of what
    they compute (module docstring). Tensors are tracked by identity and kept alive until the
    counter is dropped, so an identity is never reused for another tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.macs = 0
        self.depth = 0
        self._depths: dict[int, tuple[Tensor, int]] = {}

    def depth_of(self, tensor: Tensor) -> int:
        """The tensor's depth: 0 unless a tracked op made it."""
        entry = self._depths.get(id(tensor))
        return entry[1] if entry is not None else 0

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        inputs = [*args, *(v for key, v in kwargs.items() if key != "out")]
        if name in PRODUCTS or name == "einsum":
            self.macs += product_macs(name, args, out)
            depth = self._product_depth(name, args)
        else:
            depth = max((self.depth_of(t) for t in _tensors(inputs)), default=0)
        for tensor in _tensors(out):
            if name == "__get__" and id(tensor) in self._depths:
                continue  # reading an attribute (``.grad``) does not compute anything
            self._depths[id(tensor)] = (tensor, depth)
            self.depth = max(self.depth, depth)
        return out

    def _product_depth(self, name: str, args: tuple[Any, ...]) -> int:
        """``1 + max`` over the factors, at least the depth of an ``add*`` form's added term."""
        if name == "einsum":
            return 1 + max((self.depth_of(t) for t in _tensors(args[1:])), default=0)
        left, right, added = PRODUCTS[name]
        depth = 1 + max(self.depth_of(args[left]), self.depth_of(args[right]))
        return depth if added is None else max(depth, self.depth_of(args[added]))


@dataclass(frozen=True)
class CostReport:
    """The cost of one credit-assignment step of one configuration on one network shape.

    ``credit_macs_vs_bp`` is ``credit_macs`` over bp's on the same shape and batch.
    """

    label: str
    learner: str
    signal: str
    shape: tuple[int, ...]
    batch: int
    credit_macs: int
    credit_macs_vs_bp: float
    credit_depth: int
    forward_macs: int
    forward_depth: int
    state_bytes: int

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return {**asdict(self), "shape": list(self.shape)}


@dataclass(frozen=True)
class _Counts:
    credit_macs: int
    credit_depth: int
    forward_macs: int
    forward_depth: int
    state_bytes: int


def parse_shape(text: str) -> NetworkSpec:
    """``"8,256,256,6"`` -> a network with 8 inputs, hidden layers 256 and 256, 6 outputs."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) < 2 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise ConfigError(
            f"--shape {text!r} is not a list of layer widths. Expected at least two positive "
            "integers separated by commas, input first and output last, e.g. --shape 8,256,256,6."
        )
    widths = [int(part) for part in parts]
    return NetworkSpec(widths[0], tuple(widths[1:-1]), widths[-1])


def resolve_configuration(label: str, options: dict[str, Any] | None) -> tuple[str, dict]:
    """``(learner name, options)`` of a configuration label (``"pc-symmetric"``, or a learner's
    name for its defaults), with ``options`` laid over the configuration's own."""
    known = {row_label: (name, row_options) for row_label, name, row_options in configurations()}
    if label not in known:
        raise unknown_name("learner configuration", label, known, "See `biocredit learners`.")
    name, row_options = known[label]
    return name, {**row_options, **(options or {})}


def measure_cost(
    label: str,
    options: dict[str, Any] | None = None,
    spec: NetworkSpec | None = None,
    batch: int = DEFAULT_BATCH,
) -> CostReport:
    """Count one credit-assignment step of configuration ``label`` (with ``options`` laid over
    it) on a network of shape ``spec`` (default ``[4, 64, 64, 2]``) and a batch of ``batch``,
    beside bp's on the same network."""
    spec = spec or NetworkSpec(DEFAULT_SHAPE[0], DEFAULT_SHAPE[1:-1], DEFAULT_SHAPE[-1])
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"The batch must be an integer >= 1, got {batch!r}. Try --batch 64.")
    name, resolved = resolve_configuration(label, options)
    counts = count_step(name, resolved, spec, batch)
    bp = count_step("bp", {}, spec, batch)
    return CostReport(
        label=label,
        learner=name,
        signal=learner_class(name).signal,
        shape=spec.sizes,
        batch=batch,
        credit_macs_vs_bp=counts.credit_macs / bp.credit_macs,
        **asdict(counts),
    )


def measure_all(spec: NetworkSpec | None = None, batch: int = DEFAULT_BATCH) -> list[CostReport]:
    """:func:`measure_cost` for every configuration of every registered learner."""
    return [measure_cost(label, None, spec, batch) for label, _, _ in configurations()]


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread (the counts do not depend on it; shared cores are much faster
    so), then restore the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def count_step(name: str, options: dict[str, Any], spec: NetworkSpec, batch: int) -> _Counts:
    """Run a recorded forward pass and one credit-assignment step on random data, counting
    each; the global RNG and thread count are left as they were."""
    with _one_thread(), torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(0)
        net = LocalNetwork(spec, name, RunContext(n_envs=batch), **options)  # an env per row
        x = torch.randn(batch, spec.in_features)
        with OpCounter() as forward:
            y, cache = net.learner.forward_pass(net.layers, x, record=True)
        assert cache is not None
        with OpCounter() as credit:
            credit_step(net, cache, torch.randn_like(y))
        state_bytes = sum(
            t.numel() * t.element_size()
            for t in (*net.learner.buffers(), *net.learner.parameters())
        )
    return _Counts(credit.macs, credit.depth, forward.macs, forward.depth, state_bytes)


def credit_step(net: LocalNetwork, cache: ForwardCache, signal: Tensor) -> None:
    """One credit-assignment step as the learner's signal kind prescribes; ``signal`` is the
    output error (error-driven) or the output's post-synaptic term (modulator-driven)."""
    learner: Learner = net.learner
    if isinstance(learner, ErrorDrivenLearner):
        learner.assign_credit(net.layers, cache, signal, input_grad=False)
    elif isinstance(learner, ModulatorDrivenLearner):
        learner.accumulate(net.layers, cache, signal)
        learner.modulate(net.layers, torch.randn(signal.shape[0]))
    elif isinstance(learner, SignalFreeLearner):
        learner.learn(net.layers, cache)
    else:
        raise TypeError(f"No credit-assignment step is known for the '{learner.signal}' signal.")
