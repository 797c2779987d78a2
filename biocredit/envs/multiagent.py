"""PettingZoo environments by name: ``pettingzoo:<module path>`` or ``pettingzoo:<registry id>``.

    pettingzoo:mpe2.simple_spread_v3          a module with ``parallel_env`` (or only ``env``)
    pettingzoo:pettingzoo.butterfly.pistonball_v6
    pettingzoo:butterfly/pistonball-v6        an id of PettingZoo's own registry

Every env is handed out through the Parallel API. An env that only has the AEC API is built
with ``env(**env_kwargs)``, optionally wrapped in PettingZoo's AEC-only wrappers
(``aec_wrappers``), and converted with PettingZoo's ``aec_to_parallel``; turn-based AEC envs
(chess, go ...) cannot be converted and are refused. The AEC-only wrappers are refused on an
env that has a native Parallel API: it is never built as an AEC env, so they would not apply.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Sequence
from typing import Any

from biocredit.errors import ConfigError, unknown_name

PREFIX = "pettingzoo:"
EXTRA_HINT = 'pip install "biocredit[multiagent]"'
EXTRA_PACKAGES = ("mpe2",)  # packages the biocredit[multiagent] extra installs
AEC_WRAPPERS = {
    "clip_out_of_bounds": "ClipOutOfBoundsWrapper",
    "assert_out_of_bounds": "AssertOutOfBoundsWrapper",
}


def is_multiagent(env_id: str) -> bool:
    """Whether ``env_id`` names a PettingZoo env (``pettingzoo:...``)."""
    return env_id.startswith(PREFIX)


def make_parallel_env(
    env_id: str, env_kwargs: dict[str, Any] | None = None, aec_wrappers: Sequence[str] = ()
) -> Any:
    """The PettingZoo ``ParallelEnv`` named ``env_id``, built with ``env_kwargs``."""
    from pettingzoo import AECEnv, ParallelEnv
    from pettingzoo.utils.conversions import aec_to_parallel

    if not is_multiagent(env_id):
        raise ConfigError(
            f"'{env_id}' is not a PettingZoo env id. Name one as pettingzoo:<module>, e.g. "
            "pettingzoo:mpe2.simple_spread_v3, or pettingzoo:<registry id>, e.g. "
            "pettingzoo:butterfly/pistonball-v6."
        )
    for name in aec_wrappers:
        if name not in AEC_WRAPPERS:
            raise unknown_name("AEC wrapper", name, AEC_WRAPPERS)
    kwargs = dict(env_kwargs or {})
    parallel_fn, aec_fn = _creators(env_id[len(PREFIX) :])
    if parallel_fn is not None and aec_wrappers:
        raise ConfigError(
            f"multiagent.aec_wrappers {list(aec_wrappers)} are AEC-only options, but '{env_id}' "
            "has a native Parallel API and is built through it, never as an AEC env. Remove "
            "multiagent.aec_wrappers (they apply only to envs that have just the AEC API)."
        )
    try:
        env = parallel_fn(**kwargs) if parallel_fn is not None else aec_fn(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"env_kwargs {kwargs!r} do not fit '{env_id}': {exc}.") from None
    except ImportError as exc:  # a deprecated env version, or a dependency of the env itself
        raise ConfigError(f"'{env_id}' cannot be built: {exc}.") from None
    if isinstance(env, AECEnv):
        env = _aec_as_parallel(env, env_id, aec_wrappers, aec_to_parallel)
    if not isinstance(env, ParallelEnv):
        raise ConfigError(
            f"'{env_id}' built a {type(env).__name__}, not a PettingZoo ParallelEnv or AECEnv. "
            "Name a PettingZoo env module, e.g. pettingzoo:mpe2.simple_spread_v3."
        )
    return env


def check_multiagent_env_id(env_id: str) -> None:
    """Raise a :class:`ConfigError` if ``env_id`` names no importable PettingZoo env."""
    _creators(env_id[len(PREFIX) :])


def _aec_as_parallel(env: Any, env_id: str, wrappers: Sequence[str], convert: Any) -> Any:
    from pettingzoo.utils import wrappers as pz_wrappers

    for name in wrappers:
        env = getattr(pz_wrappers, AEC_WRAPPERS[name])(env)
    try:
        return convert(env)
    except AssertionError:
        raise ConfigError(
            f"'{env_id}' is a turn-based AEC env (not marked is_parallelizable): its agents act "
            "one after another, so it has no Parallel form for simultaneous learners. Pick an "
            "env whose agents act together, e.g. pettingzoo:mpe2.simple_spread_v3."
        ) from None


def _creators(target: str) -> tuple[Any, Any]:
    """``(parallel_fn, aec_fn)`` for a registry id or a module path; either may be ``None``."""
    if "/" in target:
        return _registry_creators(target)
    try:
        module = importlib.import_module(target)
    except ModuleNotFoundError as exc:
        raise _import_error(target, exc) from None
    except ImportError as exc:  # e.g. a deprecated PettingZoo version of the env
        raise ConfigError(f"Cannot import '{target}': {exc}.") from None
    parallel_fn, aec_fn = getattr(module, "parallel_env", None), getattr(module, "env", None)
    if not callable(parallel_fn) and not callable(aec_fn):
        raise ConfigError(
            f"'{target}' is not a PettingZoo env module: it has neither parallel_env() nor "
            "env(). Name one, e.g. pettingzoo:mpe2.simple_spread_v3."
        )
    return (parallel_fn if callable(parallel_fn) else None), aec_fn


def _registry_creators(target: str) -> tuple[Any, Any]:
    import pettingzoo

    def make(env_type: str) -> Any:
        return lambda **kwargs: pettingzoo.make(env_type, target, **kwargs)

    if target in pettingzoo.parallel_registry:
        return make("parallel"), None
    if target in pettingzoo.aec_registry:
        return None, make("aec")
    raise unknown_name(
        "PettingZoo env",
        target,
        [*pettingzoo.parallel_registry, *pettingzoo.aec_registry],
        "List them with: python -c 'import pettingzoo; pettingzoo.pprint_registry()'.",
    )


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ValueError, ImportError):  # e.g. blocked in sys.modules
        return False


def _import_error(target: str, exc: ModuleNotFoundError) -> ConfigError:
    top, (parent, _, name) = target.split(".")[0], target.rpartition(".")
    if not _installed(top):
        if top in EXTRA_PACKAGES:
            return ConfigError(
                f"'{target}' needs the package '{top}', which is not installed. Install the "
                f"multi-agent extra: {EXTRA_HINT}."
            )
        return ConfigError(
            f"No module named '{top}' for the PettingZoo env '{target}'. Check the spelling, "
            f"or install the package that provides it (the MPE envs: {EXTRA_HINT})."
        )
    missing = exc.name or ""
    if missing == target and parent:
        package = importlib.import_module(parent)
        choices = [m.name for m in pkgutil.iter_modules(getattr(package, "__path__", []))]
        return unknown_name(f"PettingZoo env module in '{parent}'", name, choices)
    family = target.split(".")[1] if top == "pettingzoo" and "." in target else None
    fix = f'pip install "pettingzoo[{family}]"' if family else f"pip install {missing}"
    return ConfigError(
        f"'{target}' needs the package '{missing}', which is not installed. Install it: {fix}."
    )
