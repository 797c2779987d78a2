"""The backprop-through-time baseline (``--algo recurrent-ppo``, sb3-contrib's LSTM PPO), policy
options given by name, and benchmark variants that change the algorithm."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from biocredit.checkpoints import newest_checkpoint
from biocredit.errors import ConfigError
from biocredit.training.bench_plan import plan_runs
from biocredit.training.bench_spec import BenchSpec
from biocredit.training.resolve import resolve_config
from biocredit.training.sb3_runner import policy_kwargs

pytest.importorskip("sb3_contrib")


@pytest.mark.slow
def test_recurrent_ppo_trains_from_the_cli_with_an_lstm_of_the_memory_size(tmp_path):
    out = tmp_path / "run"
    args = ["--algo", "recurrent-ppo", "--learner", "bp", "--env", "CuedTMaze-v0"]
    args += ["--steps", "512", "--threads", "1", "--no-progress", "--out", str(out)]
    subprocess.run([sys.executable, "-m", "biocredit.cli", "train", *args], check=True)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["algo"], summary["steps"]) == ("recurrent-ppo", 512)
    assert summary["status"] == "done" and (newest_checkpoint(out) / "model.safetensors").is_file()
    config = resolve_config(flags={"algo": "recurrent-ppo", "learner": "bp", "env": "CuedTMaze-v0"})
    assert config.policy_kwargs["lstm_hidden_size"] == 32  # the eqprop memory's 32 units


@pytest.mark.parametrize(
    "flags, words",
    [
        ({"learner": "dfa"}, ["recurrent-ppo", "'dfa'", "--learner bp"]),
        ({"learner": "bp", "learner_kwargs": {"seed": 1}}, ["with options", "--learner bp"]),
    ],
)
def test_recurrent_ppo_is_backprop_only(flags, words):
    config = resolve_config(flags={"algo": "recurrent-ppo", "env": "CuedTMaze-v0", **flags})
    with pytest.raises(ConfigError) as info:
        policy_kwargs(config)
    for word in words:
        assert word in str(info.value)


def test_optimizer_class_is_given_by_name():
    config = resolve_config(
        flags={"algo": "ppo", "learner": "eqprop"},
        overrides=[
            "policy_kwargs.optimizer_class=sgd",
            "policy_kwargs.optimizer_kwargs.momentum=0.9",
        ],
    )
    assert policy_kwargs(config)["optimizer_class"] is torch.optim.SGD
    bad = resolve_config(flags={"algo": "ppo"}, overrides=["policy_kwargs.optimizer_class=sgdd"])
    with pytest.raises(ConfigError, match=r"optimizer_class 'sgdd'.*'sgd'"):
        policy_kwargs(bad)


def test_a_bench_variant_can_swap_the_agent_for_an_sb3_algorithm(tmp_path):
    spec = BenchSpec(
        name="memory",
        agent="eqprop-memory-ac",
        learners=["fa", "lstm"],
        variants={"lstm": {"algo": "recurrent-ppo", "agent": None, "learner": "bp"}},
        seeds=[0],
        envs={"CuedTMaze-v0": {"threshold": 0.9, "steps": 1000}},
    )
    runs = {label: config for label, config in plan_runs(spec, Path(tmp_path))}
    assert set(runs) == {"bp", "fa", "lstm"}
    assert (runs["fa"].algo, runs["fa"].agent) == ("online", "eqprop-memory-ac")
    assert (runs["lstm"].algo, runs["lstm"].agent, runs["lstm"].learner) == (
        "recurrent-ppo",
        None,
        "bp",
    )
