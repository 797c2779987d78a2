"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

A module's ``state_dict`` holds its learners' state too (feedback matrices and traces are
buffers), so a restored network assigns credit exactly as the saved one did. Spaces are stored
as JSON descriptions. Nothing here ever unpickles.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

import biocredit
from biocredit.errors import RunDirError

WEIGHTS_FILE = "model.safetensors"
META_FILE = "checkpoint.json"


def shared_keys(state: dict[str, Tensor]) -> dict[str, str]:
    """Keys whose tensor is the same memory as an earlier key's, mapped to that key: a
    submodule registered under two names (SB3's shared features extractor is also its
    ``pi_features_extractor`` and ``vf_features_extractor``). Saved once, restored to both."""
    first: dict[tuple[Any, ...], str] = {}
    aliases = {}
    for key, tensor in state.items():
        if tensor.numel() == 0:
            continue
        where = (
            tensor.untyped_storage().data_ptr(),
            tensor.storage_offset(),
            tuple(tensor.shape),
            tensor.stride(),
            tensor.dtype,
        )
        if where in first:
            aliases[key] = first[where]
        else:
            first[where] = key
    return aliases


def save_checkpoint(module: nn.Module, directory: Path, meta: dict[str, Any]) -> None:
    """Write ``module.state_dict()`` (each shared tensor once) and ``meta`` (plus the library
    version) to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    state = module.state_dict()
    aliases = shared_keys(state)
    tensors = {
        key: value.detach().contiguous() for key, value in state.items() if key not in aliases
    }
    save_file(tensors, str(directory / WEIGHTS_FILE))
    meta = {"biocredit_version": biocredit.__version__, **meta}
    (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def load_checkpoint(
    module: nn.Module, directory: Path, expected: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Load weights saved by :func:`save_checkpoint` into ``module``; return the metadata.

    ``expected`` metadata (env, learner, agent ...) must match what the checkpoint records.
    """
    weights = directory / WEIGHTS_FILE
    meta = read_checkpoint_meta(directory)
    if not weights.is_file():
        raise RunDirError(f"Checkpoint file '{weights}' is missing.")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise RunDirError(f"'{weights}' is not a readable safetensors file ({exc}).") from None
    for key, value in (expected or {}).items():
        if meta.get(key) != value:
            raise RunDirError(
                f"Checkpoint '{directory}' was saved for {key} '{meta.get(key)}', but this model "
                f"is for {key} '{value}'. Load it with the config it was trained with."
            )
    own = module.state_dict()
    for alias, key in shared_keys(own).items():
        if key in state and alias not in state:
            state[alias] = state[key]
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


def read_checkpoint_meta(directory: Path) -> dict[str, Any]:
    """The JSON metadata of a checkpoint folder."""
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise RunDirError(f"Checkpoint file '{meta_path}' is missing.")
    try:
        return json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise RunDirError(f"'{meta_path}' is not valid JSON ({exc}).") from None


AGENT_META_KEYS = ("agent_config", "observation_space", "action_space", "n_envs")


def read_agent_meta(directory: Path) -> dict[str, Any]:
    """The metadata a native agent is rebuilt from (its config, spaces and ``n_envs``), read
    from a folder written by an agent's ``save`` or by a training run's checkpoint."""
    meta = read_checkpoint_meta(directory)
    missing = [key for key in AGENT_META_KEYS if key not in meta]
    if missing:
        raise RunDirError(
            f"Checkpoint '{directory}' does not describe a native agent: its {META_FILE} lacks "
            f"{missing}. It was written for an SB3 model, or by an older biocredit whose run "
            "checkpoints did not record the agent; evaluate its run folder with "
            "`biocredit eval RUN_DIR` instead."
        )
    return meta


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """A Box or Discrete space as plain JSON data."""
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "low": space.low.tolist(),
            "high": space.high.tolist(),
            "dtype": str(space.dtype),
        }
    raise RunDirError(f"Cannot store space {space}: only Box and Discrete are supported.")


def space_from_json(data: dict[str, Any]) -> spaces.Space:
    if data["type"] == "Discrete":
        return spaces.Discrete(data["n"], start=data["start"])
    dtype = np.dtype(data["dtype"])
    return spaces.Box(np.asarray(data["low"], dtype), np.asarray(data["high"], dtype), dtype=dtype)
