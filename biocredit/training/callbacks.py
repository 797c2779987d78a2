"""SB3 callbacks for biocredit runs: a rich progress bar and periodic checkpoints."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.type_aliases import TrainFrequencyUnit

from biocredit.training.guard import DivergenceGuard
from biocredit.training.interrupt import StopRequest


def recent_return(ep_info_buffer: object) -> float | None:
    """Mean return of the episodes in SB3's ``ep_info_buffer`` (the last 100), if any."""
    returns = [info["r"] for info in ep_info_buffer]  # type: ignore[attr-defined]
    return float(np.mean(returns)) if returns else None


def steps_sb3_runs(algo: BaseAlgorithm, total: int) -> int:
    """The env steps ``algo.learn`` reaches for a target of ``total``: SB3 checks the target
    between rollouts only, so it stops at the first rollout boundary at or past it (a PPO
    rollout is ``n_steps * n_envs`` steps; an off-policy one ``train_freq`` steps per env).
    Off-policy rollouts counted in episodes have no size known in advance: ``total`` then."""
    if isinstance(algo, OnPolicyAlgorithm):
        rollout = algo.n_steps * algo.n_envs
    elif isinstance(algo, OffPolicyAlgorithm) and algo.train_freq.unit == TrainFrequencyUnit.STEP:
        rollout = algo.train_freq.frequency * algo.n_envs
    else:
        return total
    done = algo.num_timesteps
    return done + max(0, math.ceil((total - done) / rollout)) * rollout


def algorithm_optimizers(algo: BaseAlgorithm) -> dict[str, torch.optim.Optimizer]:
    """Every optimizer of an SB3 algorithm by name: the policy's (``policy``, ``actor``,
    ``critic`` ...) and SAC's entropy-coefficient optimizer."""
    optimizers = {
        name or "policy": module.optimizer
        for name, module in algo.policy.named_modules()
        if isinstance(getattr(module, "optimizer", None), torch.optim.Optimizer)
    }
    if isinstance(getattr(algo, "ent_coef_optimizer", None), torch.optim.Optimizer):
        optimizers["ent_coef"] = algo.ent_coef_optimizer
    return optimizers


class RunProgress:
    """A rich progress bar with steps/s and the recent mean episode return."""

    def __init__(self, total_steps: int, description: str, console: Console | None = None) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[speed]:>6.0f} steps/s"),
            TextColumn("return {task.fields[ret]}"),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self.task = self.progress.add_task(
            description, total=total_steps, speed=0.0, ret="-", detail=""
        )
        self.start_time = 0.0

    def start(self, total_steps: int | None = None) -> None:
        """Show the bar; ``total_steps``: the run's real length, if known only now."""
        if total_steps is not None:
            self.progress.update(self.task, total=total_steps)
        self.start_time = time.perf_counter()
        self.progress.start()

    def update(self, steps: int, recent: float | None, detail: str = "") -> None:
        """``recent``: the recent mean return; ``detail``: more, e.g. per-group returns."""
        elapsed = max(time.perf_counter() - self.start_time, 1e-9)
        total = max(steps, self.progress.tasks[0].total or 0)  # past a total not known ahead
        self.progress.update(
            self.task,
            total=total,
            completed=steps,
            speed=steps / elapsed,
            ret="-" if recent is None else f"{recent:.1f}",
            detail=detail,
        )

    def stop(self) -> None:
        self.progress.stop()


class RichProgressCallback(BaseCallback):
    """:class:`RunProgress` for SB3, refreshed after every rollout; ``detail()`` adds text.

    The bar's total is the number of steps SB3 will run (:func:`steps_sb3_runs`), so it ends
    full rather than past ``total_steps``."""

    def __init__(
        self,
        total_steps: int,
        description: str,
        console: Console | None = None,
        detail: Callable[[], str] | None = None,
    ) -> None:
        super().__init__()
        self.total_steps = total_steps
        self.display = RunProgress(total_steps, description, console)
        self.detail = detail

    def _on_training_start(self) -> None:
        self.display.start(steps_sb3_runs(self.model, self.total_steps))

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        detail = self.detail() if self.detail is not None else ""
        self.display.update(self.num_timesteps, recent_return(self.model.ep_info_buffer), detail)

    def _on_training_end(self) -> None:
        self._on_rollout_end()
        self.display.stop()


class RolloutCheckpoint(BaseCallback):
    """Checkpoint at rollout boundaries, where an on-policy run can resume exactly.

    Saves at the start of the first rollout after every ``every`` env steps (0: never), and,
    when ``stop`` is set (SIGINT/SIGTERM), saves there and halts training.
    """

    def __init__(self, every: int, save: Callable[[], None], stop: StopRequest) -> None:
        super().__init__()
        self.every, self.save, self.stop = every, save, stop
        self.next_at = every
        self.halted = False

    def _on_training_start(self) -> None:
        if self.every:
            self.next_at = self.num_timesteps + self.every

    def _on_rollout_start(self) -> None:
        if self.stop:
            self.save()
            self.halted = True
        elif self.every and self.num_timesteps >= self.next_at:
            self.save()
            self.next_at += self.every

    def _on_step(self) -> bool:
        return not self.halted


class DivergenceCallback(BaseCallback):
    """Runs a :class:`DivergenceGuard` on SB3's rollout: observations, rewards, the policy's
    values and log-probabilities and its weights (when written) every env step, updates at every
    gradient step."""

    def __init__(self, guard_modules: dict) -> None:
        super().__init__()
        self.guard = DivergenceGuard(guard_modules, lambda: self.num_timesteps)

    def _on_training_start(self) -> None:
        self.guard.watch(algorithm_optimizers(self.model).values())

    def _on_step(self) -> bool:
        local = self.locals
        self.guard.check_changed_weights()
        self.guard.check_values(
            observation=local.get("new_obs"),
            reward=local.get("rewards"),
            value=local.get("values"),
            log_probability=local.get("log_probs"),
        )
        return True
