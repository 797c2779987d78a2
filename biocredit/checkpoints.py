"""Checkpoints: the one place that writes and reads checkpoint folders. No pickle.

A checkpoint folder holds::

    model.safetensors    a module's state_dict (weights, learner state: feedback matrices and
                         traces are buffers), each shared tensor once
    checkpoint.json      what the module is for and how to rebuild it, and a run's resume state
                         that is not tensors (counters, optimizer settings, NumPy's and Python's
                         RNGs, env states)
    resume.safetensors   a run's resume tensors (optimizer state, torch's RNG, replay buffer ...)
    ...                  any other file its writer adds (a run's normalize.safetensors)
    manifest.json        written last: every other file with its size and SHA-256

A folder is *complete* when its manifest exists and every file it lists is there with the
recorded size and hash; anything else is a write a crash cut short, and is never loaded.

A run folder keeps its last ``keep`` complete checkpoints (``keep_checkpoints``, default 2)::

    <run>/checkpoints/000007-step12000/    sequence number, env steps
    <run>/checkpoints/000008-step14000/    the newest: a resume starts here
    <run>/checkpoints/.partial-000009/     being written (or cut short by a crash)

A new checkpoint is written into ``.partial-<n>``, its files and the folder are fsynced, the
manifest goes in last, and one ``os.replace`` renames it into place (then the parent folder is
fsynced), so at every instant the newest complete folder is a whole checkpoint. Older folders
beyond ``keep``, incomplete ones and leftover partial folders are removed after each write.

Runs of earlier biocredit versions have one ``<run>/checkpoint/`` folder without a manifest
(rewritten through ``checkpoint.new``/``checkpoint.old``); it still loads, and counts as older
than any numbered checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

import biocredit
from biocredit.errors import RunDirError

MODEL_FILE = "model.safetensors"
META_FILE = "checkpoint.json"
RESUME_FILE = "resume.safetensors"
MANIFEST_FILE = "manifest.json"
CHECKPOINTS_DIR = "checkpoints"
PARTIAL_PREFIX = ".partial-"
DEFAULT_KEEP = 2
LEGACY_DIR = "checkpoint"  # earlier versions: one folder, no manifest
LEGACY_STAGING_DIR = "checkpoint.new"  # ... written here, then swapped in
LEGACY_PREVIOUS_DIR = "checkpoint.old"  # ... the previous one during the swap
FOLDER_NAME = re.compile(r"^(\d+)-step(\d+)$")
HASH_CHUNK = 1 << 20


# files, fsync and the manifest --------------------------------------------------------------


def fsync_path(path: Path) -> None:
    """Flush a file's or a folder's entries to disk (a folder: the names in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_json(path: Path, data: Any) -> None:
    with open(path, "w") as handle:
        handle.write(json.dumps(data, indent=2) + "\n")


def seal(directory: Path) -> None:
    """Make ``directory`` a complete checkpoint: fsync every file in it, then write and fsync
    the manifest (each file's size and SHA-256), then fsync the folder."""
    files = {}
    for path in sorted(p for p in directory.iterdir() if p.name != MANIFEST_FILE):
        if not path.is_file():
            raise RunDirError(f"A checkpoint holds files only, but '{path}' is not one.")
        fsync_path(path)
        files[path.name] = {"size": path.stat().st_size, "sha256": file_digest(path)}
    manifest = directory / MANIFEST_FILE
    write_json(manifest, {"biocredit_version": biocredit.__version__, "files": files})
    fsync_path(manifest)
    fsync_path(directory)


def incomplete_because(directory: Path) -> str | None:
    """Why ``directory`` is not a complete checkpoint (see the module docstring); ``None`` if
    it is one."""
    manifest = directory / MANIFEST_FILE
    if not manifest.is_file():
        return f"it has no {MANIFEST_FILE} (a write was cut short)"
    try:
        files = json.loads(manifest.read_text())["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        return f"its {MANIFEST_FILE} is unreadable ({exc!r})"
    for name, expected in files.items():
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != expected["size"]:
            return f"{name} is {size} bytes, its manifest says {expected['size']}"
        if file_digest(path) != expected["sha256"]:
            return f"{name} does not have the SHA-256 its manifest records"
    return None


def check_complete(directory: Path) -> None:
    """Raise a :class:`RunDirError` unless ``directory`` is complete. A folder of an earlier
    biocredit (a run's ``checkpoint/``, an ``Agent.save`` folder) has no manifest and is taken
    as it is; a numbered or partial folder of a run's ``checkpoints/`` never is."""
    numbered = FOLDER_NAME.match(directory.name) or directory.name.startswith(".")
    if not numbered and not (directory / MANIFEST_FILE).is_file():
        return  # an earlier version's folder: no manifest to check against
    reason = incomplete_because(directory)
    if reason is not None:
        raise RunDirError(
            f"Checkpoint '{directory}' is incomplete: {reason}. Load an earlier checkpoint of "
            "its run (biocredit picks the newest complete one from a run folder)."
        )


# a run folder's checkpoints -------------------------------------------------------------------


def _numbered(run_dir: Path) -> list[tuple[int, Path]]:
    """``(sequence number, folder)`` of every numbered folder under ``<run>/checkpoints``,
    complete or not, newest first."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := FOLDER_NAME.match(p.name))]
    return sorted(found, reverse=True)


def _legacy(run_dir: Path) -> Path | None:
    """An earlier version's ``<run>/checkpoint``, put back from ``checkpoint.old`` if a stop
    fell between the two renames of its swap; ``None`` if there is none."""
    target = Path(run_dir) / LEGACY_DIR
    previous = Path(run_dir) / LEGACY_PREVIOUS_DIR
    if not target.exists() and previous.is_dir():
        previous.rename(target)
    return target if (target / META_FILE).is_file() else None


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """The run's complete checkpoint folders, newest first (an earlier version's
    ``checkpoint/`` last)."""
    found = [path for _, path in _numbered(run_dir) if incomplete_because(path) is None]
    legacy = _legacy(run_dir)
    return found + ([legacy] if legacy is not None else [])


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The run's newest complete checkpoint folder, ``None`` if it has none. Only the folders
    down to the first complete one are verified."""
    for _, path in _numbered(run_dir):
        if incomplete_because(path) is None:
            return path
    return _legacy(run_dir)


def checkpoint_step(directory: Path) -> int | None:
    """The env step a checkpoint folder was taken at: from its name, or for an earlier
    version's ``checkpoint/`` from its metadata (``None`` if that does not say)."""
    match = FOLDER_NAME.match(directory.name)
    if match:
        return int(match.group(2))
    meta = read_meta(directory)
    step = meta.get("num_timesteps", meta.get("steps"))
    return int(step) if step is not None else None


def require_checkpoint(run_dir: Path) -> Path:
    """:func:`newest_checkpoint`, or a :class:`RunDirError` saying what the folder holds."""
    found = newest_checkpoint(run_dir)
    if found is not None:
        return found
    broken = [f"{path.name} ({incomplete_because(path)})" for _, path in _numbered(run_dir)]
    held = f"; its checkpoints are all incomplete: {', '.join(broken)}" if broken else ""
    raise RunDirError(
        f"'{run_dir}' holds no complete checkpoint{held}. A run checkpoints every "
        "checkpoint_freq env steps, on Ctrl-C/SIGTERM and at its end; start it again if it was "
        "killed before its first one."
    )


def resolve_checkpoint(path: Path) -> Path:
    """``path`` if it is a checkpoint folder, else (a run folder) its newest complete one."""
    path = Path(path)
    if (path / META_FILE).is_file() or (path / MANIFEST_FILE).is_file():
        return path
    return require_checkpoint(path)


@contextmanager
def new_checkpoint(run_dir: Path, steps: int, keep: int = DEFAULT_KEEP) -> Iterator[Path]:
    """Yield an empty partial folder under ``<run>/checkpoints`` to write a checkpoint's files
    into; afterwards it is sealed (:func:`seal`), renamed into place as the newest checkpoint
    and the folders beyond the newest ``keep`` complete ones are removed. An exception in the
    block leaves the partial folder, which is ignored and removed by the next write."""
    if keep < 1:
        raise RunDirError(f"A run keeps at least one checkpoint, got keep={keep}.")
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        root.mkdir(parents=True)
        fsync_path(root.parent)
    for stale in root.glob(PARTIAL_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)
    numbered = _numbered(run_dir)
    number = numbered[0][0] + 1 if numbered else 1
    partial = root / f"{PARTIAL_PREFIX}{number:06d}"
    partial.mkdir()
    yield partial
    seal(partial)
    os.replace(partial, root / f"{number:06d}-step{steps}")
    fsync_path(root)
    prune(run_dir, keep)


def prune(run_dir: Path, keep: int) -> None:
    """Remove every checkpoint folder but the newest ``keep`` complete ones: older and
    incomplete numbered folders, partial folders, an earlier version's ``checkpoint/`` (and its
    swap folders) once enough newer ones exist."""
    kept = set(complete_checkpoints(run_dir)[:keep])
    root = Path(run_dir) / CHECKPOINTS_DIR
    for path in root.iterdir() if root.is_dir() else ():
        if path not in kept and (FOLDER_NAME.match(path.name) or path.name.startswith(".")):
            shutil.rmtree(path, ignore_errors=True)
    legacy = Path(run_dir) / LEGACY_DIR
    if legacy not in kept:
        for name in (LEGACY_DIR, LEGACY_STAGING_DIR, LEGACY_PREVIOUS_DIR):
            shutil.rmtree(Path(run_dir) / name, ignore_errors=True)


@contextmanager
def replaced_folder(path: Path) -> Iterator[Path]:
    """Yield an empty sibling folder; once the block has written it, it is sealed and replaces
    ``path`` (two renames: the old folder aside, the new one in; an exception in the block
    leaves ``path`` as it was). For ``Agent.save``, whose folder is the user's."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial, previous = (path.with_name(f".{path.name}{s}") for s in (".partial", ".previous"))
    for stale in (partial, previous):
        shutil.rmtree(stale, ignore_errors=True)
    partial.mkdir()
    yield partial
    seal(partial)
    if path.exists():
        path.rename(previous)
    os.replace(partial, path)
    fsync_path(path.parent)
    shutil.rmtree(previous, ignore_errors=True)


# a module's state -----------------------------------------------------------------------------


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


def write_module(
    directory: Path,
    module: nn.Module,
    meta: dict[str, Any],
    resume: dict[str, Tensor] | None = None,
) -> None:
    """Write ``module.state_dict()`` (each shared tensor once), ``meta`` (plus the library
    version) and, for a run, its ``resume`` tensors into ``directory``."""
    state = module.state_dict()
    aliases = shared_keys(state)
    tensors = {
        key: value.detach().contiguous() for key, value in state.items() if key not in aliases
    }
    save_file(tensors, str(directory / MODEL_FILE))
    write_json(directory / META_FILE, {"biocredit_version": biocredit.__version__, **meta})
    if resume is not None:
        save_file(resume, str(directory / RESUME_FILE))


def read_safetensors(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise RunDirError(f"Checkpoint file '{path}' is missing.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise RunDirError(f"'{path}' is not a readable safetensors file ({exc}).") from None


def load_module(
    module: nn.Module, directory: Path, expected: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Load the weights of the checkpoint folder ``directory`` into ``module``; return its
    metadata. ``expected`` metadata (env, learner, agent ...) must match what it records."""
    check_complete(directory)
    meta = read_meta(directory)
    state = read_safetensors(directory / MODEL_FILE)
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


def read_meta(directory: Path) -> dict[str, Any]:
    """The JSON metadata of a checkpoint folder."""
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise RunDirError(f"Checkpoint file '{meta_path}' is missing.")
    try:
        return json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise RunDirError(f"'{meta_path}' is not valid JSON ({exc}).") from None


def read_resume_tensors(directory: Path) -> dict[str, Tensor]:
    """A run checkpoint's resume tensors."""
    if not (directory / RESUME_FILE).is_file():
        raise RunDirError(
            f"'{directory}' holds no resume state ({RESUME_FILE}); it was written by an older "
            "biocredit or is not a run's checkpoint. Start a new run instead."
        )
    return read_safetensors(directory / RESUME_FILE)


AGENT_META_KEYS = ("agent_config", "observation_space", "action_space", "n_envs")


def read_agent_meta(directory: Path) -> dict[str, Any]:
    """The metadata a native agent is rebuilt from (its config, spaces and ``n_envs``), read
    from a folder written by an agent's ``save`` or by a training run's checkpoint."""
    check_complete(directory)
    meta = read_meta(directory)
    missing = [key for key in AGENT_META_KEYS if key not in meta]
    if missing:
        raise RunDirError(
            f"Checkpoint '{directory}' does not describe a native agent: its {META_FILE} lacks "
            f"{missing}. It was written for an SB3 model, or by an older biocredit whose run "
            "checkpoints did not record the agent; evaluate its run folder with "
            "`biocredit eval RUN_DIR` instead."
        )
    return meta


# optimizers, RNGs and spaces as tensors and JSON ----------------------------------------------


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


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """A Box or Discrete space, or a Dict of them (a team's, by agent), as plain JSON data."""
    if isinstance(space, spaces.Dict):  # a list of pairs: the agents' order is kept
        return {"type": "Dict", "spaces": [[k, space_to_json(v)] for k, v in space.items()]}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "low": space.low.tolist(),
            "high": space.high.tolist(),
            "dtype": str(space.dtype),
        }
    raise RunDirError(f"Cannot store space {space}: only Box, Discrete and Dict are supported.")


def space_from_json(data: dict[str, Any]) -> spaces.Space:
    if data["type"] == "Dict":
        items = ((key, space_from_json(value)) for key, value in data["spaces"])
        return spaces.Dict(OrderedDict(items))  # a plain dict would be sorted by key
    if data["type"] == "Discrete":
        return spaces.Discrete(data["n"], start=data["start"])
    dtype = np.dtype(data["dtype"])
    return spaces.Box(np.asarray(data["low"], dtype), np.asarray(data["high"], dtype), dtype=dtype)
