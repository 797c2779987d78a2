"""Three-factor neuromodulated Hebbian learning with eligibility traces.

Fremaux & Gerstner 2016, "Neuromodulated spike-timing-dependent plasticity, and theory of
three-factor learning rules" (Front. Neural Circuits 9:85); in its actor-critic form, the
TD(lambda) actor-critic with eligibility traces (Sutton & Barto 2018, section 13.5).

Each synapse keeps, per environment, an eligibility trace of pre x post coincidences; a global
third factor ``M`` (the TD error, a dopamine-like signal) turns eligibility into change:

    post_L = output post-synaptic term, given by the owner:
             onehot(a) - pi(s) for a softmax policy, (a - mu) / sigma^2 for a Gaussian mean,
             1 for a value unit
    post_l = (post_L D_l) * f'(a_l)            hidden units: a fixed random projection D_l of
                                               the output's post-synaptic term (as in DFA)
    e_l   <- gamma * lambda * e_l + post_l h_{l-1}^T     (per env; reset at episode end)
    dW_l   = eta * M * e_l                    so  W.grad = -sum_env M e_l

No synapse reads another synapse's weight, and no loss's error reaches the network. An output
unit's post term is its own (the policy's ``onehot(a) - pi``); a hidden unit's post term is its
own slope ``f'(a_l)`` times what a fixed random feedback pathway ``D_l`` brings it from the
output units, a broadcast like DFA's. Each synapse then combines its own pre- and post-synaptic
terms with the broadcast modulator.

``feedback="transpose"`` replaces ``D_l`` by the chain ``post_l = (post_{l+1} W_{l+1}) * f'(a_l)``:
the traces then hold exact gradients of the output term, i.e. the textbook backprop TD(lambda)
actor-critic. It uses weight transport and exists as the same-loop backprop baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from biocredit.errors import ConfigError, unknown_name
from biocredit.learners.base import ForwardCache, ModulatorDrivenLearner, linear_grads
from biocredit.learners.feedback import RandomFeedbackLearner
from biocredit.learners.options import check_number
from biocredit.learners.plausibility import Plausibility
from biocredit.learners.registry import register
from biocredit.learners.spec import NetworkSpec

FEEDBACK_MODES = ("random", "transpose")


def hidden_post(post_out: Tensor, feedback: Tensor, fprime: Tensor) -> Tensor:
    """Post-synaptic term of a hidden unit: ``post_l = (post_L D_l) * f'(a_l)``
    (or ``(post_{l+1} W_{l+1}) * f'(a_l)`` with the transpose baseline)."""
    return post_out.mm(feedback).mul_(fprime)


def accumulate_trace(
    trace_w: Tensor, trace_b: Tensor, decay: float, post: Tensor, pre: Tensor
) -> None:
    """In place, per env ``b``: ``e_w[b] <- decay e_w[b] + post[b] pre[b]^T``,
    ``e_b[b] <- decay e_b[b] + post[b]``."""
    trace_w.baddbmm_(post.unsqueeze(2), pre.unsqueeze(1), beta=decay)
    trace_b.mul_(decay).add_(post)


def modulated_grad(trace: Tensor, modulator: Tensor, out: Tensor | None = None) -> Tensor:
    """``-sum_b M[b] e[b]``: the negative of the three-factor update ``M e`` (per unit rate),
    written into ``out`` when given."""
    row = modulator.neg().unsqueeze(0)
    if out is None:
        return row.mm(trace.flatten(1)).view(trace.shape[1:])
    torch.mm(row, trace.flatten(1), out=out.view(1, -1))
    return out


@register
class NeuromodulatedHebbian(RandomFeedbackLearner, ModulatorDrivenLearner):
    """Three-factor Hebbian rule: eligibility traces gated by a broadcast modulator.

    The owner drives it with :meth:`accumulate` after each forward pass (with the output's
    post-synaptic term), :meth:`modulate` with the third factor and :meth:`end_episodes`; the
    run context gives the discount ``gamma`` and one trace per env (``n_envs``).

    :param lam: trace persistence lambda; traces decay by ``gamma * lambda`` per step
    :param feedback: ``"random"`` (fixed ``D_l``, the plausible rule) or ``"transpose"``
        (``W^T`` chain: the backprop baseline)
    :param init: ``"uniform"`` or ``"gaussian"`` fixed feedback ``D_l`` to hidden units
    :param scale: feedback entries spread ``scale / sqrt(n_out)``
    :param seed: seed for the feedback matrices; by default drawn from torch's global RNG
    """

    name = "hebbian3f"
    family = "three-factor neuromodulated Hebbian"
    paper = "Fremaux & Gerstner 2016, Front. Neural Circuits 9:85"
    variants: ClassVar[dict[str, dict[str, Any]]] = {"transpose": {"feedback": "transpose"}}
    update_kernels = (accumulate_trace, modulated_grad)

    def __init__(
        self,
        lam: float = 0.9,
        feedback: str = "random",
        init: str = "uniform",
        scale: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(init, scale, seed)
        lam = check_number(self.name, "lam", lam, 0, 1, closed="both", hint=0.9)
        if feedback not in FEEDBACK_MODES:
            raise unknown_name("hebbian3f feedback", feedback, FEEDBACK_MODES)
        self.lam, self.feedback_mode = lam, feedback

    @property
    def plausibility(self) -> Plausibility:
        # Not P1: the hidden units' post terms arrive through a broadcast pathway of their own.
        local = self.feedback_mode == "random"
        return Plausibility(
            p2_weight_transport=local,
            local_plasticity=local,
            update_unlocked=local,
            architecture_agnostic=True,
            time=True,
            control=True,
        )

    @property
    def trace_decay(self) -> float:
        return self.context.gamma * self.lam

    def build_state(self, spec: NetworkSpec, generator: torch.Generator) -> None:
        n_out, n_envs = spec.out_features, self.context.n_envs
        for l, width in enumerate(spec.hidden, start=1):
            self.add_feedback(l, (n_out, width), n_out, generator)
        self._traces: list[tuple[Tensor, Tensor]] = []
        for l, (n_in, n_out) in enumerate(pairwise(spec.sizes)):
            self.register_buffer(f"trace_w_{l}", torch.zeros(n_envs, n_out, n_in))
            self.register_buffer(f"trace_b_{l}", torch.zeros(n_envs, n_out))
            self._traces.append((getattr(self, f"trace_w_{l}"), getattr(self, f"trace_b_{l}")))

    def end_episodes(self, done: Tensor) -> None:
        """Zero the traces of the envs where ``done`` (bool, one per env) is true."""
        keep = (~done).to(self.trace_b_0.dtype)
        for trace_w, trace_b in self._traces:
            trace_w.mul_(keep[:, None, None])
            trace_b.mul_(keep[:, None])

    def traces(self) -> list[tuple[Tensor, Tensor]]:
        """``[(e_W1, e_b1), ...]``, each with a leading env dimension (the buffers themselves;
        ``load_state_dict`` copies into them, so the list stays valid)."""
        return self._traces

    def accumulate(
        self, layers: Sequence[nn.Linear], cache: ForwardCache, post_out: Tensor
    ) -> None:
        """Add this step's pre x post coincidences to the decayed traces."""
        assert self.activation is not None and self.spec is not None
        traces = self.traces()
        if traces[0][1].shape[0] != post_out.shape[0]:
            raise ConfigError(
                f"hebbian3f traces are sized for {traces[0][1].shape[0]} envs but the batch has "
                f"{post_out.shape[0]}; attach it with RunContext(n_envs={post_out.shape[0]})."
            )
        posts = self.post_terms(layers, cache, post_out, self.feedback_mode == "transpose")
        for (trace_w, trace_b), post, pre in zip(traces, posts, cache.inputs, strict=True):
            accumulate_trace(trace_w, trace_b, self.trace_decay, post, pre)

    def post_terms(
        self, layers: Sequence[nn.Linear], cache: ForwardCache, post_out: Tensor, transport: bool
    ) -> list[Tensor]:
        """Every layer's post-synaptic term, first layer first: the output's own, the hidden
        units' from ``D_l`` (or, with ``transport``, from the ``W^T`` chain)."""
        assert self.activation is not None and self.spec is not None
        derivative = self.activation.derivative
        posts = [post_out]
        for l in range(self.spec.n_layers - 2, -1, -1):
            a, h = cache.pre_activations[l], cache.inputs[l + 1]
            if transport:
                posts.insert(0, hidden_post(posts[0], layers[l + 1].weight, derivative(a, h)))
            else:
                posts.insert(0, hidden_post(post_out, self.feedback()[l], derivative(a, h)))
        return posts

    def step_update(
        self,
        layers: Sequence[nn.Linear],
        cache: ForwardCache,
        post_out: Tensor,
        modulator: Tensor,
        transport: bool = False,
    ) -> list[Tensor]:
        own_rule_transports = self.feedback_mode == "transpose"
        posts = self.post_terms(layers, cache, post_out, transport or own_rule_transports)
        return [
            g
            for post, pre in zip(posts, cache.inputs, strict=True)
            for g in linear_grads(post * -modulator[:, None], pre)
        ]

    def modulate(self, layers: Sequence[nn.Linear], modulator: Tensor) -> None:
        """Write ``.grad = -sum_env M e`` into every parameter (replacing what was there; the
        ``.grad`` tensors are reused from step to step)."""
        for layer, (trace_w, trace_b) in zip(layers, self.traces(), strict=True):
            for param, trace in ((layer.weight, trace_w), (layer.bias, trace_b)):
                if param.grad is None:
                    param.grad = modulated_grad(trace, modulator)
                else:
                    modulated_grad(trace, modulator, out=param.grad)

    def extra_repr(self) -> str:
        return (
            f"lam={self.lam}, feedback={self.feedback_mode!r}, init={self.init!r}, seed={self.seed}"
        )
