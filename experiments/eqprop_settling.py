"""How well the ``eqprop`` learner settles and how close its update is to the gradient through
the settled state, per hidden layer, on deep networks and in float32.

For each depth: a ``[8, 64 x H, 3]`` network with SB3's orthogonal init (gain sqrt 2, readout
1), a batch of 64 random inputs and targets, the loss ``||y - t||^2 / 2``. The reference is
autograd's gradient of the same loss through ``--sweeps`` free-phase sweeps (the settled state),
computed in float64 on a float64 copy of the network; eqprop's update is computed in the chosen
dtype. The residual is the largest change one more exact sweep would make to the free state that
eqprop's forward pass settled to.

    python experiments/eqprop_settling.py --depths 2 4 8 --seeds 0 1 2
    python experiments/eqprop_settling.py --depths 2 --nudge 1e-4

prints one row per depth and seed: the residual, the overall cosine and each weight layer's
(``W_l`` and ``b_l`` together; the last is the readout).
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

import torch
from torch import Tensor

from biocredit.learners import LocalNetwork, NetworkSpec

WIDTH, N_IN, N_OUT, BATCH = 64, 8, 3, 64


def unrolled_loss(net: LocalNetwork, x: Tensor, target: Tensor, sweeps: int) -> Tensor:
    """The free dynamics (``dt = 1``) in plain differentiable torch, then the readout's loss."""
    learner = net.learner
    low, high, gain = learner.low, learner.high, learner.feedback_gain
    layers = net.layers
    states = [x]
    for layer in layers[:-1]:
        states.append(layer(states[-1]).clamp(low, high))
    n = len(states) - 1
    for _ in range(sweeps):
        for first in (1, 2):
            for l in range(first, n + 1, 2):
                drive = layers[l - 1](states[l - 1])
                if l < n:
                    drive = drive + gain * states[l + 1] @ layers[l].weight
                states[l] = drive.clamp(low, high)
    return 0.5 * (layers[-1](states[-1]) - target).square().sum()


def cosine(a: list[Tensor], b: list[Tensor]) -> float:
    flat_a = torch.cat([t.flatten().double() for t in a])
    flat_b = torch.cat([t.flatten().double() for t in b])
    return float(torch.nn.functional.cosine_similarity(flat_a, flat_b, dim=0))


def residual(net: LocalNetwork, states: list[Tensor]) -> float:
    """Largest change one more exact block sweep would make: zero at a fixed point."""
    learner = net.learner
    dt, learner.dt = learner.dt, 1.0
    with torch.no_grad():
        again = learner.settle(net.layers, states, 1)
    learner.dt = dt
    return max(float((a - b).abs().max()) for a, b in zip(again[1:], states[1:], strict=True))


def measure(
    depth: int, seed: int, dtype: torch.dtype, sweeps: int, **options: Any
) -> dict[str, Any]:
    """Residual, overall cosine and per-layer cosines (and norms) of one network and batch."""
    torch.manual_seed(seed)
    spec = NetworkSpec(N_IN, (WIDTH,) * depth, N_OUT, "relu")
    net = LocalNetwork(spec, "eqprop", **options)
    net.init_orthogonal(2**0.5, 1.0)
    x, target = torch.randn(BATCH, N_IN), torch.randn(BATCH, N_OUT)
    reference_net = copy.deepcopy(net).double()
    net = net.to(dtype)
    x_net, target_net = x.to(dtype), target.to(dtype)
    loss = 0.5 * (net(x_net) - target_net).square().sum()
    loss.backward()
    update = [p.grad.double() for p in net.parameters_in_order()]
    with torch.no_grad():
        free = net.learner.free_phase(net.layers, x_net)
    params = reference_net.parameters_in_order()
    reference = list(
        torch.autograd.grad(
            unrolled_loss(reference_net, x.double(), target.double(), sweeps), params
        )
    )
    layers = range(0, len(params), 2)
    return {
        "residual": residual(net, free),
        "cosine": cosine(update, reference),
        "layers": [cosine(update[l : l + 2], reference[l : l + 2]) for l in layers],
        "zero": [bool((update[l] == 0).all()) for l in layers],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--sweeps", type=int, default=300, help="reference free-phase sweeps")
    parser.add_argument("--nudge", type=float, default=None)
    parser.add_argument("--steps", type=int, default=None, help="free_steps and nudge_steps")
    parser.add_argument("--feedback-gain", type=float, default=None)
    args = parser.parse_args()
    options: dict[str, Any] = {}
    if args.nudge is not None:
        options["nudge"] = args.nudge
    if args.steps is not None:
        options["free_steps"] = options["nudge_steps"] = args.steps
    if args.feedback_gain is not None:
        options["feedback_gain"] = args.feedback_gain
    dtype = getattr(torch, args.dtype)
    print(f"eqprop {options or 'defaults'}, {args.dtype}, reference {args.sweeps} sweeps (float64)")
    print(f"{'H':>2} {'seed':>4} {'residual':>9} {'cosine':>7}  per layer (input .. readout)")
    for depth in args.depths:
        for seed in args.seeds:
            row = measure(depth, seed, dtype, args.sweeps, **options)
            layers = " ".join(
                f"{c:5.3f}{'*' if zero else ''}"
                for c, zero in zip(row["layers"], row["zero"], strict=True)
            )
            print(f"{depth:>2} {seed:>4} {row['residual']:9.1e} {row['cosine']:7.4f}  {layers}")
    print("* : the layer's weight update is exactly zero")


if __name__ == "__main__":
    main()
