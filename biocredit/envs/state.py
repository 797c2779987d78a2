"""Capture and restore the full state of Gymnasium envs as plain JSON data (never pickle).

A run resumed from a checkpoint must continue exactly, so mid-episode envs come back as they
were: every layer of the wrapper chain keeps its plain attributes (step counters, episode
accumulators, physical state arrays), each RNG its bit-generator state, and a MuJoCo env its
full integration state (``mj_getState``). Objects that are configuration (spaces, specs,
renderers, the MuJoCo model) are rebuilt by making the env again and are not stored.

A layer's attribute that is a plain Python object (MinAtar's ``game``, whose ``env`` is the
game) is state, not configuration: it is captured whole, attribute by attribute and object by
object, and restored into the same object of the freshly made env. Inside such an object every
value must be data (``None``, bools, numbers, strings, NumPy numbers and numeric arrays, lists,
tuples, dicts with string keys, NumPy's ``Generator`` and legacy ``RandomState``, and further
plain objects held as attributes); anything else raises :class:`EnvStateError` naming where it
is, since skipping it would make the resume silently inexact. Objects held in lists or dicts
are refused too: rebuilding them would mean creating instances of classes named by the
checkpoint, which is what pickle does. An RNG, container or object reached twice (MinAtar's
``game.random`` is ``game.env.random`` once seeded) is stored once and comes back shared.
"""

from __future__ import annotations

import enum
import types
from typing import Any

import gymnasium as gym
import numpy as np

from biocredit.errors import BiocreditError

PLAIN = (bool, int, float, str, type(None))
DATA_KINDS = "biuf"  # bool, signed and unsigned integer, float arrays and scalars
BIT_GENERATORS = {
    cls.__name__: cls
    for cls in (np.random.PCG64, np.random.PCG64DXSM, np.random.MT19937, np.random.Philox)
}
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


class EnvStateError(BiocreditError, TypeError):
    """An env holds state that cannot be stored as plain data, so a resume would not be exact."""


def is_plain_object(value: Any) -> bool:
    """An instance of a Python class holding its state in ``__dict__`` (not a class, module,
    function, enum member, env or space)."""
    excluded = (type, types.ModuleType, enum.Enum, gym.Env, gym.Space)
    return hasattr(value, "__dict__") and not isinstance(value, excluded) and not callable(value)


def _refuse(path: str, value: Any, why: str) -> EnvStateError:
    return EnvStateError(
        f"Cannot store the env's state exactly: '{path}' holds a {type(value).__qualname__} "
        f"({why}). Checkpoints keep env state as plain data (numbers, arrays, lists, dicts, "
        "NumPy RNGs, plain objects as attributes), so resuming this env would not continue it "
        "exactly; make the env keep that state as plain data."
    )


class _Capture:
    """Encodes one env's values; remembers where each mutable value was first stored, so a
    second reference to it is stored as ``{"ref": path}``. ``strict`` (inside plain objects)
    raises on what is not data; otherwise it is skipped as configuration."""

    def __init__(self) -> None:
        self.seen: dict[int, str] = {}

    def attribute(self, value: Any, path: str, strict: bool) -> dict[str, Any] | None:
        if is_plain_object(value):
            if id(value) in self.seen:
                return {"ref": self.seen[id(value)]}
            self.seen[id(value)] = path
            return {"object": type(value).__qualname__, "attributes": self.attributes(value, path)}
        return self.value(value, path, strict)

    def attributes(self, obj: Any, path: str) -> dict[str, Any]:
        return {name: self.attribute(v, f"{path}.{name}", True) for name, v in vars(obj).items()}

    def value(self, value: Any, path: str, strict: bool) -> dict[str, Any] | None:
        if isinstance(value, np.generic) and value.dtype.kind in DATA_KINDS:
            return {"scalar": value.item(), "dtype": str(value.dtype)}  # np.float64 is a float
        if isinstance(value, PLAIN):
            return {"plain": value}
        if id(value) in self.seen:
            return {"ref": self.seen[id(value)]}
        known = len(self.seen)
        if not isinstance(value, tuple):  # a tuple cannot change, so sharing one does not matter
            self.seen[id(value)] = path
        if (encoded := self.mutable(value, path, strict)) is not None:
            return encoded
        for key in list(self.seen)[known:]:  # not stored: nothing may refer to it or its items
            del self.seen[key]
        if strict:
            why = "an object inside a container" if is_plain_object(value) else "not plain data"
            raise _refuse(path, value, why)
        return None

    def mutable(self, value: Any, path: str, strict: bool) -> dict[str, Any] | None:
        if isinstance(value, np.ndarray) and value.dtype.kind in DATA_KINDS:
            return {"ndarray": value.tolist(), "dtype": str(value.dtype), "shape": value.shape}
        if isinstance(value, np.random.Generator):
            state = value.bit_generator.state
            return {"rng": state} if state["bit_generator"] in BIT_GENERATORS else None
        if isinstance(value, np.random.RandomState):
            state = value.get_state(legacy=False)
            if state["bit_generator"] != "MT19937":
                return None
            state["state"] = {"key": state["state"]["key"].tolist(), "pos": state["state"]["pos"]}
            return {"random_state": state}
        if isinstance(value, (list, tuple)):
            items = [self.value(item, f"{path}[{i}]", strict) for i, item in enumerate(value)]
            if None in items:
                return None
            return {"list" if isinstance(value, list) else "tuple": items}
        if isinstance(value, dict) and all(isinstance(key, str) for key in value):
            items = {
                key: self.value(item, f"{path}[{key!r}]", strict) for key, item in value.items()
            }
            return None if None in items.values() else {"dict": items}
        return None


class _Restore:
    """Decodes what :class:`_Capture` stored, following the same paths, so ``{"ref": path}``
    finds the value already rebuilt there."""

    def __init__(self) -> None:
        self.restored: dict[str, Any] = {}

    def attributes(self, target: Any, attributes: dict[str, Any], path: str, exact: bool) -> None:
        for name, data in attributes.items():
            where = f"{path}.{name}"
            if "object" in data:
                current = getattr(target, name, None)
                if type(current).__qualname__ != data["object"]:
                    raise EnvStateError(
                        f"Cannot restore the env's state: '{where}' is a "
                        f"{type(current).__qualname__} in the new env but a {data['object']} "
                        "in the checkpoint. Resume with the env the run was made with."
                    )
                self.restored[where] = current
                self.attributes(current, data["attributes"], where, exact=True)
            else:
                setattr(target, name, self.value(data, where))
        if exact:  # a plain object holds only what was captured
            for name in set(vars(target)) - set(attributes):
                delattr(target, name)

    def value(self, data: dict[str, Any], path: str) -> Any:
        if "ref" in data:
            return self.restored[data["ref"]]
        if "plain" in data:
            return data["plain"]
        if "scalar" in data:
            return np.dtype(data["dtype"]).type(data["scalar"])
        if "tuple" in data:
            return tuple(self.value(item, f"{path}[{i}]") for i, item in enumerate(data["tuple"]))
        value: Any
        if "ndarray" in data:
            value = np.asarray(data["ndarray"], dtype=data["dtype"])
            if "shape" in data:  # checkpoints of earlier versions lack it
                value = value.reshape(data["shape"])
        elif "rng" in data:
            value = np.random.Generator(BIT_GENERATORS[data["rng"]["bit_generator"]]())
            value.bit_generator.state = data["rng"]
        elif "random_state" in data:
            state = data["random_state"]
            key = np.asarray(state["state"]["key"], dtype=np.uint32)
            value = np.random.RandomState()
            value.set_state({**state, "state": {**state["state"], "key": key}})
        elif "list" in data:
            value = []
            self.restored[path] = value  # before its items, which may refer to it
            value.extend(self.value(item, f"{path}[{i}]") for i, item in enumerate(data["list"]))
        else:
            value = {}
            self.restored[path] = value
            value.update({k: self.value(v, f"{path}[{k!r}]") for k, v in data["dict"].items()})
        self.restored[path] = value
        return value


def encode(value: Any) -> dict[str, Any] | None:
    """One value as plain data for JSON (``None``: not plain data), in the format of an env's
    state; e.g. the actions a multi-agent env copy has taken, logged for its exact resume."""
    return _Capture().value(value, "value", strict=False)


def decode(data: dict[str, Any]) -> Any:
    """The value :func:`encode` stored."""
    return _Restore().value(data, "value")


def _layers(env: gym.Env) -> list[Any]:
    layers = [env]
    while hasattr(layers[-1], "env") and isinstance(layers[-1].env, gym.Env):
        layers.append(layers[-1].env)
    return layers


def capture_env(env: gym.Env) -> list[dict[str, Any]]:
    """The state of every layer of ``env``'s wrapper chain, outermost first; an
    :class:`EnvStateError` if a plain object in it holds something that is not data."""
    capture = _Capture()
    state = []
    for index, layer in enumerate(_layers(env)):
        path = f"{type(layer).__name__}[{index}]"
        attributes = {}
        for name, value in vars(layer).items():
            if name not in SKIP:
                encoded = capture.attribute(value, f"{path}.{name}", strict=False)
                if encoded is not None:
                    attributes[name] = encoded
        entry: dict[str, Any] = {
            "type": type(layer).__name__,
            "kinds": _kinds(layer),
            "attributes": attributes,
        }
        if hasattr(layer, "data") and type(layer.data).__name__ == "MjData":
            import mujoco

            spec = mujoco.mjtState.mjSTATE_INTEGRATION
            physics = np.empty(mujoco.mj_stateSize(layer.model, spec))
            mujoco.mj_getState(layer.model, layer.data, physics, spec)
            entry["mujoco"] = physics.tolist()
        state.append(entry)
    return state


# Modules of the generic bases every env or wrapper shares (Env, Wrapper, VectorWrapper ...).
GENERIC_MODULES = ("builtins", "typing", gym.Env.__module__, gym.vector.VectorEnv.__module__)


def _kinds(layer: Any) -> list[str]:
    """The names of ``layer``'s class (whatever its module) and of its bases down to the
    generic ones."""
    own = type(layer)
    return [
        cls.__name__ for cls in own.__mro__ if cls is own or cls.__module__ not in GENERIC_MODULES
    ]


def _is_kind(layer: Any, entry: dict[str, Any]) -> bool:
    """Whether ``layer`` and the saved layer are one class or one subclasses the other: a library
    that patches a wrapper in place (``import rl_zoo3`` replaces Gymnasium's ``TimeLimit`` by a
    subclass) must not make a run saved with or without it unloadable by the other."""
    saved_kinds = entry.get("kinds", [entry["type"]])
    return entry["type"] in _kinds(layer) or type(layer).__name__ in saved_kinds


def restore_env(env: gym.Env, state: list[dict[str, Any]]) -> None:
    """Put back a state from :func:`capture_env` into a freshly made copy of the same env."""
    layers = _layers(env)
    saved = [entry["type"] for entry in state]
    if len(layers) != len(saved) or not all(map(_is_kind, layers, state)):
        current = [type(layer).__name__ for layer in layers]
        raise ValueError(f"the env's wrapper chain {current} differs from the saved one {saved}")
    restore = _Restore()
    for index, (layer, entry) in enumerate(zip(layers, state, strict=True)):
        path = f"{type(layer).__name__}[{index}]"
        restore.attributes(layer, entry["attributes"], path, exact=False)
        if "mujoco" in entry:
            import mujoco

            spec = mujoco.mjtState.mjSTATE_INTEGRATION
            mujoco.mj_setState(layer.model, layer.data, np.asarray(entry["mujoco"]), spec)
            mujoco.mj_forward(layer.model, layer.data)
