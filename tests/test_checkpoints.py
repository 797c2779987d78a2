"""Checkpoints: complete or ignored, the last k kept, a crash at every point of a write,
run folders of the earlier layout, and a run SIGKILLed over and over while it checkpoints."""

import json
import os
import random
import shutil
import signal
import time
import traceback
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from biocredit import checkpoints
from biocredit.checkpoints import (
    CHECKPOINTS_DIR,
    LEGACY_DIR,
    LEGACY_PREVIOUS_DIR,
    MANIFEST_FILE,
    MODEL_FILE,
    complete_checkpoints,
    load_module,
    new_checkpoint,
    newest_checkpoint,
    read_meta,
    replaced_folder,
    require_checkpoint,
    write_module,
)
from biocredit.errors import RunDirError
from biocredit.training.bench_state import DONE, RESUME, prepare_runs, run_state
from biocredit.training.online import OnlineRun
from biocredit.training.resolve import resolve_config
from biocredit.training.run import run_with_recovery
from biocredit.training.run_folder import read_run_config
from biocredit.training.run_kinds import run_class
from biocredit.training.sb3_runner import SB3Run

REPO = Path(__file__).resolve().parents[1]


class Crash(BaseException):
    """A SIGKILL: nothing after it runs, not even ``except Exception`` handlers."""


def net(value: float) -> nn.Module:
    module = nn.Linear(3, 2)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.fill_(value)
    return module


def write(run_dir: Path, steps: int, keep: int = 2) -> None:
    """A checkpoint whose weights all equal ``steps``."""
    with new_checkpoint(run_dir, steps, keep) as directory:
        write_module(directory, net(steps), {"num_timesteps": steps}, {"n": torch.tensor([steps])})


def loaded_steps(run_dir: Path) -> int:
    """The steps of the checkpoint a resume would load, checked against its weights."""
    module = nn.Linear(3, 2)
    meta = load_module(module, require_checkpoint(run_dir))
    assert torch.all(module.weight == meta["num_timesteps"])
    return meta["num_timesteps"]


def names(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / CHECKPOINTS_DIR).iterdir())


FILES_PER_WRITE = 4  # weights, metadata, resume tensors, then the manifest


def crash_after_file(monkeypatch, number: int, cut: bool) -> None:
    """The ``number``-th file a checkpoint write makes is the last: written whole (or, ``cut``,
    half of it), then the process dies."""
    written = [0]
    real_save, real_json = checkpoints.save_file, checkpoints.write_json

    def then_maybe_crash(path) -> None:
        written[0] += 1
        if written[0] == number:
            if cut:
                data = Path(path).read_bytes()
                Path(path).write_bytes(data[: len(data) // 2])
            raise Crash

    def save_file(tensors, path, *args, **kwargs):
        real_save(tensors, path, *args, **kwargs)
        then_maybe_crash(path)

    def write_json(path, data):
        real_json(path, data)
        then_maybe_crash(path)

    monkeypatch.setattr(checkpoints, "save_file", save_file)
    monkeypatch.setattr(checkpoints, "write_json", write_json)


@pytest.mark.parametrize("cut", [False, True], ids=["after-the-file", "mid-file"])
@pytest.mark.parametrize("crash_at", range(1, FILES_PER_WRITE + 2))
def test_a_crash_at_any_point_of_a_write_leaves_the_last_complete_checkpoint(
    tmp_path, monkeypatch, crash_at, cut
):
    write(tmp_path, 100)
    write(tmp_path, 200)
    renamed = crash_at > FILES_PER_WRITE  # after the rename, before older folders are pruned
    if renamed:

        def crash(*args):
            raise Crash

        monkeypatch.setattr(checkpoints, "prune", crash)
    else:
        crash_after_file(monkeypatch, crash_at, cut)
    with pytest.raises(Crash):
        write(tmp_path, 300)
    monkeypatch.undo()

    assert loaded_steps(tmp_path) == (300 if renamed else 200)
    partial = [name for name in names(tmp_path) if name.startswith(".partial-")]
    assert partial == ([] if renamed else [".partial-000003"])  # ignored, left as it was
    write(tmp_path, 400)  # the next write clears it, and keeps two
    assert names(tmp_path) == (
        ["000003-step300", "000004-step400"] if renamed else ["000002-step200", "000003-step400"]
    )
    assert loaded_steps(tmp_path) == 400


def test_the_last_k_are_kept(tmp_path):
    for steps in (100, 200, 300, 400, 500):
        write(tmp_path, steps, keep=3)
    assert names(tmp_path) == ["000003-step300", "000004-step400", "000005-step500"]
    write(tmp_path, 600, keep=1)
    assert names(tmp_path) == ["000006-step600"]
    with pytest.raises(RunDirError, match="at least one"):
        write(tmp_path, 700, keep=0)


@pytest.mark.parametrize("damage", ["truncated", "same-size", "missing", "no-manifest"])
def test_a_damaged_checkpoint_is_never_loaded(tmp_path, damage):
    write(tmp_path, 100)
    write(tmp_path, 200)
    newest = tmp_path / CHECKPOINTS_DIR / "000002-step200"
    weights = newest / MODEL_FILE
    data = weights.read_bytes()
    if damage == "truncated":
        weights.write_bytes(data[:-10])
    elif damage == "same-size":  # one flipped byte: only the hash tells
        weights.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    elif damage == "missing":
        weights.unlink()
    else:
        (newest / MANIFEST_FILE).unlink()
    assert loaded_steps(tmp_path) == 100  # the previous one
    with pytest.raises(RunDirError, match="is incomplete"):
        load_module(nn.Linear(3, 2), newest)
    shutil.rmtree(tmp_path / CHECKPOINTS_DIR / "000001-step100")
    with pytest.raises(RunDirError, match="holds no complete checkpoint; its checkpoints are all"):
        require_checkpoint(tmp_path)


def test_a_saved_agent_folder_is_replaced_whole(tmp_path):
    folder = tmp_path / "agent"
    with replaced_folder(folder) as directory:
        write_module(directory, net(1.0), {})
    with pytest.raises(Crash), replaced_folder(folder) as directory:
        write_module(directory, net(2.0), {})
        raise Crash
    module = nn.Linear(3, 2)
    load_module(module, folder)
    assert torch.all(module.weight == 1.0)
    with replaced_folder(folder) as directory:  # the next save clears the partial folder
        write_module(directory, net(3.0), {})
    load_module(module, folder)
    assert torch.all(module.weight == 3.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent"]


# run folders of the earlier layout: <run>/checkpoint/, no manifest --------------------------


def to_earlier_layout(run_dir: Path) -> None:
    """Turn ``run_dir`` into what biocredit wrote before numbered checkpoints: the same files
    in one ``checkpoint/`` folder, without a manifest."""
    shutil.copytree(newest_checkpoint(run_dir), run_dir / LEGACY_DIR)
    (run_dir / LEGACY_DIR / MANIFEST_FILE).unlink()
    shutil.rmtree(run_dir / CHECKPOINTS_DIR)


def native(out: Path, steps: int, *overrides: str):
    return resolve_config(
        flags={"agent": "neuromodulated-ac", "env": "CartPole-v1", "seed": 1, "steps": steps},
        overrides=["n_envs=2", "eval_episodes=1", f"out={out}", *overrides],
    )


def final_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    newest = newest_checkpoint(run_dir)
    return {**load_file(str(newest / MODEL_FILE)), **load_file(str(newest / "resume.safetensors"))}


@pytest.mark.slow
def test_a_run_folder_of_the_earlier_layout_resumes_exactly(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    OnlineRun.start(native(one, 600)).run(progress=False)
    OnlineRun.start(native(two, 300)).run(progress=False)
    to_earlier_layout(two)
    (two / LEGACY_DIR).rename(two / LEGACY_PREVIOUS_DIR)  # stopped mid-swap, as it could be
    assert newest_checkpoint(two) == two / LEGACY_DIR  # put back
    config = read_run_config(two)
    config.steps = 600
    assert OnlineRun.resume(config, two).run(progress=False)["steps"] == 600
    assert complete_checkpoints(two) == [two / CHECKPOINTS_DIR / "000001-step600", two / LEGACY_DIR]
    expected, got = final_tensors(one), final_tensors(two)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[key], got[key]) for key in expected)
    checkpoints.prune(two, keep=1)  # a newer one replaces it like any other
    assert not (two / LEGACY_DIR).exists()


# a run folder a benchmark committed mid-run under an earlier version (classic_control, PPO +
# eqprop, CartPole-v1 seed 0; from commit f047183), kept as it was written
COMMITTED = REPO / "tests/data/legacy_in_flight_run"


@pytest.mark.slow
def test_a_committed_in_flight_bench_run_resumes(tmp_path):
    """A run folder a benchmark committed mid-run (PPO + eqprop, stopped at 6144 steps) is
    resumed by `biocredit bench`: its state is ``resume`` and every piece of state loads."""
    run_dir = Path(shutil.copytree(COMMITTED, tmp_path / "seed0"))
    config = read_run_config(run_dir)
    config.out = str(run_dir)
    assert run_state(config) == RESUME
    run = SB3Run.resume(config, run_dir)
    assert run.steps_done() == read_meta(run_dir / LEGACY_DIR)["num_timesteps"] == 6144


# SIGKILL at random points of a run that checkpoints every few steps ---------------------------

TOTAL_STEPS = 1200
KILLS = 25


def bench_one_run(config, resumed_log: Path, session: int) -> None:
    """What `biocredit bench` does for one run of its matrix: continue it from its newest
    complete checkpoint, or start it again if it has none; log the step it resumed from."""
    state = prepare_runs([config])[0]
    if state == DONE:
        return
    cls = run_class(config)
    run = cls.resume(config, Path(config.out)) if state == RESUME else cls.start(config)
    with open(resumed_log, "a") as log:
        log.write(f"{session} {run.steps_done()}\n")
    run_with_recovery(run, progress=False)


def forked(function, *args) -> int:
    """Run ``function(*args)`` in a child process (forked: no import cost); its pid."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            function(*args)
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    return pid


def newest_steps(run_dir: Path) -> int:
    newest = newest_checkpoint(run_dir) if run_dir.is_dir() else None
    return 0 if newest is None else read_meta(newest)["num_timesteps"]


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks the runs")
def test_a_run_killed_again_and_again_resumes_from_its_last_complete_checkpoint(tmp_path):
    """A native run checkpointing every 40 steps is SIGKILLed after random delays (seeded), many
    times: each time the next process resumes from the newest complete checkpoint, which never
    goes back, and the run finally ends with the weights of a run never killed."""
    run_dir, log = tmp_path / "run", tmp_path / "resumed.txt"
    reference = tmp_path / "reference"  # never killed; here, so that the forks start warm
    bench_one_run(native(reference, TOTAL_STEPS, "checkpoint_freq=40"), tmp_path / "ref.txt", 0)
    config = native(run_dir, TOTAL_STEPS, "checkpoint_freq=40")
    delays = random.Random(0)
    killed, mid_write, newest_before, finished = 0, 0, [], False
    while killed < KILLS and not finished:
        before = newest_steps(run_dir)
        newest_before.append(before)
        pid = forked(bench_one_run, config, log, len(newest_before) - 1)
        time.sleep(delays.uniform(0.05, 0.4))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        finished = not os.WIFSIGNALED(status)  # it ended before the kill
        if finished:
            assert os.WEXITSTATUS(status) == 0, "the run failed; see its output"
            continue
        killed += 1
        folders = names(run_dir) if (run_dir / CHECKPOINTS_DIR).is_dir() else []
        mid_write += any(name.startswith(".partial-") for name in folders)
        assert newest_steps(run_dir) >= before  # never back past a complete checkpoint
    if not finished:  # one more session, left to finish
        newest_before.append(newest_steps(run_dir))
        pid = forked(bench_one_run, config, log, len(newest_before) - 1)
        assert os.waitpid(pid, 0)[1] == 0
    sessions = dict(map(int, line.split()) for line in log.read_text().splitlines())
    # each session that got as far as loading continued from the newest complete checkpoint
    assert sessions == {i: newest_before[i] for i in sessions}
    assert len(newest_before) - 1 in sessions and sum(map(bool, sessions.values())) >= 3
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "done" and summary["steps"] == TOTAL_STEPS
    print(f"{killed} kills ({mid_write} mid-write), last session from step {newest_before[-1]}")

    expected, got = final_tensors(reference), final_tensors(run_dir)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[key], got[key]) for key in expected)
