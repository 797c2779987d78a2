"""Short learning runs that must beat a random policy (real envs, real SB3)."""

import numpy as np
import pytest
from stable_baselines3.common.evaluation import evaluate_policy

from biocredit.envs import make_sb3_vec_env
from biocredit.learners.base import ErrorDrivenLearner
from biocredit.learners.registry import list_learners
from biocredit.training.resolve import resolve_config
from biocredit.training.sb3_runner import train


def random_return(env_id: str, episodes: int = 20) -> float:
    env = make_sb3_vec_env(env_id, 1, seed=123)
    env.action_space.seed(123)

    class Random:
        def predict(self, obs, state=None, episode_start=None, deterministic=False):
            return np.array([env.action_space.sample()]), None

    mean, _ = evaluate_policy(Random(), env, n_eval_episodes=episodes)
    return float(mean)


#: learners measured not to learn here, with the reason (a strict xfail: learning would flag it)
DOES_NOT_LEARN_YET = {
    "sigprop": "sigprop's hidden layers do not learn features PPO can use: 35 at 50k steps "
    "against bp's 500 (docs/notes/sigprop_context.md)",
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "learner",
    [
        pytest.param(
            name,
            marks=[pytest.mark.xfail(reason=DOES_NOT_LEARN_YET[name], strict=True)]
            if name in DOES_NOT_LEARN_YET
            else [],
        )
        for name in list_learners(ErrorDrivenLearner)
        if name != "bp"
    ],
)
def test_ppo_learns_cartpole(learner, tmp_path):
    config = resolve_config(
        flags={"learner": learner, "steps": 20_000, "seed": 1, "out": str(tmp_path / learner)}
    )
    summary = train(config, progress=False)
    baseline = random_return("CartPole-v1")
    assert baseline < 30  # a random CartPole policy lasts about 22 steps
    assert summary["final_return_mean"] > 4 * baseline, (summary, baseline)
