"""Observation and return normalisation (SB3's ``VecNormalize``), saved without pickle.

A run's ``normalize`` option is the RL Zoo's: ``true`` (observations and returns), ``false``, or
a mapping such as ``{norm_obs: true, norm_reward: false}`` (the Zoo writes it as the string
``"{'norm_obs': True, 'norm_reward': False}"``, which is accepted too). Observations become
``clip((o - mean) / sqrt(var + eps), +-clip_obs)`` and rewards ``clip(r / sqrt(var_R + eps),
+-clip_reward)``, with running statistics of observations and of the discounted return ``R``.

SB3's ``VecNormalize.save`` pickles the wrapper, so the statistics are written here as tensors
(``normalize.safetensors``: ``obs_rms.{mean,var,count}``, ``ret_rms.{mean,var,count}`` and the
per-env discounted returns), float64 as SB3 keeps them, so a resumed run continues bitwise.
Evaluation uses the training statistics frozen, with rewards left as they are.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from biocredit.errors import ConfigError, RunDirError, check_keys

NORMALIZE_FILE = "normalize.safetensors"
OPTIONS = ("norm_obs", "norm_reward", "clip_obs", "clip_reward", "epsilon")


def normalize_options(value: Any) -> dict[str, Any] | None:
    """The ``VecNormalize`` keyword arguments a ``normalize`` option asks for, ``None`` if off.

    Raises :class:`ConfigError` for anything but a bool, a mapping of :data:`OPTIONS` or the
    Zoo's string form of such a mapping.
    """
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            value = None
        if not isinstance(value, dict):
            raise ConfigError(
                "'normalize' given as text must be a mapping like the RL Zoo's "
                "\"{'norm_obs': True, 'norm_reward': False}\"; or use true / false."
            )
    if isinstance(value, bool):
        return {} if value else None
    if not isinstance(value, dict):
        raise ConfigError(
            f"'normalize' must be true, false or a mapping of {', '.join(OPTIONS)}; "
            f"got {type(value).__name__} {value!r}."
        )
    check_keys(value, OPTIONS, "normalize")
    return dict(value)


def wrap_normalize(venv: VecEnv, options: dict[str, Any], gamma: float) -> VecNormalize:
    """``venv`` inside a training ``VecNormalize``; ``gamma`` discounts the return statistic
    (the Zoo uses the algorithm's own discount)."""
    if not isinstance(venv.observation_space, spaces.Box) and options.get("norm_obs", True):
        raise ConfigError(
            f"normalize: observations of type {venv.observation_space} cannot be normalised "
            "(only Box observations). Set normalize: {norm_obs: false, norm_reward: true} or false."
        )
    return VecNormalize(venv, gamma=gamma, **options)


def frozen(
    venv: VecEnv, options: dict[str, Any], statistics: dict[str, torch.Tensor]
) -> VecNormalize:
    """``venv`` normalised with ``statistics`` (from :func:`statistics_tensors`), never
    updated, rewards unchanged: how a trained policy is evaluated."""
    wrapper = VecNormalize(venv, training=False, **{**options, "norm_reward": False})
    load_statistics(wrapper, statistics)
    wrapper.returns = np.zeros(venv.num_envs)
    return wrapper


def statistics_tensors(wrapper: VecNormalize) -> dict[str, torch.Tensor]:
    """The running statistics and per-env discounted returns of ``wrapper`` as tensors."""
    tensors = {"returns": torch.from_numpy(np.array(wrapper.returns, dtype=np.float64))}
    for name in ("obs_rms", "ret_rms"):
        rms = getattr(wrapper, name, None)
        if rms is None:  # norm_obs=False: SB3 builds no observation statistics
            continue
        tensors[f"{name}.mean"] = torch.from_numpy(np.array(rms.mean, dtype=np.float64))
        tensors[f"{name}.var"] = torch.from_numpy(np.array(rms.var, dtype=np.float64))
        tensors[f"{name}.count"] = torch.tensor(float(rms.count), dtype=torch.float64)
    return tensors


def load_statistics(wrapper: VecNormalize, tensors: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`statistics_tensors` (fresh NumPy copies)."""
    for name in ("obs_rms", "ret_rms"):
        rms = getattr(wrapper, name, None)
        if rms is None:
            continue
        if f"{name}.mean" not in tensors:
            raise RunDirError(
                f"The saved normalisation statistics have no '{name}': they were written with "
                "other normalize options than this run's config."
            )
        rms.mean = tensors[f"{name}.mean"].numpy().copy()
        rms.var = tensors[f"{name}.var"].numpy().copy()
        rms.count = float(tensors[f"{name}.count"].item())
    if tensors["returns"].shape[0] == wrapper.num_envs:
        wrapper.returns = tensors["returns"].numpy().copy()


def save_statistics(wrapper: VecNormalize, directory: Path) -> None:
    save_file(statistics_tensors(wrapper), str(Path(directory) / NORMALIZE_FILE))


def read_statistics(directory: Path) -> dict[str, torch.Tensor]:
    path = Path(directory) / NORMALIZE_FILE
    if not path.is_file():
        raise RunDirError(
            f"'{path}' is missing: this run normalises observations or returns, and its policy "
            "cannot be used without the statistics it was trained with."
        )
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise RunDirError(f"'{path}' is not a readable safetensors file ({exc}).") from None
