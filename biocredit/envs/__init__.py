"""Environment construction, wrappers and the project's own tasks.

Importing this package registers the memory tasks ``MaskedCartPole-v1`` and ``CuedTMaze-v0``.
"""

from biocredit.envs.make import check_env_id, make_sb3_vec_env
from biocredit.envs.memory_tasks import CuedTMazeEnv, MaskedCartPoleEnv, register_memory_tasks

register_memory_tasks()

__all__ = ["CuedTMazeEnv", "MaskedCartPoleEnv", "check_env_id", "make_sb3_vec_env"]
