"""Capture and restore the full state of Gymnasium envs as plain JSON data (never pickle).

A run resumed from a checkpoint must continue exactly, so mid-episode envs come back as they
were: every layer of the wrapper chain keeps its plain attributes (step counters, episode
accumulators, physical state arrays), each RNG its bit-generator state, and a MuJoCo env its
full integration state (``mj_getState``). Objects that are configuration (spaces, specs,
renderers, the MuJoCo model) are rebuilt by making the env again and are not stored.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

PLAIN = (bool, int, float, str, type(None))
SKIP = {
    "env",
    "spec",
    "_cached_spec",
    "_saved_kwargs",
    "metadata",
    "_metadata",
    "results_writer",
    "mujoco_renderer",
    "model",
    "data",
    "observation_structure",
    "_ezpickle_args",
    "_ezpickle_kwargs",
}


def encode(value: Any) -> Any:
    """Plain data for JSON: arrays become ``{"ndarray": ..., "dtype": ...}``; else ``None``
    marks a value that is not plain data (and is not stored)."""
    if isinstance(value, PLAIN):
        return {"plain": value}
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return {"ndarray": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return {"scalar": value.item(), "dtype": str(value.dtype)}
    if isinstance(value, (list, tuple)):
        items = [encode(item) for item in value]
        if all(item is not None for item in items):
            return {"list" if isinstance(value, list) else "tuple": items}
    return None


def decode(data: dict[str, Any]) -> Any:
    if "plain" in data:
        return data["plain"]
    if "ndarray" in data:
        return np.asarray(data["ndarray"], dtype=data["dtype"])
    if "scalar" in data:
        return np.dtype(data["dtype"]).type(data["scalar"])
    items = [decode(item) for item in data.get("list", data.get("tuple", []))]
    return items if "list" in data else tuple(items)


def _layers(env: gym.Env) -> list[Any]:
    layers = [env]
    while hasattr(layers[-1], "env") and isinstance(layers[-1].env, gym.Env):
        layers.append(layers[-1].env)
    return layers


def capture_env(env: gym.Env) -> list[dict[str, Any]]:
    """The state of every layer of ``env``'s wrapper chain, outermost first."""
    state = []
    for layer in _layers(env):
        attributes = {}
        for name, value in vars(layer).items():
            if name in SKIP:
                continue
            if isinstance(value, np.random.Generator):
                attributes[name] = {"rng": value.bit_generator.state}
            elif (encoded := encode(value)) is not None:
                attributes[name] = encoded
        entry: dict[str, Any] = {"type": type(layer).__name__, "attributes": attributes}
        if hasattr(layer, "data") and type(layer.data).__name__ == "MjData":
            import mujoco

            spec = mujoco.mjtState.mjSTATE_INTEGRATION
            physics = np.empty(mujoco.mj_stateSize(layer.model, spec))
            mujoco.mj_getState(layer.model, layer.data, physics, spec)
            entry["mujoco"] = physics.tolist()
        state.append(entry)
    return state


def restore_env(env: gym.Env, state: list[dict[str, Any]]) -> None:
    """Put back a state from :func:`capture_env` into a freshly made copy of the same env."""
    layers = _layers(env)
    if [type(layer).__name__ for layer in layers] != [entry["type"] for entry in state]:
        raise ValueError("the env's wrapper chain differs from the saved one")
    for layer, entry in zip(layers, state, strict=True):
        for name, value in entry["attributes"].items():
            if "rng" in value:
                generator = np.random.Generator(np.random.PCG64())
                generator.bit_generator.state = value["rng"]
                setattr(layer, name, generator)
            else:
                setattr(layer, name, decode(value))
        if "mujoco" in entry:
            import mujoco

            spec = mujoco.mjtState.mjSTATE_INTEGRATION
            mujoco.mj_setState(layer.model, layer.data, np.asarray(entry["mujoco"]), spec)
            mujoco.mj_forward(layer.model, layer.data)
