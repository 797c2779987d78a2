"""Every committed benchmark spec loads and plans: each of its runs resolves to a valid config."""

from pathlib import Path

import pytest

from biocredit.training.bench_plan import plan_runs
from biocredit.training.bench_spec import load_spec

SPECS = sorted((Path(__file__).resolve().parents[1] / "experiments" / "benchmarks").glob("*.yaml"))


def test_the_curated_specs_are_few():
    assert 0 < len(SPECS) <= 12, [spec.name for spec in SPECS]


@pytest.mark.slow
@pytest.mark.parametrize("path", SPECS, ids=lambda path: path.stem)
def test_a_committed_spec_plans_every_run(path, tmp_path):
    spec = load_spec(path)
    plan = plan_runs(spec, tmp_path)
    assert spec.name == path.stem
    assert {label for label, _ in plan} == set(spec.labels())
    assert all(config.out.startswith(str(tmp_path / "runs")) for _, config in plan)
