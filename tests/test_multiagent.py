"""PettingZoo multi-agent runs: who is asked to act, return bookkeeping, parameter sharing,
bad inputs and the CLI."""

import json
import subprocess
import sys
from typing import ClassVar

import numpy as np
import pytest
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv

from biocredit.agents.base import OnlineAgent
from biocredit.agents.team import Team
from biocredit.envs.multiagent import make_parallel_env
from biocredit.envs.parallel_vec_env import ParallelVecEnv
from biocredit.errors import ConfigError
from biocredit.training.multiagent_online import build_team
from biocredit.training.resolve import resolve_config
from biocredit.training.run import EVAL_SEED_OFFSET
from biocredit.training.run_kinds import run_class
from biocredit.training.team_eval import evaluate_team, team_report

SPREAD = "pettingzoo:mpe2.simple_spread_v3"
DYING = "pettingzoo:test_multiagent"  # this module: its parallel_env() below


class DyingEnv(ParallelEnv):
    """Agent ``runner_<i>`` leaves after ``i + 2`` steps (runner_0 terminated, the others
    truncated); reward 1 + action per step. Records every action dict it receives and refuses
    actions for agents that are not live."""

    metadata: ClassVar[dict] = {"name": "dying_v0", "is_parallelizable": True}

    def __init__(self) -> None:
        self.possible_agents = ["runner_0", "runner_1", "runner_2"]
        self.received: list[tuple[list[str], list[str]]] = []  # (live, asked) per step

    def observation_space(self, agent):
        return spaces.Box(-10.0, 10.0, (2,), dtype=np.float32)

    def action_space(self, agent):
        return spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        self.agents, self.t = list(self.possible_agents), 0
        return {a: self._obs(a) for a in self.agents}, {a: {} for a in self.agents}

    def _obs(self, agent):
        return np.array([self.t, self.possible_agents.index(agent)], dtype=np.float32)

    def step(self, actions):
        assert set(actions) <= set(self.agents), f"asked dead agents: {actions}"
        self.received.append((list(self.agents), sorted(actions)))
        self.t += 1
        rewards = {a: 1.0 + float(actions[a]) for a in self.agents}
        leaving = {a: self.t >= self.possible_agents.index(a) + 2 for a in self.agents}
        terminated = {a: leaving[a] and a == "runner_0" for a in self.agents}
        truncated = {a: leaving[a] and a != "runner_0" for a in self.agents}
        obs = {a: self._obs(a) for a in self.agents}
        self.agents = [a for a in self.agents if not leaving[a]]
        return obs, rewards, terminated, truncated, {a: {} for a in obs}


def parallel_env():
    return DyingEnv()


def config(env=DYING, overrides=(), **flags):
    flags = {"agent": "neuromodulated-ac", "env": env, "steps": 60, "eval_episodes": 2, **flags}
    return resolve_config(flags=flags, overrides=list(overrides))


@pytest.mark.parametrize("scheme", ["shared", "independent"])
def test_only_live_agents_are_asked_and_returns_add_up(scheme, tmp_path):
    cfg = config(n_envs=2, out=str(tmp_path / "run"), overrides=[f"multiagent.scheme={scheme}"])
    run = run_class(cfg).start(cfg)
    summary = run.run(progress=False)
    for env in run.envs:
        assert env.received, "the env was never stepped"
        for live, asked in env.received:
            assert asked == sorted(live)  # every live agent acts, no one else
    assert [len(live) for live, _ in run.envs[0].received[:4]] == [3, 3, 2, 1]
    # an agent's return is its reward while live: 1 + action per step, for i + 2 steps
    for episode in run.episodes.finished:
        for agent, ret in episode.items():
            steps = int(agent[-1]) + 2
            assert steps <= ret <= 2 * steps
    report = summary["final_agent_returns"]
    assert sum(report.values()) == pytest.approx(summary["final_return_mean"])
    assert summary["final_group_returns"] == {"runner": pytest.approx(summary["final_return_mean"])}


def test_vec_env_adapter_asks_live_agents_and_reports_team_returns():
    vec = ParallelVecEnv(parallel_env, n_copies=2)
    vec.seed(0)
    obs = vec.reset()
    assert vec.num_envs == 6 and obs.shape == (6, 2 + 3)
    np.testing.assert_array_equal(obs[:3, 2:], np.eye(3))  # one-hot agent id appended
    for t in range(1, 5):
        _, rewards, dones, infos = vec.step(np.ones(6, dtype=np.int64))
        for env in vec.envs:
            live, asked = env.received[-1]
            assert asked == sorted(live)
        if t == 2:  # runner_0 terminated
            assert dones[0] and dones[3] and not infos[0]["TimeLimit.truncated"]
            assert "terminal_observation" in infos[0]
        if t == 3:  # runner_1 truncated; runner_0's slot is padding
            assert dones[1] and infos[1]["TimeLimit.truncated"] and rewards[0] == 0.0
    # after 4 steps every agent left: the copies reset and the team return is reported
    assert infos[0]["episode"]["r"] == pytest.approx(2 * (2 + 3 + 4))
    episode = vec.episodes.finished[-1]
    assert sum(episode.values()) == pytest.approx(infos[0]["episode"]["r"])


def spread_team(scheme, n_copies=2):
    cfg = config(SPREAD, [f"multiagent.scheme={scheme}"])
    env = make_parallel_env(SPREAD, {"N": 3})
    team, _ = build_team(cfg, env, n_copies)
    return team, env.possible_agents


def acting_weights(team, agent):
    unit = next(u for u, members in team.members.items() if agent in members)
    return team.units[unit].actor.net.layers[0].weight


def test_parameter_sharing_shares_one_set_of_tensors():
    team, agents = spread_team("shared")
    assert list(team.units) == ["agent"]
    pointers = {acting_weights(team, a).data_ptr() for a in agents}
    assert len(pointers) == 1
    # the shared network sees each agent's one-hot id after its 18 observation entries
    assert team.units["agent"].observation_space.shape == (18 + 3,)


def test_independent_learners_have_their_own_tensors():
    team, agents = spread_team("independent")
    assert sorted(team.units) == sorted(agents)
    weights = [acting_weights(team, a) for a in agents]
    assert len({w.data_ptr() for w in weights}) == len(agents)
    assert not torch.equal(weights[0], weights[1])
    all_params = [p.data_ptr() for unit in team.units.values() for p in unit.parameters()]
    assert len(all_params) == len(set(all_params))


def test_groups_give_predators_and_prey_their_own_learners():
    groups = (
        "{predators: {agents: 'adversary_*', learner: hebbian3f}, "
        "prey: {agents: [agent_*], learner: dfa}}"
    )
    cfg = config("pettingzoo:mpe2.simple_tag_v3", [f"multiagent.groups={groups}"])
    team, _ = build_team(cfg, make_parallel_env("pettingzoo:mpe2.simple_tag_v3", {}), 1)
    assert team.groups == {
        "predators": ["adversary_0", "adversary_1", "adversary_2"],
        "prey": ["agent_0"],
    }
    assert team.learner_names() == {"predators": "hebbian3f/hebbian3f", "prey": "dfa/dfa"}
    assert team.module_learners() == {
        "predators/actor": "hebbian3f",
        "predators/critic": "hebbian3f",
        "prey/actor": "dfa",
        "prey/critic": "dfa",
    }


def test_the_team_is_an_online_agent_that_saves_and_loads(tmp_path):
    team, agents = spread_team("independent")
    assert isinstance(team, OnlineAgent)
    assert set(team.optimizers()) == {f"{a}/{role}" for a in agents for role in ("actor", "critic")}
    assert set(team.networks) == set(team.trained_networks()) == set(team.guarded_modules())
    rows = np.random.default_rng(0).normal(size=(2 * 3, 18)).astype(np.float32)
    team.act(torch.from_numpy(rows))
    team.save(tmp_path / "team")
    loaded = Team.load(tmp_path / "team")
    assert list(loaded.observation_space.keys()) == agents  # the agents' order is kept
    for key, value in team.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    assert np.array_equal(
        team.predict(rows, deterministic=True)[0], loaded.predict(rows, deterministic=True)[0]
    )


@pytest.mark.slow
def test_a_team_of_active_inference_agents_trains(tmp_path):
    """Any named agent without a memory can be a unit; active inference keeps one replay row per
    agent, which the MPE envs (every agent to the episode's end) allow."""
    cfg = config(
        SPREAD,
        ["agent_kwargs.learning_starts=60", "agent_kwargs.batch_size=8", "eval_episodes=1"],
        agent="active-inference",
        steps=240,
        out=str(tmp_path / "run"),
    )
    summary = run_class(cfg).start(cfg).run(progress=False)
    assert summary["group_learners"] == {"agent": "pc/pc/pc"}
    assert int(summary["steps"]) == 240 and np.isfinite(summary["final_return_mean"])


def test_active_inference_refuses_rows_of_agents_that_left(tmp_path):
    cfg = config(out=str(tmp_path / "run"), agent="active-inference", n_envs=1)
    with pytest.raises(ConfigError, match="agents that have left"):
        run_class(cfg).start(cfg).run(progress=False)


@pytest.mark.parametrize(
    "env, kwargs, wrappers, message",
    [
        ("mpe2.simple_spread_v3", {}, [], "is not a PettingZoo env id"),
        ("pettingzoo:os.path", {}, [], "is not a PettingZoo env module"),
        ("pettingzoo:mpe2.simple_sprad_v3", {}, [], "Did you mean 'simple_spread_v3'?"),
        ("pettingzoo:classic/chesss-v6", {}, [], "Did you mean 'classic/chess-v6'?"),
        ("pettingzoo:classic/tictactoe-v3", {}, [], "turn-based AEC env"),
        (SPREAD, {"n_agents": 3}, [], "do not fit"),
        (SPREAD, {}, ["clip_out_of_bounds"], "AEC-only options"),
        (SPREAD, {}, ["clip"], "Unknown AEC wrapper 'clip'"),
    ],
)
def test_bad_env_input_gets_a_clear_error(env, kwargs, wrappers, message):
    with pytest.raises(ConfigError, match=message.replace("?", r"\?").replace("(", r"\(")):
        make_parallel_env(env, kwargs, wrappers)


def test_missing_extra_names_the_install_command(monkeypatch):
    for name in [m for m in sys.modules if m == "mpe2" or m.startswith("mpe2.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mpe2", None)  # as if not installed
    with pytest.raises(ConfigError, match=r'pip install "biocredit\[multiagent\]"'):
        make_parallel_env(SPREAD, {})


@pytest.mark.parametrize(
    "flags, overrides, message",
    [
        ({}, ["multiagent.scheme=shard"], "Did you mean 'shared'?"),
        ({}, ["multiagent.groups={x: {agents: b*}}"], "matches no group"),
        ({"env": "CartPole-v1"}, ["multiagent.scheme=shared"], "apply to PettingZoo envs"),
        (
            {"algo": "ppo", "agent": None, "learner": "dfa"},
            ["multiagent.scheme=independent"],
            "every agent shares one policy",
        ),
        ({"algo": "sac", "agent": None, "learner": "dfa"}, [], "on-policy"),
    ],
)
def test_bad_multiagent_config_is_refused_before_anything_is_written(
    flags, overrides, message, tmp_path
):
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")):
        cfg = config(out=str(tmp_path / "run"), overrides=overrides, **flags)
        run_class(cfg).start(cfg)
    assert not (tmp_path / "run").exists()


def biocredit(*args):
    return subprocess.run(
        [sys.executable, "-m", "biocredit.cli", *args], capture_output=True, text=True, timeout=240
    )


@pytest.mark.slow
def test_cli_trains_evaluates_and_resumes(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--agent", "neuromodulated-ac", "--env", SPREAD, "--steps", "600"]
    result = biocredit(*args, "--out", str(out), "--no-progress", "--set", "eval_episodes=2")
    assert result.returncode == 0, result.stderr
    names = {p.name for p in out.iterdir()}
    assert {"config.yaml", "progress.csv", "summary.json", "checkpoints"} <= names
    header = (out / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"rollout/ep_rew_mean", "groups/agent", "agents/agent_0", "agents/agent_2"} <= set(
        header
    )
    summary = json.loads((out / "summary.json").read_text())
    report = json.loads(biocredit("eval", str(out), "--episodes", "2", "--json").stdout)
    assert report["return_mean"] == pytest.approx(summary["final_return_mean"])
    assert sum(report["agent_returns"].values()) == pytest.approx(report["return_mean"])
    resumed = biocredit("train", "--resume", str(out), "--steps", "1200", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "summary.json").read_text())["steps"] == 1200
    assert "steps: 1200" in (out / "config.yaml").read_text()


# 48k agent steps = 20 rollouts of 32 copies x 25 steps x 3 agents (about 25 s). Measured lead
# over the random team (team return, 50 deterministic episodes) at 48k for seeds 0-4: 6.2, 7.8,
# 8.0, 10.7, 7.2 (mean 8.0, sd 1.6); seed 0 (this test) is the smallest. A margin of 3 is below
# every seed's lead by >= 2 sd of that spread, and about the standard error of a 50-episode mean
# of the random team (per-episode sd 21-29), so a pass is not noise.
SHORT_RUN_STEPS = 48_000
SHORT_RUN_MARGIN = 3.0


@pytest.mark.slow
def test_short_ppo_dfa_run_on_simple_spread_beats_a_random_team(tmp_path):
    """PPO + dfa, one policy shared by the 3 agents, with the shipped hyperparameters
    (experiments/hyperparams/ppo.yaml), against uniformly random agents on the same 50
    evaluation episodes (same seeds, hence the same starting positions)."""
    cfg = resolve_config(
        flags={"algo": "ppo", "learner": "dfa", "env": SPREAD, "steps": SHORT_RUN_STEPS, "seed": 0},
        overrides=["eval_episodes=50", f"out={tmp_path / 'run'}"],
    )
    trained = run_class(cfg).start(cfg).run(progress=False)["final_return_mean"]
    seed = cfg.seed + EVAL_SEED_OFFSET
    random_team = team_report(evaluate_team(cfg, None, seed, cfg.eval_episodes), {})
    assert trained > random_team["return_mean"] + SHORT_RUN_MARGIN, (trained, random_team)


def test_units_with_actions_of_different_shapes_act_in_one_batch(tmp_path):
    """simple_speaker_listener with continuous actions: the speaker's Box(3) and the listener's
    Box(5) travel as padded rows, and each env gets its own agent's action."""
    cfg = config(
        "pettingzoo:mpe2.simple_speaker_listener_v4",
        ["env_kwargs={continuous_actions: true}", "eval_episodes=1"],
        steps=40,
        n_envs=2,
        out=str(tmp_path / "run"),
    )
    run = run_class(cfg).start(cfg)
    assert run.team.learner_names() == {
        "speaker": "hebbian3f/hebbian3f",
        "listener": "hebbian3f/hebbian3f",
    }
    actions = run.team.env_action(run.team.act(torch.from_numpy(run.obs)))
    asked = run.copies.layout.actions(actions, run.copies.live())
    assert [a["speaker_0"].shape for a in asked] == [(3,), (3,)]
    assert [a["listener_0"].shape for a in asked] == [(5,), (5,)]
    assert np.isfinite(run.run(progress=False)["final_return_mean"])
    loaded = Team.load(tmp_path / "run")  # the agents' order (speaker first) is kept
    assert list(loaded.observation_space.keys()) == ["speaker_0", "listener_0"]


def test_a_team_run_of_the_earlier_layout_is_refused_on_resume(tmp_path):
    """Checkpoints of earlier versions held no env copies: say so, not a mismatch."""
    from biocredit.checkpoints import MANIFEST_FILE, META_FILE, newest_checkpoint, seal
    from biocredit.errors import RunDirError
    from biocredit.training.run_folder import read_run_config

    cfg = config(SPREAD, ["eval_episodes=1"], steps=12, out=str(tmp_path / "run"))
    run_class(cfg).start(cfg).run(progress=False)
    checkpoint = newest_checkpoint(tmp_path / "run")
    meta = json.loads((checkpoint / META_FILE).read_text())
    del meta["resume"]["envs"]
    (checkpoint / META_FILE).write_text(json.dumps(meta))
    (checkpoint / MANIFEST_FILE).unlink()
    seal(checkpoint)
    resumed = read_run_config(tmp_path / "run")
    with pytest.raises(RunDirError, match="multi-agent run of an earlier biocredit"):
        run_class(resumed).resume(resumed, tmp_path / "run")
