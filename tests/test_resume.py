"""Exact resume: N steps, stop, resume for M more == N + M in one go, bitwise, on both paths."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from biocredit.checkpoints import newest_checkpoint
from biocredit.training.multiagent_online import MultiAgentOnlineRun
from biocredit.training.online import OnlineRun
from biocredit.training.resolve import resolve_config
from biocredit.training.run_folder import read_run_config
from biocredit.training.sb3_runner import SB3Run

# constant schedules: a linear schedule would depend on the total, which resume changes here
SB3 = [
    "n_envs=2",
    "eval_episodes=1",
    "algo_kwargs.n_steps=32",
    "algo_kwargs.batch_size=32",
    "algo_kwargs.n_epochs=2",
    "algo_kwargs.learning_rate=0.001",
    "algo_kwargs.clip_range=0.2",
]
AGENT = ["n_envs=2", "eval_episodes=1"]
COMPOSED = [
    *AGENT,
    "agent_kwargs.modules.perception.learner=dfa",
    "agent_kwargs.modules.perception.optimizer=adam",
    "agent_kwargs.modules.world_model.learner=fa",
]

OFF = [
    "eval_episodes=1",
    "algo_kwargs.learning_starts=100",
    "algo_kwargs.batch_size=32",
    "policy_kwargs.net_arch=[16, 16]",
]
PENDULUM = {"env": "Pendulum-v1"}
SPREAD = {"agent": "neuromodulated-ac", "env": "pettingzoo:mpe2.simple_spread_v3"}
TAG = {"agent": "neuromodulated-ac", "env": "pettingzoo:mpe2.simple_tag_v3"}
TAG_GROUPS = (
    "multiagent={scheme: independent, groups: {predators: {agents: 'adversary_*', learner: "
    "hebbian3f}, prey: {agents: agent_0, learner: dfa, agent_kwargs: {modules: {policy: {actor: "
    "{optimizer: adam}}}}}}}"
)

# name: (flags, overrides, run class, (total steps, steps before the stop))
CASES = {
    "ppo-bp": ({"learner": "bp"}, SB3, SB3Run, (1280, 640)),
    "ppo-dfa": ({"learner": "dfa"}, SB3, SB3Run, (1280, 640)),
    "ppo-pc-learned": (
        {"learner": "pc"},
        [*SB3, "learner_kwargs.feedback=learned"],
        SB3Run,
        (1280, 640),
    ),
    "ppo-fa-pendulum": ({"learner": "fa", "env": "InvertedPendulum-v5"}, SB3, SB3Run, (1280, 640)),
    "ppo-dfa-normalized": (
        {"learner": "dfa", "env": "InvertedPendulum-v5"},
        [*SB3, "normalize=true"],  # observation and return statistics
        SB3Run,
        (1280, 640),
    ),
    "a2c-dfa": (
        {"learner": "dfa", "algo": "a2c"},
        ["n_envs=2", "eval_episodes=1", "algo_kwargs.learning_rate=0.001"],
        SB3Run,
        (1280, 640),
    ),
    "ppo-dfa-ff-extractor": (
        {"learner": "dfa"},
        [
            *SB3,
            "policy_kwargs.features_extractor_class=BioFeaturesExtractor",
            "policy_kwargs.features_extractor_kwargs={learner: ff, hidden: [8], features_dim: 6, "
            "optimizer: adam}",  # the bank of observations, the RNG, the extractor's Adam state
        ],
        SB3Run,
        (1280, 640),
    ),
    "sac-dfa": ({"learner": "dfa", "algo": "sac", **PENDULUM}, OFF, SB3Run, (400, 200)),
    "sac-dfa-normalized-obs": (
        {"learner": "dfa", "algo": "sac", **PENDULUM},
        [*OFF, "normalize={norm_obs: true, norm_reward: false}"],
        SB3Run,
        (400, 200),
    ),
    "td3-fa": ({"learner": "fa", "algo": "td3", **PENDULUM}, OFF, SB3Run, (400, 200)),
    "dqn-dfa": (
        {"learner": "dfa", "algo": "dqn"},
        [
            *OFF,
            "algo_kwargs.train_freq=4",
            "algo_kwargs.gradient_steps=4",
            "algo_kwargs.target_update_interval=50",
            # epsilon decays over a fraction of the run's *total* steps (SB3), so the halves
            # match the whole run only if it is done before learning_starts in both
            "algo_kwargs.exploration_fraction=0.1",
        ],
        SB3Run,
        (800, 400),
    ),
    "neuromodulated-ac": ({"agent": "neuromodulated-ac"}, AGENT, OnlineRun, (1280, 640)),
    "neuromodulated-ac-pendulum": (
        {"agent": "neuromodulated-ac", "env": "InvertedPendulum-v5"},
        AGENT,
        OnlineRun,
        (1280, 640),
    ),
    "composed-agent-adam": ({"agent": "neuromodulated-ac"}, COMPOSED, OnlineRun, (1280, 640)),
    "ff-perception-adam": (
        {"agent": "neuromodulated-ac"},
        [
            *AGENT,
            "agent_kwargs.modules.perception.learner=ff",
            "agent_kwargs.modules.perception.optimizer=adam",
        ],
        OnlineRun,
        (1280, 640),
    ),
    "eqprop-memory-tmaze": (
        {"agent": "eqprop-memory-ac", "env": "CuedTMaze-v0"},
        [*AGENT, "agent_kwargs.modules.memory.optimizer=adam"],
        OnlineRun,
        (1280, 650),  # the stop falls mid-episode: the memory state must come back
    ),
    # PettingZoo teams: 2 copies x 3 agents = 6 agent steps per env step, episodes of 25 env
    # steps; the stop falls mid-episode (env step 70 of 100, 20 into the third episode), so each
    # env copy must come back by replaying its episode's actions from the RNG state its reset
    # started from
    "team-simple-spread-shared": (SPREAD, AGENT, MultiAgentOnlineRun, (600, 420)),
    # 2 copies x 4 agents: independent predators by hebbian3f, a dfa prey with Adam
    "team-simple-tag-groups": (TAG, [*AGENT, TAG_GROUPS], MultiAgentOnlineRun, (800, 560)),
}


def tensors(run_dir):
    state = {}
    for name in ("model", "resume", "normalize"):
        path = newest_checkpoint(run_dir) / f"{name}.safetensors"
        if path.is_file():
            state.update({f"{name}/{k}": v for k, v in load_file(str(path)).items()})
    return state


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_resume_is_bitwise_exact(name, tmp_path):
    flags, overrides, run_class, (total, first) = CASES[name]  # PPO: whole rollouts

    def config(out, steps):
        return resolve_config(
            flags={**flags, "steps": steps, "seed": 3, "out": str(out)}, overrides=overrides
        )

    run_class.start(config(tmp_path / "one", total)).run(progress=False)
    run_class.start(config(tmp_path / "two", first)).run(progress=False)
    resumed = read_run_config(tmp_path / "two")
    resumed.steps = total
    summary = run_class.resume(resumed, tmp_path / "two").run(progress=False)
    assert summary["steps"] == total
    one, two = tensors(tmp_path / "one"), tensors(tmp_path / "two")
    assert one.keys() == two.keys()
    different = [key for key in one if not torch.equal(one[key], two[key])]
    assert not different, different
    # and the check can fail: an unresumed half-length run differs
    half = tmp_path / "half"
    run_class.start(config(half, first)).run(progress=False)
    assert not all(torch.equal(one[k], v) for k, v in tensors(half).items())


def _interrupt_and_resume(tmp_path, args):
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "biocredit.cli",
        "train",
        *args,
        "--out",
        str(out),
        "--no-progress",
        "--steps",
        "100000000",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "progress.csv").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert f"Resume with: biocredit train --resume {out}" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["final_return_mean"] is None
    stopped_at = summary["steps"]
    rows_before = len((out / "progress.csv").read_text().splitlines())
    more = subprocess.run(
        [
            sys.executable,
            "-m",
            "biocredit.cli",
            "train",
            "--resume",
            str(out),
            "--no-progress",
            "--steps",
            str(stopped_at + 4096),  # past at least one more log row, for any run kind
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert more.returncode == 0, more.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "done" and summary["steps"] >= stopped_at + 4096
    rows = (out / "progress.csv").read_text().splitlines()
    assert len(rows) > rows_before and rows[0].count(",") == rows[-1].count(",")  # one table


@pytest.mark.slow
def test_sigint_checkpoints_an_online_run_that_resumes(tmp_path):
    _interrupt_and_resume(tmp_path, ["--agent", "neuromodulated-ac", "--n-envs", "2"])


@pytest.mark.slow
def test_sigint_checkpoints_a_ppo_run_that_resumes(tmp_path):
    _interrupt_and_resume(tmp_path, ["--learner", "dfa", "--set", "eval_episodes=1"])


STOP_AS_THE_LOG_APPEARS = """
import os, signal, sys
import biocredit.training.{module} as runner
configure = runner.configure
def configure_then_stop(*args, **kwargs):
    made = configure(*args, **kwargs)  # progress.csv exists from here on
    os.kill(os.getpid(), signal.SIGTERM)
    return made
runner.configure = configure_then_stop
from biocredit.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "args"),
    [("sb3_runner", ["--learner", "dfa"]), ("stepped", ["--agent", "neuromodulated-ac"])],
)
def test_a_stop_as_soon_as_progress_csv_exists_is_caught(tmp_path, module, args):
    """A stop watching for ``progress.csv`` (as a bench's tests and scripts do) meets a run
    whose signal handlers are already in place: it checkpoints instead of dying."""
    out = tmp_path / "run"
    code = STOP_AS_THE_LOG_APPEARS.format(module=module)
    command = [sys.executable, "-c", code, "train", *args, "--out", str(out), "--no-progress"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 130, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and newest_checkpoint(out) is not None


@pytest.mark.slow
def test_resume_refuses_other_changes(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "biocredit.cli",
            "train",
            "--resume",
            str(tmp_path),
            "--learner",
            "fa",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Only --steps (a new total) is allowed with --resume" in result.stderr
