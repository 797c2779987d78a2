"""The autograd boundary under repeated and second-order differentiation.

Repeated backward on one graph (``retain_graph=True``, one ``autograd.grad`` per parameter)
assigns credit again from the same forward record, for every error-driven configuration.
Second-order use is exact for bp (Hessian-vector products equal torch's on the same network) and
a :class:`SecondOrderError` naming the reason for every other learner; sb3-contrib's TRPO, which
needs Hessian-vector products, trains a bp policy exactly as SB3's own MLP policy and refuses the
others.
"""

import copy

import pytest
import torch
from stable_baselines3.common.utils import set_random_seed
from torch import nn

from biocredit.learners import LocalNetwork, NetworkSpec, learner_class
from biocredit.learners.base import ErrorDrivenLearner
from biocredit.learners.boundary import SecondOrderError
from biocredit.learners.registry import configurations
from biocredit.sb3 import BioActorCriticPolicy

SPEC = NetworkSpec(4, (12, 8), 3, "tanh")
ERROR_DRIVEN = [c for c in configurations() if issubclass(learner_class(c[1]), ErrorDrivenLearner)]
IDS = [label for label, _, _ in ERROR_DRIVEN]
FIRST_ORDER = [c for c in ERROR_DRIVEN if not learner_class(c[1]).second_order]


def network(name: str, options: dict) -> LocalNetwork:
    torch.manual_seed(0)
    return LocalNetwork(SPEC, name, **options)


def loss_of(y: torch.Tensor) -> torch.Tensor:
    return (y - 1.0).pow(2).sum()


@pytest.mark.parametrize(("label", "name", "options"), ERROR_DRIVEN, ids=IDS)
def test_repeated_backward_assigns_credit_again(label, name, options):
    """Two backward calls on one retained graph give what two separate passes give."""
    net = network(name, options)
    twin = copy.deepcopy(net)
    x = torch.randn(5, SPEC.in_features)
    loss = loss_of(net(x))
    torch.manual_seed(1)  # the same noise for learners that draw some (pc's mirror phase)
    loss.backward(retain_graph=True)
    loss.backward()
    torch.manual_seed(1)
    for _ in range(2):
        loss_of(twin(x)).backward()
    for p, q in zip(net.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("label", "name", "options"), ERROR_DRIVEN, ids=IDS)
def test_one_autograd_grad_per_parameter(label, name, options):
    """TRPO's pattern: ``autograd.grad(loss, param, retain_graph=True)`` for each parameter."""
    net = network(name, options)
    twin = copy.deepcopy(net)
    x = torch.randn(5, SPEC.in_features)
    loss = loss_of(net(x))
    params = net.parameters_in_order()
    torch.manual_seed(1)
    first = torch.autograd.grad(loss, params[0], retain_graph=True)[0]
    last = torch.autograd.grad(loss, params[-1], retain_graph=True)[0]
    torch.manual_seed(1)
    loss_of(twin(x)).backward()
    reference = twin.parameters_in_order()
    torch.testing.assert_close(first, reference[0].grad, rtol=1e-6, atol=1e-7)
    # a learner with state (pc's mirror feedback) may assign credit differently the second
    # time: the last parameter is compared with a second pass of the twin
    twin.zero_grad()
    loss_of(twin(x)).backward()
    torch.testing.assert_close(last, reference[-1].grad, rtol=1e-6, atol=1e-7)


def test_bp_hessian_vector_product_equals_torch():
    net = network("bp", {})
    reference = nn.Sequential(nn.Linear(4, 12), nn.Tanh(), nn.Linear(12, 8), nn.Tanh())
    reference.append(nn.Linear(8, 3))
    with torch.no_grad():
        for p, q in zip(reference.parameters(), net.parameters(), strict=True):
            p.copy_(q)
    x = torch.randn(6, 4, requires_grad=True)
    vectors = [torch.randn_like(p) for p in net.parameters()]

    def hvp(module: nn.Module) -> list[torch.Tensor]:
        params = list(module.parameters())
        grads = torch.autograd.grad(loss_of(module(x)), [x, *params], create_graph=True)
        grad_x, grads = grads[0], grads[1:]
        dot = sum((g * v).sum() for g, v in zip(grads, vectors, strict=True))
        return list(torch.autograd.grad(dot + grad_x.square().sum(), [x, *params]))

    for ours, theirs in zip(hvp(net), hvp(reference), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("label", "name", "options"), FIRST_ORDER, ids=[c[0] for c in FIRST_ORDER])
def test_second_derivative_is_refused_with_the_reason(label, name, options):
    net = network(name, options)
    x = torch.randn(5, SPEC.in_features)
    params = net.parameters_in_order()
    grads = torch.autograd.grad(loss_of(net(x)), params, create_graph=True)
    net.zero_grad()
    loss_of(network(name, options)(x)).backward()  # the first-order update is the usual one
    with pytest.raises(SecondOrderError, match="not a differentiable function of the loss"):
        torch.autograd.grad(sum(g.square().sum() for g in grads), params)


try:
    import sb3_contrib
except ImportError:  # pragma: no cover - an optional extra: biocredit[baselines]
    sb3_contrib = None
needs_contrib = pytest.mark.skipif(sb3_contrib is None, reason="needs biocredit[baselines]")


def trpo(policy: type | str, learner: str | None) -> object:
    kwargs = {} if learner is None else {"learner": learner}
    return sb3_contrib.TRPO(
        policy,
        "CartPole-v1",
        n_steps=256,
        batch_size=64,
        seed=0,
        device="cpu",
        policy_kwargs=dict(net_arch=[16, 16], **kwargs),
    )


def mlp_layers(policy: object, role: str) -> list[nn.Linear]:
    """SB3's MlpPolicy network of ``role``: hidden layers in ``mlp_extractor``, then its head."""
    head = policy.action_net if role == "policy_net" else policy.value_net
    return [*(m for m in getattr(policy.mlp_extractor, role) if isinstance(m, nn.Linear)), head]


@pytest.mark.slow
@needs_contrib
def test_trpo_trains_a_bp_policy_as_sb3s_own():
    ours, theirs = trpo(BioActorCriticPolicy, "bp"), trpo("MlpPolicy", None)
    roles = ("policy_net", "value_net")
    with torch.no_grad():
        for role in roles:
            own = getattr(ours.policy.mlp_extractor, role).layers
            for target, source in zip(own, mlp_layers(theirs.policy, role), strict=True):
                target.weight.copy_(source.weight)
                target.bias.copy_(source.bias)
    before = ours.policy.mlp_extractor.policy_net.layers[0].weight.detach().clone()
    for model in (ours, theirs):
        set_random_seed(1)  # torch's for the actions, NumPy's for the critic's minibatches
        model.learn(512)  # two rollouts and updates: conjugate gradient, line search, critic
    for role in roles:
        own = getattr(ours.policy.mlp_extractor, role).layers
        for layer, reference in zip(own, mlp_layers(theirs.policy, role), strict=True):
            # float32 rounding differs (addmm vs Linear) and conjugate gradient amplifies it
            torch.testing.assert_close(layer.weight, reference.weight, rtol=1e-5, atol=1e-6)
    change = (ours.policy.mlp_extractor.policy_net.layers[0].weight - before).abs().max()
    assert change > 1e-2  # the updates moved the weights far more than the tolerance


@needs_contrib
def test_trpo_refuses_a_local_learner_with_the_reason():
    model = trpo(BioActorCriticPolicy, "dfa")
    with pytest.raises(SecondOrderError, match=r"TRPO.*not a differentiable function of the loss"):
        model.learn(256)
