"""The one table of torch optimizers that configs name by string.

Every place that takes an optimizer by name uses it: agent modules (``optimizer: adam``), the
eqprop memory, the SB3 features extractor (``features_extractor_kwargs.optimizer``) and SB3
policies (``policy_kwargs.optimizer_class``). Each learner writes ``.grad`` and any of these
applies it (``sgd`` at ``lr`` is the learner's own rule at rate ``eta``).
"""

from __future__ import annotations

from typing import Any

import torch

from biocredit.errors import unknown_name

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
}


def optimizer_class(name: Any, where: str = "optimizer") -> type[torch.optim.Optimizer]:
    """The torch optimizer class called ``name``; ``where`` (the key that named it) goes into
    the error for an unknown name, with the closest valid one."""
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise unknown_name(where, str(name), OPTIMIZERS)
    return OPTIMIZERS[name]
