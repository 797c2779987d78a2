"""What an SB3 or Gymnasium user meets: `biocredit export` to an SB3 zip that `PPO.load` reads,
our envs under the `biocredit/` namespace on `import biocredit`, a progress bar that ends at the
steps run, full-width tables in a pipe, and a reader that closes the pipe early."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from stable_baselines3 import DQN, PPO

from biocredit.training.evaluation import load_run_policy
from biocredit.training.resolve import resolve_config

CLI = [sys.executable, "-m", "biocredit.cli"]
PIPED = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # as in `biocredit ... | less`


def cli(*args, check=True):
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, env=PIPED)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def train(out, *flags):
    cli("train", "--steps", "100", "--out", str(out), "--set", "n_envs=1", "--set",
        "eval_episodes=1", *flags)  # fmt: skip
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("algo", "loader", "flags"),
    [
        ("ppo", PPO, ["--set", "algo_kwargs={n_steps: 64, batch_size: 64, n_epochs: 1}"]),
        (
            "dqn",
            DQN,
            [
                "--set",
                "algo_kwargs={learning_starts: 10, train_freq: 4}",
                "--set",
                "algo_kwargs.gradient_steps=8",
            ],
        ),
    ],
)
def test_export_then_sb3_load_predicts_the_runs_actions(tmp_path, algo, loader, flags):
    run = train(tmp_path / "run", "--algo", algo, *flags)
    result = cli("export", str(run), "--out", str(tmp_path / "model.zip"))
    assert f"{loader.__name__}.load" in result.stdout and "pickles" in result.stdout
    model = loader.load(tmp_path / "model.zip", device="cpu")
    policy, meta = load_run_policy(run)
    assert model.num_timesteps == meta["num_timesteps"]
    space = model.observation_space
    space.seed(0)
    observations = np.stack([space.sample() for _ in range(256)])
    ours, _ = policy.predict(observations, deterministic=True)
    theirs, _ = model.predict(observations, deterministic=True)
    np.testing.assert_array_equal(theirs, ours)
    assert len(set(ours.tolist())) > 1  # the observations tell actions apart


@pytest.mark.slow
def test_export_help_says_the_zip_pickles():
    help_text = " ".join(cli("export", "--help").stdout.split())
    assert "SB3's zip format pickles" in help_text and "never unpickles" in help_text


def test_our_envs_register_under_the_namespace_on_import_biocredit():
    code = (
        "import sys, gymnasium as gym, biocredit\n"
        "for name in ('CuedTMaze-v0', 'MaskedCartPole-v1'):\n"
        "    assert gym.make('biocredit/' + name).spec.id == 'biocredit/' + name\n"
        "    assert gym.make(name).spec.id == name  # the plain ids specs use\n"
        "print('stable_baselines3' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"  # registering does not load SB3


def test_a_namespaced_id_gets_the_plain_ids_hyperparameters():
    plain = resolve_config(flags={"algo": "recurrent-ppo", "learner": "bp", "env": "CuedTMaze-v0"})
    named = resolve_config(
        flags={"algo": "recurrent-ppo", "learner": "bp", "env": "biocredit/CuedTMaze-v0"}
    )
    assert named.algo_kwargs == plain.algo_kwargs != {}


@pytest.mark.slow
def test_the_progress_bar_ends_at_the_steps_sb3_runs(tmp_path):
    out = tmp_path / "run"  # 100 steps asked, rollouts of 64: SB3 runs 128
    result = subprocess.run(
        [*CLI, "train", "--steps", "100", "--out", str(out), "--set", "n_envs=1",
         "--set", "eval_episodes=1",
         "--set", "algo_kwargs={n_steps: 64, batch_size: 64, n_epochs: 1}"],
        capture_output=True, text=True, timeout=300, env=PIPED,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    bar = result.stdout.splitlines()[0]
    assert "128/128" in bar and "/100" not in bar
    assert json.loads((out / "summary.json").read_text())["steps"] == 128


@pytest.mark.slow
def test_piped_tables_are_not_cut_at_80_columns():
    lines = cli("learners").stdout.splitlines()
    header = next(line for line in lines if line.strip().startswith("learner"))
    assert header.split()[-3:] == ["Time", "Ctrl", "=BP"]
    assert len(header) > 80


@pytest.mark.slow
def test_a_reader_that_closes_the_pipe_early_gets_no_traceback():
    process = subprocess.Popen(
        [*CLI, "learners", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=PIPED
    )
    process.stdout.close()  # as `| head -c 10` does once it has its bytes
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141, stderr  # 128 + SIGPIPE, as for `yes | head`
    assert stderr == ""
