"""Injected NaNs are caught at the step they appear, on both training paths."""

import json
import math

import gymnasium as gym
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

from biocredit.checkpoints import newest_checkpoint
from biocredit.training.guard import DivergenceError, DivergenceGuard
from biocredit.training.online import OnlineRun, train_online
from biocredit.training.resolve import resolve_config
from biocredit.training.run import run_with_recovery
from biocredit.training.sb3_runner import SB3Run, train

INJECT_AT = 37  # env step (n_envs = 1) at which the env or a hook injects a NaN


class NanAt(gym.Wrapper):
    """CartPole whose observation or reward turns NaN at its ``at``-th step."""

    def __init__(self, env: gym.Env, where: str, at: int) -> None:
        super().__init__(env)
        self.where, self.at, self.count = where, at, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.count += 1
        if self.count == self.at:
            if self.where == "observation":
                obs = obs * math.nan
            else:
                reward = math.nan
        return obs, reward, terminated, truncated, info


gym.register("NanCartPole-v0", entry_point=lambda **kw: NanAt(gym.make("CartPole-v1"), **kw))


def config(tmp_path, agent=None, **env_kwargs):
    flags = {
        "steps": 2048,
        "n_envs": 1,
        "seed": 0,
        "out": str(tmp_path / "run"),
        "env": "NanCartPole-v0" if env_kwargs else "CartPole-v1",
        "agent": agent,
    }
    overrides = [f"env_kwargs.{key}={value}" for key, value in env_kwargs.items()]
    if agent is None:
        overrides += ["algo_kwargs.n_steps=64", "algo_kwargs.batch_size=64"]
    return resolve_config(flags=flags, overrides=overrides)


@pytest.mark.parametrize("agent", [None, "neuromodulated-ac"])
@pytest.mark.parametrize("where", ["observation", "reward"])
def test_env_nan_caught_at_its_step(tmp_path, agent, where):
    run = train_online if agent else train
    with pytest.raises(DivergenceError, match=f"env step {INJECT_AT}: {where}"):
        run(config(tmp_path, agent, where=where, at=INJECT_AT), progress=False)


class PoisonWeight(BaseCallback):
    def _on_step(self) -> bool:
        if self.num_timesteps == INJECT_AT:
            with torch.no_grad():
                self.model.policy.mlp_extractor.value_net.layers[0].weight[0, 0] = math.nan
        return True


class PoisonUpdate(BaseCallback):
    def _on_training_start(self) -> None:
        weight = self.model.policy.mlp_extractor.policy_net.layers[1].weight
        weight.register_hook(lambda grad: grad * math.nan)

    def _on_step(self) -> bool:
        return True


def test_sb3_weight_nan_caught_at_its_step(tmp_path):
    with pytest.raises(
        DivergenceError,
        match=(
            f"env step {INJECT_AT}: the weight of 'layers.0.weight' is not finite in module "
            "'mlp_extractor.value_net' \\(learner dfa\\)"
        ),
    ):
        train(config(tmp_path), progress=False, callbacks=[PoisonWeight()])


def test_sb3_update_nan_caught_at_the_first_update(tmp_path):
    # SB3 clips the gradient norm before stepping, which spreads one NaN to every layer
    with pytest.raises(
        DivergenceError,
        match=(
            r"env step 64: the update of 'layers\.[0-2]\.weight' is not finite "
            r"in module 'mlp_extractor.policy_net'"
        ),
    ):
        train(config(tmp_path), progress=False, callbacks=[PoisonUpdate()])


def test_online_weight_nan_caught_at_its_step(tmp_path):
    def poison(agent, steps):
        if steps == INJECT_AT:
            with torch.no_grad():
                agent.networks["critic"].layers[1].weight[0, 0] = math.inf

    with pytest.raises(
        DivergenceError,
        match=(
            f"env step {INJECT_AT}: the weight of 'layers.1.weight' is not finite in module "
            "'critic' \\(learner hebbian3f\\)"
        ),
    ):
        train_online(config(tmp_path, "neuromodulated-ac"), progress=False, callback=poison)


def test_online_update_nan_caught_at_its_step(tmp_path):
    def poison(agent, steps):
        if steps == INJECT_AT - 1:  # a NaN trace turns into a NaN update at the next step
            agent.networks["actor"].learner.traces()[0][0][0, 0, 0] = math.nan

    with pytest.raises(
        DivergenceError,
        match=(
            f"env step {INJECT_AT}: the update of 'layers.0.weight' is not finite in module 'actor'"
        ),
    ):
        train_online(config(tmp_path, "neuromodulated-ac"), progress=False, callback=poison)


@pytest.mark.slow
def test_last_good_checkpoint_is_kept(tmp_path):
    cfg = config(tmp_path, where="observation", at=1500)
    cfg.checkpoint_freq = 512
    with pytest.raises(DivergenceError):
        train(cfg, progress=False)
    meta = (newest_checkpoint(tmp_path / "run") / "checkpoint.json").read_text()
    assert '"num_timesteps": 1024' in meta


@pytest.mark.slow
def test_online_rollback_resumes_the_last_checkpoint_with_halved_rates(tmp_path):
    cfg = config(tmp_path, "neuromodulated-ac")
    cfg.steps, cfg.checkpoint_freq, cfg.on_divergence = 1024, 256, "rollback"
    poisoned = []

    def poison_once(agent, steps):
        if steps == 600 and not poisoned:
            poisoned.append(steps)
            with torch.no_grad():
                agent.networks["critic"].layers[1].weight[0, 0] = math.nan

    summary = run_with_recovery(OnlineRun.start(cfg), progress=False, callback=poison_once)
    assert poisoned and summary["status"] == "done" and summary["steps"] == 1024
    assert summary["rollbacks"] == 1
    meta = json.loads((newest_checkpoint(tmp_path / "run") / "checkpoint.json").read_text())
    groups = meta["resume"]["optimizers"]["actor"]["param_groups"]
    assert groups[0]["lr"] == pytest.approx(0.5e-3)


@pytest.mark.slow
def test_sb3_rollback_continues_to_the_end(tmp_path):
    cfg = config(tmp_path)
    cfg.steps, cfg.checkpoint_freq, cfg.on_divergence = 640, 128, "rollback"
    summary = run_with_recovery(
        SB3Run.start(cfg), progress=False, callbacks=[PoisonWeightOnce(300)]
    )
    assert summary["status"] == "done" and summary["rollbacks"] == 1


def test_rollback_needs_a_checkpoint(tmp_path):
    cfg = config(tmp_path, "neuromodulated-ac")
    cfg.on_divergence = "rollback"

    def poison(agent, steps):
        if steps == INJECT_AT:
            with torch.no_grad():
                agent.networks["actor"].layers[0].weight[0, 0] = math.nan

    with pytest.raises(DivergenceError, match="No checkpoint to roll back to"):
        run_with_recovery(OnlineRun.start(cfg), progress=False, callback=poison)


class PoisonWeightOnce(BaseCallback):
    done = False  # class-level: a rolled-back run builds its callbacks again

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.at and not PoisonWeightOnce.done:
            PoisonWeightOnce.done = True
            with torch.no_grad():
                self.model.policy.mlp_extractor.policy_net.layers[0].weight[0, 0] = math.nan
        return True


def test_weights_are_scanned_only_after_a_write(monkeypatch):
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    guard = DivergenceGuard({"net": net}, lambda: 5)
    scans = []
    norm = torch._foreach_norm
    monkeypatch.setattr(torch, "_foreach_norm", lambda ts: scans.append(1) or norm(ts))
    guard.check_changed_weights()
    guard.check_changed_weights()  # nothing written in between: no second scan
    assert len(scans) == 1
    with torch.no_grad():
        net[1].weight[0, 0] = math.nan
    with pytest.raises(DivergenceError, match=r"env step 5: the weight of '1\.weight'"):
        guard.check_changed_weights()
