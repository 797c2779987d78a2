"""Declarative configs: dataclasses validated by one function from their type hints and fields.

A config is a dataclass deriving from :class:`Config`; each field's type hint says what it holds
(``int``, ``float``, ``bool``, ``str``, ``None``, unions, ``Literal[...]``, ``list[X]``,
``dict[str, X]``, ``Any``, another config) and its metadata the limits, choices and help::

    @dataclass
    class MemoryConfig(Config):
        kind: str = choice("passthrough", ("passthrough", "eqprop"), kind="memory kind")
        units: int = at_least(1, 32, help="state units")
        dt: float = in_range(0, 1, 1.0, exclusive_min=True, help="integration step")
        hidden: list[int] = at_least(1, [64], help="layer widths")  # each element >= 1

        def check(self) -> None:  # what involves several fields, as small named methods
            self._check_gains()

    build(MemoryConfig, {"units": 8}, where="agent_kwargs.modules.memory")

:func:`build` turns a mapping (YAML) into the config, nested configs included, and names the key
path (``agent_kwargs.modules.memory.steps``), the value, what was expected and, for an unknown
key or name, the closest valid one. Constructing a config directly runs the same checks
(:func:`validate`, from ``__post_init__``), without the path. Limits (``min``, ``max``,
``exclusive_min``, ``exclusive_max``, ``finite``) apply to every number of a value, list
elements and mapping values included; ``choices`` to every string; ``nonempty`` to the value.
:func:`describe` lists a config's fields with their types, defaults, limits and help.

This module is a leaf: it imports nothing of biocredit but :mod:`biocredit.errors`, so learners,
agents, training and the SB3 policies can all declare their configs with it.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import textwrap
import types
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields
from types import MappingProxyType
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from biocredit.errors import ConfigError, check_keys, unknown_name

C = TypeVar("C")

#: metadata keys the engine reads (anything else in a field's metadata is ignored)
LIMIT_KEYS = ("min", "max", "exclusive_min", "exclusive_max", "finite")
Choices = Collection[str] | Callable[[], Collection[str]]
#: a field's help up to this long (and without parentheses) names the key in errors about it
SHORT_HELP = 60


def option(
    default: Any = MISSING,
    *,
    factory: Callable[[], Any] | None = None,
    help: str = "",
    hint: str = "",
    min: float | None = None,
    max: float | None = None,
    exclusive_min: bool = False,
    exclusive_max: bool = False,
    finite: bool = False,
    nonempty: bool = False,
    choices: Choices | None = None,
    kind: str | None = None,
) -> Any:
    """A dataclass field with limits and help in its metadata.

    :param default: the default; a list or dict default is copied for every instance
    :param factory: builds the default instead (e.g. a nested config class)
    :param help: what the field means (for :func:`describe`)
    :param hint: a sentence appended to every error about this field (how to fix it)
    :param min, max: bounds on every number of the value (inclusive unless ``exclusive_*``)
    :param finite: numbers must be finite (no ``inf`` or ``nan``)
    :param nonempty: a list, mapping or string must not be empty
    :param choices: the valid strings, or a function returning them (a registry)
    :param kind: what a choice is called in errors ("memory kind"); the key's name by default
    """
    given = {
        "help": help,
        "hint": hint,
        "min": min,
        "max": max,
        "exclusive_min": exclusive_min,
        "exclusive_max": exclusive_max,
        "finite": finite,
        "nonempty": nonempty,
        "choices": choices,
        "kind": kind,
    }
    metadata = {
        key: value
        for key, value in given.items()
        if value is not None and value is not False and value != ""
    }
    if factory is None and isinstance(default, (list, dict, set)):
        factory = _copier(default)
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def _copier(default: Any) -> Callable[[], Any]:
    return lambda: copy.deepcopy(default)


def positive(default: Any = MISSING, **kwargs: Any) -> Any:
    """A field whose numbers must be > 0."""
    return option(default, min=0, exclusive_min=True, **kwargs)


def at_least(bound: float, default: Any = MISSING, **kwargs: Any) -> Any:
    """A field whose numbers must be >= ``bound``."""
    return option(default, min=bound, **kwargs)


def in_range(low: float, high: float, default: Any = MISSING, **kwargs: Any) -> Any:
    """A field whose numbers must lie in ``[low, high]`` (``exclusive_min/max`` open an end)."""
    return option(default, min=low, max=high, **kwargs)


def choice(default: Any, choices: Choices, **kwargs: Any) -> Any:
    """A field whose strings must be one of ``choices`` (or of what a registry function
    returns); ``kind`` names them in errors."""
    return option(default, choices=choices, **kwargs)


class Config:
    """Base of the declarative configs: construction validates every field (:func:`validate`)
    and then runs :meth:`check`."""

    def __post_init__(self) -> None:
        validate(self)
        self.check()

    def check(self) -> None:
        """Checks that involve several fields; a config with any overrides this."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


# -- building and validating ---------------------------------------------------------------


@dataclass(frozen=True)
class _At:
    """Where a value sits: its key path and the source it came from (a file, the command line)."""

    path: str = ""
    source: str = ""

    def key(self, meta: Mapping[str, Any] = MappingProxyType({})) -> str:
        """``Key 'memory.steps' (settling steps per phase) in the command line``: a short
        ``help`` (one phrase: at most :data:`SHORT_HELP` characters, no parentheses) says what
        the key means."""
        meaning = meta.get("help", "")
        short = meaning and len(meaning) <= SHORT_HELP and "(" not in meaning
        label = f" ({meaning})" if short else ""
        return f"Key '{self.path}'{label}" + (f" in {self.source}" if self.source else "")

    def place(self) -> str:
        """Where a mapping sits, for unknown or missing keys."""
        if self.path and self.source:
            return f"{self.path} in {self.source}"
        return self.path or self.source or "the config"

    def child(self, name: str | int) -> _At:
        if isinstance(name, int):
            return _At(f"{self.path}[{name}]", self.source)
        return _At(f"{self.path}.{name}" if self.path else name, self.source)


def build(cls: type[C], data: Any, where: str = "", source: str = "") -> C:
    """The config ``cls`` from the mapping ``data``, nested configs included.

    :param where: the key path of ``data`` (``agent_kwargs``), prefixed to every key in errors
    :param source: where ``data`` came from (``"the command line"``, ``"config file 'x.yaml'"``)
    :raises ConfigError: an unknown key (with the closest valid one), a wrong type, a value out
        of its limits or choices, a missing required key, or a failed :meth:`Config.check`
    """
    return _build(cls, data, _At(where, source))


def _build(cls: type[C], data: Any, at: _At) -> C:
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise _type_error(data, cls, at, "")
    specs = {item.name: item for item in fields(cls)}  # type: ignore[arg-type]
    check_keys(data, specs, at.place())
    hints = _hints(cls)
    kwargs = {
        key: _check(value, hints[key], specs[key].metadata, at.child(key))
        for key, value in data.items()
    }
    for name, item in specs.items():
        required = item.default is MISSING and item.default_factory is MISSING
        if required and item.init and name not in kwargs:
            what = item.metadata.get("help")
            raise ConfigError(
                f"{at.place()} needs the key '{name}'" + (f" ({what})" if what else "") + "."
            )
    return cls(**kwargs)


def validate(config: Any) -> None:
    """Check every field of the dataclass instance ``config`` against its type hint and
    metadata; a nested mapping becomes its config and a list or mapping a fresh copy."""
    hints = _hints(type(config))
    for item in fields(config):
        value = getattr(config, item.name)
        checked = _check(value, hints[item.name], item.metadata, _At(item.name))
        if checked is not value:
            object.__setattr__(config, item.name, checked)


def _check(value: Any, hint: Any, meta: Mapping[str, Any], at: _At) -> Any:
    """``value`` converted to ``hint`` (nested configs built) and checked against ``meta``."""
    value = _convert(value, hint, at, meta)
    _check_limits(value, meta, at)
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def _convert(value: Any, hint: Any, at: _At, meta: Mapping[str, Any]) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        arm = next((arg for arg in args if _matches(value, arg)), None)
        if arm is None:
            raise _type_error(value, hint, at, meta)
        return _convert(value, arm, at, meta)
    if origin is Literal:
        if value not in args:
            raise _unknown_choice(value, [str(arg) for arg in args], None, at)
        return value
    if dataclasses.is_dataclass(hint):
        if value is None or not (isinstance(value, (hint, Mapping))):
            raise _type_error(value, hint, at, meta)
        return _build(hint, value, at)  # type: ignore[arg-type]
    if not _matches(value, hint):
        raise _type_error(value, hint, at, meta)
    if origin is list and args:
        return [_convert(item, args[0], at.child(i), meta) for i, item in enumerate(value)]
    if origin is dict and args:
        for key in value:
            if not isinstance(key, str):
                raise ConfigError(f"{at.key(meta)} must have names as keys, got {key!r}.{_s(meta)}")
        return {key: _convert(item, args[1], at.child(key), meta) for key, item in value.items()}
    return value


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the outer shape of ``hint`` (elements are checked later)."""
    origin = get_origin(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin in (Union, types.UnionType):
        return any(_matches(value, arg) for arg in get_args(hint))
    if origin is Literal:
        return isinstance(value, str) and value in get_args(hint)
    if dataclasses.is_dataclass(hint):
        return isinstance(value, (hint, Mapping))  # type: ignore[arg-type]
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is dict:
        return isinstance(value, Mapping)
    return isinstance(value, origin or hint)


def _check_limits(value: Any, meta: Mapping[str, Any], at: _At) -> None:
    if meta.get("nonempty") and isinstance(value, (list, Mapping, str)) and not value:
        raise ConfigError(f"{at.key(meta)} must not be empty, got {value!r}.{_s(meta)}")
    for place, leaf in _leaves(value, at):
        if isinstance(leaf, str) and "choices" in meta:
            valid = meta["choices"]
            valid = list(valid() if callable(valid) else valid)
            if leaf not in valid:
                raise _unknown_choice(leaf, valid, meta.get("kind"), place)
        if isinstance(leaf, (int, float)) and not isinstance(leaf, bool):
            expected = limits_text(meta)
            if expected and not _within(leaf, meta):
                raise ConfigError(f"{place.key(meta)} must be {expected}, got {leaf!r}.{_s(meta)}")


def _leaves(value: Any, at: _At) -> Iterator[tuple[_At, Any]]:
    """The scalars of ``value``, inside lists and mappings (not inside nested configs)."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, at.child(i))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _leaves(item, at.child(key))
    elif not dataclasses.is_dataclass(value):
        yield at, value


def _unknown_choice(value: Any, valid: list[str], kind: str | None, at: _At) -> ConfigError:
    """``Unknown memory kind 'lstm' in agent_kwargs.modules.memory.kind. Did you mean ...``"""
    kind = kind or at.path.rsplit(".", 1)[-1]
    top_level = "." not in at.path and at.path in kind.split()  # "algo", "on_divergence"
    where = at.source if top_level else at.place()
    return unknown_name(kind, str(value), valid, where=where)


def _within(number: float, meta: Mapping[str, Any]) -> bool:
    if meta.get("finite") and not math.isfinite(number):
        return False
    low, high = meta.get("min"), meta.get("max")
    if low is not None and not (number > low if meta.get("exclusive_min") else number >= low):
        return False
    return high is None or (number < high if meta.get("exclusive_max") else number <= high)


def limits_text(meta: Mapping[str, Any]) -> str:
    """``">= 1"``, ``"in (0, 1]"``, ``"a finite number >= 0"`` ... (``""``: no limits)."""
    low, high = meta.get("min"), meta.get("max")
    if low is not None and high is not None:
        left = "(" if meta.get("exclusive_min") else "["
        right = ")" if meta.get("exclusive_max") else "]"
        text = f"in {left}{low}, {high}{right}"
    elif low is not None:
        text = f"{'>' if meta.get('exclusive_min') else '>='} {low}"
    elif high is not None:
        text = f"{'<' if meta.get('exclusive_max') else '<='} {high}"
    else:
        text = ""
    if meta.get("finite"):
        return f"a finite number {text}".strip()
    return text


def _type_error(value: Any, hint: Any, at: _At, meta: Mapping[str, Any]) -> ConfigError:
    got = "null" if value is None else f"{type(value).__name__} {value!r}"
    return ConfigError(f"{at.key(meta)} must be {type_name(hint)}, got {got}.{_s(meta)}")


def _s(meta: Mapping[str, Any]) -> str:
    """The field's ``hint``, as a sentence after the error."""
    return f" {meta['hint']}" if meta.get("hint") else ""


def type_name(hint: Any) -> str:
    """A type hint in words: ``int or a list of int``, ``a mapping (keys: kind, units)``."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return "anything"
    if hint is type(None):
        return "null"
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(arg) for arg in args)
    if origin is Literal:
        return "one of " + ", ".join(str(arg) for arg in args)
    if dataclasses.is_dataclass(hint):
        return f"a mapping (keys: {', '.join(item.name for item in fields(hint))})"
    if origin is list:
        return f"a list of {type_name(args[0])}" if args else "a list"
    if origin is dict:
        if not args or args[1] is Any:
            return "a mapping"
        return f"a mapping of names to {type_name(args[1])}"
    if hint is float:
        return "a number"
    return getattr(hint, "__name__", str(hint))


# -- help ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldHelp:
    """One key of a config as :func:`describe` lists it."""

    key: str
    type: str
    default: Any
    limits: str
    help: str


def describe(cls: type, prefix: str = "") -> list[FieldHelp]:
    """Every key of the config ``cls``, nested configs' keys as dotted paths after theirs."""
    rows = []
    hints = _hints(cls)
    for item in fields(cls):
        hint, meta = hints[item.name], item.metadata
        key = f"{prefix}{item.name}"
        if item.default is not MISSING:
            default = item.default
        elif item.default_factory is not MISSING:
            default = item.default_factory()
        else:
            default = MISSING
        if dataclasses.is_dataclass(default):
            default = "{...}"
        limits = limits_text(meta)
        if "choices" in meta:
            valid = meta["choices"]
            limits = "one of " + ", ".join(sorted(valid() if callable(valid) else valid))
        rows.append(
            FieldHelp(key, type_name(hint), "required" if default is MISSING else default,
                      limits, meta.get("help", ""))
        )  # fmt: skip
        args = get_args(hint)
        if get_origin(hint) is dict and args and dataclasses.is_dataclass(args[1]):
            rows.extend(describe(args[1], f"{key}.<name>."))
        nested = [arg for arg in (hint, *args) if dataclasses.is_dataclass(arg)]
        if nested:
            rows.extend(describe(nested[0], f"{key}."))
    return rows


def help_text(cls: type, width: int = 100) -> str:
    """:func:`describe` as indented plain text (for ``--help``): one paragraph per key."""
    lines = []
    for row in describe(cls):
        shown = "" if row.default == "{...}" else f"default {_yaml(row.default)}"
        facts = [row.type, row.limits, shown]
        head = f"  {row.key} ({', '.join(fact for fact in facts if fact)})"
        text = f"{head}: {row.help}" if row.help else head
        lines += textwrap.wrap(text, width, subsequent_indent="      ")
    return "\n".join(lines)


def _yaml(value: Any) -> str:
    """A default as YAML spells it: ``null``, ``true``, ``'ppo'``, ``[64, 64]``."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value)


def help_table(cls: type, prefix: str = "") -> str:
    """:func:`describe` as a Markdown table."""
    lines = ["| key | type | default | limits | meaning |", "|---|---|---|---|---|"]
    for row in describe(cls, prefix):
        default = "" if row.default == "{...}" else f"`{_yaml(row.default)}`"
        cells = (f"`{row.key}`", row.type, default, row.limits, row.help)
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)
