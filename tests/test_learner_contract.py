"""The learner contract, for every configuration in the registry: a new learner (or variant)
is covered here by existing in its own file; only its kernel test is written by hand.

Attach, forward, one credit-assignment step through the seam of its signal kind, the
divergence guard, save/load and bitwise resume, an SB3 PPO step where a loss reaches it (and
a clear refusal where it does not), a PPO step as the features extractor for learners that learn
from their inputs alone (a refusal for the others), and a step of a native agent module: the
policy's for learners its signals reach, perception's for signal-free ones.
"""

import gc

import numpy as np
import pytest
import torch
from gymnasium import spaces
from safetensors.torch import load_file, save_file

from biocredit.agents.modular import ModularAgent
from biocredit.agents.registry import agent_config
from biocredit.errors import ConfigError
from biocredit.learners import LocalNetwork, NetworkSpec, Plausibility, learner_class, make_learner
from biocredit.learners.base import (
    ErrorDrivenLearner,
    ModulatorDrivenLearner,
    RunContext,
    SignalFreeLearner,
    TargetDrivenLearner,
)
from biocredit.learners.registry import configurations
from biocredit.training.guard import DivergenceError, DivergenceGuard

SPEC = NetworkSpec(4, (12, 8), 3, "tanh")
CONFIGURATIONS = configurations()
IDS = [label for label, _, _ in CONFIGURATIONS]
KINDS = (TargetDrivenLearner, ErrorDrivenLearner, ModulatorDrivenLearner, SignalFreeLearner)
N_ENVS = 4


def network(name: str, options: dict, seed: int = 0) -> LocalNetwork:
    torch.manual_seed(seed)
    return LocalNetwork(SPEC, name, RunContext(gamma=0.9, n_envs=N_ENVS), **options)


def learn_step(net: LocalNetwork, x: torch.Tensor) -> None:
    """One update through the seam of the learner's signal kind, into ``.grad``."""
    learner = net.learner
    net.zero_grad()
    if isinstance(learner, ErrorDrivenLearner):
        (net(x) - 1.0).pow(2).sum().backward()
    elif isinstance(learner, ModulatorDrivenLearner):
        _, cache = learner.forward_pass(net.layers, x, record=True)
        learner.accumulate(net.layers, cache, torch.tanh(x[:, : SPEC.out_features]))
        learner.modulate(net.layers, x[:, 0])
    else:
        _, cache = learner.forward_pass(net.layers, x, record=True)
        learner.learn(net.layers, cache)


def train(net: LocalNetwork, optimizer: torch.optim.Optimizer, batches) -> None:
    for x in batches:
        learn_step(net, x)
        optimizer.step()


@pytest.mark.parametrize(("label", "name", "options"), CONFIGURATIONS, ids=IDS)
def test_signal_kind_and_metadata(label, name, options):
    cls = learner_class(name)
    kinds = [kind for kind in KINDS if issubclass(cls, kind)]
    assert kinds, f"{label} is not of any signal kind"
    assert cls.signal == kinds[0].signal
    assert cls.family and cls.paper and cls.__doc__
    flags = make_learner(name, **options).plausibility  # computed without attaching
    assert isinstance(flags, Plausibility)


@pytest.mark.parametrize(("label", "name", "options"), CONFIGURATIONS, ids=IDS)
def test_attach_forward_and_credit(label, name, options):
    net = network(name, options)
    with pytest.raises(RuntimeError, match="already attached"):
        net.learner.attach(SPEC)
    x = torch.randn(N_ENVS, SPEC.in_features)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (N_ENVS, SPEC.out_features) and bool(y.isfinite().all())
    learn_step(net, x)
    grads = [p.grad for p in net.parameters_in_order()]
    assert all(g is not None and bool(g.isfinite().all()) for g in grads), label
    assert any(bool(g.abs().sum() > 0) for g in grads), label


@pytest.mark.parametrize(("label", "name", "options"), CONFIGURATIONS, ids=IDS)
def test_a_step_leaves_no_reference_cycle(label, name, options):
    """What a forward pass records is freed when its output is: a record that held the output
    itself would make a cycle through the autograd node, kept until the garbage collector runs
    (every forward's activations piling up, then reallocated from fresh pages)."""
    net = network(name, options)
    x = torch.randn(N_ENVS, SPEC.in_features)
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            learn_step(net, x)
            if isinstance(net.learner, ErrorDrivenLearner):
                net(x)  # a forward whose output is dropped without a backward
        assert gc.collect() == 0, label
    finally:
        gc.enable()


@pytest.mark.parametrize(("label", "name", "options"), CONFIGURATIONS, ids=IDS)
def test_guard_names_the_learner(label, name, options):
    net = network(name, options)
    guard = DivergenceGuard({"actor": net}, lambda: 7)
    learn_step(net, torch.full((N_ENVS, SPEC.in_features), float("nan")))
    with pytest.raises(DivergenceError, match=f"module 'actor' \\(learner {name}\\)"):
        guard.check_parameters("update", "weight")


@pytest.mark.parametrize(("label", "name", "options"), CONFIGURATIONS, ids=IDS)
def test_save_load_and_bitwise_resume(label, name, options, tmp_path):
    torch.manual_seed(1)
    batches = [torch.randn(N_ENVS, SPEC.in_features) for _ in range(6)]
    net = network(name, options, seed=0)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    train(net, optimizer, batches[:3])
    save_file(net.state_dict(), str(tmp_path / "net.safetensors"))
    torch.save(optimizer.state_dict(), tmp_path / "optimizer.pt")
    rng = torch.get_rng_state()
    train(net, optimizer, batches[3:])

    copy = network(name, options, seed=5)  # other initial weights and feedback, overwritten
    copy.load_state_dict(
        {k: v.clone() for k, v in load_file(str(tmp_path / "net.safetensors")).items()}
    )
    copy_optimizer = torch.optim.Adam(copy.parameters(), lr=1e-2)
    copy_optimizer.load_state_dict(torch.load(tmp_path / "optimizer.pt", weights_only=True))
    torch.set_rng_state(rng)
    train(copy, copy_optimizer, batches[3:])
    for (key, a), b in zip(net.state_dict().items(), copy.state_dict().values(), strict=True):
        assert torch.equal(a, b), (label, key)


@pytest.mark.parametrize(("label", "name", "options"), CONFIGURATIONS, ids=IDS)
def test_sb3_ppo_step_or_clear_refusal(label, name, options):
    from stable_baselines3 import PPO

    from biocredit.sb3 import BioActorCriticPolicy

    kwargs = dict(learner=name, learner_kwargs=options, net_arch=[8, 8])
    if not issubclass(learner_class(name), ErrorDrivenLearner):
        instead = "train the features extractor" if is_signal_free(name) else "native agents"
        with pytest.raises(ConfigError, match=f"error- or target-driven learner.*{instead}"):
            PPO(BioActorCriticPolicy, "CartPole-v1", policy_kwargs=kwargs, device="cpu")
        return
    model = PPO(
        BioActorCriticPolicy, "CartPole-v1", n_steps=32, batch_size=32, n_epochs=1, seed=0,
        policy_kwargs=kwargs, device="cpu",
    )  # fmt: skip
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(32)
    after = list(model.policy.parameters())
    assert all(bool(p.isfinite().all()) for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def is_signal_free(name: str) -> bool:
    return issubclass(learner_class(name), SignalFreeLearner)


@pytest.mark.parametrize(("label", "name", "options"), CONFIGURATIONS, ids=IDS)
def test_sb3_features_extractor_step_or_clear_refusal(label, name, options):
    """A signal-free learner trains PPO's features extractor (dfa heads); any other is refused
    there: the extractor gets no loss."""
    from stable_baselines3 import PPO

    from biocredit.sb3 import BioActorCriticPolicy, BioFeaturesExtractor

    extractor = dict(learner=name, learner_kwargs=options, hidden=[8], features_dim=6)
    kwargs = dict(
        learner="dfa",
        net_arch=[8],
        features_extractor_class=BioFeaturesExtractor,
        features_extractor_kwargs=extractor,
    )
    if not is_signal_free(name):
        with pytest.raises(ConfigError, match="but the extractor learns from the observations"):
            PPO(BioActorCriticPolicy, "CartPole-v1", policy_kwargs=kwargs, device="cpu")
        return
    model = PPO(
        BioActorCriticPolicy, "CartPole-v1", n_steps=32, batch_size=32, n_epochs=1, seed=0,
        policy_kwargs=kwargs, device="cpu",
    )  # fmt: skip
    parts = (model.policy.features_extractor, model.policy.mlp_extractor)
    before = [[p.detach().clone() for p in part.parameters()] for part in parts]
    model.learn(32)
    for part, old in zip(parts, before, strict=True):
        new = list(part.parameters())
        assert all(bool(p.isfinite().all()) for p in new), label
        assert any(not torch.equal(a, b) for a, b in zip(old, new, strict=True)), label


def module_before_and_after_steps(modules: dict, role: str) -> tuple[list, list]:
    """``role``'s parameters before and after three act/learn steps of a neuromodulated-ac
    agent (2 envs, 4-d observations, 3 actions) with ``modules``."""
    obs = spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)
    config = agent_config("neuromodulated-ac", {"modules": modules}, None)
    agent = ModularAgent(obs, spaces.Discrete(3), config, n_envs=2)
    before = [p.detach().clone() for p in agent.networks[role].parameters()]
    for _ in range(3):
        agent.act(torch.randn(2, 4))
        agent.learn(
            torch.ones(2),
            torch.tensor([False, False]),
            torch.randn(2, 4),
            torch.tensor([False, False]),
        )
    return before, list(agent.networks[role].parameters())


@pytest.mark.parametrize(("label", "name", "options"), CONFIGURATIONS, ids=IDS)
def test_native_perception_module_step(label, name, options):
    """Every signal-free learner learns as the perception module of a modular agent under a
    hebbian3f policy, which sends it nothing."""
    if not is_signal_free(name):
        pytest.skip(f"{label} learns from a signal: perception by errors is in test_agents.py")
    perception = {"learner": name, "learner_kwargs": options, "hidden": [8], "features": 5}
    before, after = module_before_and_after_steps({"perception": perception}, "perception")
    assert all(bool(p.isfinite().all()) for p in after), label
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True)), label


@pytest.mark.parametrize(("label", "name", "options"), CONFIGURATIONS, ids=IDS)
def test_native_policy_module_step(label, name, options):
    """Every learner that an actor-critic's signals reach (an output error or the TD error as
    third factor) learns as the actor of a modular agent."""
    if is_signal_free(name):
        pytest.skip(f"{label} learns from inputs alone: a perception module, not a policy")
    actor = {"learner": name, "learner_kwargs": options, "hidden": [8]}
    modules = {"policy": {"actor": actor, "critic": {"learner": "hebbian3f", "hidden": [8]}}}
    before, after = module_before_and_after_steps(modules, "actor")
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True)), label
