"""The eqprop memory: its kernel and energy descent, the beta -> 0 limit, its place in the agent
(learning, per-env reset, SB3-style predict state), bad config, loading a run's checkpoint with
ModularAgent.load, and holding a cue after a short seeded T-maze run."""

import gc
import itertools
import json

import numpy as np
import pytest
import torch
from gymnasium import spaces

from biocredit.agents import ModularAgent, agent_config
from biocredit.agents.config import MemoryConfig
from biocredit.agents.memory import EqPropMemory, memory_energy, memory_step
from biocredit.errors import BiocreditError, RunDirError
from biocredit.training.evaluation import load_run_policy
from biocredit.training.online import OnlineRun, train_online
from biocredit.training.resolve import resolve_config

OBS = spaces.Box(-1.0, 1.0, (3,), dtype=np.float32)


def memory(self_excitation=1.5, steps=10, beta=0.1, dt=0.5, n_envs=4) -> EqPropMemory:
    torch.manual_seed(0)
    return EqPropMemory(3, n_envs, 6, steps, beta, dt, self_excitation, 0.3, torch.optim.SGD, 0.1)


def test_step_kernel_and_energy_descent():
    torch.manual_seed(1)
    m, lateral, drive, nudge = torch.rand(4, 6) * 2 - 1, torch.randn(6, 6), torch.randn(4, 6), None
    lateral = 0.5 * (lateral + lateral.T) * 0.2
    expected = (m + 0.3 * (m @ lateral + drive - m)).clamp(-1, 1)
    torch.testing.assert_close(memory_step(m, lateral, drive, nudge, 0.3), expected)
    e = torch.randn(4, 6)
    torch.testing.assert_close(
        memory_step(m, lateral, drive, e, 0.3),
        (m + 0.3 * (m @ lateral + drive - m - e)).clamp(-1, 1),
    )
    energies = [memory_energy(m, lateral, drive)]
    for _ in range(50):
        m = memory_step(m, lateral, drive, None, 0.5)
        energies.append(memory_energy(m, lateral, drive))
    steps = torch.stack(energies)
    assert (steps[1:] <= steps[:-1] + 1e-6).all()
    assert float((memory_step(m, lateral, drive, None, 1.0) - m).abs().max()) < 1e-5


def default_memory(n_envs: int = 8) -> EqPropMemory:
    """The memory at the agent's defaults (MemoryConfig), reading 3 features."""
    c = MemoryConfig(kind="eqprop")
    torch.manual_seed(0)
    return EqPropMemory(
        3, n_envs, c.units, c.steps, c.beta, c.dt, c.self_excitation, c.recurrence,
        torch.optim.SGD, c.lr,
    )  # fmt: skip


def eqprop_update(mem: EqPropMemory, start, features, error) -> list[torch.Tensor]:
    """The module's own update for ``L = error.m_t`` from ``start``: dW, db, dJ and dL/df."""
    mem.zero_grad(set_to_none=True)
    mem.state.copy_(start)
    f = features.clone().requires_grad_(True)
    mem(f).backward(error)
    return [mem.inputs.weight.grad, mem.inputs.bias.grad, mem.lateral.grad, f.grad]


def test_update_is_the_implicit_gradient_of_the_fixed_point():
    """Inside the bounds the settled state solves ``(I - J) m = d``; the gradient of
    ``L = e.m`` through it is ``lambda = (I - J)^-1 e``, ``dW = lambda z^T``, ``db = lambda``,
    ``dJ = (lambda m^T + m lambda^T) / 2``, ``dL/df = lambda U``. The energy is quadratic, so
    symmetric nudging gives exactly that at a finite beta."""
    torch.set_default_dtype(torch.float64)
    try:
        mem = default_memory()
        mem.steps = 100  # settled to float64 precision: this checks the formula
        with torch.no_grad():  # a symmetric lateral part, eigenvalues still below 1
            mem.lateral.add_(0.01 * torch.randn(mem.units, mem.units))
        start, features = 0.2 * torch.rand(8, mem.units) - 0.1, 0.2 * torch.randn(8, 3)
        error = torch.randn(8, mem.units)
        got = eqprop_update(mem, start, features, error)
        z = torch.cat([features, start], dim=1)
        lateral = mem.symmetric_lateral().detach()
        hessian = torch.eye(mem.units) - lateral
        assert torch.linalg.eigvalsh(hessian).min() > 0.4
        fixed = torch.linalg.solve(hessian, mem.inputs(z).detach().t()).t()
        torch.testing.assert_close(mem.state, fixed, atol=1e-12, rtol=0)  # settled, inside
        assert fixed.abs().max() < 0.8
        lam = torch.linalg.solve(hessian, error.t()).t()
        want = [
            lam.t() @ z,
            lam.sum(0),
            0.5 * (lam.t() @ fixed + fixed.t() @ lam),
            lam @ mem.inputs.weight.detach()[:, :3],
        ]
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, atol=1e-9, rtol=1e-9)
    finally:
        torch.set_default_dtype(torch.float32)


def gradient_through_the_settled_state(mem: EqPropMemory, start, features, error, steps=2000):
    """Autograd of ``L = error.m`` through ``steps`` projected steps (float64: at the fixed
    point), written out here from the update equation, not with the module's code."""
    f = features.clone().requires_grad_(True)
    drive = mem.inputs(torch.cat([f, start], dim=1))
    lateral = 0.5 * (mem.lateral + mem.lateral.t())
    m = start
    for _ in range(steps):
        m = (m + mem.dt * (m @ lateral + drive - m)).clamp(-1, 1)
    params = [mem.inputs.weight, mem.inputs.bias, mem.lateral, f]
    return torch.autograd.grad((error * m).sum(), params), m.detach()


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.flatten() for t in tensors])


def cue_sample(units: int):
    """Cue-like features, a start state inside the bounds, errors: the units the cue drives
    past a bound show the finite-beta error."""
    torch.manual_seed(1)
    features = torch.tensor([[1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]]).repeat(4, 1)
    return features, torch.rand(8, units) - 0.5, torch.randn(8, units)


def test_defaults_settle_and_the_update_tends_to_the_gradient_as_beta_shrinks():
    torch.set_default_dtype(torch.float64)
    try:
        mem = default_memory()
        features, start, error = cue_sample(mem.units)
        want, fixed = gradient_through_the_settled_state(mem, start, features, error)
        want = flat(want)
        assert want.norm() > 0 and (fixed.abs() == 1).any()  # some units at a bound
        errors = []
        for beta in (0.1, 1e-2, 1e-3, 1e-4, 1e-6):
            mem.beta = beta
            got = flat(eqprop_update(mem, start, features, error))
            assert mem.residual < 1e-5  # the free phase has settled at the default steps
            errors.append(float((got - want).norm() / want.norm()))
            cos = torch.nn.functional.cosine_similarity(got, want, dim=0)
        assert all(b <= a + 1e-9 for a, b in itertools.pairwise(errors)), errors
        assert errors[0] > 10 * errors[-1], errors  # finite beta: units cross a bound
        assert cos > 0.999 and errors[-1] < 1e-4, (cos, errors)
        # a convex energy: the same drive settles to the same state from another start
        drive = mem.inputs(torch.cat([features, start], dim=1)).detach()
        lateral = mem.symmetric_lateral().detach()
        torch.testing.assert_close(mem.settle(-start, drive, lateral)[0], fixed, atol=1e-5, rtol=0)
    finally:
        torch.set_default_dtype(torch.float32)


def test_float32_update_at_defaults_aligns_with_the_gradient():
    torch.set_default_dtype(torch.float64)
    try:
        mem = default_memory()
        features, start, error = cue_sample(mem.units)
        want = flat(gradient_through_the_settled_state(mem, start, features, error)[0])
    finally:
        torch.set_default_dtype(torch.float32)
    mem32 = default_memory()
    mem32.load_state_dict({k: v.float() for k, v in mem.state_dict().items()})
    got = flat(eqprop_update(mem32, start.float(), features.float(), error.float()))
    assert mem32.residual < 1e-5
    assert torch.nn.functional.cosine_similarity(got.double(), want, dim=0) >= 0.9


def test_delay_line_memory_holds_the_features_and_their_one_step_change():
    """With the delay-line init and no learning, the change units are g (f_t - f_{t-1}),
    clamped to [-1, 1], and the copy units a f_t; the extra units keep the default init."""
    a, g = 0.4, 25.0
    torch.manual_seed(0)
    mem = EqPropMemory(2, 1, 5, 1, 0.1, 1.0, 1.5, 0.0, torch.optim.SGD, 0.1, a, g)
    features = torch.tensor(
        [[0.10, -0.02], [0.12, -0.01], [0.13, 0.03], [0.20, 0.03], [-0.50, 0.60], [-0.49, 0.61]]
    )
    previous, saturated = torch.zeros(1, 2), False  # a fresh state: f_{-1} = 0
    for f in features:
        state = mem(f[None]).detach()
        torch.testing.assert_close(state[:, :2], (a * f[None]).clamp(-1, 1))
        torch.testing.assert_close(state[:, 2:4], (g * (f[None] - previous)).clamp(-1, 1))
        saturated |= bool((state[:, 2:4].abs() == 1).any())
        previous = f[None]
    assert saturated  # the jump to (-0.5, 0.6) is clamped
    # with the default dt = 0.5 and 10 steps: the same to within (1 - dt)^steps
    torch.manual_seed(0)
    mem = EqPropMemory(2, 1, 4, 10, 0.1, 0.5, 1.5, 0.0, torch.optim.SGD, 0.1, a, g)
    previous = torch.zeros(1, 2)
    for f in features[:4]:
        state = mem(f[None]).detach()
        change = (g * (f[None] - previous)).clamp(-1, 1)
        torch.testing.assert_close(state[:, 2:], change, atol=0.02, rtol=0)
        previous = f[None]


def test_delay_line_off_by_default_and_only_on_its_units():
    torch.manual_seed(0)
    default = EqPropMemory(2, 1, 6, 10, 0.1, 0.5, 1.5, 0.3, torch.optim.SGD, 0.1)
    torch.manual_seed(0)
    off = EqPropMemory(2, 1, 6, 10, 0.1, 0.5, 1.5, 0.3, torch.optim.SGD, 0.1, 0.0, 0.0)
    torch.manual_seed(0)
    on = EqPropMemory(2, 1, 6, 10, 0.1, 0.5, 1.5, 0.3, torch.optim.SGD, 0.1, 0.4, 25.0)
    for a, b, c in zip(default.parameters(), off.parameters(), on.parameters(), strict=True):
        assert torch.equal(a, b)
        assert torch.equal(a[4:], c[4:])  # the two extra units: default init
    torch.testing.assert_close(on.lateral[:4], torch.zeros(4, 6))


def build(n_envs=2, **memory_kwargs) -> ModularAgent:
    kwargs = {"modules": {"memory": {"units": 8, **memory_kwargs}}}
    return ModularAgent(
        OBS, spaces.Discrete(2), agent_config("eqprop-memory-ac", kwargs, None), n_envs
    )


def test_memory_learns_and_resets_per_env():
    agent = build()
    before = [p.detach().clone() for p in agent.memory.parameters()]
    obs = torch.tensor([[1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]])
    for done in (torch.tensor([False, False]), torch.tensor([False, True])):
        agent.act(obs)
        agent.learn(torch.tensor([1.0, -1.0]), done, obs, done)
    assert any(
        not torch.equal(a, b) for a, b in zip(before, agent.memory.parameters(), strict=True)
    )
    assert agent.memory.state[0].abs().sum() > 0  # env 0 goes on remembering ...
    assert agent.memory.state[1].abs().sum() == 0  # ... env 1's episode ended: fresh state
    assert agent.diagnostics()["memory/residual"] < 1e-5  # the free phase settled


def test_a_memory_step_leaves_no_reference_cycle():
    agent = build()
    obs = torch.tensor([[1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]])
    done = torch.tensor([False, False])
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            agent.act(obs)
            agent.learn(torch.tensor([1.0, -1.0]), done, obs, done)
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_predict_carries_the_memory_state_like_sb3_recurrent_policies():
    agent = build()
    committed = agent.memory.state.clone()
    cue = np.array([[1.0, 1.0, 0.0]], dtype=np.float32)
    _, state = agent.predict(cue)
    assert state.shape == (1, 8) and np.abs(state).sum() > 0
    corridor = np.array([[0.0, 1.0, 0.0]], dtype=np.float32)
    _, carried = agent.predict(corridor, state=state, episode_start=np.array([False]))
    _, fresh = agent.predict(corridor, state=state, episode_start=np.array([True]))
    _, from_zero = agent.predict(corridor)
    np.testing.assert_array_equal(fresh, from_zero)
    assert not np.allclose(carried, fresh)
    torch.testing.assert_close(agent.memory.state, committed)  # training state untouched


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"modules": {"memory": {"kind": "eqpro"}}}, "Did you mean 'eqprop'"),
        (
            {"modules": {"memory": {"units": 0}}},
            r"memory.units' \(state units\) must be >= 1, got 0",
        ),
        (
            {"modules": {"memory": {"dt": 2.0}}},
            r"memory.dt' \(settling step size\) must be in \(0, 1\], got 2.0",
        ),
        (
            {"modules": {"memory": {"self_excitation": 1.5}}},
            r"memory.self_excitation' \(each unit's self-coupling\) must be in \[0, 1\)",
        ),
        ({"modules": {"memory": {"unit": 8}}}, "Did you mean 'units'"),
        (
            {"modules": {"memory": {"copy_gain": -0.4}}},
            "copy_gain' must be a finite number >= 0, got -0.4",
        ),
        (
            {"modules": {"memory": {"change_gain": "big"}}},
            "change_gain' must be a number, got str 'big'",
        ),
        (
            {"modules": {"memory": {"copy_gain": float("nan")}}},
            "copy_gain' must be a finite number >= 0, got nan",
        ),
        (
            {"modules": {"memory": {"copy_gain": float("inf")}}},
            "copy_gain' must be a finite number >= 0, got inf",
        ),
        ({"modules": {"memory": {"change_gain": 25.0}}}, "change_gain=25.0 needs copy_gain > 0"),
        (
            {
                "modules": {
                    "policy": {
                        "actor": {"learner": "hebbian3f"},
                        "critic": {"learner": "hebbian3f"},
                    }
                }
            },
            "modules.memory would never learn",
        ),
    ],
)
def test_bad_memory_config(kwargs, match):
    with pytest.raises(BiocreditError, match=match):
        agent_config("eqprop-memory-ac", kwargs, None)


def roll_out(agent: ModularAgent, obs: np.ndarray) -> list[np.ndarray]:
    """Deterministic actions along a sequence, the memory state carried as in evaluation."""
    actions, state, start = [], None, np.array([True])
    for row in obs:
        action, state = agent.predict(row[None], state, start, deterministic=True)
        actions.append(action)
        start = np.array([False])
    return actions


def test_run_checkpoint_loads_with_agent_load(tmp_path):
    """Regression: ModularAgent.load on a run's checkpoint failed with KeyError
    'observation_space', as a run's checkpoint did not record the agent's config and spaces.
    A run folder loads its newest complete checkpoint."""
    config = resolve_config(
        flags={"agent": "eqprop-memory-ac", "algo": "online", "env": "CuedTMaze-v0", "seed": 0},
        overrides=["steps=200", "n_envs=2", "eval_episodes=1", f"out={tmp_path / 'run'}"],
    )
    train_online(config, progress=False)
    loaded = ModularAgent.load(tmp_path / "run")
    reference, _ = load_run_policy(tmp_path / "run")  # what `biocredit eval` restores
    assert loaded.memory is not None and loaded.n_envs == 2
    for (key, value), (key2, value2) in zip(
        reference.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert key == key2 and torch.equal(value, value2), key
    obs = np.zeros((21, 3), dtype=np.float32)
    obs[0, 0], obs[:20, 1], obs[20, 2] = 1.0, 1.0, 1.0
    for a, b in zip(roll_out(loaded, obs), roll_out(reference, obs), strict=True):
        np.testing.assert_array_equal(a, b)
    loaded.save(tmp_path / "again")  # and the agent's own save/load round trip
    again = ModularAgent.load(tmp_path / "again")
    for a, b in zip(roll_out(again, obs), roll_out(loaded, obs), strict=True):
        np.testing.assert_array_equal(a, b)


def test_agent_load_of_a_folder_without_agent_metadata(tmp_path):
    agent = build()
    agent.save(tmp_path / "agent")
    meta_path = tmp_path / "agent" / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    del meta["observation_space"]
    meta_path.write_text(json.dumps(meta))
    (tmp_path / "agent" / "manifest.json").unlink()  # as an earlier biocredit wrote it
    with pytest.raises(RunDirError, match=r"lacks \['observation_space'\]"):
        ModularAgent.load(tmp_path / "agent")


def test_delay_line_needs_enough_units():
    with pytest.raises(
        BiocreditError, match="units is 5, but the delay-line initialisation needs 6"
    ):
        build(units=5, copy_gain=0.4, change_gain=25.0)  # 3 features: 3 copy + 3 change units
    assert build(units=3, copy_gain=0.4).memory.units == 3  # copies only: 3 units suffice


HELD = 10  # silent steps: gain 2 takes a unit 0.001 from its unstable point to a bound


@pytest.mark.slow
def test_memory_holds_a_one_step_cue_after_a_short_tmaze_run(tmp_path):
    """The untrained memory already holds a bit (each unit's across-step map
    ``m_t = clamp((r m_{t-1} + u_t) / (1 - s))`` has gain 2 at the defaults and runs to a bound
    within a few steps, then stays); this checks that learning on the T-maze keeps that ability
    rather than washing it out."""
    config = resolve_config(
        flags={"agent": "eqprop-memory-ac", "algo": "online", "env": "CuedTMaze-v0", "seed": 0},
        overrides=["steps=4000", "n_envs=4", "env_kwargs.delay=5", f"out={tmp_path / 'run'}"],
    )
    run = OnlineRun.start(config)
    run.run(progress=False)
    mem = run.agent.memory
    states = {}
    for cue in (1.0, -1.0):  # the cue once, then no input at all for 30 steps
        start = torch.zeros(1, mem.units)
        trace = [mem.infer(torch.tensor([[cue, 1.0, 0.0]]), start)]
        for _ in range(30):
            trace.append(mem.infer(torch.zeros(1, 3), trace[-1]))
        states[cue] = torch.cat(trace)
    for trace in states.values():
        drift = (trace[HELD:] - trace[HELD]).norm(dim=1).max()  # once the units are at bounds
        assert drift < 0.05 * trace[HELD].norm(), drift
    gap = (states[1.0][-1] - states[-1.0][-1]).norm()
    assert gap > 0.5 * (states[1.0][0] - states[-1.0][0]).norm()  # the cue is still there


@pytest.mark.slow
def test_the_memory_solves_a_tmaze_the_memoryless_agent_cannot(tmp_path):
    """Cued T-maze, delay 5, 10k steps, seed 0, 20 greedy episodes (return +1 for the cued
    turn, -1 for the other; chance is 0): measured 1.00 with the eqprop memory, -0.10 without."""

    def final_return(memory_override: list[str], name: str) -> float:
        config = resolve_config(
            flags={"agent": "eqprop-memory-ac", "algo": "online", "env": "CuedTMaze-v0"},
            overrides=["steps=10000", "seed=0", "env_kwargs.delay=5", "eval_episodes=20",
                       f"out={tmp_path / name}", *memory_override],
        )  # fmt: skip
        return train_online(config, progress=False)["final_return_mean"]

    assert final_return([], "memory") >= 0.8  # success (return + 1) / 2 >= 90%
    assert final_return(["agent_kwargs.modules.memory=null"], "none") <= 0.4  # near chance
