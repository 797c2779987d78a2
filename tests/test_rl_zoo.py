"""The RL Zoo trains our hyperparameter files as they are: each entry names biocredit's policy,
which learns by dfa unless the Zoo's ``--hyperparams`` names another learner."""

import subprocess
import sys
from pathlib import Path

import pytest
from stable_baselines3 import PPO

from biocredit.sb3 import BioActorCriticPolicy

pytest.importorskip("rl_zoo3")
ROOT = Path(__file__).resolve().parents[1]


def zoo_train(log_folder: Path, *extra: str) -> Path:
    command = [
        sys.executable, "-m", "rl_zoo3.train", "--algo", "ppo", "--env", "CartPole-v1",
        "--conf-file", str(ROOT / "experiments/hyperparams/ppo.yaml"), "-n", "512",
        "-f", str(log_folder), "--seed", "0", "--eval-freq", "-1", "--verbose", "0", *extra,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return next(log_folder.glob("ppo/CartPole-v1_*/CartPole-v1.zip"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "learner"),
    [
        ((), "dfa"),  # the file as it is: biocredit's default learner
        (("--hyperparams", "policy_kwargs:dict(activation_fn='relu', learner='fa')"), "fa"),
    ],
)
def test_the_zoo_trains_our_file_with_biocredits_policy(tmp_path, extra, learner):
    model = PPO.load(zoo_train(tmp_path, *extra))
    assert isinstance(model.policy, BioActorCriticPolicy)
    assert model.policy.mlp_extractor.policy_net.learner.name == learner
    assert model.policy.mlp_extractor.value_net.learner.name == learner
    assert model.num_timesteps >= 512
