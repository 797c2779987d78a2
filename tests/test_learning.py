"""Short learning runs that must beat a random policy (real envs, real SB3)."""

import gymnasium as gym
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
    """PPO at the Zoo's CartPole entry, 10k steps, seed 1. Measured: chl 386, fa 273, dni 262,
    eqprop 261, lra 255, pc 234, dtp 215, dfa 195, local 122; a random policy about 22."""
    config = resolve_config(
        flags={"learner": learner, "steps": 10_000, "seed": 1, "out": str(tmp_path / learner)}
    )
    summary = train(config, progress=False)
    baseline = random_return("CartPole-v1")
    assert baseline < 30  # a random CartPole policy lasts about 22 steps
    assert summary["final_return_mean"] > 4 * baseline, (summary, baseline)


@pytest.mark.slow
def test_a2c_learns_cartpole(tmp_path):
    """A2C with dfa at the RL Zoo's CartPole entry (8 envs): 500 at 10k steps when measured."""
    flags = {"algo": "a2c", "learner": "dfa", "steps": 10_000, "seed": 1, "out": str(tmp_path)}
    summary = train(resolve_config(flags=flags), progress=False)
    assert summary["final_return_mean"] > 4 * random_return("CartPole-v1"), summary


@pytest.mark.slow
def test_dqn_learns_cartpole(tmp_path):
    """DQN with dfa at the Zoo's CartPole entry with a 64x64 Q-network and half the gradient steps
    (for time): 151 at 10k steps when measured, a random policy about 22."""
    flags = {"algo": "dqn", "learner": "dfa", "steps": 10_000, "seed": 1, "out": str(tmp_path)}
    overrides = ["algo_kwargs.gradient_steps=64", "policy_kwargs.net_arch=[64, 64]"]
    summary = train(resolve_config(flags=flags, overrides=overrides), progress=False)
    assert summary["final_return_mean"] > 4 * random_return("CartPole-v1"), summary


def random_inverted_pendulum_return(episodes: int = 20) -> float:
    """About 3.9: uniformly random forces drop the pole within a few steps."""
    env = gym.make("InvertedPendulum-v5")
    env.action_space.seed(123)
    returns = []
    for episode in range(episodes):
        env.reset(seed=episode)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


#: a short off-policy run: small networks, learning from step 500
OFF_POLICY_SHORT = ["algo_kwargs.learning_starts=500", "algo_kwargs.batch_size=64",
                    "policy_kwargs.net_arch=[64, 64]"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("algo", "learner", "steps"),
    # measured: SAC + fa 25.1 at 3k steps; TD3 + bp through the boundary 65.0 at 4k. TD3 + fa
    # returned 2.0 at 3k and 4k steps, below random: its actor sat at the action bound (-3), and
    # with a bp critic the same fa actor balanced, so at this budget it is the action gradient
    # fa's critic sends through its random feedback that misleads the actor
    [("sac", "fa", 3000), ("td3", "bp", 4000)],
)
def test_off_policy_learns_inverted_pendulum(algo, learner, steps, tmp_path):
    flags = {"algo": algo, "learner": learner, "env": "InvertedPendulum-v5", "steps": steps,
             "seed": 1, "out": str(tmp_path)}  # fmt: skip
    summary = train(resolve_config(flags=flags, overrides=OFF_POLICY_SHORT), progress=False)
    assert summary["final_return_mean"] > 4 * random_inverted_pendulum_return(), summary
