"""The alignment diagnostic: its cosine against the formula, its reference against backprop
(fa with B = W, hebbian3f's transpose traces), and the logged columns of a real run."""

import csv
import math
import subprocess
import sys

import pytest
import torch

from biocredit.learners import LocalNetwork, NetworkSpec
from biocredit.learners.alignment import AlignmentMonitor, layer_cosines
from biocredit.learners.base import RunContext

SPEC = NetworkSpec(5, (16, 12), 3, "tanh")


def test_layer_cosines_match_the_formula():
    torch.manual_seed(0)
    update = [torch.randn(4, 3), torch.randn(4), torch.randn(2, 4), torch.randn(2)]
    reference = [torch.randn_like(t) for t in update]
    a, b = (
        torch.cat([update[0].flatten(), update[1]]),
        torch.cat([reference[0].flatten(), reference[1]]),
    )
    want = float(a @ b / (a.norm() * b.norm()))
    assert layer_cosines(update, reference)[0] == pytest.approx(want, rel=1e-6)
    assert layer_cosines(update, update) == pytest.approx([1.0, 1.0])
    assert layer_cosines([torch.zeros(2, 2), torch.zeros(2)], update[2:]) == [0.0]


def monitored_cosines(net: LocalNetwork, every: int = 1) -> list[float]:
    net.learner.alignment = monitor = AlignmentMonitor(every)
    x, target = torch.randn(32, SPEC.in_features), torch.randn(32, SPEC.out_features)
    ((net(x) - target).pow(2).sum() / 2).backward()
    return monitor.latest


def test_backprop_and_fa_with_its_own_weights_as_feedback_are_fully_aligned():
    torch.manual_seed(1)
    assert monitored_cosines(LocalNetwork(SPEC, "bp")) == pytest.approx([1.0] * 3)
    fa = LocalNetwork(SPEC, "fa")
    with torch.no_grad():
        for feedback, layer in zip(fa.learner.feedback(), fa.layers, strict=True):
            feedback.copy_(layer.weight)
    assert monitored_cosines(fa) == pytest.approx([1.0] * 3)


@pytest.mark.parametrize("learner", ["fa", "dfa", "pc"])
def test_random_feedback_is_misaligned_below_the_output(learner):
    torch.manual_seed(2)
    cosines = monitored_cosines(LocalNetwork(SPEC, learner))
    assert cosines[-1] == pytest.approx(1.0, abs=1e-5) or learner == "pc"
    assert cosines[0] < 0.9, cosines


def test_the_monitor_compares_every_nth_assignment_only():
    monitor = AlignmentMonitor(3)
    assert [monitor.due() for _ in range(6)] == [False, False, True, False, False, True]
    monitor.record([torch.ones(2, 2), torch.ones(2)], [torch.ones(2, 2), -torch.ones(2)])
    values = monitor.read("actor")
    assert values["alignment/actor/layer1"] == pytest.approx(1 / 3)  # (4 - 2) / 6
    assert values["alignment/actor/angle1"] == pytest.approx(math.degrees(math.acos(1 / 3)))
    assert not monitor.fresh


def test_three_factor_reference_is_the_transpose_rule():
    """hebbian3f's reference is this step's update with backprop's post terms: with transpose
    feedback the two coincide; with random feedback only the output layer does."""
    torch.manual_seed(3)
    for feedback, hidden_aligned in (("transpose", True), ("random", False)):
        net = LocalNetwork(SPEC, "hebbian3f", RunContext(n_envs=4), feedback=feedback)
        learner = net.learner
        _, cache = learner.forward_pass(net.layers, torch.randn(4, SPEC.in_features), True)
        post, modulator = torch.randn(4, 3), torch.randn(4)
        own = learner.step_update(net.layers, cache, post, modulator)
        reference = learner.step_update(net.layers, cache, post, modulator, transport=True)
        cosines = layer_cosines(own, reference)
        assert cosines[-1] == pytest.approx(1.0)
        assert (min(cosines) > 1 - 1e-6) == hidden_aligned, cosines


@pytest.mark.slow
@pytest.mark.parametrize("run", [["--learner", "dfa"], ["--agent", "neuromodulated-ac"]])
def test_runs_log_alignment_per_network_and_layer(tmp_path, run):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "biocredit.cli", "train", *run, "--steps", "4096"]
    command += ["--no-progress", "--out", str(out), "--set", "alignment_every=5"]
    command += ["--set", "eval_episodes=1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    with open(out / "progress.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = [key for key in rows[0] if key.startswith("alignment/") and "/layer" in key]
    assert len(columns) == 6, columns  # two networks x three layers
    values = [float(row[key]) for row in rows for key in columns if row.get(key)]
    assert values and all(-1.0 <= v <= 1.0 for v in values)
    assert any(path.name.startswith("events.out.tfevents") for path in out.rglob("*"))
