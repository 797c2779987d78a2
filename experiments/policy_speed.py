"""Speed of biocredit's SB3 policies against SB3's own ``MlpPolicy``, measured side by side.

For each algorithm (SAC, TD3 and PPO on a MuJoCo task, DQN on CartPole-v1, all with the RL Zoo
settings of ``experiments/hyperparams/<algo>.yaml``) one model per variant is built on the same
env and seed: SB3's ``MlpPolicy`` and biocredit's policy with each learner (and, for SAC and TD3,
the node-perturbation ``dQ/da``). After a warm-up past ``learning_starts``, each repeat runs
``rounds`` short blocks of ``learn`` per variant, interleaved in alternating order (A B C,
C B A, ...), so the slow phases of a shared machine fall on every variant alike. Time inside
``train`` per optimizer step is the gradient-step time; the rest of ``learn`` per env step is
the acting time (policy forward, env, replay buffer). Ratios to SB3 are taken within each
repeat and summarised by their median and quartiles over the repeats.

    python experiments/policy_speed.py --repeats 7 --rounds 16 --threads 1

writes ``experiments/results/policy_speed/table.md`` (the command at its top).
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from biocredit.envs import make_sb3_vec_env
from biocredit.envs.normalize import normalize_options, wrap_normalize
from biocredit.training.resolve import resolve_config
from biocredit.training.sb3_runner import (
    ALGO_CLASSES,
    POLICY_CLASSES,
    algo_gamma,
    algo_kwargs,
    policy_kwargs,
)

OUT = Path(__file__).resolve().parent / "results" / "policy_speed" / "table.md"
# Policy options that belong to biocredit's policies, not to SB3's MlpPolicy.
BIO_POLICY_KEYS = ("learner", "learner_kwargs", "critic_learner", "critic_learner_kwargs")
PERTURBATION = {"critic_action_grad": "perturbation"}


@dataclass(frozen=True)
class Case:
    """One algorithm on one task; ``block`` env steps per timed block."""

    algo: str
    env: str
    block: int
    variants: dict[str, dict[str, Any] | None]  # name -> biocredit policy options, None: SB3


def learner_variants(perturbation: bool) -> dict[str, dict[str, Any] | None]:
    """SB3's MlpPolicy, bp, fa, dfa and (off-policy actor-critics) dfa with perturbation."""
    variants: dict[str, dict[str, Any] | None] = {"sb3": None}
    variants.update({name: {"learner": name} for name in ("bp", "fa", "dfa")})
    if perturbation:
        variants["dfa+perturbation"] = {"learner": "dfa", **PERTURBATION}
    return variants


CASES = {
    "sac": Case("sac", "HalfCheetah-v5", 25, learner_variants(True)),
    "td3": Case("td3", "HalfCheetah-v5", 25, learner_variants(True)),
    "dqn": Case("dqn", "CartPole-v1", 256, learner_variants(False)),
    "ppo": Case("ppo", "HalfCheetah-v5", 512, learner_variants(False)),
}


@dataclass
class TimedModel:
    """A model whose ``learn`` and ``train`` time, env steps and gradient steps add up."""

    model: BaseAlgorithm
    totals: np.ndarray = field(default_factory=lambda: np.zeros(4))  # indices below
    repeats: list[tuple[float, float, float]] = field(default_factory=list)  # see per_step()

    def __post_init__(self) -> None:
        train = self.model.train

        def timed_train(*args: Any, **kwargs: Any) -> None:
            start = time.perf_counter()
            train(*args, **kwargs)
            self.totals[TRAIN_SECONDS] += time.perf_counter() - start
            self.totals[GRADIENT_STEPS] += steps_per_train(self.model, kwargs)

        self.model.train = timed_train  # type: ignore[method-assign]

    def run(self, env_steps: int) -> None:
        """``learn`` for ``env_steps`` more steps, timed."""
        before = self.model.num_timesteps
        start = time.perf_counter()
        self.model.learn(env_steps, reset_num_timesteps=False)
        self.totals[SECONDS] += time.perf_counter() - start
        self.totals[ENV_STEPS] += self.model.num_timesteps - before


# Indices into TimedModel.totals.
SECONDS, ENV_STEPS, TRAIN_SECONDS, GRADIENT_STEPS = range(4)


def per_step(totals: np.ndarray) -> tuple[float, float, float]:
    """Seconds per gradient step (inside ``train``), per env step outside ``train`` (acting,
    env, replay buffer) and per env step in all, from summed :class:`TimedModel` totals."""
    train = totals[TRAIN_SECONDS]
    return (
        train / totals[GRADIENT_STEPS],
        (totals[SECONDS] - train) / totals[ENV_STEPS],
        totals[SECONDS] / totals[ENV_STEPS],
    )


def steps_per_train(model: BaseAlgorithm, kwargs: dict[str, Any]) -> int:
    """Optimizer steps in one ``train`` call: minibatches times epochs (PPO), else the
    ``gradient_steps`` SB3 passes."""
    if isinstance(model, OnPolicyAlgorithm):
        samples = model.n_steps * model.n_envs
        return model.n_epochs * math.ceil(samples / model.batch_size)
    return int(kwargs["gradient_steps"])


def build(case: Case, options: dict[str, Any] | None, seed: int) -> BaseAlgorithm:
    """The case's algorithm with the Zoo settings and SB3's or biocredit's policy, seeded."""
    bio = options or {}
    flags = {"algo": case.algo, "env": case.env, "seed": seed, "learner": bio.get("learner", "bp")}
    config = resolve_config(flags=flags)
    env = make_env(config)
    kwargs = policy_kwargs(config)
    kwargs.update({key: value for key, value in bio.items() if key != "learner"})
    if options is None:
        kwargs = {key: value for key, value in kwargs.items() if key not in BIO_POLICY_KEYS}
        policy: Any = "MlpPolicy"
    else:
        policy = POLICY_CLASSES[case.algo]
    action_dim = int(np.prod(env.action_space.shape or (1,)))
    return ALGO_CLASSES[case.algo](
        policy,
        env,
        seed=seed,
        device="cpu",
        policy_kwargs=kwargs,
        **algo_kwargs(config, action_dim),
    )


def make_env(config: Any) -> VecEnv:
    """The run's vectorised env, with the Zoo's normalisation when it asks for it."""
    env = make_sb3_vec_env(config.env, config.n_envs, config.seed, config.env_kwargs)
    options = normalize_options(config.normalize)
    return env if options is None else wrap_normalize(env, options, algo_gamma(config))


def warm_up(timed: TimedModel, block: int) -> None:
    """Run past ``learning_starts`` and one block, so every timed block trains."""
    timed.run(int(getattr(timed.model, "learning_starts", 0)) + block)


def measure(case: Case, repeats: int, rounds: int, seed: int) -> dict[str, np.ndarray]:
    """Build every variant of ``case``, warm each up, then time interleaved blocks.

    A repeat is ``rounds`` rounds; a round runs one block of every variant, in alternating
    order. Returns, per variant, an array ``(repeats, 3)`` of :func:`per_step` results.
    """
    models = {name: TimedModel(build(case, bio, seed)) for name, bio in case.variants.items()}
    for timed in models.values():
        warm_up(timed, case.block)
    names = list(models)
    for repeat in range(repeats):
        start = {name: timed.totals.copy() for name, timed in models.items()}
        for round_ in range(rounds):
            for name in names if round_ % 2 == 0 else names[::-1]:
                models[name].run(case.block)
        for name, timed in models.items():
            timed.repeats.append(per_step(timed.totals - start[name]))
        print(f"{case.algo}: repeat {repeat + 1}/{repeats}", file=sys.stderr, flush=True)
    return {name: np.array(timed.repeats) for name, timed in models.items()}


TARGETS = {"bp": 1.1}  # every other biocredit variant: 1.0 (local rules skip autograd's graph)
COLUMNS = ("gradient step", "env step (acting)", "env step (all in)")


def quartiles(values: np.ndarray) -> tuple[float, float, float]:
    """Median and the first and third quartiles."""
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return float(median), float(q1), float(q3)


def time_cell(seconds: np.ndarray) -> str:
    """Median milliseconds and the interquartile range as a share of the median."""
    median, q1, q3 = quartiles(seconds)
    return f"{median * 1e3:.3f} ({(q3 - q1) / median:.1%})"


def ratio_cell(ratios: np.ndarray) -> str:
    """Median ratio to SB3 with its quartiles over the repeats and their spread (interquartile
    range as a share of the median)."""
    median, q1, q3 = quartiles(ratios)
    return f"{median:.3f} [{q1:.3f}, {q3:.3f}] ({(q3 - q1) / median:.1%})"


def table_rows(case: Case, times: dict[str, np.ndarray]) -> list[str]:
    """One row per variant: times, per-repeat ratios to SB3 and whether the target is met."""
    rows = []
    base = times["sb3"]
    for name, values in times.items():
        cells = [case.algo, case.env, name]
        for column in range(len(COLUMNS)):
            cells.append(time_cell(values[:, column]))
            if name != "sb3":
                cells.append(ratio_cell(values[:, column] / base[:, column]))
            else:
                cells.append("1")
        cells.append(target_cell(name, values / base))
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def target_cell(name: str, ratios: np.ndarray) -> str:
    """``<= target: yes/no`` on the median ratios per gradient step and per env step in all."""
    if name == "sb3":
        return ""
    target = TARGETS.get(name, 1.0)
    met = all(quartiles(ratios[:, column])[0] <= target for column in (0, 2))
    return f"<= {target}: {'yes' if met else 'no'}"


def table(cases: list[Case], results: list[dict[str, np.ndarray]], args: argparse.Namespace) -> str:
    """The Markdown table with the command and the set-up above it."""
    command = shlex.join(["python", "experiments/policy_speed.py", *sys.argv[1:]])
    header = ["algo", "env", "policy"]
    for column in COLUMNS:
        header += [f"ms / {column} (IQR)", f"{column} / SB3 [quartiles] (IQR)"]
    header.append("target (median)")
    lines = [
        "# Speed of the policy path: biocredit policies against SB3's MlpPolicy",
        "",
        f"Command: `{command}`",
        "",
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s) for every policy, "
        f"{args.repeats} repeats of {args.rounds} interleaved blocks per variant after a warm-up, "
        f"seed {args.seed}, "
        "RL Zoo settings from `experiments/hyperparams/`. Times: median over repeats, "
        "interquartile range as a share of the median. Ratios: variant / SB3 within each "
        "repeat, median, quartiles and their spread (IQR / median). A gradient step is one "
        "optimizer step of every network `train` updates (PPO: one minibatch); `acting` is the "
        "rest of `learn` per env step "
        "(policy forward, env, buffer); `all in` is the block's wall time per env step.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for case, times in zip(cases, results, strict=True):
        lines += table_rows(case, times)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algos", default=",".join(CASES), help="comma-separated subset")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=16, help="interleaved blocks per repeat")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, for all policies")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = [CASES[name] for name in args.algos.split(",")]
    results = [measure(case, args.repeats, args.rounds, args.seed) for case in cases]
    text = table(cases, results, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
