"""The `biocredit` command as a user runs it: a subprocess."""

import json
import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest

from biocredit.checkpoints import newest_checkpoint
from biocredit.learners import list_learners

pytestmark = pytest.mark.slow  # every test starts the command as a process (~2 s each)

TINY = ["--steps", "512", "--set", "algo_kwargs.n_epochs=2", "--set", "eval_episodes=2"]


def biocredit(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "biocredit.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=240,
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    result = biocredit(
        "train", "--learner", "fa", "--seed", "3", "--out", str(out), "--no-progress", *TINY
    )
    assert result.returncode == 0, result.stderr
    return out


def test_train_writes_the_run_folder(run_dir):
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.yaml", "progress.csv", "summary.json", "checkpoints"} <= names
    assert any(name.startswith("events.out.tfevents") for name in names)
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["000001-step512"]
    assert {p.name for p in newest_checkpoint(run_dir).iterdir()} == {
        "model.safetensors",
        "resume.safetensors",
        "checkpoint.json",
        "manifest.json",
    }
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in (
        "env",
        "algo",
        "learner",
        "seed",
        "steps",
        "wall_time_s",
        "steps_per_s",
        "final_return_mean",
        "final_return_std",
    ):
        assert key in summary
    assert (summary["learner"], summary["seed"], summary["steps"]) == ("fa", 3, 512)


def test_tensorboard_events_are_readable(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    assert "rollout/ep_rew_mean" in events.Tags()["scalars"]


def test_eval_reads_the_run_back(run_dir):
    result = biocredit("eval", str(run_dir), "--episodes", "3", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["learner"] == "fa" and report["episodes"] == 3
    assert len(report["returns"]) == 3
    summary = json.loads((run_dir / "summary.json").read_text())
    assert report["trained_steps"] == summary["steps"]


def test_eval_is_deterministic_and_matches_training_eval(run_dir):
    """The safetensors checkpoint restores the policy exactly: same seed, same returns."""
    summary = json.loads((run_dir / "summary.json").read_text())
    result = biocredit("eval", str(run_dir), "--episodes", "2", "--json")
    assert json.loads(result.stdout)["return_mean"] == summary["final_return_mean"]


def test_learners_json_lists_every_learner():
    result = biocredit("learners", "--json")
    assert result.returncode == 0
    listed = json.loads(result.stdout)
    assert sorted({row["learner"] for row in listed["learners"]}) == list_learners()
    rows = {row["name"]: row for row in listed["learners"]}
    assert set(list_learners()) <= set(rows)  # every learner's defaults have a row of their own
    assert all("p2_weight_transport" in row for row in listed["learners"])
    # flags are computed per configuration: pc's defaults avoid weight transport, its
    # fixed-prediction symmetric variant is backprop and says so
    assert rows["pc"]["p2_weight_transport"] and not rows["pc"]["equals_backprop"]
    assert rows["pc-fixed-bp"]["equals_backprop"] and not rows["pc-fixed-bp"]["p2_weight_transport"]


def test_learners_table():
    result = biocredit("learners")
    assert result.returncode == 0 and "dfa" in result.stdout and "P2" in result.stdout


# One train and one eval case as a user meets them (exit code 2, one message on stderr, no
# traceback); the whole catalogue runs in process in test_bad_inputs.py.
@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["train", "--learner", "dfaa"],
            "Unknown learner 'dfaa' in the command line. Did you mean 'dfa'?",
        ),
        (["eval", "/nonexistent/run"], "not a biocredit run folder"),
    ],
)
def test_bad_input_gets_one_clear_message(args, message, tmp_path):
    result = (
        biocredit(*args, "--out", str(tmp_path / "x")) if args[0] == "train" else biocredit(*args)
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()  # nothing is written for a rejected run


def test_existing_run_folder_is_not_overwritten(run_dir):
    result = biocredit("train", "--out", str(run_dir), "--no-progress", *TINY)
    assert result.returncode == 2 and "already holds a run" in result.stderr


def test_plot_draws_the_runs(run_dir, tmp_path):
    out = tmp_path / "curves.png"
    result = biocredit("plot", str(run_dir), str(run_dir), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = plt.imread(out)[..., :3]
    assert image.shape[0] > 200 and image.shape[1] > 300
    first_line = np.array([0x1F, 0x77, 0xB4]) / 255  # matplotlib's first colour, the run's curve
    assert (np.abs(image - first_line).max(axis=-1) < 0.02).sum() > 50
