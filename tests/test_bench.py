"""`biocredit bench`: the matrix plan, the local process pool, Ray tasks, one table either way."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from biocredit.errors import ConfigError
from biocredit.training.bench import load_spec, plan_runs

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
    assert (out / "curves.png").stat().st_size > 0


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


@pytest.mark.slow
def test_local_backend_runs_a_2x2_matrix_into_one_table(tmp_path):
    result = bench(write_spec(tmp_path, TINY), tmp_path / "out", "--workers", "2")
    assert result.returncode == 0, result.stderr
    check_table(tmp_path / "out")


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


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_sigterm_stops_the_bench_and_its_workers(tmp_path):
    """The workers are children of the bench: a SIGTERM to it reaches them (the running run
    checkpoints), the queued runs never start, and the command exits 130 as an interrupted
    `biocredit train` does."""
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
    assert "stopped by SIGTERM after 0 of 3 runs" in stderr and "Traceback" not in stderr
    wait_until(lambda: not any(map(running, children)), timeout=30)
    summary = json.loads((first_run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and (first_run / "checkpoint").is_dir()
    assert not (out / "runs" / "CartPole-v1" / "bp" / "seed1").exists()
    assert not (out / "table.md").exists()


def test_ray_backend_without_ray_names_the_extra(tmp_path):
    out = tmp_path / "out"
    result = bench(write_spec(tmp_path, TINY), out, "--backend", "ray", code=WITHOUT_RAY)
    assert result.returncode == 2
    assert "pip install 'biocredit[ray]'" in result.stderr and "Traceback" not in result.stderr
    assert not (out / "runs").exists()


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
