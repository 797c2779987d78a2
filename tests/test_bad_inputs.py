"""Each bad input of experiments/bad_inputs.py gets its one clear message and exit code 2."""

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "bad_inputs", Path(__file__).resolve().parents[1] / "experiments" / "bad_inputs.py"
)
bad_inputs = importlib.util.module_from_spec(_spec)
sys.modules["bad_inputs"] = bad_inputs  # dataclasses look their module up there
_spec.loader.exec_module(bad_inputs)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    return bad_inputs.make_run(tmp_path_factory.mktemp("bad_inputs"))


def test_there_are_at_least_thirty_cases():
    assert len(bad_inputs.CASES) >= 30


@pytest.mark.parametrize("case", bad_inputs.CASES, ids=lambda case: case.what)
def test_bad_input(case, finished_run, tmp_path):
    code, message = bad_inputs.run_case(case, tmp_path, finished_run)
    assert code == 2, message
    assert case.expect in message
    assert message.startswith("biocredit: error: ") and "Traceback" not in message
    assert "\n" not in message  # one paragraph
    assert not (tmp_path / "out").exists()  # a refused run writes nothing
    assert not (tmp_path / bad_inputs.MARKER).exists()  # no pickle payload ever runs
