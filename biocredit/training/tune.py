"""Hyperparameter studies on Optuna: each learner's own hyperparameters, with bp's study beside.

A tune spec (``experiments/tune/*.yaml``)::

    name: ppo_cartpole_dfa
    algo: ppo
    env: CartPole-v1
    learners: [dfa]              # one study each; bp's study is added (shared space only)
    steps: 30000                 # every trial's length
    seed: 0
    space:
      shared:                    # every study, bp's included
        algo_kwargs.learning_rate: {low: 1.0e-4, high: 3.0e-3, log: true}
      dfa:                       # this learner's own hyperparameters
        learner_kwargs.scale: {low: 0.1, high: 10.0, log: true}
    set: {eval_episodes: 5}      # fixed RunConfig keys of every trial

A distribution is ``{low, high}`` (floats; ``log: true`` for a log scale; ``int: true`` for
integers) or ``{choices: [...]}``. Every trial is a ``biocredit train`` run in
``<out>/runs/<learner>/trial<k>``; its value is the final evaluation return. After every
rollout the training return (SB3's 100-episode mean) is reported to the trial, and Optuna's
median pruner stops a trial that falls below the median of earlier trials at the same step.

Studies live in ``<out>/optuna.journal`` (Optuna's journal file storage): several processes, or
Ray tasks on nodes that share the folder, run trials of one study at once, and the same command
continues stopped studies up to ``--trials`` finished trials each. Results: ``<out>/table.md``
(per study: best value, finished and pruned trials, best parameters) and
``<out>/best_<learner>.yaml``, the best trial's config, which ``biocredit train --config`` runs.
"""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from stable_baselines3.common.callbacks import BaseCallback

from biocredit.errors import ConfigError, check_keys
from biocredit.learners.options import check_count
from biocredit.learners.registry import learner_class
from biocredit.mappings import merge
from biocredit.training.config import read_yaml
from biocredit.training.guard import DivergenceError
from biocredit.training.resolve import resolve_config
from biocredit.training.sb3_runner import train

if TYPE_CHECKING:
    import optuna

BASELINE = "bp"
SHARED = "shared"
JOURNAL = "optuna.journal"
DISTRIBUTION_KEYS = ("low", "high", "log", "int", "choices")
PRUNER_WARMUP = 0.25  # no pruning before this fraction of a trial's steps


@dataclass
class TuneSpec:
    """A validated tune spec."""

    name: str
    env: str
    learners: list[str]
    steps: int
    algo: str = "ppo"
    seed: int = 0
    space: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    set: dict[str, Any] = field(default_factory=dict)
    out: str | None = None

    def __post_init__(self) -> None:
        if self.algo == "online":
            raise ConfigError("tune runs SB3 algorithms; native agents cannot be tuned yet.")
        check_count("tune spec", "steps", self.steps)
        for learner in self.learners:
            learner_class(learner)  # unknown names raise with the closest valid one
        if BASELINE not in self.learners:
            self.learners.insert(0, BASELINE)
        check_keys(self.space, [SHARED, *self.learners], f"tune spec '{self.name}' space")
        for group, distributions in self.space.items():
            for key, distribution in distributions.items():
                check_distribution(f"space.{group}.{key}", distribution)
        for learner in self.learners:
            if not self.space_of(learner):
                raise ConfigError(
                    f"The study of '{learner}' has nothing to tune: give it keys under "
                    f"space.{learner} or space.{SHARED}."
                )

    def space_of(self, learner: str) -> dict[str, dict[str, Any]]:
        """The shared distributions and the learner's own (none of another learner's)."""
        return {**self.space.get(SHARED, {}), **self.space.get(learner, {})}


def check_distribution(where: str, distribution: Any) -> None:
    if not isinstance(distribution, dict):
        raise ConfigError(f"{where} must be a mapping such as {{low: 0.1, high: 10, log: true}}.")
    check_keys(distribution, DISTRIBUTION_KEYS, where)
    if "choices" in distribution:
        if not isinstance(distribution["choices"], list) or not distribution["choices"]:
            raise ConfigError(f"{where}.choices must be a non-empty list.")
        return
    low, high = distribution.get("low"), distribution.get("high")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
        raise ConfigError(f"{where} needs numbers 'low' and 'high' (or a list of 'choices').")
    if not low < high or (distribution.get("log") and low <= 0):
        raise ConfigError(
            f"{where} needs low < high (and low > 0 on a log scale), got {low}, {high}."
        )


def load_tune_spec(path: str | Path) -> TuneSpec:
    data = read_yaml(path)
    check_keys(data, list(TuneSpec.__dataclass_fields__), f"tune spec '{path}'")
    missing = [key for key in ("env", "learners", "steps") if key not in data]
    if missing:
        raise ConfigError(f"Tune spec '{path}' needs {', '.join(missing)}.")
    data.setdefault("name", Path(path).stem)
    data["space"] = {group: dict(d or {}) for group, d in (data.get("space") or {}).items()}
    data["set"] = data.get("set") or {}
    return TuneSpec(**data)


def suggest(trial: optuna.Trial, key: str, distribution: dict[str, Any]) -> Any:
    """The trial's value of ``key`` from its distribution."""
    if "choices" in distribution:
        return trial.suggest_categorical(key, distribution["choices"])
    low, high, log = distribution["low"], distribution["high"], distribution.get("log", False)
    if distribution.get("int"):
        return trial.suggest_int(key, int(low), int(high), log=log)
    return trial.suggest_float(key, float(low), float(high), log=log)


def trial_config(spec: TuneSpec, learner: str, params: dict[str, Any], run_dir: Path):
    """The run of one trial: the spec's fixed settings, then the trial's values."""
    flags = {
        "algo": spec.algo,
        "env": spec.env,
        "learner": learner,
        "seed": spec.seed,
        "steps": spec.steps,
        "out": str(run_dir),
    }
    overrides = [f"{key}={json.dumps(value)}" for key, value in params.items()]
    return resolve_config(flags=merge(spec.set, flags), overrides=overrides)


class PruningCallback(BaseCallback):
    """Reports the training return after every rollout; stops training once the trial should
    be pruned (the run then ends and the trial is marked pruned)."""

    def __init__(self, trial: optuna.Trial) -> None:
        super().__init__()
        self.trial = trial
        self.pruned = False

    def _on_step(self) -> bool:
        return not self.pruned

    def _on_rollout_end(self) -> None:
        episodes = self.model.ep_info_buffer
        if not episodes:
            return
        value = sum(info["r"] for info in episodes) / len(episodes)
        self.trial.report(value, self.num_timesteps)
        self.pruned = self.trial.should_prune()


def open_study(spec: TuneSpec, learner: str, out: Path) -> optuna.Study:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=learner,
        storage=JournalStorage(JournalFileBackend(str(out / JOURNAL))),
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=spec.seed),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=3, n_warmup_steps=int(spec.steps * PRUNER_WARMUP)
        ),
        load_if_exists=True,
    )


def run_trials(spec_path: str, out: str, learner: str, trials: int) -> None:
    """Run trials of ``learner``'s study until it holds ``trials`` finished ones (one worker:
    a process of the pool or a Ray task)."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    spec, out_dir = load_tune_spec(spec_path), Path(out)
    study = open_study(spec, learner, out_dir)

    def objective(trial: optuna.Trial) -> float:
        space = spec.space_of(learner)
        params = {key: suggest(trial, key, d) for key, d in space.items()}
        run_dir = out_dir / "runs" / learner / f"trial{trial.number}"
        pruning = PruningCallback(trial)
        config = trial_config(spec, learner, params, run_dir)
        summary = train(config, progress=False, callbacks=[pruning])
        if pruning.pruned:
            raise optuna.TrialPruned()
        return float(summary["final_return_mean"])

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        value = "pruned" if trial.value is None else f"{trial.value:.1f}"
        print(f"  {learner} trial {trial.number}: {value} {trial.params}", flush=True)

    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    left = trials - len(study.get_trials(deepcopy=False, states=finished))
    if left > 0:
        study.optimize(
            objective,
            n_trials=left,
            callbacks=[MaxTrialsCallback(trials, states=finished), report],
            catch=(DivergenceError,),
        )


def run_study(
    spec_path: str,
    out: Path,
    learner: str,
    trials: int,
    workers: int,
    backend: str,
    ray_address: str | None,
) -> None:
    """Run ``learner``'s study with ``workers`` processes or Ray tasks (``run_trials`` each)."""
    if workers == 1 and backend == "local":
        run_trials(spec_path, str(out), learner, trials)
        return
    if backend == "ray":
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "--backend ray needs Ray, which is not installed. Install it with: "
                "pip install 'biocredit[ray]' (or use the default --backend local)."
            ) from None
        if address := ray_address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        try:
            task = ray.remote(num_cpus=1)(run_trials)
            ray.get([task.remote(spec_path, str(out), learner, trials) for _ in range(workers)])
        finally:
            ray.shutdown()
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        jobs = [
            pool.submit(run_trials, spec_path, str(out), learner, trials) for _ in range(workers)
        ]
        for job in jobs:
            job.result()


def run_tune(
    spec_path: str | Path,
    trials: int,
    workers: int = 1,
    out: str | None = None,
    backend: str = "local",
    ray_address: str | None = None,
) -> Path:
    """Run every study of the spec (bp's first) to ``trials`` finished trials; write the table
    and each study's best config; return the table's path."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ConfigError(
            "biocredit tune needs Optuna, which is not installed. Install it with: "
            "pip install 'biocredit[tune]'."
        ) from None
    if trials < 1 or workers < 1:
        raise ConfigError(f"--trials and --workers must be >= 1, got {trials} and {workers}.")
    if backend not in ("local", "ray"):
        raise ConfigError(f"Unknown backend '{backend}'. Choose from: local, ray.")
    spec = load_tune_spec(spec_path)
    out_dir = Path(out or spec.out or Path("experiments") / "results" / "tune" / spec.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    for learner in spec.learners:  # every trial's config checked before any runs
        space = spec.space_of(learner)
        low = {key: d["choices"][0] if "choices" in d else d["low"] for key, d in space.items()}
        trial_config(spec, learner, low, out_dir / "check")
    for learner in spec.learners:
        run_study(str(spec_path), out_dir, learner, trials, workers, backend, ray_address)
    return write_results(spec, out_dir)


def write_results(spec: TuneSpec, out_dir: Path) -> Path:
    """``table.md`` and ``best_<learner>.yaml`` from the studies in ``out_dir``."""
    from optuna.trial import TrialState

    lines = [
        f"# Tune `{spec.name}`: {spec.algo.upper()} on {spec.env}, {spec.steps:,} steps a trial",
        "",
        "Value: final evaluation return of the trial's run. Each learner's study tunes the "
        "shared keys and its own; bp's study, beside it, the shared keys only.",
        "",
        "| learner | best value | finished | pruned | failed | best parameters |",
        "|---|---|---|---|---|---|",
    ]
    for learner in spec.learners:
        study = open_study(spec, learner, out_dir)
        states = [trial.state for trial in study.get_trials(deepcopy=False)]
        complete = states.count(TrialState.COMPLETE)
        if complete == 0:
            lines.append(f"| {learner} | - | 0 | {states.count(TrialState.PRUNED)} | - | - |")
            continue
        best = study.best_trial
        params = ", ".join(
            f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
            for key, value in best.params.items()
        )
        lines.append(
            f"| {learner} | {best.value:.1f} | {complete} | {states.count(TrialState.PRUNED)} "
            f"| {states.count(TrialState.FAIL)} | {params} |"
        )
        run_dir = out_dir / "runs" / learner / f"trial{best.number}"
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        config.pop("out", None)
        (out_dir / f"best_{learner}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    table = out_dir / "table.md"
    table.write_text("\n".join(lines) + "\n")
    return table
