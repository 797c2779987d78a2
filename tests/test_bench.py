"""`biocredit bench`: the matrix plan, the local process pool, Ray tasks, one table either way,
and resuming a stopped bench."""

import csv
import importlib.util
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
import yaml
from rich.console import Console
from safetensors.torch import load_file

from biocredit.checkpoints import checkpoint_step, newest_checkpoint
from biocredit.errors import ConfigError
from biocredit.training.bench_plan import (
    Selection,
    check_overrides,
    default_out,
    plan_runs,
    run_folders,
    seeds_in,
)
from biocredit.training.bench_spec import load_spec
from biocredit.training.bench_state import DONE, START, Invocation, Sessions, prepare_runs
from biocredit.training.bench_status import RunStatus, bench_status, seconds_left
from biocredit.training.bench_table import commands_note, curve_panels
from biocredit.training.plots import plot_curves
from biocredit.training.run_folder import create_run_dir
from biocredit.training.sb3_runner import SB3Run

_table_spec = importlib.util.spec_from_file_location(
    "learners_table", Path(__file__).resolve().parents[1] / "experiments" / "learners_table.py"
)
learners_table = importlib.util.module_from_spec(_table_spec)
_table_spec.loader.exec_module(learners_table)
_carry_spec = importlib.util.spec_from_file_location(
    "carry_runs", Path(__file__).resolve().parents[1] / "experiments" / "carry_runs.py"
)
carry_runs = importlib.util.module_from_spec(_carry_spec)
_carry_spec.loader.exec_module(carry_runs)

TINY = {
    "name": "tiny",
    "algo": "ppo",
    "learners": ["bp", "fa"],
    "seeds": [0, 1],
    "envs": {"CartPole-v1": {"threshold": 475, "steps": 64}},
    "set": {
        "eval_episodes": 1,
        "n_envs": 1,
        "algo_kwargs": {"n_steps": 32, "batch_size": 32, "n_epochs": 1},
    },
}
WITHOUT_RAY = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "ray":
            raise ImportError("blocked")
sys.meta_path.insert(0, Block())
from biocredit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def write_spec(tmp_path, spec):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def bench(spec_path, out, *args, code=None):
    command = [sys.executable, *(["-c", code] if code else ["-m", "biocredit.cli"])]
    command += ["bench", str(spec_path), "--out", str(out), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=os.environ)


def check_table(out):
    results = json.loads((out / "results.json").read_text())
    assert sorted((r["label"], r["seed"]) for r in results) == [
        ("bp", 0),
        ("bp", 1),
        ("fa", 0),
        ("fa", 1),
    ]
    assert all(r["steps"] == 64 and r["status"] == "done" for r in results)
    table = (out / "table.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| env |"))
    columns = [cell.strip() for cell in header.split("|")]
    rows = [line for line in table.splitlines() if line.startswith("| CartPole-v1 |")]
    assert [row.split("|")[columns.index("learner")].strip() for row in rows] == ["bp", "fa"]
    assert rows[0].split("|")[columns.index("wall time / bp")].strip() == "1.00"
    walls = {
        label: np.mean([r["wall_time_s"] for r in results if r["label"] == label])
        for label in ("bp", "fa")
    }
    finals = {
        label: np.mean([r["final_return_mean"] for r in results if r["label"] == label])
        for label in ("bp", "fa")
    }
    fa_row = rows[1].split("|")
    assert fa_row[columns.index("wall time / bp")].strip() == f"{walls['fa'] / walls['bp']:.2f}"
    assert fa_row[columns.index("return / bp")].strip() == f"{finals['fa'] / finals['bp']:.2f}"
    assert (out / "curves.png").stat().st_size > 0
    for r in results:  # every network's learner and options, in results.json and the table
        assert {net["learner"] for net in r["networks"].values()} == {r["label"]}
    assert "- bp: bp(seed=None) [backprop: no local credit assignment]" in table
    assert "- fa: fa(init='uniform', scale=1.0, seed=None)\n" in table


def test_plan_of_a_multi_algorithm_spec(tmp_path):
    spec = load_spec(
        write_spec(
            tmp_path,
            {
                "algo": ["ppo", "sac"],
                "learners": ["fa"],
                "seeds": [3],
                "envs": {
                    "Pendulum-v1": {
                        "steps": {"ppo": 2048, "sac": 500},
                        "set": {"sac": {"algo_kwargs": {"learning_starts": 100}}},
                    }
                },
                "set": {"eval_episodes": 2, "ppo": {"normalize": True}},
            },
        )
    )
    runs = dict(plan_runs(spec, tmp_path / "out"))
    assert list(runs) == ["ppo+bp", "ppo+fa", "sac+bp", "sac+fa"]  # bp added per algorithm
    assert spec.baseline("sac+fa") == "sac+bp"
    ppo, sac = runs["ppo+fa"], runs["sac+fa"]
    assert (ppo.algo, ppo.steps, ppo.normalize, ppo.eval_episodes) == ("ppo", 2048, True, 2)
    assert (sac.algo, sac.steps, sac.normalize) == ("sac", 500, False)
    assert sac.algo_kwargs["learning_starts"] == 100 and "learning_starts" not in ppo.algo_kwargs
    assert sac.out.endswith("runs/Pendulum-v1/sac+fa/seed3")
    short = dict(plan_runs(spec, tmp_path / "out", steps=128))
    assert {config.steps for config in short.values()} == {128}
    later = dict(plan_runs(spec, tmp_path / "out", overrides=["sac.algo_kwargs.learning_starts=7"]))
    assert later["sac+fa"].algo_kwargs["learning_starts"] == 7  # over the spec's, sac only
    assert "learning_starts" not in later["ppo+fa"].algo_kwargs
    with pytest.raises(ConfigError, match="cannot change 'seed'"):
        check_overrides(["sac.seed=1"])


def test_per_algorithm_learners_and_per_env_algorithms(tmp_path):
    """Learners listed per algorithm (each with its bp) and an env that runs some algorithms
    only: the plan, the table's rows and a seed selection keep to them."""
    spec = dict(TINY, algo=["ppo", "dqn"], seeds=[0, 1])
    spec["set"] = {"eval_episodes": 1, "n_envs": 1, "ppo": TINY["set"]}
    spec["learners"] = {"ppo": ["fa", "few"], "dqn": ["dfa"]}
    spec["variants"] = {"few": {"learner": "dfa", "seeds": [1]}}
    spec["envs"] = {
        "CartPole-v1": {"threshold": 475, "steps": {"ppo": 64, "dqn": 96}},
        "Pendulum-v1": {"steps": 64, "algos": ["ppo"]},
    }
    spec = load_spec(write_spec(tmp_path, spec))
    plan = plan_runs(spec, tmp_path / "out")
    assert [(config.env, label, config.seed) for label, config in plan if config.seed == 0] == [
        ("CartPole-v1", "ppo+bp", 0), ("CartPole-v1", "ppo+fa", 0),
        ("CartPole-v1", "dqn+bp", 0), ("CartPole-v1", "dqn+dfa", 0),
        ("Pendulum-v1", "ppo+bp", 0), ("Pendulum-v1", "ppo+fa", 0),
    ]  # fmt: skip
    assert {config.steps for label, config in plan if label.startswith("dqn")} == {96}
    assert spec.labels("Pendulum-v1") == ["ppo+bp", "ppo+fa", "ppo+few"]
    assert spec.learner_labels == ["bp", "fa", "few", "dfa"]
    assert spec.baseline("dqn+dfa") == "dqn+bp"
    bad_learners = dict(TINY, algo=["ppo", "dqn"], learners={"ppo": ["fa"]})
    with pytest.raises(ConfigError, match="must name each of the spec's algorithms"):
        load_spec(write_spec(tmp_path, bad_learners))
    bad_env = dict(TINY, envs={"CartPole-v1": {"algos": ["sac"]}})
    with pytest.raises(ConfigError, match=r"envs.CartPole-v1.algos is \['sac'\]"):
        load_spec(write_spec(tmp_path, bad_env))


def test_a_variant_can_run_on_part_of_the_seeds(tmp_path):
    spec = dict(TINY, learners=["bp", "fa", "few"], seeds=[0, 1, 2])
    spec["variants"] = {"few": {"learner": "dfa", "seeds": [1]}}
    plan = plan_runs(load_spec(write_spec(tmp_path, spec)), tmp_path / "out")
    assert [(label, config.seed) for label, config in plan] == [
        ("bp", 0), ("fa", 0), ("bp", 1), ("fa", 1), ("few", 1), ("bp", 2), ("fa", 2)
    ]  # fmt: skip
    for seeds in ([3], [], "1"):
        spec["variants"] = {"few": {"learner": "dfa", "seeds": seeds}}
        with pytest.raises(ConfigError, match="taken from the spec's seeds"):
            load_spec(write_spec(tmp_path, spec))


def test_seeds_outside_the_spec_add_to_its_matrix(tmp_path):
    spec = dict(TINY, learners=["bp", "fa", "few"], seeds=[0, 1, 2])
    spec["variants"] = {"few": {"learner": "dfa", "seeds": [1]}}
    spec = load_spec(write_spec(tmp_path, spec))
    out = tmp_path / "out"
    assert Selection(seeds=[1]).matrix(spec, out) is spec  # the spec's own seeds
    more = Selection(seeds=[7, 1])
    plan = plan_runs(more.matrix(spec, out), out)
    assert [(label, config.seed) for label, config in plan][-2:] == [("bp", 7), ("fa", 7)]
    assert plan[0][1].out == plan_runs(spec, out)[0][1].out  # the same folders
    ran = [(label, c.seed) for label, c in plan if more.includes(spec, label, c.env, c.seed)]
    assert ran == [("bp", 1), ("fa", 1), ("few", 1), ("bp", 7), ("fa", 7)]
    (out / "runs" / "CartPole-v1" / "bp" / "seed7").mkdir(parents=True)
    assert Selection().matrix(spec, out).seeds == [0, 1, 2, 7]  # a later plain run keeps seed 7


def test_set_changes_every_run_and_names_the_results_folder(tmp_path):
    spec = load_spec(write_spec(tmp_path, dict(TINY, out=str(tmp_path / "results" / "tiny"))))
    overrides = ["eval_episodes=3", "algo_kwargs.n_epochs=2"]
    plan = plan_runs(spec, tmp_path / "out", overrides=overrides)
    assert [label for label, _ in plan] == ["bp", "fa", "bp", "fa"]
    fa = plan[1][1]
    assert fa.eval_episodes == 3 and fa.algo_kwargs["n_epochs"] == 2  # over the spec
    assert fa.algo_kwargs["n_steps"] == 32  # the spec's other settings kept
    assert default_out(spec, None, []) == tmp_path / "results" / "tiny"
    assert default_out(spec, 2048, overrides) == tmp_path / "results" / (
        "tiny-steps2048-eval_episodes=3-algo_kwargs.n_epochs=2"
    )
    check_overrides(overrides)
    for key, option in (("seed", "--seeds"), ("learner", "--learners"), ("steps", "--steps")):
        with pytest.raises(ConfigError, match=f"cannot change '{key}'.*from {option}"):
            check_overrides([f"{key}=3"])


def test_a_selection_names_rows_of_the_spec(tmp_path):
    spec = load_spec(write_spec(tmp_path, dict(TINY, algo=["ppo", "a2c"], learners=["fa", "dfa"])))
    selection = Selection(learners=["dfa"], algos=["a2c"])
    selection.check(spec)
    chosen = [l for l in spec.labels() if selection.includes(spec, l, "CartPole-v1", 0)]
    assert chosen == ["a2c+bp", "a2c+dfa"]  # bp always runs beside
    assert not Selection(envs=["Acrobot-v1"]).includes(spec, "ppo+bp", "CartPole-v1", 0)
    assert not Selection(seeds=[1]).includes(spec, "ppo+bp", "CartPole-v1", 0)
    for bad, match in (
        (Selection(learners=["pc"]), "--learners names 'pc', which is not in spec 'tiny'"),
        (Selection(envs=["Acrobot-v1"]), "Choose from: CartPole-v1"),
        (Selection(algos=["sac"]), "Choose from: ppo, a2c"),
        (Selection(seeds=[-1]), "--seeds must be integers >= 0"),
    ):
        with pytest.raises(ConfigError, match=match):
            bad.check(spec)


def test_the_curves_of_a_partial_matrix_leave_out_the_envs_without_a_finished_run(tmp_path):
    envs = {"CartPole-v1": {"steps": 64}, "Acrobot-v1": {"steps": 64}}
    spec = load_spec(write_spec(tmp_path, dict(TINY, envs=envs)))
    finished = [
        {"env": "Acrobot-v1", "label": "bp", "run_dir": "runs/bp0"},
        {"env": "Acrobot-v1", "label": "bp", "run_dir": "runs/bp1"},
    ]
    assert curve_panels(spec, finished) == {
        "Acrobot-v1": {"bp": [Path("runs/bp0"), Path("runs/bp1")], "fa": []}
    }


def test_a_learner_keeps_its_colour_in_every_panel(tmp_path):
    runs = {}
    for name in ("bp", "fa", "dfa"):
        runs[name] = tmp_path / name
        runs[name].mkdir()
        (runs[name] / "progress.csv").write_text(
            "time/total_timesteps,rollout/ep_rew_mean\n100,1.0\n200,2.0\n"
        )
    panels = {
        "A": {"bp": [runs["bp"]], "fa": [runs["fa"]]},
        "B": {"bp": [runs["bp"]], "dfa": [runs["dfa"]], "fa": [runs["fa"]]},
    }
    figure = plot_curves(panels, tmp_path / "curves.png")
    colours = [
        {line.get_label().split(" ")[0]: line.get_color() for line in ax.lines}
        for ax in figure.axes
    ]
    assert colours[0] == {name: colours[1][name] for name in ("bp", "fa")}
    assert len(set(colours[1].values())) == 3
    pending_first = plot_curves({"A": {"pending": [], "bp": [runs["bp"]]}}, tmp_path / "c.png")
    first_colour = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"][0]
    assert pending_first.axes[0].lines[0].get_color() == first_colour


@pytest.mark.slow
def test_part_of_a_matrix_now_the_rest_later(tmp_path):
    """--learners runs bp and fa now (dfa pending in a partial table); the plain command then
    keeps both and runs dfa only."""
    spec_path, out = (
        write_spec(tmp_path, dict(TINY, learners=["bp", "fa", "dfa"], seeds=[0])),
        tmp_path / "out",
    )
    result = bench(spec_path, out, "--learners", "fa")
    assert result.returncode == 0, result.stderr
    table = (out / "table.md").read_text()
    assert "Partial table: 2 of 3 runs finished" in table
    assert "| CartPole-v1 | dfa (0/1 seeds) | - | pending |" in table
    result = bench(spec_path, out)
    assert result.returncode == 0, result.stderr
    assert "2 finished earlier (kept)" in " ".join(result.stdout.split())
    assert "Partial" not in (out / "table.md").read_text()


@pytest.mark.slow
def test_local_backend_runs_a_2x2_matrix_into_one_table(tmp_path):
    spec = dict(TINY, set={**TINY["set"], "alignment_every": 1})
    result = bench(write_spec(tmp_path, spec), tmp_path / "out", "--workers", "2")
    assert result.returncode == 0, result.stderr
    check_table(tmp_path / "out")
    # the learners table of experiments/learners_table.py, from the same results
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    table = learners_table.render(load_spec(tmp_path / "spec.yaml"), results, "made here")
    rows = {
        line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
        for line in table.splitlines()
        if line.startswith("| ") and not line.startswith("| learner")
    }
    assert list(rows) == ["bp", "fa"]
    (bp_task, bp_cosine, bp_flags), (fa_task, fa_cosine, fa_flags) = rows["bp"], rows["fa"]
    assert bp_task.endswith("/2), 1.00x") and fa_task.endswith("x") and "/2)" in fa_task
    assert bp_cosine == "1.00" and -1 <= float(fa_cosine) < 1  # bp's update is its gradient
    assert "=BP" in bp_flags and "P2" in fa_flags and "=BP" not in fa_flags


@pytest.mark.slow
def test_ray_backend_runs_the_same_matrix_into_the_same_table(tmp_path):
    pytest.importorskip("ray")
    result = bench(
        write_spec(tmp_path, TINY), tmp_path / "out", "--workers", "2", "--backend", "ray"
    )
    assert result.returncode == 0, result.stderr
    check_table(tmp_path / "out")
    assert "2 Ray worker(s)" in (tmp_path / "out" / "table.md").read_text()


def child_pids(pid):
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def running(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(condition, timeout):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_sigterm_stops_the_bench_and_its_workers(tmp_path):
    """The workers are children of the bench: a SIGTERM to it reaches them (the running run
    checkpoints), the queued runs never start, a partial table is written and the command exits
    130 as an interrupted `biocredit train` does."""
    spec = {**TINY, "learners": ["bp"], "seeds": [0, 1, 2]}
    spec["envs"] = {"CartPole-v1": {"threshold": 475, "steps": 10_000_000}}
    out = tmp_path / "out"
    command = [sys.executable, "-m", "biocredit.cli", "bench", str(write_spec(tmp_path, spec))]
    bench_process = subprocess.Popen(
        [*command, "--out", str(out), "--workers", "1"], stderr=subprocess.PIPE, text=True
    )
    first_run = out / "runs" / "CartPole-v1" / "bp" / "seed0"
    try:
        wait_until(lambda: (first_run / "progress.csv").exists(), timeout=120)
        children = child_pids(bench_process.pid)
        bench_process.send_signal(signal.SIGTERM)
        _, stderr = bench_process.communicate(timeout=120)
    finally:
        if bench_process.poll() is None:  # the test failed: leave no process behind
            for pid in child_pids(bench_process.pid):
                os.kill(pid, signal.SIGKILL)
            bench_process.kill()
    assert bench_process.returncode == 130, stderr
    assert "stopped by SIGTERM with 0 of 3 runs finished" in stderr and "Traceback" not in stderr
    assert f"Resume with the same command: biocredit bench {command[-1]}" in stderr
    wait_until(lambda: not any(map(running, children)), timeout=30)
    summary = json.loads((first_run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and newest_checkpoint(first_run) is not None
    assert not (out / "runs" / "CartPole-v1" / "bp" / "seed1").exists()
    assert "Partial table: 0 of 3 runs finished" in (out / "table.md").read_text()


@pytest.mark.slow
def test_ray_backend_without_ray_names_the_extra(tmp_path):
    out = tmp_path / "out"
    result = bench(write_spec(tmp_path, TINY), out, "--backend", "ray", code=WITHOUT_RAY)
    assert result.returncode == 2
    assert "pip install 'biocredit[ray]'" in result.stderr and "Traceback" not in result.stderr
    assert not (out / "runs").exists()


@pytest.mark.slow
def test_a_multi_algorithm_pettingzoo_bench_reports_the_random_team(tmp_path):
    """The random-team baseline comes from the bp runs whatever the algorithm prefix of their
    row (``ppo+bp``, ``a2c+bp``)."""
    pytest.importorskip("mpe2")
    spec = {
        "name": "tiny_team",
        "algo": ["ppo", "a2c"],
        "learners": ["bp"],
        "seeds": [0],
        "envs": {"pettingzoo:mpe2.simple_spread_v3": {"steps": 96}},
        "set": {
            "eval_episodes": 1,
            "n_envs": 1,
            "env_kwargs": {"max_cycles": 5},
            "ppo": {"algo_kwargs": {"n_steps": 32, "batch_size": 32, "n_epochs": 1}},
        },
    }
    out = tmp_path / "bench"
    result = bench(write_spec(tmp_path, spec), out)
    assert result.returncode == 0, result.stderr
    table = (out / "table.md").read_text()
    assert "Random team on pettingzoo:mpe2.simple_spread_v3:" in table


# bp then fa on one worker, checkpoints every 2 rollouts: a stop while fa runs finds bp done
RESUMABLE = {
    **TINY,
    "seeds": [0],
    "envs": {"CartPole-v1": {"threshold": 475, "steps": 1024}},
    "set": {**TINY["set"], "checkpoint_freq": 64},
}


def snapshot(folder):
    """Every file under ``folder`` with its modification time and bytes."""
    return {
        path: (path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def final_tensors(run_dir):
    state = {}
    for name in ("model", "resume"):
        state.update(load_file(str(newest_checkpoint(run_dir) / f"{name}.safetensors")))
    return state


@pytest.fixture
def leftovers():
    """Pids to kill at the end if still running: a failed test leaves no process behind."""
    pids = []
    yield pids
    for pid in pids:
        if running(pid):
            os.kill(pid, signal.SIGKILL)


def stop_driver(process, signum):
    process.send_signal(signum)


def stop_machine(process, signum):
    os.killpg(process.pid, signum)  # the bench and its workers at once, as a machine stop


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize(
    "stop, signum",
    [
        (stop_driver, signal.SIGTERM),  # or Ctrl-C: the workers checkpoint and stop
        (stop_driver, signal.SIGKILL),  # the workers get SIGTERM when their driver dies
        (stop_machine, signal.SIGKILL),  # fa loses the steps since its last checkpoint
    ],
    ids=["sigterm", "sigkill-bench", "machine-stop"],
)
def test_a_stopped_bench_resumes_with_the_same_command(tmp_path, leftovers, stop, signum):
    """Killed while fa runs: bp's folder is kept untouched, a partial table is there, and the
    same command continues fa from its checkpoint to the weights of an uninterrupted run."""
    spec_path, out = write_spec(tmp_path, RESUMABLE), tmp_path / "out"
    command = [sys.executable, "-m", "biocredit.cli", "bench", str(spec_path), "--out", str(out)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    done, in_flight = (
        out / "runs" / "CartPole-v1" / "bp" / "seed0",
        out / "runs" / "CartPole-v1" / "fa" / "seed0",
    )
    try:
        wait_until(lambda: newest_checkpoint(in_flight) is not None, timeout=120)
        children = child_pids(process.pid)
        leftovers.extend(children)
        stop(process, signum)
        process.communicate(timeout=120)
    finally:
        if process.poll() is None:  # the test failed: leave no process behind
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == (130 if signum == signal.SIGTERM else -signal.SIGKILL)
    table = (out / "table.md").read_text()
    assert "Partial table: 1 of 2 runs finished" in table
    assert "| CartPole-v1 | fa (0/1 seeds) | - | pending |" in table
    kept = snapshot(done)
    wait_until(lambda: not any(map(running, children)), timeout=60)
    if stop is stop_machine:
        assert not (in_flight / "summary.json").exists()  # killed between checkpoints
    status = {run.label: run for run in bench_status(spec_path, str(out), console=quiet())}
    assert status["bp"].state == "done"
    assert (
        status["bp"].final_return
        == json.loads((done / "summary.json").read_text())["final_return_mean"]
    )
    assert status["fa"].state == "started"
    assert status["fa"].checkpoint == checkpoint_step(newest_checkpoint(in_flight))
    assert 0 < status["fa"].checkpoint < 1024 and 0 < status["fa"].logged < 1024
    assert snapshot(done) == kept  # --status reads, it changes nothing

    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "1 finished earlier (kept), 1 to resume from their checkpoints, 0 to start" in " ".join(
        result.stdout.split()
    )
    assert snapshot(done) == kept
    assert len(list(in_flight.glob("events.out.tfevents.*"))) == 2  # continued, not restarted
    with open(in_flight / "progress.csv", newline="") as handle:
        steps = [int(float(row["time/total_timesteps"])) for row in csv.DictReader(handle)]
    assert steps == list(range(32, 1025, 32))  # every rollout logged once

    reference = dict(plan_runs(load_spec(spec_path), tmp_path / "reference"))["fa"]
    summary = SB3Run.start(reference).run(progress=False)
    one, two = final_tensors(Path(reference.out)), final_tensors(in_flight)
    assert one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one)
    results = {r["label"]: r for r in json.loads((out / "results.json").read_text())}
    assert results["fa"]["final_return_mean"] == summary["final_return_mean"]
    assert results["fa"]["steps"] == 1024 and results["fa"]["status"] == "done"
    assert "Partial" not in (out / "table.md").read_text()
    sessions = json.loads((out / "sessions.json").read_text())
    assert len(sessions["elapsed_s"]) == 2
    assert sessions["commands"] == [" ".join(["biocredit", *command[3:]])] * 2


def test_the_table_names_every_command_that_worked_on_it(tmp_path):
    (tmp_path / "sessions.json").write_text(json.dumps({"elapsed_s": [600.0]}))  # an old folder
    first = Sessions(tmp_path, fresh=False, command="biocredit bench s.yaml --envs A", workers="1")
    assert first.record()[0] == Invocation(None, None, 600.0)
    second = Sessions(tmp_path, fresh=False, command="biocredit bench s.yaml --envs B", workers="2")
    second.record()
    third = Sessions(tmp_path, fresh=False, command="biocredit bench s.yaml --envs B", workers="2")
    invocations = third.record()
    assert [i.command for i in invocations] == [
        None,
        "biocredit bench s.yaml --envs A",
        "biocredit bench s.yaml --envs B",
        "biocredit bench s.yaml --envs B",
    ]
    note = "\n".join(commands_note(invocations))
    assert "an invocation whose command was not recorded (10.0 min)" in note
    older = [Invocation(None, None, 60.0), Invocation(None, None, 120.0), *invocations[1:]]
    assert "invocations whose commands were not recorded (3.0 min over 2 sessions)" in "\n".join(
        commands_note(older)
    )
    assert "- `biocredit bench s.yaml --envs A` (1, 0.0 min)" in note
    assert "- `biocredit bench s.yaml --envs B` (2, 0.0 min over 2 sessions)" in note
    assert commands_note(invocations[1:2]) == [
        "Command: `biocredit bench s.yaml --envs A` (1, 0.0 min)."
    ]
    assert Sessions(tmp_path, fresh=True, command="c", workers="1").record(ran=False) == []


def quiet():
    return Console(file=io.StringIO(), width=200)


def test_status_of_a_matrix_reads_its_folder_and_changes_nothing(tmp_path):
    spec_path, out = write_spec(tmp_path, TINY), tmp_path / "out"
    result = bench(spec_path, out, "--status")
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stdout.split())
    assert "0 of 4 runs finished; no bench is running on this folder" in said
    assert "No estimate of the time left: no row with runs left has finished one." in said
    assert not out.exists()
    (_, first), *_ = plan_runs(load_spec(spec_path), out)
    SB3Run.start(first).run(progress=False)  # the matrix's first run, as the bench runs it
    files = snapshot(out)
    console = quiet()
    status = bench_status(spec_path, str(out), console=console)
    assert [(r.label, r.seed, r.state) for r in status] == [
        ("bp", 0, "done"),
        ("fa", 0, "pending"),
        ("bp", 1, "pending"),
        ("fa", 1, "pending"),
    ]
    summary = json.loads(
        (out / "runs" / "CartPole-v1" / "bp" / "seed0" / "summary.json").read_text()
    )
    assert status[0].final_return == summary["final_return_mean"] and status[0].logged == 64
    assert snapshot(out) == files
    (out / ".bench.lock").write_text(f"{os.getpid()}\n")  # a live process holds the folder
    bench_status(spec_path, str(out), selection=Selection(learners=["fa"]), console=console)
    text = " ".join(console.file.getvalue().split())
    assert "1 of 4 runs finished; no bench is running" in text
    assert f"a bench (pid {os.getpid()}) is running on this folder" in text
    assert "run time left (not counting 1 row(s) with no finished run yet)" in text


def test_status_estimates_the_time_left_from_the_rows_finished_runs():
    row = [
        RunStatus("E", "fa", 0, 100, "done", logged=100, wall_time_s=10.0),
        RunStatus("E", "fa", 1, 100, "started", logged=50, checkpoint=40),
        RunStatus("E", "fa", 2, 100, "pending"),
    ]
    assert seconds_left(row) == pytest.approx(0.1 * (60 + 100))
    assert seconds_left(row[1:]) is None


def test_runs_of_another_matrix_are_refused_and_unsaved_ones_start_again(tmp_path):
    spec = load_spec(write_spec(tmp_path, RESUMABLE))
    (_, bp), (_, fa) = plan_runs(spec, tmp_path / "out")
    create_run_dir(fa)  # a run a SIGKILL stopped before its first checkpoint
    assert prepare_runs([bp, fa]) == [START, START] and not Path(fa.out).exists()
    (_, longer), _ = plan_runs(spec, tmp_path / "out", steps=2048)
    create_run_dir(longer)
    with pytest.raises(ConfigError, match=r"its steps differ from this spec's plan \(steps 2048"):
        prepare_runs([bp, fa])
    assert Path(longer.out).is_dir()  # nothing is cleared when a folder is refused


def test_the_carried_part_of_a_run_folder_is_what_a_later_bench_needs(tmp_path):
    """experiments/carry_runs.py: a finished run copied with only the carried files is kept
    by the next bench (``done``); its checkpoint stays behind unless asked for, and then the
    newest one only, which resumes."""
    spec = load_spec(
        write_spec(
            tmp_path,
            dict(
                TINY, seeds=[0], set={**TINY["set"], "keep_checkpoints": 2, "checkpoint_freq": 32}
            ),
        )
    )
    (_, bp), _ = plan_runs(spec, tmp_path / "out")
    SB3Run.start(bp).run(progress=False)
    bench, copy = tmp_path / "out", tmp_path / "copy"
    assert not any(p.parent.name == "checkpoints" for p in carry_runs.carried(bench))
    summary = Path(bp.out) / "summary.json"
    done = summary.read_text()
    summary.unlink()  # without its summary, a run is in flight
    assert [p.name for p in carry_runs.carried(bench) if p.parent.name == "checkpoints"]
    summary.write_text(done.replace('"done"', '"interrupted"'))  # stopped by a signal
    assert [p.name for p in carry_runs.carried(bench) if p.parent.name == "checkpoints"]
    summary.write_text(done)
    carried = carry_runs.carried(bench, finished_checkpoints=True)
    assert not any("tfevents" in path.name for path in carried)
    assert len([p for p in carried if p.parent.name == "checkpoints"]) == 1  # the newest only
    for path in carried:
        target = copy / path.relative_to(bench)
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if path.is_dir() else shutil.copy)(path, target)
    (_, moved), _ = plan_runs(spec, copy)
    assert prepare_runs([moved]) == [DONE]
    assert SB3Run.resume(moved, Path(moved.out)).steps_done() == 64


def test_checkpoints_over_the_size_limit_are_left_behind(tmp_path):
    """An off-policy checkpoint holds its replay buffer; carry_runs names and skips the ones
    over ``--max-checkpoint-mb`` (logs and small checkpoints still go)."""
    small, large = tmp_path / "checkpoints/000001-step64", tmp_path / "checkpoints/000002-step128"
    for folder, megabytes in ((small, 1), (large, 3)):
        folder.mkdir(parents=True)
        (folder / "model.zip").write_bytes(b"\0" * (megabytes * 2**20))
    progress = tmp_path / "progress.csv"
    progress.write_bytes(b"\0" * 3 * 2**20)
    assert carry_runs.size_mb(large) == pytest.approx(3.0)
    assert carry_runs.too_large([progress, small, large], max_checkpoint_mb=2) == {
        large: pytest.approx(3.0)
    }
    assert carry_runs.too_large([small, large], max_checkpoint_mb=10) == {}


def test_run_folders_of_namespaced_env_ids_are_found_and_carried(tmp_path):
    """``MinAtar/Breakout-v1`` puts its runs one folder deeper than ``CartPole-v1``."""
    runs = [tmp_path / "runs/MinAtar/Breakout-v1/dfa/seed2", tmp_path / "runs/CartPole-v1/bp/seed0"]
    for run in runs:
        (run / "checkpoints" / "000001-step64").mkdir(parents=True)
        (run / "config.yaml").write_text("seed: 0\n")
    (tmp_path / "runs/CartPole-v1/bp/seeds.txt").write_text("not a run folder")
    assert run_folders(tmp_path) == sorted(runs)
    assert seeds_in(tmp_path) == {0, 2}
    assert {p.parent for p in carry_runs.carried(tmp_path)} == set(runs)
