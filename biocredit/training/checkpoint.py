"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

The policy's ``state_dict`` holds the learner's state too (feedback matrices, traces are
buffers), so a restored policy assigns credit exactly as the saved one did. For exact resume a
checkpoint also holds ``resume.safetensors`` (optimizer tensors, torch's RNG) and, in
``checkpoint.json``, the rest: optimizer settings, NumPy's and Python's RNGs, env states,
counters.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

import biocredit
from biocredit.errors import RunDirError

WEIGHTS_FILE = "model.safetensors"
META_FILE = "checkpoint.json"


def save_checkpoint(module: nn.Module, directory: Path, meta: dict[str, Any]) -> None:
    """Write ``module.state_dict()`` and ``meta`` (plus the library version) to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().contiguous() for key, value in module.state_dict().items()}
    save_file(tensors, str(directory / WEIGHTS_FILE))
    meta = {"biocredit_version": biocredit.__version__, **meta}
    (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def load_checkpoint(
    module: nn.Module, directory: Path, expected: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Load weights saved by :func:`save_checkpoint` into ``module``; return the metadata.

    ``expected`` metadata (env, learner, agent ...) must match what the checkpoint records.
    """
    weights, meta_path = directory / WEIGHTS_FILE, directory / META_FILE
    for path in (weights, meta_path):
        if not path.is_file():
            raise RunDirError(f"Checkpoint file '{path}' is missing.")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise RunDirError(f"'{weights}' is not a readable safetensors file ({exc}).") from None
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise RunDirError(f"'{meta_path}' is not valid JSON ({exc}).") from None
    for key, value in (expected or {}).items():
        if meta.get(key) != value:
            raise RunDirError(
                f"Checkpoint '{directory}' was saved for {key} '{meta.get(key)}', but this model "
                f"is for {key} '{value}'. Load it with the config it was trained with."
            )
    own = module.state_dict()
    missing, unexpected = own.keys() - state.keys(), state.keys() - own.keys()
    shapes = [k for k in own.keys() & state.keys() if own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        raise RunDirError(
            f"Checkpoint '{directory}' does not fit this model: missing {sorted(missing)}, "
            f"unexpected {sorted(unexpected)}, wrong shapes {sorted(shapes)}. It was saved for a "
            "different env, learner or network size; evaluate it with its own run folder's config."
        )
    module.load_state_dict(state)
    return meta


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
