"""Environment construction, wrappers and the project's own tasks.

The memory tasks are registered with Gymnasium on ``import biocredit`` under the namespace
``biocredit/`` (``gym.make("biocredit/CuedTMaze-v0")``), and under their earlier plain ids
(``CuedTMaze-v0``), which specs and hyperparameter files use. Importing this package stays light:
the SB3 env helpers load on first use.
"""

from __future__ import annotations

from typing import Any

from biocredit.envs.memory_tasks import CuedTMazeEnv, MaskedCartPoleEnv, register_memory_tasks

register_memory_tasks()

__all__ = ["CuedTMazeEnv", "MaskedCartPoleEnv", "check_env_id", "make_sb3_vec_env"]


def __getattr__(name: str) -> Any:
    if name in ("check_env_id", "make_sb3_vec_env"):  # they import Stable-Baselines3
        from biocredit.envs import make

        return getattr(make, name)
    raise AttributeError(f"module 'biocredit.envs' has no attribute '{name}'")
