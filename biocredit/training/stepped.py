"""The loop of the native agents' runs, single- and multi-agent: one env step at a time.

Each step acts and learns (:meth:`SteppedRun.step`); every ``LOG_EVERY_STEPS`` steps a row goes
to ``progress.csv`` and TensorBoard; every ``checkpoint_freq`` steps, on SIGINT or SIGTERM and at
the end the run checkpoints, with the divergence guard's last check before each save.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable
from typing import Any

from rich.console import Console
from stable_baselines3.common.logger import configure

from biocredit.training.callbacks import RunProgress
from biocredit.training.guard import DivergenceGuard
from biocredit.training.interrupt import catch_signals
from biocredit.training.run import TrainingRun

LOG_EVERY_STEPS = 2000


class SteppedRun(TrainingRun):
    """A run that advances one step of its envs at a time; subclasses set ``steps`` (steps
    counted so far), ``next_log`` and ``guard`` and implement the step and its logging."""

    steps: int
    next_log: int
    guard: DivergenceGuard

    @abstractmethod
    def step(self) -> None:
        """Act in every env, learn from the transition, check for divergence."""

    @abstractmethod
    def learning(self) -> Any:
        """What learns (the agent, or the team): handed to the run's callback."""

    @abstractmethod
    def record(self, logger: Any, elapsed: float) -> tuple[float | None, str]:
        """Record this row's values in ``logger`` (dumped by the caller); return the recent mean
        return and any detail for the progress bar."""

    @abstractmethod
    def close(self) -> None:
        """Close the envs."""

    def run(
        self,
        console: Console | None = None,
        progress: bool = True,
        callback: Callable[[Any, int], None] | None = None,
    ) -> dict[str, Any]:
        """Train to ``config.steps``; checkpoint every ``checkpoint_freq`` steps, on SIGINT or
        SIGTERM, and at the end; return the summary also written to ``summary.json``.

        ``callback(learning, steps)`` is called after every step's update.
        """
        config = self.config
        display = RunProgress(
            config.steps, f"{config.agent} {config.env} seed {config.seed}", console
        )
        every = config.checkpoint_freq
        next_checkpoint = self.steps + every if every else None
        saved_at = None  # the step of this session's last checkpoint
        with catch_signals() as stop:  # before progress.csv exists: a stop seen then is caught
            logger = configure(str(self.run_dir), ["csv", "tensorboard"])
            if progress:
                display.start()
            start = time.perf_counter()
            while self.steps < config.steps and not stop:
                self.step()
                if callback is not None:
                    callback(self.learning(), self.steps)
                if self.steps >= self.next_log or self.steps >= config.steps:
                    while self.next_log <= self.steps:
                        self.next_log += LOG_EVERY_STEPS
                    recent, detail = self.record(logger, self.elapsed + time.perf_counter() - start)
                    logger.dump(self.steps)
                    if progress:
                        display.update(self.steps, recent, detail)
                if next_checkpoint is not None and self.steps >= next_checkpoint:
                    self.guard.check_step()  # never save a bad state
                    self.save(self.elapsed + time.perf_counter() - start)
                    saved_at = self.steps
                    next_checkpoint += every
        wall_time = self.elapsed + time.perf_counter() - start
        if progress:
            display.stop()
        self.guard.check_step()  # the last step's update
        if saved_at != self.steps:  # not twice at one step: the run keeps two distinct states
            self.save(wall_time)
        self.close()
        return self.finish(wall_time, stop.signal_name)
