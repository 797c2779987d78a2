"""The online loop's speed as a fraction of the raw env's, measured in one process.

    python experiments/online_speed.py [--agent neuromodulated-ac] [--env CartPole-v1]
        [--n-envs 8] [--blocks 6] [--calls 500] [--set KEY=VALUE ...]

Interleaves blocks of ``--calls`` training steps of the agent (act, env step, learn, the
divergence guard: `OnlineRun.step`) with blocks of as many steps of the same vector env under
random actions, and compares their CPU time (``time.process_time``, so a busy machine slows both
alike). Prints the ratio (agent steps/s over raw env steps/s) with the range of the blocks'
ratios, and where one training step's time goes (act, env, learn, guard; from a profiled block).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

import torch

from biocredit.training.online import OnlineRun, make_online_envs
from biocredit.training.resolve import resolve_config

WARMUP = 200


#: where a training step's time goes: (label, file suffix, function) of the profile
PARTS = (
    ("act", "agents/modular.py", "act"),
    ("learn", "agents/modular.py", "learn"),
    ("env", "vector/sync_vector_env.py", "step"),
    ("guard", "training/guard.py", "check_step"),
    ("guard", "training/guard.py", "check_values"),
)


def profile_parts(run: OnlineRun, calls: int) -> dict[str, float]:
    """Microseconds per training step in each part of ``PARTS`` (cProfile, cumulative)."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        run.step()
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = dict.fromkeys((label for label, _, _ in PARTS), 0.0)
    for (filename, _, function), (_, _, _, cumulative, _) in stats.items():
        for label, suffix, name in PARTS:
            if function == name and filename.endswith(suffix):
                total[label] += cumulative
    return {label: 1e6 * seconds / calls for label, seconds in total.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agent", default="neuromodulated-ac")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--n-envs", type=int)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--set", action="append", default=[], help="a config override")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(tempfile.mkdtemp()) / "run"
    flags = {"agent": args.agent, "env": args.env, "steps": 10**9, "seed": 0, "out": str(out)}
    if args.n_envs:
        flags["n_envs"] = args.n_envs
    config = resolve_config(flags=flags, overrides=args.set)
    run = OnlineRun.start(config)
    envs = make_online_envs(config)
    envs.reset(seed=1)
    envs.action_space.seed(0)
    for _ in range(WARMUP):
        run.step()
        envs.step(envs.action_space.sample())
    agent_time, raw_time, ratios = 0.0, 0.0, []
    for _ in range(args.blocks):
        start = time.process_time()
        for _ in range(args.calls):
            run.step()
        agent_block = time.process_time() - start
        start = time.process_time()
        for _ in range(args.calls):
            envs.step(envs.action_space.sample())
        raw_block = time.process_time() - start
        agent_time, raw_time = agent_time + agent_block, raw_time + raw_block
        ratios.append(raw_block / agent_block)
    steps = args.blocks * args.calls * config.n_envs
    print(
        f"{config.agent} on {config.env}, {config.n_envs} envs: {steps / agent_time:,.0f} "
        f"steps/s training, {steps / raw_time:,.0f} raw; ratio {raw_time / agent_time:.3f} "
        f"(blocks {min(ratios):.3f}-{max(ratios):.3f})"
    )
    per_step = profile_parts(run, args.calls)  # profiled separately: cProfile slows the code
    shares = ", ".join(f"{part} {us:.0f} us" for part, us in per_step.items())
    print(
        f"one training step under cProfile: {shares}; total without it "
        f"{1e6 * agent_time / (args.blocks * args.calls):.0f} us"
    )


if __name__ == "__main__":
    main()
