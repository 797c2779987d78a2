"""Config layers, validation and the RL-Zoo hyperparameter files."""

import pytest

from biocredit.errors import ConfigError
from biocredit.training.config import config_from_dict, parse_override, read_yaml
from biocredit.training.hyperparams import LinearSchedule, schedule, zoo_entry
from biocredit.training.resolve import resolve_config
from biocredit.training.run_folder import default_run_dir


def test_defaults_are_the_readme_run():
    config = resolve_config()
    assert (config.env, config.algo, config.learner, config.steps) == (
        "CartPole-v1",
        "ppo",
        "dfa",
        100_000,
    )
    assert config.n_envs == 8
    assert config.algo_kwargs["n_steps"] == 32 and config.algo_kwargs["learning_rate"] == "lin_1e-3"


def test_layers_in_priority_order(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("learner: fa\nsteps: 5000\nalgo_kwargs: {n_epochs: 3}\n")
    config = resolve_config(path, {"steps": 7000, "seed": None}, ["algo_kwargs.batch_size=64"])
    assert config.learner == "fa"  # file over default
    assert config.steps == 7000  # flag over file
    assert config.seed == 0  # flags left unset do not override
    assert config.algo_kwargs["n_epochs"] == 3  # file merges into the Zoo entry ...
    assert config.algo_kwargs["n_steps"] == 32  # ... which keeps its other keys
    assert config.algo_kwargs["batch_size"] == 64  # --set over everything


def test_zoo_entry_translation():
    entry = zoo_entry("ppo", "CartPole-v1")
    assert entry["n_envs"] == 8 and entry["steps"] == 100_000
    assert "n_envs" not in entry["algo_kwargs"]
    assert zoo_entry("ppo", "NoSuchEnv-v0") == {}


def test_linear_schedule():
    lr = schedule("lin_1e-3", "learning_rate")
    assert isinstance(lr, LinearSchedule)
    assert lr(1.0) == pytest.approx(1e-3) and lr(0.25) == pytest.approx(2.5e-4)
    assert schedule(3e-4, "learning_rate") == 3e-4
    with pytest.raises(ConfigError, match="lin_<start>"):
        schedule("lin_fast", "learning_rate")
    for bad in (-1e-3, 0, float("nan"), float("inf"), "lin_inf", "lin_nan", "lin_-1"):
        with pytest.raises(ConfigError, match="'learning_rate' must be a finite number > 0"):
            schedule(bad, "learning_rate")
    assert schedule(None, "clip_range_vf") is None


@pytest.mark.parametrize(
    "data, match",
    [
        ({"stpes": 10}, "Did you mean 'steps'"),
        ({"steps": "many"}, "must be int"),
        ({"steps": 0}, "Key 'steps' in config must be >= 1, got 0"),
        ({"steps": -5}, "Key 'steps' in config must be >= 1, got -5"),
        ({"seed": 1.5}, "must be int"),
        ({"algo": "ppp"}, "Did you mean 'ppo'"),
        ({"learner_kwargs": [1]}, "must be a mapping, got list"),
        ({"checkpoint_freq": -1}, "checkpoint_freq"),
    ],
)
def test_bad_config_values(data, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(data)


def test_overrides_parse_yaml_values():
    assert parse_override("algo_kwargs.gamma=0.9") == (["algo_kwargs", "gamma"], 0.9)
    assert parse_override("learner=fa") == (["learner"], "fa")


@pytest.mark.parametrize(
    "raw, expected",
    [("1e-12", 1e-12), ("5E+2", 500.0), ("-2.5e3", -2500.0), ("+1_0e1", 100.0), ("3", 3)],
)
def test_numbers_in_scientific_notation_are_numbers(raw, expected, tmp_path):
    """PyYAML reads ``1e-12`` (no dot) as a string; overrides and config files must not."""
    path, value = parse_override(f"learner_kwargs.beta={raw}")
    assert (path, value, type(value)) == (["learner_kwargs", "beta"], expected, type(expected))
    config_file = tmp_path / "run.yaml"
    config_file.write_text(f"learner_kwargs: {{beta: {raw}}}\n")
    assert read_yaml(config_file)["learner_kwargs"]["beta"] == expected


def test_number_like_words_stay_strings():
    for raw in ("1e", "e5", "1e-3x", "lin_1e-3", "1.0.2"):
        assert parse_override(f"x={raw}")[1] == raw


def test_an_override_without_an_equals_sign_is_refused():
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("steps")


def test_bad_config_files(tmp_path):
    with pytest.raises(ConfigError, match="Cannot read"):
        resolve_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("steps: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        resolve_config(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        resolve_config(listing)


def test_default_run_folders_name_the_algorithm_or_the_agent(tmp_path):
    ppo = resolve_config(flags={"learner": "fa", "seed": 3})
    assert default_run_dir(ppo, tmp_path) == tmp_path / "CartPole-v1" / "ppo-fa" / "seed3"
    agent = resolve_config(flags={"agent": "neuromodulated-ac"})
    assert default_run_dir(agent, tmp_path).parent.name == "neuromodulated-ac"
    with_learner = resolve_config(flags={"agent": "neuromodulated-ac", "learner": "bp"})
    assert default_run_dir(with_learner, tmp_path).parent.name == "neuromodulated-ac-bp"
    taken = default_run_dir(ppo, tmp_path)
    taken.mkdir(parents=True)
    (taken / "config.yaml").write_text("env: CartPole-v1\n")
    assert default_run_dir(ppo, tmp_path).name == "seed3-2"
