"""`biocredit tune`: Optuna studies of each learner's hyperparameters with bp's beside, pruning
by the training return, the table and a best config that `biocredit train --config` runs."""

import optuna
import pytest
import yaml

from biocredit.errors import ConfigError, UnknownNameError
from biocredit.training.resolve import resolve_config
from biocredit.training.sb3_runner import train
from biocredit.training.tune import PruningCallback, load_tune_spec, run_tune, trial_config

TINY = {
    "name": "tiny",
    "algo": "ppo",
    "env": "CartPole-v1",
    "learners": ["dfa"],
    "steps": 512,
    "space": {
        "shared": {"algo_kwargs.learning_rate": {"low": 1.0e-4, "high": 1.0e-2, "log": True}},
        "dfa": {"learner_kwargs.scale": {"low": 0.1, "high": 10.0, "log": True}},
    },
    "set": {"eval_episodes": 1, "algo_kwargs": {"n_epochs": 2}},
}


def write(tmp_path, spec):
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.slow
def test_two_trials_per_study_write_the_table_and_best_configs(tmp_path):
    table = run_tune(write(tmp_path, TINY), trials=2, out=str(tmp_path / "out"))
    text = table.read_text()
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if "| 2 |" in line}
    assert set(rows) == {"bp", "dfa"}  # bp's study beside the learner's, 2 trials each
    assert "learner_kwargs.scale" in rows["dfa"] and "learner_kwargs.scale" not in rows["bp"]
    for learner in ("bp", "dfa"):
        best = tmp_path / "out" / f"best_{learner}.yaml"
        config = resolve_config(config_file=best)  # what `biocredit train --config` reads
        assert (config.learner, config.steps, config.out) == (learner, 512, None)
    assert resolve_config(config_file=tmp_path / "out" / "best_bp.yaml").learner_kwargs == {}
    # the same command continues the studies: nothing left to run at 2 trials, 1 more at 3
    run_tune(write(tmp_path, TINY), trials=3, out=str(tmp_path / "out"))
    assert "| 3 |" in (tmp_path / "out" / "table.md").read_text()


@pytest.mark.slow
def test_a_trial_below_the_pruners_bar_stops_early(tmp_path):
    spec = load_tune_spec(write(tmp_path, dict(TINY, steps=2048)))
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1e9)
    )
    trial = study.ask()
    callback = PruningCallback(trial)
    summary = train(
        trial_config(spec, "dfa", {}, tmp_path / "run"), progress=False, callbacks=[callback]
    )
    assert callback.pruned and summary["steps"] < 2048  # stopped after its first report
    assert trial.storage.get_trial(trial._trial_id).intermediate_values  # the return reported


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"learners": ["dfaa"]}, UnknownNameError, "Did you mean 'dfa'"),
        ({"space": {"fa": {"learner_kwargs.scale": {"low": 1, "high": 2}}}}, ConfigError, "fa"),
        ({"space": {"shared": {"x": {"low": 2, "high": 1}}}}, ConfigError, "needs low < high"),
        ({"space": {"shared": {"x": {"low": 0, "high": 1, "log": True}}}}, ConfigError, "low > 0"),
        ({"space": {"dfa": {"x": {"choices": []}}}}, ConfigError, "non-empty list"),
        ({"space": {"dfa": {"x": {"lo": 1, "high": 2}}}}, ConfigError, "Unknown key 'lo'"),
        ({"space": {"dfa": {"x": {"low": 1, "high": 2}}}}, ConfigError, "study of 'bp'"),
        ({"steps": 0}, ConfigError, "'steps' must be an integer >= 1"),
        ({"algo": "online"}, ConfigError, "native agents cannot be tuned"),
    ],
)
def test_bad_specs_are_refused_with_the_reason(tmp_path, change, error, message):
    with pytest.raises(error, match=message):
        load_tune_spec(write(tmp_path, {**TINY, **change}))


def test_bad_counts_and_backends_are_refused(tmp_path):
    for kwargs, message in (
        ({"trials": 0}, "--trials and --workers must be >= 1"),
        ({"trials": 1, "workers": 0}, "--trials and --workers must be >= 1"),
        ({"trials": 1, "backend": "slurm"}, "Unknown backend 'slurm'"),
    ):
        with pytest.raises(ConfigError, match=message):
            run_tune(write(tmp_path, TINY), out=str(tmp_path / "out"), **kwargs)


@pytest.mark.slow
def test_ray_tasks_run_the_trials_of_one_study(tmp_path):
    pytest.importorskip("ray")
    spec = dict(TINY, learners=[], space={"shared": TINY["space"]["shared"]})
    table = run_tune(write(tmp_path, spec), trials=2, workers=2, backend="ray", out=str(tmp_path))
    assert "| bp |" in table.read_text() and (tmp_path / "best_bp.yaml").is_file()
    assert len(list((tmp_path / "runs" / "bp").iterdir())) >= 2  # both tasks ran trials


@pytest.mark.slow
def test_worker_processes_share_one_study(tmp_path):
    spec = dict(TINY, learners=[], space={"shared": TINY["space"]["shared"]})
    table = run_tune(write(tmp_path, spec), trials=3, workers=2, out=str(tmp_path))
    finished = next(line for line in table.read_text().splitlines() if line.startswith("| bp |"))
    assert finished.split("|")[3].strip() in ("3", "4")  # both stop once 3 have finished
