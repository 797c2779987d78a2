"""Credit-assignment schemes, one file each, and the local network they train.

>>> from biocredit.learners import LocalNetwork, NetworkSpec
>>> net = LocalNetwork(NetworkSpec(4, (64, 64), 2), "dfa")
"""

from biocredit.learners import (  # noqa: F401  (registers the learners)
    bp,
    chl,
    dfa,
    dni,
    dtp,
    eqprop,
    fa,
    ff,
    hebbian,
    hebbian3f,
    local,
    lra,
    pc,
    pff,
    sigprop,
    softhebb,
)
from biocredit.learners.base import ForwardCache, Learner, linear_grads
from biocredit.learners.conv import ConvLearner
from biocredit.learners.conv_network import ConvNetwork
from biocredit.learners.conv_spec import NATURE_CONVS, ConvLayerSpec, ConvSpec
from biocredit.learners.network import LocalNetwork
from biocredit.learners.plausibility import CRITERIA, Plausibility
from biocredit.learners.registry import learner_class, list_learners, make_learner, register
from biocredit.learners.spec import NetworkSpec

__all__ = [
    "CRITERIA",
    "NATURE_CONVS",
    "ConvLayerSpec",
    "ConvLearner",
    "ConvNetwork",
    "ConvSpec",
    "ForwardCache",
    "Learner",
    "LocalNetwork",
    "NetworkSpec",
    "Plausibility",
    "learner_class",
    "linear_grads",
    "list_learners",
    "make_learner",
    "register",
]
