"""biocredit's own code never unpickles: no pickle, cloudpickle, torch.load or SB3 load."""

import re
from pathlib import Path

import biocredit

FORBIDDEN = re.compile(
    r"^\s*(import|from)\s+(pickle|cloudpickle|dill|joblib)\b"
    r"|pickle\.loads?\(|torch\.load\(|weights_only\s*=\s*False"
    r"|\b(PPO|A2C|SAC|TD3|DQN|BaseAlgorithm)\.load\("
)


def test_no_unpickling_in_the_package():
    offenders = []
    for path in Path(biocredit.__file__).parent.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if FORBIDDEN.search(line):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert not offenders, offenders
