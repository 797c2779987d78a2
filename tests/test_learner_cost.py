"""The cost of one update (``biocredit learners --cost``), counted from the kernels that run:
the counter's rules on single ops, a hand count on a tiny network for bp, fa and dfa, and a
finite report for every configuration in the registry."""

import json
import math
import re

import pytest
import torch
from torch import nn

from biocredit.cli import main
from biocredit.errors import ConfigError
from biocredit.learners import LocalNetwork, NetworkSpec
from biocredit.learners.base import SignalFreeLearner
from biocredit.learners.cost import OpCounter, credit_step, measure_cost, parse_shape
from biocredit.learners.registry import configurations

CONFIGURATIONS = configurations()
IDS = [label for label, _, _ in CONFIGURATIONS]
#: the tiny network counted by hand: widths n0..n3, batch B
N0, N1, N2, N3, B = 3, 4, 5, 2, 5
TINY = NetworkSpec(N0, (N1, N2), N3)


def test_counter_counts_each_matrix_product():
    """MACs = output elements x contraction length; elementwise ops cost nothing."""
    x, w, v = torch.randn(2, 3), torch.randn(4, 3), torch.randn(3, 4)
    xb, vb, bias = torch.randn(5, 2, 3), torch.randn(5, 3, 4), torch.zeros(4)
    cases = [
        (lambda: x.mm(v), 2 * 3 * 4),
        (lambda: torch.addmm(bias, x, v), 2 * 3 * 4),
        (lambda: x @ v, 2 * 3 * 4),
        (lambda: torch.matmul(xb, v), 5 * 2 * 3 * 4),
        (lambda: nn.functional.linear(x, w, bias), 2 * 3 * 4),
        (lambda: torch.bmm(xb, vb), 5 * 2 * 3 * 4),
        (lambda: torch.baddbmm(torch.zeros(5, 2, 4), xb, vb), 5 * 2 * 3 * 4),
        (lambda: torch.einsum("bij,bjk->bik", xb, vb), 5 * 2 * 3 * 4),
        (lambda: torch.tanh(x).add(1.0).sum(), 0),
    ]
    for op, macs in cases:
        with OpCounter() as counter:
            op()
        assert counter.macs == macs


def test_depth_is_the_longest_chain_of_products():
    """A product adds one to its deepest factor; an ``add*`` form's added term runs beside the
    product; elementwise ops pass the depth through; in-place ops keep the tensor's chain."""
    x, w1, w2 = torch.randn(2, 3), torch.randn(3, 3), torch.randn(3, 3)
    with OpCounter() as counter:
        h = torch.tanh(x.mm(w1))  # 1
        deep = h.mm(w2).mul(2.0)  # 2
        beside = torch.addmm(deep, x, w1)  # max(2, 1 + 0) = 2
        beside.addmm_(deep, w2)  # 1 + 2 = 3, in place
    assert [counter.depth_of(t) for t in (h, deep, beside)] == [1, 2, 3]
    assert counter.depth == 3


def tiny_cost(label: str):
    return measure_cost(label, None, TINY, B)


def test_hand_count_bp_fa():
    """bp and fa on ``[3, 4, 5, 2]``, batch 5 (no error sent to the input):
    weight gradients ``dW_l = delta_l^T h_{l-1}``: ``B (n1 n0 + n2 n1 + n3 n2)`` = 210;
    deltas ``delta_2 = e W_3`` (or ``e B_3``): ``B n3 n2`` = 50, ``delta_1 = delta_2 W_2``:
    ``B n2 n1`` = 100; total 360. Depth: ``delta_2`` 1, ``delta_1`` 2, ``dW_1`` 3 = L."""
    weight_grads = B * (N1 * N0 + N2 * N1 + N3 * N2)
    deltas = B * N3 * N2 + B * N2 * N1
    assert (weight_grads, deltas) == (210, 150)
    for label, state in (("bp", 0), ("fa", 4 * (N1 * N0 + N2 * N1 + N3 * N2))):
        cost = tiny_cost(label)
        assert cost.credit_macs == weight_grads + deltas == 360
        assert cost.credit_depth == 3  # L weight layers
        assert cost.credit_macs_vs_bp == 1.0
        assert (cost.forward_macs, cost.forward_depth) == (B * (N0 * N1 + N1 * N2 + N2 * N3), 3)
        assert cost.state_bytes == state  # fa: float32 B_l shaped like W_l


def test_hand_count_dfa():
    """dfa: the same weight gradients (210); each hidden delta straight from the output,
    ``delta_l = e D_l``: ``B n3 n2 + B n3 n1`` = 50 + 40; total 300. Depth 2: ``e D_l``, then
    ``delta_l^T h_{l-1}``. State: float32 ``D_0, D_1, D_2`` of ``n3 x (n0, n1, n2)``."""
    cost = tiny_cost("dfa")
    weight_grads = B * (N1 * N0 + N2 * N1 + N3 * N2)
    assert cost.credit_macs == weight_grads + B * N3 * N2 + B * N3 * N1 == 300
    assert cost.credit_depth == 2
    assert math.isclose(cost.credit_macs_vs_bp, 300 / 360)
    assert cost.state_bytes == 4 * N3 * (N0 + N1 + N2)


@pytest.mark.parametrize(("label", "name", "options"), CONFIGURATIONS, ids=IDS)
def test_every_configuration_gets_a_finite_report(label, name, options):
    cost = tiny_cost(label)
    assert (cost.label, cost.learner, cost.shape, cost.batch) == (label, name, TINY.sizes, B)
    assert cost.credit_macs > 0 and cost.credit_depth >= 1
    assert math.isfinite(cost.credit_macs_vs_bp) and cost.credit_macs_vs_bp > 0
    assert cost.forward_macs > 0 and cost.forward_depth >= 1 and cost.state_bytes >= 0


def test_depth_follows_the_steps_that_run():
    """Options are laid over the configuration: fewer inference steps, a shorter chain."""
    short, default = measure_cost("pc", {"steps": 2}, TINY, B), tiny_cost("pc")
    assert short.credit_depth < default.credit_depth
    assert short.credit_macs < default.credit_macs


class _OuterProduct(SignalFreeLearner):
    """A two-factor Hebbian stand-in: ``W.grad = -post^T pre`` per layer."""

    name = "outer-product"

    def learn(self, layers, cache, modulator=None):
        posts = [*cache.inputs[1:], cache.output]
        for layer, pre, post in zip(layers, cache.inputs, posts, strict=True):
            layer.weight.grad = post.t().mm(pre).neg()


def test_a_signal_free_learner_is_counted():
    net = LocalNetwork(TINY, _OuterProduct())
    with torch.no_grad():
        y, cache = net.learner.forward_pass(net.layers, torch.randn(B, N0), record=True)
        with OpCounter() as counter:
            credit_step(net, cache, torch.zeros_like(y))
    assert counter.macs == B * (N1 * N0 + N2 * N1 + N3 * N2) and counter.depth == 1


def test_measuring_leaves_the_global_rng_alone():
    before = torch.random.get_rng_state()
    tiny_cost("pc")
    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: parse_shape("3,x,2"), "Expected at least two positive integers"),
        (lambda: parse_shape("8"), "e.g. --shape 8,256,256,6"),
        (lambda: parse_shape("4,0,2"), "positive integers"),
        (lambda: measure_cost("dfaa"), "Did you mean 'dfa'?"),
        (lambda: measure_cost("bp", None, TINY, 0), "must be an integer >= 1"),
    ],
)
def test_bad_input_says_what_to_do(call, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        call()


def test_cli_cost_json_has_a_row_per_configuration(capsys):
    """``biocredit learners --cost --json`` (in process: the command's own subprocess tests
    are in ``tests/test_cli.py``)."""
    code = main(["learners", "--cost", "--json", "--shape", "3,4,5,2", "--batch", "5"])
    listed = json.loads(capsys.readouterr().out)
    assert code == 0 and (listed["shape"], listed["batch"]) == ([3, 4, 5, 2], 5)
    rows = {row["label"]: row for row in listed["learners"]}
    assert list(rows) == IDS
    assert (rows["bp"]["credit_macs"], rows["bp"]["credit_macs_vs_bp"]) == (360, 1.0)


def test_cli_cost_table(capsys):
    assert main(["learners", "--cost", "--shape", "3,4,5,2", "--batch", "5"]) == 0
    out = capsys.readouterr().out
    assert "network [3, 4, 5, 2], batch 5" in out and "x bp" in out and "pc-fixed-bp" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cost", "--shape", "4,x,2"], "--shape '4,x,2' is not a list of layer widths"),
        (["--cost", "--batch", "0"], "batch must be an integer >= 1"),
        (["--shape", "4,2"], "add --cost"),
    ],
)
def test_cli_bad_cost_input_gets_one_clear_message(args, message, capsys):
    assert main(["learners", *args]) == 2
    assert message in capsys.readouterr().err
