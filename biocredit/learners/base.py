"""The learner contract: one base class per way a learning signal reaches a network.

Every learner ends by producing, for each parameter, the negative of the update its own local
rule prescribes, and a standard ``torch.optim`` optimizer applies it. What differs is how the
signal arrives, and the training code and the SB3 policies choose behaviour by these classes
only:

- :class:`ErrorDrivenLearner` (bp, fa, dfa ...): the autograd boundary at the network's output
  (:mod:`biocredit.learners.boundary`) hands it ``e = dL/dy`` when any loss calls
  ``.backward()``; it returns the parameter gradients, which torch accumulates into ``.grad``.
- :class:`TargetDrivenLearner` (pc, eqprop ...): served by the same boundary, which turns ``e``
  into an output target ``y* = y - beta e`` (a nudge); the learner settles, propagates targets
  or compares phases from there.
- :class:`ModulatorDrivenLearner` (hebbian3f): eligibility traces of pre x post coincidences,
  turned into ``.grad`` by a third factor the owner broadcasts (the TD error); run context
  (``gamma``, ``n_envs``) arrives through :meth:`Learner.attach`.
- :class:`SignalFreeLearner`: learns from its own inputs alone (two-factor Hebbian, SoftHebb,
  forward-forward), optionally gated by a modulator.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from biocredit.errors import ConfigError
from biocredit.learners.activations import Activation, get_activation
from biocredit.learners.alignment import AlignmentMonitor
from biocredit.learners.options import check_flag, check_number
from biocredit.learners.plausibility import Plausibility
from biocredit.learners.spec import NetworkSpec


@dataclass
class ForwardCache:
    """What a feedforward pass leaves behind for credit assignment.

    ``inputs[l]`` is the pre-synaptic activity of weight layer ``l`` (``inputs[0]`` is the network
    input, ``inputs[l] = f(pre_activations[l - 1])``); ``pre_activations`` holds the hidden layers'
    ``a_l``; ``output`` is ``y``.
    """

    inputs: list[Tensor]
    pre_activations: list[Tensor]
    output: Tensor


@dataclass(frozen=True)
class RunContext:
    """What a learner may need to know about the run it serves: the task's discount ``gamma``
    (eligibility traces decay by ``gamma * lambda``) and the number of parallel envs (one
    trace per env)."""

    gamma: float = 0.99
    n_envs: int = 1


def linear_grads(delta: Tensor, pre: Tensor) -> tuple[Tensor, Tensor]:
    """Gradient-sign update of one linear layer from its local error and its input.

    ``dL/dW = delta^T x`` and ``dL/db = sum_batch delta``: the post-synaptic error times the
    pre-synaptic activity, shared by every error-driven rule; rules differ only in ``delta``.
    """
    return delta.t().mm(pre), delta.sum(0)


def accumulate_grad(parameter: Tensor | None, grad: Tensor) -> None:
    """Add ``grad`` into a learner's own parameter's ``.grad``, as torch accumulates gradients
    (learned error synapses, readouts, synthetic-gradient modules)."""
    assert parameter is not None
    parameter.grad = grad if parameter.grad is None else parameter.grad.add_(grad)


def error_rms(error: Tensor) -> Tensor:
    """``rms(e)``, floored away from zero: the scale relative nudges are measured in."""
    return error.pow(2).mean().sqrt().clamp_min(1e-30)


class Learner(nn.Module):
    """Base class of every credit-assignment scheme; use one of the four signal kinds below.

    Subclasses set the class attributes; learners that keep state sized by the network (feedback
    matrices, traces) create it as buffers in :meth:`build_state`, so it is saved and restored
    with the model. :attr:`plausibility` is computed from the learner's options.
    """

    name: ClassVar[str]
    family: ClassVar[str]
    signal: ClassVar[str]  # set by the signal-kind base class
    paper: ClassVar[str]
    #: named non-default configurations worth their own row (``biocredit learners``) and their
    #: own plausibility tests, e.g. ``{"symmetric": {"feedback": "symmetric"}}`` -> "pc-symmetric"
    variants: ClassVar[dict[str, dict[str, Any]]] = {}
    #: the pure functions that compute a layer's weight change; their arguments are all the
    #: rule may use (the locality proof that ``tests/test_plausibility.py`` reads)
    update_kernels: ClassVar[tuple[Callable[..., Any], ...]] = ()
    #: why the rule does not train conv layers, for the refusal of a conv network; learners
    #: that do are :class:`~biocredit.learners.conv.ConvLearner` subclasses
    conv_refusal: ClassVar[str] = "its rule is implemented for dense layers only"

    def __new__(cls, *args: Any, **kwargs: Any) -> Learner:
        # the options this learner is made with, defaults included, for :attr:`options`
        learner = super().__new__(cls)
        signature = inspect.signature(cls.__init__)
        try:
            bound = signature.bind(learner, *args, **kwargs)
        except TypeError:  # __init__ raises it, with its own message
            options: dict[str, Any] = {}
        else:
            bound.apply_defaults()
            options = {}
            for name, value in list(bound.arguments.items())[1:]:
                if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                    options.update(value)
                else:
                    options[name] = value
        object.__setattr__(learner, "_options", options)
        return learner

    def __init__(self, seed: int | None = None) -> None:
        super().__init__()
        self.seed = seed
        self.spec: NetworkSpec | None = None
        self.activation: Activation | None = None
        self.context = RunContext()
        self.alignment: AlignmentMonitor | None = None  # off unless a run asks for it
        self._feedback_names: list[str] = []

    @classmethod
    def configurations(cls) -> dict[str, dict[str, Any]]:
        """The defaults (under the learner's name) and each variant, as learner options."""
        return {cls.name: {}, **{f"{cls.name}-{key}": dict(v) for key, v in cls.variants.items()}}

    @property
    def plausibility(self) -> Plausibility:
        """The problems of backprop this configuration addresses (``docs/plausibility.md``)."""
        raise NotImplementedError

    @property
    def options(self) -> dict[str, Any]:
        """Every option of this learner as it was made, defaults included (what run summaries,
        checkpoints and bench tables record)."""
        return dict(self._options)

    def describe(self) -> str:
        """``dfa(init='uniform', scale=1.0, fan='output', seed=None)``; a configuration that
        computes backprop's gradients says so."""
        text = f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.options.items())})"
        if self.plausibility.equals_backprop:
            text += " [backprop: no local credit assignment]"
        return text

    def attach(self, spec: NetworkSpec, context: RunContext | None = None) -> None:
        """Bind this learner to a network of shape ``spec`` in a run and create its state."""
        if self.spec is not None:
            raise RuntimeError(
                f"This '{self.name}' learner is already attached to a network; "
                "make one learner per network (make_learner(...) each time)."
            )
        self.spec = spec
        self.context = context or RunContext()
        self.activation = get_activation(spec.activation)
        generator = torch.Generator()
        if self.seed is None:  # follow the global torch seed, which SB3 and biocredit set per run
            generator.manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()))
        else:
            generator.manual_seed(self.seed)
        self.build_state(spec, generator)

    def register_feedback(self, name: str, matrix: Tensor, learned: bool = False) -> None:
        """Keep ``matrix`` as the learner's own feedback synapses ``name``: a buffer (saved and
        restored with the model), or a parameter when ``learned``."""
        if learned:
            self.register_parameter(name, nn.Parameter(matrix))
        else:
            self.register_buffer(name, matrix)
        self._feedback_names.append(name)

    def own_feedback(self) -> list[Tensor]:
        """The feedback synapses in the order registered, looked up by name, so they are the
        module's current tensors after ``.double()``, ``.to()`` or ``load_state_dict``."""
        return [getattr(self, name) for name in self._feedback_names]

    def build_state(self, spec: NetworkSpec, generator: torch.Generator) -> None:
        """Create learner state (as buffers) for a network of shape ``spec``; none by default."""

    def init_weights(self, layers: Sequence[nn.Linear]) -> None:
        """Adjust freshly initialised weights to what the rule needs; nothing by default.

        :class:`~biocredit.learners.network.LocalNetwork` calls it after every initialisation
        (its own, and :meth:`~biocredit.learners.network.LocalNetwork.init_orthogonal`).
        """

    def forward_pass(
        self, layers: Sequence[nn.Linear], x: Tensor, record: bool
    ) -> tuple[Tensor, ForwardCache | None]:
        """Feedforward inference ``h_l = f(W_l h_{l-1} + b_l)``, linear output layer.

        With ``record`` the activities needed by the learner's rule are kept.
        """
        assert self.activation is not None, "attach() the learner to a network first"
        f = self.activation.fn
        inputs, pre_activations = [x], []
        *hidden, out = layers  # a list (slicing a ModuleList would build a new module)
        h = x
        for layer in hidden:
            a = torch.addmm(layer.bias, h, layer.weight.t())
            h = f(a)
            if record:
                pre_activations.append(a)
                inputs.append(h)
        y = torch.addmm(out.bias, h, out.weight.t())
        return y, (ForwardCache(inputs, pre_activations, y) if record else None)

    def extra_repr(self) -> str:
        return f"seed={self.seed}"


class ErrorDrivenLearner(Learner):
    """Receives only ``e = dL/dy`` at the network's output, through the autograd boundary, and
    assigns credit to every layer by its own rule."""

    signal = "error"
    update_kernels = (linear_grads,)
    #: whether the update is a differentiable function of the loss (backprop's gradient), so
    #: that :meth:`differentiable_credit` serves ``backward(create_graph=True)``
    second_order: ClassVar[bool] = False

    def assign_credit(
        self, layers: Sequence[nn.Linear], cache: ForwardCache, error: Tensor, input_grad: bool
    ) -> tuple[Tensor | None, list[Tensor]]:
        """Turn the output error ``e = dL/dy`` into parameter gradients by the learner's rule.

        Returns the error signal for the network's input (``None`` unless ``input_grad``) and the
        gradients ``[dW_1, db_1, ..., dW_L, db_L]``.
        """
        raise NotImplementedError

    def differentiable_credit(
        self, layers: Sequence[nn.Linear], x: Tensor, error: Tensor, input_grad: bool
    ) -> tuple[Tensor | None, list[Tensor]]:
        """:meth:`assign_credit` as a differentiable function of ``x``, the parameters and
        ``e`` (for second-order gradients); only learners with :attr:`second_order` give it."""
        raise NotImplementedError


class TargetDrivenLearner(ErrorDrivenLearner):
    """Receives an output target ``y* = y - beta e``: the boundary's error turned into a nudge.

    ``beta = nudge / rms(e)`` with ``relative_nudge`` (the output moves by about ``nudge``
    whatever the loss's scale, which keeps the differences the rule measures well above float32
    rounding), ``beta = nudge`` otherwise; with ``relative_nudge=False`` and ``nudge=1`` the
    squared error ``||y - t||^2 / 2`` makes ``y* = t``. The learner's
    :meth:`learn_from_target` returns gradient-sized updates (its local changes divided by
    ``beta``).

    :param nudge: how far the output target lies from the output, against the loss
    :param relative_nudge: measure ``nudge`` in units of ``rms(e)``
    """

    signal = "target"

    def __init__(
        self, nudge: float = 0.1, relative_nudge: bool = True, seed: int | None = None
    ) -> None:
        super().__init__(seed)
        self.nudge = check_number(self.name, "nudge", nudge, hint=0.1)
        self.relative_nudge = check_flag(self.name, "relative_nudge", relative_nudge)

    def output_nudge(self, error: Tensor) -> Tensor:
        """``beta``: ``nudge / rms(e)`` when relative, else ``nudge``."""
        if not self.relative_nudge:
            return error.new_tensor(self.nudge)
        return self.nudge / error_rms(error)

    def assign_credit(
        self, layers: Sequence[nn.Linear], cache: ForwardCache, error: Tensor, input_grad: bool
    ) -> tuple[Tensor | None, list[Tensor]]:
        beta = self.output_nudge(error)
        return self.learn_from_target(layers, cache, error * -beta, beta, input_grad)

    def learn_from_target(
        self,
        layers: Sequence[nn.Linear],
        cache: ForwardCache,
        shift: Tensor,
        beta: Tensor,
        input_grad: bool,
    ) -> tuple[Tensor | None, list[Tensor]]:
        """Move the network toward the output target ``y* = y + shift`` (``shift = -beta e``,
        kept apart from ``y`` so that a small nudge is not lost to rounding); return, like
        :meth:`ErrorDrivenLearner.assign_credit`, the input's error signal and the gradients."""
        raise NotImplementedError


class ModulatorDrivenLearner(Learner):
    """Three-factor learning: eligibility traces of pre x post coincidences, one per env, turned
    into an update by a broadcast modulator ``M`` (the owner's third factor).

    The owner calls :meth:`accumulate` after each recorded forward pass with the output's
    post-synaptic term, :meth:`modulate` with ``M`` (which writes ``.grad``) and
    :meth:`end_episodes` when episodes end. ``context.gamma`` and ``context.n_envs`` size and
    decay the traces.
    """

    signal = "modulator"

    @property
    def trace_decay(self) -> float:
        """How much of a trace survives one step (``gamma * lambda`` for TD(lambda) traces)."""
        raise NotImplementedError

    def accumulate(
        self, layers: Sequence[nn.Linear], cache: ForwardCache, post_out: Tensor
    ) -> None:
        """Add this step's pre x post coincidences to the decayed traces."""
        raise NotImplementedError

    def modulate(self, layers: Sequence[nn.Linear], modulator: Tensor) -> None:
        """Write ``.grad = -sum_env M e`` into every parameter."""
        raise NotImplementedError

    def end_episodes(self, done: Tensor) -> None:
        """Forget the eligibility of the envs whose episode ended (``done``: bool per env)."""
        raise NotImplementedError

    def step_update(
        self,
        layers: Sequence[nn.Linear],
        cache: ForwardCache,
        post_out: Tensor,
        modulator: Tensor,
        transport: bool = False,
    ) -> list[Tensor]:
        """This step's contribution to the update, ``-sum_env M post_l pre_l^T`` per layer
        (gradient sign, ``[dW_1, db_1, ...]``); with ``transport`` the hidden post terms are
        backprop's (``W^T`` chain) instead of the rule's: the reference of the alignment
        diagnostic."""
        raise NotImplementedError


class SignalFreeLearner(Learner):
    """Learns from its own inputs alone (a Hebbian or goodness rule), optionally gated by a
    modulator; no error reaches it. The owner calls :meth:`learn` after a recorded forward
    pass; it writes ``.grad``.

    Updates are averaged over the batch (each row one observation), so a learning rate means
    the same at any batch size. The optional modulator ``m`` (one value per row, e.g. the sign
    of the TD error) scales row ``b``'s contribution by ``m_b``.
    """

    signal = "none"

    def learn(
        self, layers: Sequence[nn.Linear], cache: ForwardCache, modulator: Tensor | None = None
    ) -> None:
        """Write the negative of the rule's update into every parameter's ``.grad``."""
        raise NotImplementedError

    def check_modulator(self, modulator: Tensor | None, batch: int) -> None:
        """A modulator, when given, holds one value per row of the batch."""
        if modulator is not None and tuple(modulator.shape) != (batch,):
            raise ConfigError(
                f"{self.name} takes one modulator value per row of the batch ({batch},), got "
                f"shape {tuple(modulator.shape)}. Pass e.g. the TD errors' signs, one per env."
            )
