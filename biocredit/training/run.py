"""What every training run shares: start or resume, checkpoint, evaluate, summarise.

Subclasses (:class:`~biocredit.training.sb3_runner.SB3Run` for SB3 algorithms,
:class:`~biocredit.training.online.OnlineRun` for native agents) build their model and loop and
say which module, optimizers and extra state make up a checkpoint; the rest is here. A
checkpoint (a folder of ``<run>/checkpoints``, written by :mod:`biocredit.checkpoints`) holds
the model (``model.safetensors``), optimizer tensors and torch's RNG (``resume.safetensors``),
and in ``checkpoint.json`` what the run is for, every network's learner and its options,
counters, NumPy's and Python's RNGs and every env's state: enough to continue bitwise. A run
resumes from its newest complete checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import biocredit
from biocredit.checkpoints import (
    RESUME_FILE,
    load_module,
    load_optimizer_state,
    new_checkpoint,
    newest_checkpoint,
    optimizer_state,
    read_resume_tensors,
    require_checkpoint,
    rng_state,
    set_rng_state,
    write_module,
)
from biocredit.learners.network import trained_by
from biocredit.training.config import RunConfig
from biocredit.training.guard import DivergenceError
from biocredit.training.interrupt import resume_hint
from biocredit.training.run_folder import continued_progress, create_run_dir, write_summary

EVAL_SEED_OFFSET = 1000  # evaluation envs are seeded seed + 1000, apart from training envs


class TrainingRun:
    """Base class of a run; see the module docstring."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.run_dir = Path(config.out or ".")  # set by start() or resume()
        self.elapsed = 0.0  # wall time of earlier sessions of this run
        torch.set_num_threads(config.threads)

    # what a subclass provides -----------------------------------------------------------

    @staticmethod
    def validate(config: RunConfig) -> None:
        """Check every name and option before anything is written to disk."""
        raise NotImplementedError

    def model(self) -> nn.Module:
        """The module whose ``state_dict`` is the checkpoint's weights."""
        raise NotImplementedError

    def predictor(self) -> Any:
        """What evaluation calls ``predict`` on."""
        raise NotImplementedError

    def evaluate(self) -> list[float]:
        """Returns of ``eval_episodes`` deterministic episodes on a copy of the kind of env the
        run trains on, seeded ``seed + EVAL_SEED_OFFSET``."""
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        """What a checkpoint of this run is for; loading checks it."""
        raise NotImplementedError

    def steps_done(self) -> int:
        raise NotImplementedError

    def model_meta(self) -> dict[str, Any]:
        """JSON metadata the model needs to be rebuilt on its own (a native agent's config and
        spaces, for ``Agent.load(run_dir)``); none by default."""
        return {}

    def extra_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Run-specific resume state: tensors and JSON data."""
        raise NotImplementedError

    def load_extra_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        raise NotImplementedError

    def summary_fields(self) -> dict[str, Any]:
        """Run-specific summary entries (algo, agent, learners, episodes ...)."""
        raise NotImplementedError

    def scale_learning_rates(self, factor: float) -> None:
        """Multiply every learning rate of the run by ``factor`` from now on."""
        raise NotImplementedError

    # shared -----------------------------------------------------------------------------

    @classmethod
    def start(cls, config: RunConfig) -> TrainingRun:
        cls.validate(config)
        run = cls(config)  # build first: a config that cannot be built writes no folder
        run.run_dir = create_run_dir(config)
        return run

    @classmethod
    def check_resumable(cls) -> None:
        """Raise a :class:`~biocredit.errors.ConfigError` if runs of this kind cannot resume."""

    @classmethod
    def resume(cls, config: RunConfig, run_dir: Path) -> TrainingRun:
        """Rebuild the run as it started, then load every piece of state it had at its newest
        complete checkpoint."""
        cls.check_resumable()
        run = cls(config)
        run.run_dir = Path(run_dir)
        directory = require_checkpoint(run.run_dir)
        meta = load_module(run.model(), directory, run.identity())
        tensors, state = read_resume_tensors(directory), meta["resume"]
        for name, optimizer in run.optimizers().items():
            load_optimizer_state(optimizer, tensors, state["optimizers"][name], f"optim.{name}")
        set_rng_state(tensors, state["rng"])
        run.elapsed = state["elapsed"]
        run.load_extra_state(tensors, state)
        return run

    def save(self, elapsed: float) -> None:
        """Checkpoint everything :meth:`resume` needs as a new folder of ``<run>/checkpoints``,
        keeping the last ``keep_checkpoints``: the files are written into a partial folder that
        becomes a checkpoint only once whole (:func:`~biocredit.checkpoints.new_checkpoint`), so
        a SIGKILL or a machine stop mid-write leaves the earlier checkpoints to resume from."""
        keep = self.config.keep_checkpoints
        with new_checkpoint(self.run_dir, self.steps_done(), keep) as directory:
            self.write_checkpoint(directory, elapsed)

    def write_checkpoint(self, directory: Path, elapsed: float) -> None:
        """Write the checkpoint's files into ``directory``."""
        tensors, rng = rng_state()
        optimizers = {}
        for name, optimizer in self.optimizers().items():
            optim_tensors, optimizers[name] = optimizer_state(optimizer, f"optim.{name}")
            tensors.update(optim_tensors)
        extra_tensors, resume = self.extra_state()
        tensors.update(extra_tensors)
        resume.update(elapsed=elapsed, rng=rng, optimizers=optimizers)
        meta = {
            **self.model_meta(),
            **self.identity(),
            "networks": trained_by(self.model()),
            "num_timesteps": self.steps_done(),
            "resume": resume,
        }
        write_module(directory, self.model(), meta, tensors)

    def finish(self, wall_time: float, stopped_by: str | None) -> dict[str, Any]:
        """Evaluate (unless stopped by a signal), write and return ``summary.json``."""
        returns = None if stopped_by else self.evaluate()
        steps = self.steps_done()
        networks = trained_by(self.model())
        summary = {
            "env": self.config.env,
            **self.summary_fields(),
            # every local network's learner and options, and which of them compute backprop's
            # gradients: a bp network never passes unremarked
            "networks": networks,
            "trained_by_backprop": [n for n, net in networks.items() if net["equals_backprop"]],
            "seed": self.config.seed,
            "status": "interrupted" if stopped_by else "done",
            "steps": steps,
            "wall_time_s": round(wall_time, 3),
            "steps_per_s": round(steps / max(wall_time, 1e-9), 1),
            "final_return_mean": None if returns is None else float(np.mean(returns)),
            "final_return_std": None if returns is None else float(np.std(returns)),
            "eval_episodes": self.config.eval_episodes,
            "run_dir": str(self.run_dir),
            "biocredit_version": biocredit.__version__,
        }
        write_summary(self.run_dir, summary)
        if stopped_by:
            print(resume_hint(str(self.run_dir), steps, stopped_by))
        return summary


def run_with_recovery(
    run: TrainingRun, console: Any = None, progress: bool = True, **run_kwargs: Any
) -> dict[str, Any]:
    """``run.run(...)``; with ``on_divergence: rollback``, a divergence resumes the last
    checkpoint with every learning rate halved (a bitwise resume alone would only replay the
    divergence), up to ``max_rollbacks`` times."""
    config, rollbacks = run.config, 0
    while True:
        try:
            with continued_progress(run.run_dir, run.steps_done()):
                summary = run.run(console, progress, **run_kwargs)
        except DivergenceError as exc:
            if config.on_divergence != "rollback" or rollbacks >= config.max_rollbacks:
                raise
            last = newest_checkpoint(run.run_dir)
            if last is None or not (last / RESUME_FILE).is_file():
                raise DivergenceError(
                    f"{exc} No checkpoint to roll back to: set a checkpoint_freq (env steps) "
                    "below the step it diverged at."
                ) from None
            rollbacks += 1
            run = type(run).resume(config, run.run_dir)
            run.scale_learning_rates(0.5**rollbacks)
            print(
                f"Rolled back to env step {run.steps_done()} after: {exc.args[0][:120]}... "
                f"Learning rates x{0.5**rollbacks:g} ({rollbacks}/{config.max_rollbacks})."
            )
            continue
        if rollbacks:
            summary["rollbacks"] = rollbacks
            write_summary(run.run_dir, summary)
        return summary
