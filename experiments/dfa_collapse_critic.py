"""The value network of finished MountainCar-v0 PPO runs, on the states a near-random policy visits
(position -0.7..-0.3, |velocity| < 0.02, a 41 x 41 grid), and SB3's advantages under a flat
critic. Used for the "Second attempt" section of docs/notes/dfa_collapse.md.

    PYTHONPATH=. python experiments/dfa_collapse_critic.py RUN_DIR [RUN_DIR ...]
    PYTHONPATH=. python experiments/dfa_collapse_critic.py --flat -98.7

For each run: the range and standard deviation of V over the grid, the first layer's weight norm,
the mean |h_1|, the median and smallest |a_2| (pre-activation of the last hidden layer) and the
largest tanh'(a_2), which bounds what any layer below can still change in V.

``--flat V``: SB3's GAE (gamma 0.99, lambda 0.95) on a 2048-step rollout of 200-step episodes with
reward -1 (truncation bootstrapped, as SB3 does) and the constant value V, then PPO's
normalisation per minibatch of 64: how the normalised advantage depends on the time left in the
episode when the critic carries no information.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer

from biocredit.training.evaluation import load_run_policy


def visited_states() -> torch.Tensor:
    position, velocity = torch.meshgrid(
        torch.linspace(-0.7, -0.3, 41), torch.linspace(-0.02, 0.02, 41), indexing="ij"
    )
    return torch.stack([position.flatten(), velocity.flatten()], 1)


def critic_report(run_dir: Path) -> str:
    policy, _ = load_run_policy(run_dir)
    layers = policy.mlp_extractor.value_net.layers
    x = visited_states()
    w1 = layers[0].weight.detach()
    with torch.no_grad():
        h1 = torch.tanh(layers[0](x))
        a2 = layers[1](h1)
        value = layers[2](torch.tanh(a2))
    return (
        f"{run_dir.name}: V range {float(value.max() - value.min()):.1e} "
        f"std {float(value.std()):.1e} mean {float(value.mean()):.1f} | "
        f"|W_1| {float(w1.norm()):.2f} mean|h_1| {float(h1.abs().mean()):.2f} | "
        f"|a_2| median {float(a2.abs().median()):.1f} min {float(a2.abs().min()):.1f} "
        f"max tanh'(a_2) {float((1 - torch.tanh(a2) ** 2).max()):.1e}"
    )


def flat_critic_advantages(value: float, seed: int = 0) -> str:
    buffer = RolloutBuffer(
        2048, spaces.Box(-1, 1, (2,)), spaces.Discrete(3), gamma=0.99, gae_lambda=0.95
    )
    for t in range(2048):
        last = t % 200 == 199
        reward = -1.0 + (0.99 * value if last else 0.0)  # SB3 bootstraps a truncated episode
        buffer.add(
            np.zeros((1, 2)),
            np.zeros((1, 1)),
            np.array([reward]),
            np.array([t % 200 == 0]),
            torch.tensor([value]),
            torch.tensor([0.0]),
        )
    buffer.compute_returns_and_advantage(last_values=torch.tensor([value]), dones=np.array([False]))
    raw = buffer.advantages.reshape(-1)
    order = np.random.default_rng(seed).permutation(2048)
    normalised = np.empty(2048)
    for i in range(0, 2048, 64):
        batch = order[i : i + 64]
        normalised[batch] = (raw[batch] - raw[batch].mean()) / (raw[batch].std() + 1e-8)
    late = np.arange(2048) % 200 >= 170
    return (
        f"flat V={value}: raw advantage {raw.min():.4f}..{raw.max():.4f} (std {raw.std():.4f}); "
        f"normalised: mean {normalised[late].mean():.2f} in the last 30 steps of each episode, "
        f"{normalised[~late].mean():.2f} elsewhere; max {normalised.max():.1f}"
    )


def main() -> None:
    torch.set_num_threads(1)
    if sys.argv[1] == "--flat":
        print(flat_critic_advantages(float(sys.argv[2])))
        return
    for run_dir in sys.argv[1:]:
        print(critic_report(Path(run_dir)))


if __name__ == "__main__":
    main()
