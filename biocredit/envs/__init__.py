"""Environment construction, wrappers and the project's own tasks."""

from biocredit.envs.make import check_env_id, make_sb3_vec_env

__all__ = ["check_env_id", "make_sb3_vec_env"]
