"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

The policy's ``state_dict`` holds the learner's state too (feedback matrices are buffers), so
a restored policy assigns credit exactly as the saved one did.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def load_checkpoint(module: nn.Module, directory: Path) -> dict[str, Any]:
    """Load weights saved by :func:`save_checkpoint` into ``module``; return the metadata."""
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
    expected = module.state_dict()
    missing, unexpected = expected.keys() - state.keys(), state.keys() - expected.keys()
    shapes = [k for k in expected.keys() & state.keys() if expected[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        raise RunDirError(
            f"Checkpoint '{directory}' does not fit this model: missing {sorted(missing)}, "
            f"unexpected {sorted(unexpected)}, wrong shapes {sorted(shapes)}. It was saved for a "
            "different env, learner or network size; evaluate it with its own run folder's config."
        )
    module.load_state_dict(state)
    return meta
