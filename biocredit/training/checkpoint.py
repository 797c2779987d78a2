"""Resume state of a checkpoint: optimizers and RNGs, without pickle.

Weights and metadata are written by :mod:`biocredit.serialization`. For exact resume a checkpoint
also holds ``resume.safetensors`` (optimizer tensors, torch's RNG) and, in ``checkpoint.json``,
the rest: optimizer settings, NumPy's and Python's RNGs, env states, counters.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from biocredit.errors import RunDirError

RESUME_FILE = "resume.safetensors"


def optimizer_state(optimizer: torch.optim.Optimizer, prefix: str) -> tuple[dict, dict]:
    """``optimizer.state_dict()`` split into tensors (for safetensors) and JSON data."""
    state = optimizer.state_dict()
    tensors, plain = {}, {"param_groups": state["param_groups"], "state": {}}
    for index, entries in state["state"].items():
        plain["state"][str(index)] = {}
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.{index}.{key}"] = value.detach().clone().contiguous()
            else:
                plain["state"][str(index)][key] = value
    return tensors, plain


def load_optimizer_state(
    optimizer: torch.optim.Optimizer, tensors: dict, plain: dict, prefix: str
) -> None:
    """Inverse of :func:`optimizer_state`."""
    state: dict = {}
    for index, entries in plain["state"].items():
        state[int(index)] = dict(entries)
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            index, name = key[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": plain["param_groups"]})


def rng_state() -> tuple[dict, dict]:
    """torch's, NumPy's global and Python's RNG states as tensors and JSON data."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    plain = {
        "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
        "python": [version, list(internal), gauss],
    }
    return {"rng.torch": torch.get_rng_state()}, plain


def set_rng_state(tensors: dict, plain: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    kind, keys, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = plain["python"]
    random.setstate((version, tuple(internal), gauss))


def save_resume_state(directory: Path, tensors: dict[str, torch.Tensor]) -> None:
    save_file(tensors, str(directory / RESUME_FILE))


def load_resume_state(directory: Path) -> dict[str, torch.Tensor]:
    path = directory / RESUME_FILE
    if not path.is_file():
        raise RunDirError(
            f"'{directory}' holds no resume state ({RESUME_FILE}); it was written by an older "
            "biocredit or is not a checkpoint. Start a new run instead."
        )
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise RunDirError(f"'{path}' is not a readable safetensors file ({exc}).") from None
