"""The declarative config engine (biocredit/schema.py): types, limits, choices, keys, help."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pytest

from biocredit.errors import ConfigError, UnknownNameError
from biocredit.schema import (
    Config,
    at_least,
    build,
    choice,
    describe,
    help_table,
    in_range,
    option,
    positive,
)


@dataclass
class Layer(Config):
    width: int = at_least(1, 8, help="units")
    activation: str = choice("tanh", ("tanh", "relu", "sigmoid"), kind="activation")


@dataclass
class Net(Config):
    name: str = option(help="required: a name")
    layers: list[Layer] = option([], help="the hidden layers")
    head: Layer | None = option(None, help="an optional output layer")
    lr: float = positive(1e-3, help="learning rate")
    decay: float = in_range(0, 1, 0.5, exclusive_max=True, hint="Try decay: 0.9.")
    gain: float = at_least(0, 0.0, finite=True)
    horizon: int | list[int] = at_least(1, 1, nonempty=True)
    mode: Literal["fast", "exact"] = option("fast", help="speed or exactness")
    extras: dict[str, Any] = option({})
    steps: dict[str, int] = at_least(1, {})

    def check(self) -> None:
        self.check_head_is_wider()

    def check_head_is_wider(self) -> None:
        if self.head is not None and self.layers and self.head.width < self.layers[-1].width:
            raise ConfigError("head must be at least as wide as the last layer.")


def net(**data: Any) -> Net:
    return build(Net, {"name": "n", **data}, where="net", source="the test")


def error(make: Any, *args: Any, **kwargs: Any) -> str:
    """The message of the :class:`ConfigError` that ``make(*args, **kwargs)`` raises."""
    with pytest.raises(ConfigError) as caught:
        make(*args, **kwargs)
    return str(caught.value)


def test_nested_configs_are_built_from_mappings():
    config = net(layers=[{"width": 4}, {"activation": "relu"}], head={"width": 16})
    assert config.layers == [Layer(4), Layer(8, "relu")]
    assert config.head == Layer(16)
    assert net().head is None and net().layers == []
    assert Net(name="x", head={"width": 2}).head == Layer(2)  # direct construction too


def test_defaults_are_fresh_per_instance():
    first, second = net(), net()
    first.extras["k"] = 1
    assert second.extras == {}


def test_unions_optional_and_list_elements():
    assert net(horizon=3).horizon == 3
    assert net(horizon=[3, 5]).horizon == [3, 5]
    assert "Key 'net.horizon[1]' in the test must be int, got float 2.5." in error(
        net, horizon=[3, 2.5]
    )
    assert "'net.horizon' in the test must be int or a list of int, got str '3'" in error(
        net, horizon="3"
    )
    assert "'net.head' (an optional output layer) in the test must be a mapping (keys: width, " \
        "activation) or null, got list [1]." in error(net, head=[1])  # fmt: skip
    message = "Key 'net.layers[1].width' (units) in the test must be int, got str 'wide'."
    assert message in error(net, layers=[{}, {"width": "wide"}])
    message = "Key 'net.lr' (learning rate) in the test must be a number, got bool True."
    assert message in error(net, lr=True)  # a bool is no number
    assert net(lr=1).lr == 1  # an int is a number


def test_literal_and_choices_name_the_closest_valid_one():
    message = error(net, mode="exakt")
    assert message.startswith("Unknown mode 'exakt' in net.mode in the test. Did you mean 'exact'?")
    assert "Valid choices: exact, fast." in message
    with pytest.raises(UnknownNameError) as caught:
        net(layers=[{"activation": "rleu"}])
    assert str(caught.value).startswith(
        "Unknown activation 'rleu' in net.layers[0].activation in the test. Did you mean 'relu'?"
    )


@pytest.mark.parametrize(
    "data, message",
    [
        ({"lr": 0}, "Key 'net.lr' (learning rate) in the test must be > 0, got 0."),
        ({"lr": -1e-3}, "must be > 0, got -0.001."),
        ({"decay": 1.0}, "'net.decay' in the test must be in [0, 1), got 1.0. Try decay: 0.9."),
        ({"decay": -0.1}, "must be in [0, 1), got -0.1"),
        ({"gain": float("inf")}, "must be a finite number >= 0, got inf"),
        ({"gain": float("nan")}, "must be a finite number >= 0, got nan"),
        ({"horizon": 0}, "'net.horizon' in the test must be >= 1, got 0"),
        ({"horizon": [2, 0]}, "'net.horizon[1]' in the test must be >= 1, got 0"),
        ({"horizon": []}, "'net.horizon' in the test must not be empty, got []"),
        ({"steps": {"ppo": 0}}, "'net.steps.ppo' in the test must be >= 1, got 0"),
        ({"layers": [{"width": 0}]}, "'net.layers[0].width' (units) in the test must be >= 1"),
    ],
)
def test_limits_come_from_field_metadata(data, message):
    assert message in error(net, **data)


def test_limits_hold_on_direct_construction_too():
    assert "Key 'lr' (learning rate) must be > 0, got 0." in error(Net, name="x", lr=0)
    assert in_range(0, 1, 0.5).metadata["max"] == 1


def test_unknown_and_missing_keys():
    message = (
        "Unknown key 'lrr' in net in the test. Did you mean 'lr'? Valid keys: name, layers, head"
    )
    assert message in error(net, lrr=1)
    message = "Unknown key 'widht' in net.layers[0] in the test. Did you mean 'width'?"
    assert message in error(net, layers=[{"widht": 3}])
    message = "net in the test needs the key 'name' (required: a name)."
    assert message in error(build, Net, {}, where="net", source="the test")
    assert "Unknown key 'x' in the config." in error(build, Layer, {"x": 1})


def test_cross_field_checks_run_after_the_fields():
    assert "head must be at least as wide" in error(net, layers=[{"width": 8}], head={"width": 4})


def test_help_lists_every_key_with_type_default_limits_and_meaning():
    rows = {row.key: row for row in describe(Net)}
    assert rows["lr"].limits == "> 0" and rows["lr"].help == "learning rate"
    assert rows["lr"].default == 1e-3 and rows["lr"].type == "a number"
    assert rows["decay"].limits == "in [0, 1)"
    assert rows["name"].default == "required"
    assert rows["head.width"].limits == ">= 1"  # nested configs' keys as dotted paths
    assert rows["head.activation"].limits == "one of relu, sigmoid, tanh"
    assert rows["horizon"].type == "int or a list of int"
    table = help_table(Net)
    assert "| `lr` | a number | `0.001` | > 0 | learning rate |" in table


def test_every_project_config_describes_itself():
    from biocredit.agents.active_inference_config import ActiveInferenceConfig
    from biocredit.agents.config import AgentConfig
    from biocredit.agents.team import MultiAgentConfig
    from biocredit.training.bench_spec import BenchSpec
    from biocredit.training.config import RunConfig

    for cls in (RunConfig, AgentConfig, ActiveInferenceConfig, MultiAgentConfig, BenchSpec):
        rows = describe(cls)
        assert rows and all(row.help for row in rows), cls
    keys = {row.key for row in describe(AgentConfig)}
    assert "modules.memory.steps" in keys and "modules.policy.actor.optimizer" in keys


def test_one_optimizer_registry():
    import torch

    from biocredit.agents.config import NetworkConfig
    from biocredit.optimizers import OPTIMIZERS, optimizer_class

    assert set(OPTIMIZERS) == {"sgd", "adam", "adamw", "rmsprop"}
    for name in OPTIMIZERS:
        assert NetworkConfig(optimizer=name).optimizer == name
    assert optimizer_class("adamw") is torch.optim.AdamW
    message = "Unknown optimizer_class 'sgdd'. Did you mean 'sgd'?"
    assert message in error(optimizer_class, "sgdd", "optimizer_class")


def test_train_help_lists_the_run_config_keys():
    from biocredit.cli import _parser
    from biocredit.schema import help_text
    from biocredit.training.config import RunConfig

    text = help_text(RunConfig)
    assert "  steps (int, >= 1, default 100000): env steps" in text
    assert "  out (str or null, default null):" in text
    train = _parser()._subparsers._group_actions[0].choices["train"]
    assert text in train.format_help()
