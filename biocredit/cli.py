"""The ``biocredit`` command: train, eval, learners, bench, tune."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from biocredit.errors import BiocreditError, ConfigError
from biocredit.schema import help_text
from biocredit.training.config import RunConfig
from biocredit.training.interrupt import INTERRUPTED_EXIT_CODE, Stopped

DEFAULT_RUN = "PPO on CartPole-v1 for 100k steps, every network trained by DFA"
# Output width when stdout is not a terminal (a pipe or a file) and COLUMNS is not set: wide
# enough that no table is cut or wrapped, rather than rich's 80 columns.
PIPED_WIDTH = 400
SIGPIPE_EXIT_CODE = 141  # 128 + SIGPIPE, what `yes | head` reports for `yes`


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="biocredit",
        description="Reinforcement learning with biologically plausible credit assignment.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = sub.add_parser(
        "train",
        help="train an agent into a run folder",
        description=f"Train an agent. With no options: {DEFAULT_RUN}.",
        epilog="config keys (in a --config file, or --set key=value):\n" + help_text(RunConfig),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument(
        "--algo",
        help="SB3 algorithm: ppo, a2c, sac, td3, dqn, or recurrent-ppo (sb3-contrib's "
        "LSTM PPO, trained by backprop through time: a baseline, --learner bp only) "
        "(default ppo)",
    )
    train.add_argument("--learner", help="credit-assignment scheme, see `biocredit learners`")
    train.add_argument("--agent", help="native online agent, see `biocredit agents`")
    train.add_argument(
        "--env",
        help="Gymnasium env id (default CartPole-v1), or a PettingZoo env as "
        "pettingzoo:<module>, e.g. pettingzoo:mpe2.simple_spread_v3",
    )
    train.add_argument("--steps", type=int, help="env steps to train for")
    train.add_argument("--seed", type=int, help="seed for everything (default 0)")
    train.add_argument("--n-envs", type=int, dest="n_envs", help="parallel envs")
    train.add_argument("--threads", type=int, help="torch threads (default 1)")
    train.add_argument("--out", help="run folder (default runs/<env>/<algo>-<learner>/seed<seed>)")
    train.add_argument("--config", help="YAML config file")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override any config key, e.g. --set algo_kwargs.n_steps=64 (repeatable)",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument(
        "--resume", metavar="RUN_DIR", help="continue a run from its checkpoint (exactly)"
    )

    evaluate = sub.add_parser("eval", help="evaluate a trained run")
    evaluate.add_argument("run_dir", help="run folder written by `biocredit train`")
    evaluate.add_argument(
        "--episodes", type=int, help="episodes to run (default 10; 1 with --video)"
    )
    evaluate.add_argument("--seed", type=int, help="env seed (default: run seed + 1000)")
    evaluate.add_argument("--stochastic", action="store_true", help="sample actions")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.add_argument(
        "--video",
        action="store_true",
        help="also write an MP4 of the episodes (offscreen rendering; needs biocredit[video])",
    )
    evaluate.add_argument(
        "--video-path", dest="video_path", help="MP4 to write (default RUN_DIR/video.mp4)"
    )

    export = sub.add_parser(
        "export",
        help="write a run's policy as a Stable-Baselines3 zip (for PPO.load; the zip pickles)",
        description="Write a run's trained policy as a Stable-Baselines3 zip, for users who "
        "want PPO.load (A2C.load, SAC.load ...). SB3's zip format pickles: loading one runs "
        "code from the file, so load only zips you trust. biocredit's own loading (biocredit "
        "eval, biocredit.training.evaluation.load_run_policy) never unpickles.",
    )
    export.add_argument("run_dir", help="run folder written by `biocredit train`")
    export.add_argument("--out", help="zip to write (default RUN_DIR/sb3_<algo>.zip)")

    agents = sub.add_parser("agents", help="list named native agents")
    agents.add_argument("--json", action="store_true", help="print JSON")

    learners = sub.add_parser("learners", help="list learners and their plausibility properties")
    learners.add_argument("--json", action="store_true", help="print JSON")
    learners.add_argument(
        "--cost",
        action="store_true",
        help="measure one credit-assignment step of every configuration: multiply-accumulates "
        "(and their ratio to bp's), sequential depth, bytes of learner state",
    )
    learners.add_argument(
        "--shape",
        help="with --cost: layer widths, input first, output last (default 4,64,64,2)",
    )
    learners.add_argument("--batch", type=int, help="with --cost: batch size (default 64)")

    plot = sub.add_parser("plot", help="draw learning curves of runs into a PNG")
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders")
    plot.add_argument("--out", default="curves.png", help="PNG to write (default curves.png)")
    plot.add_argument(
        "--alignment",
        action="store_true",
        help="plot each layer's angle to backprop (runs trained with alignment_every > 0)",
    )

    bench = sub.add_parser("bench", help="run a benchmark matrix with the bp baseline")
    bench.add_argument("spec", help="benchmark spec YAML (see experiments/benchmarks/)")
    bench.add_argument("--workers", type=int, default=1, help="parallel processes (or Ray CPUs)")
    bench.add_argument(
        "--out",
        help="results folder (default: experiments/results/<spec>, with --steps/--set appended)",
    )
    bench.add_argument(
        "--backend",
        default="local",
        help="local (a process pool, default) or ray (Ray tasks; needs biocredit[ray])",
    )
    bench.add_argument(
        "--ray-address",
        dest="ray_address",
        help="Ray cluster to join, e.g. ray://head:10001 (default: start a local Ray)",
    )
    bench.add_argument("--steps", type=int, help="train every run for this many env steps")
    bench.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help="change a setting of every run, over the spec's (repeatable; <algo>.key for one "
        "algorithm's runs); like --steps, it sends the results to <spec's folder>-<changes> "
        "unless --out is given",
    )
    bench.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        help="run only these seeds now; seeds the spec lacks are added to its table",
    )
    for flag, what in (("learners", "learner rows"), ("envs", "envs"), ("algos", "algorithms")):
        bench.add_argument(
            f"--{flag}",
            nargs="+",
            help=f"run only these {what} of the spec now (bp always runs; the table stays "
            "partial until the rest is run)",
        )
    bench.add_argument(
        "--status",
        action="store_true",
        help="run nothing: show which runs of the matrix are done, started (steps logged, "
        "newest checkpoint) or not started, and an estimate of the time left; safe while the "
        "bench runs",
    )

    tune = sub.add_parser(
        "tune", help="tune each learner's hyperparameters on Optuna, with bp's study beside"
    )
    tune.add_argument("spec", help="tune spec YAML (see experiments/tune/)")
    tune.add_argument("--trials", type=int, default=20, help="finished trials per study")
    tune.add_argument("--workers", type=int, default=1, help="parallel processes (or Ray tasks)")
    tune.add_argument("--out", help="results folder (default experiments/results/tune/<name>)")
    tune.add_argument(
        "--backend", default="local", help="local (processes, default) or ray (Ray tasks)"
    )
    tune.add_argument(
        "--ray-address", dest="ray_address", help="Ray cluster to join (default: a local Ray)"
    )
    return parser


def _cmd_train(args: argparse.Namespace, console: Console) -> int:
    from biocredit.training.resolve import resolve_config
    from biocredit.training.run import run_with_recovery
    from biocredit.training.run_kinds import run_class

    keys = ("algo", "learner", "agent", "env", "steps", "seed", "n_envs", "threads", "out")
    if args.resume:
        run_dir = Path(args.resume)
        config = _resume_config(args, run_dir, keys)
        run = run_class(config).resume(config, run_dir)
    else:
        config = resolve_config(
            args.config, {key: getattr(args, key) for key in keys}, args.overrides
        )
        run = run_class(config).start(config)
    summary = run_with_recovery(run, console, not args.no_progress)
    if summary["status"] == "interrupted":
        return INTERRUPTED_EXIT_CODE
    table = Table(title=f"biocredit run: {summary['run_dir']}")
    table.add_column("key")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if key == "networks":  # the options are in summary.json
            value = ", ".join(f"{name}: {net['learner']}" for name, net in value.items())
        elif key == "trained_by_backprop":
            value = ", ".join(value) or "none"
        if key != "run_dir":
            table.add_row(key, f"{value:.2f}" if isinstance(value, float) else str(value))
    console.print(table)
    return 0


def _resume_config(args: argparse.Namespace, run_dir: Path, keys: tuple[str, ...]) -> RunConfig:
    """The run's own config; only ``--steps`` (a new total) may change on resume."""
    from biocredit.training.run_folder import read_run_config, update_run_config
    from biocredit.training.run_kinds import run_class

    given = [
        f"--{key.replace('_', '-')}"
        for key in keys
        if key != "steps" and getattr(args, key) is not None
    ]
    if given or args.config or args.overrides:
        raise ConfigError(
            f"--resume continues a run with its own config; {', '.join(given) or '--config/--set'}"
            " cannot change it. Only --steps (a new total) is allowed with --resume."
        )
    config = read_run_config(run_dir)
    run_class(config).check_resumable()  # before the config is touched
    if args.steps is not None:
        config.steps = args.steps
        update_run_config(run_dir, config)
    return config


def _cmd_eval(args: argparse.Namespace, console: Console) -> int:
    from biocredit.training.evaluation import evaluate_run

    if args.video_path and not args.video:
        raise ConfigError("--video-path is only used with --video; add --video.")
    video = Path(args.video_path or Path(args.run_dir) / "video.mp4") if args.video else None
    episodes = args.episodes if args.episodes is not None else (1 if video else 10)
    result = evaluate_run(args.run_dir, episodes, args.seed, not args.stochastic, video)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        console.print(
            f"{result['env']} {result['algo']}+{result['learner']}: return "
            f"{result['return_mean']:.1f} +/- {result['return_std']:.1f} over "
            f"{result['episodes']} episodes"
            + (f" (mean length {result['length_mean']:.0f})" if "length_mean" in result else "")
        )
        if "agent_returns" in result:  # a multi-agent run: the team return is the sum of these
            for kind in ("group_returns", "agent_returns"):
                parts = ", ".join(f"{k} {v:.1f}" for k, v in result[kind].items())
                console.print(f"  {kind.replace('_', ' ')}: {parts}")
        if video is not None:
            console.print(f"wrote {video} ({result['video_frames']} frames)")
    return 0


def _cmd_export(args: argparse.Namespace, console: Console) -> int:
    from biocredit.checkpoints import require_checkpoint
    from biocredit.envs.normalize import normalize_options
    from biocredit.training.export import export_run
    from biocredit.training.run_folder import read_run_config
    from biocredit.training.sb3_runner import ALGO_CLASSES

    path = export_run(Path(args.run_dir), Path(args.out) if args.out else None)
    config = read_run_config(Path(args.run_dir))
    loader = ALGO_CLASSES[config.algo].__name__
    console.print(
        f"wrote {path}: load it with {loader}.load('{path}') (the zip pickles: load only files "
        "you trust)"
    )
    if normalize_options(config.normalize) is not None:
        console.print(
            "note: this run normalised observations (normalize); the policy expects them "
            f"normalised with the statistics in {require_checkpoint(Path(args.run_dir))}, which "
            "the zip does not hold."
        )
    return 0


def _cmd_agents(args: argparse.Namespace, console: Console) -> int:
    from biocredit.agents import list_agents

    agents = list_agents()
    if args.json:
        print(json.dumps(agents, indent=2))
    else:
        for name, description in agents.items():
            console.print(f"[bold]{name}[/bold]: {description}")
    return 0


def _cmd_learners(args: argparse.Namespace, console: Console) -> int:
    from biocredit.learners import CRITERIA, learner_class, make_learner
    from biocredit.learners.plausibility import Plausibility
    from biocredit.learners.registry import configurations

    if args.cost:
        return _learner_costs(args, console)
    if args.shape is not None or args.batch is not None:
        raise ConfigError("--shape and --batch size the network of --cost; add --cost.")
    rows: list[dict[str, Any]] = []
    for label, name, options in configurations():
        cls = learner_class(name)
        rows.append(
            {
                "name": label,
                "learner": name,
                "options": options,
                "family": cls.family,
                "signal": cls.signal,
                "paper": cls.paper,
                **make_learner(name, **options).plausibility.as_dict(),
            }
        )
    if args.json:
        print(json.dumps({"criteria": CRITERIA, "learners": rows}, indent=2))
        return 0
    short = Plausibility.short_names()
    table = Table(
        title="Problems of backprop each learner addresses (x = addressed)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("learner", no_wrap=True)
    table.add_column("signal", no_wrap=True)
    for label in short.values():
        table.add_column(label, justify="center", no_wrap=True, min_width=len(label))
    for row in rows:
        marks = ["x" if row[key] else "." for key in short]
        table.add_row(row["name"], row["signal"], *marks)
    console.print(table)
    for row in rows:
        if row["options"]:
            options = ", ".join(f"{key}={value}" for key, value in row["options"].items())
            console.print(f"  [bold]{row['name']}[/bold]: {row['learner']} with {options}")
        else:
            console.print(f"  [bold]{row['name']}[/bold]: {row['family']} ({row['paper']})")
    for text in CRITERIA.values():
        console.print(f"  {text}")
    return 0


def _learner_costs(args: argparse.Namespace, console: Console) -> int:
    """``biocredit learners --cost``: the table of :mod:`biocredit.learners.cost`."""
    from biocredit.learners.cost import DEFAULT_BATCH, DEFAULT_SHAPE, measure_all, parse_shape

    spec = parse_shape(args.shape or ",".join(map(str, DEFAULT_SHAPE)))
    batch = DEFAULT_BATCH if args.batch is None else args.batch
    reports = measure_all(spec, batch)
    if args.json:
        print(
            json.dumps(
                {
                    "shape": list(spec.sizes),
                    "batch": batch,
                    "learners": [report.as_dict() for report in reports],
                },
                indent=2,
            )
        )
        return 0
    table = Table(
        title=f"Cost of one credit-assignment step: network {list(spec.sizes)}, batch {batch}",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("learner", no_wrap=True)
    table.add_column("signal", no_wrap=True)
    for column in ("MACs", "x bp", "depth", "fwd\nMACs", "fwd\ndepth", "state\nbytes"):
        table.add_column(column, justify="right", no_wrap=True, min_width=5)
    for r in reports:
        table.add_row(
            r.label,
            r.signal,
            _compact(r.credit_macs),
            f"{r.credit_macs_vs_bp:.2f}",
            str(r.credit_depth),
            _compact(r.forward_macs),
            str(r.forward_depth),
            _compact(r.state_bytes),
        )
    console.print(table)
    console.print(
        "  MACs: multiply-accumulates of the matrix products one credit-assignment step runs "
        "(x bp: over bp's; exact counts with --json); depth: longest chain of dependent matrix "
        "products in it; fwd: the recorded forward pass, for reference; state bytes: the "
        "learner's buffers and own parameters. Counted from the kernels run "
        "(docs/plausibility.md, biocredit.learners.cost)."
    )
    return 0


def _compact(count: int) -> str:
    """``557056`` -> ``"557k"``: three significant digits and an SI prefix."""
    value, prefixes = float(count), ["", "k", "M", "G", "T"]
    while abs(value) >= 999.5 and len(prefixes) > 1:
        value, prefixes = value / 1000, prefixes[1:]
    return f"{value:.3g}{prefixes[0]}"


def _cmd_plot(args: argparse.Namespace, console: Console) -> int:
    from biocredit.training.plots import alignment_columns, plot_alignment, plot_curves
    from biocredit.training.run_folder import read_run_config

    lines: dict[str, dict[str, list[Path]]] = {}
    labelled: dict[str, Path] = {}
    for run_dir in map(Path, args.run_dirs):
        config = read_run_config(run_dir)
        label = config.agent or f"{config.algo}+{config.learner}"
        lines.setdefault(config.env, {}).setdefault(label, []).append(run_dir)
        labelled[f"{label} {config.env} seed {config.seed}"] = run_dir
        if args.alignment and not alignment_columns(run_dir):
            raise ConfigError(
                f"{run_dir} has no alignment columns in its progress.csv. Train it with "
                "--set alignment_every=10 to record them, or plot without --alignment."
            )
    if args.alignment:
        plot_alignment(labelled, Path(args.out))
    else:
        plot_curves(lines, Path(args.out))
    console.print(f"wrote {args.out}")
    return 0


def _cmd_tune(args: argparse.Namespace, console: Console) -> int:
    from biocredit.training.tune import run_tune

    table_path = run_tune(
        args.spec,
        trials=args.trials,
        workers=args.workers,
        out=args.out,
        backend=args.backend,
        ray_address=args.ray_address,
    )
    console.print(table_path.read_text())
    console.print(f"table: {table_path}; best configs: {table_path.parent}/best_<learner>.yaml")
    return 0


def _cmd_bench(args: argparse.Namespace, console: Console) -> int:
    from biocredit.training.bench import run_benchmark
    from biocredit.training.bench_plan import Selection

    selection = Selection(args.seeds, args.learners, args.envs, args.algos)
    if args.status:
        from biocredit.training.bench_status import bench_status

        bench_status(args.spec, args.out, args.steps, selection, args.overrides, console)
        return 0
    table_path = run_benchmark(
        args.spec,
        workers=args.workers,
        out=args.out,
        console=console,
        backend=args.backend,
        ray_address=args.ray_address,
        steps=args.steps,
        selection=selection,
        overrides=args.overrides,
    )
    console.print(table_path.read_text())
    console.print(f"table: {table_path}")
    return 0


COMMANDS = {
    "train": _cmd_train,
    "eval": _cmd_eval,
    "export": _cmd_export,
    "agents": _cmd_agents,
    "learners": _cmd_learners,
    "plot": _cmd_plot,
    "bench": _cmd_bench,
    "tune": _cmd_tune,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``biocredit`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    console = Console(width=PIPED_WIDTH) if piped else Console()
    if args.command is None:
        _parser().print_help()
        return 0
    if args.command == "train" and args.steps is not None and args.steps < 1:
        print(f"biocredit: error: --steps must be >= 1, got {args.steps}.", file=sys.stderr)
        return 2
    try:
        code = COMMANDS[args.command](args, console)
        sys.stdout.flush()  # here, where a reader that closed the pipe early is handled
        return code
    except BrokenPipeError:  # e.g. `biocredit learners --json | head -c 10`: nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # for the final flush
        return SIGPIPE_EXIT_CODE
    except BiocreditError as exc:
        print(f"biocredit: error: {exc}", file=sys.stderr)
        return 2
    except Stopped as stop:
        print(f"biocredit: {stop}", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE


if __name__ == "__main__":
    sys.exit(main())
