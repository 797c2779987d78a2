"""Representation probe: how linearly decodable CartPole's true state is from the features of a
signal-free perception module, against frozen random features of the same network.

    python experiments/representation_probe.py [--seeds 0 1 2 3 4] [--steps 2500]

Each seed: CartPole-v1 observations from a uniformly random policy in 8 envs (the stream a
perception module sees early in training), z-scored by the statistics of the training part. A
perception network of the native agents' default shape (4 -> 64 -> 32, tanh) learns from
``--steps`` batches of 8 (one per env step, as online) by its own rule and optimizer
(the `perception` defaults of `biocredit.agents.config.PerceptionConfig`); the frozen network
is the same network before learning. A ridge regression from the 32 features (and a bias) to the
four state variables is fit on the training observations and scored (R^2) on held-out ones.
Prints a markdown table: mean +/- std over seeds of each variable's R^2.
"""

from __future__ import annotations

import argparse
import copy

import gymnasium as gym
import numpy as np
import torch

from biocredit.agents.config import PerceptionConfig
from biocredit.agents.networks import TrainedNetwork
from biocredit.learners import NetworkSpec

STATE = ("x", "x_dot", "theta", "theta_dot")
LEARNERS = ("softhebb", "ff", "hebbian")
N_ENVS, TEST_STEPS, RIDGE = 8, 1000, 1e-3


def observations(seed: int, steps: int) -> np.ndarray:
    """``(steps * N_ENVS, 4)`` observations of a random policy."""
    envs = gym.make_vec("CartPole-v1", num_envs=N_ENVS)
    envs.action_space.seed(seed)
    obs, _ = envs.reset(seed=seed)
    rows = []
    for _ in range(steps):
        rows.append(obs)
        obs, *_ = envs.step(envs.action_space.sample())
    envs.close()
    return np.concatenate(rows).astype(np.float32)


def ridge_r2(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray):
    """R^2 per target column of a ridge regression (features plus a bias) on held-out rows."""

    def design(x):
        return np.hstack([x, np.ones((len(x), 1))])

    a = design(train_x)
    weights = np.linalg.solve(a.T @ a + RIDGE * len(a) * np.eye(a.shape[1]), a.T @ train_y)
    residual = test_y - design(test_x) @ weights
    return 1.0 - residual.var(0) / test_y.var(0)


def features(net: TrainedNetwork, x: np.ndarray) -> np.ndarray:
    return net.infer(torch.as_tensor(x)).numpy()


def probe(seed: int, steps: int) -> dict[str, np.ndarray]:
    data = observations(seed, steps + TEST_STEPS)
    train, test = data[: steps * N_ENVS], data[steps * N_ENVS :]
    mean, std = train.mean(0), train.std(0) + 1e-8
    train_z, test_z = (train - mean) / std, (test - mean) / std
    scores = {}
    for learner in LEARNERS:
        torch.manual_seed(seed)
        config = PerceptionConfig(learner=learner)
        spec = NetworkSpec(4, tuple(config.hidden), config.features, config.activation)
        net = TrainedNetwork(spec, config, gamma=0.99, n_envs=N_ENVS)
        if learner == LEARNERS[0]:  # the same initial network, never trained
            frozen = copy.deepcopy(net)
            scores["frozen random"] = ridge_r2(
                features(frozen, train_z), train, features(frozen, test_z), test
            )
        for batch in torch.as_tensor(train_z).split(N_ENVS):
            net.optimizer.zero_grad(set_to_none=True)
            net.forward(batch)
            net.learn_from_inputs()
            net.optimizer.step()
        scores[learner] = ridge_r2(features(net, train_z), train, features(net, test_z), test)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=2500)
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = [probe(seed, args.steps) for seed in args.seeds]
    print(f"R^2 on held-out observations, mean +/- std over seeds {args.seeds}:\n")
    print("| perception | " + " | ".join(STATE) + " | mean |")
    print("|---|" + "---|" * (len(STATE) + 1))
    for name in runs[0]:
        values = np.stack([run[name] for run in runs])  # (seeds, variables)
        cells = [f"{m:.3f} +/- {s:.3f}" for m, s in zip(values.mean(0), values.std(0), strict=True)]
        overall = values.mean(1)
        print(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {overall.mean():.3f} +/- {overall.std():.3f} |"
        )


if __name__ == "__main__":
    main()
