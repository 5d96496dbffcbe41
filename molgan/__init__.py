"""molgan: a MolGAN-style molecular graph generator trained as a WGAN-GP.

Importing the package is light: rdkit, pandas and torch_geometric are imported only inside the
functions that need them.
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import Any

__version__ = "0.3.29"

logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {
    "Critic": "molgan.critic",
    "CriticConfig": "molgan.critic",
    "DenseGraph": "molgan.graph",
    "Generator": "molgan.generator",
    "GeneratorConfig": "molgan.generator",
    "RewardNet": "molgan.reward_net",
    "Sampler": "molgan.sample",
    "RunConfig": "molgan.config",
    "TrainConfig": "molgan.config",
    "load_recipe": "molgan.recipes",
    "Trainer": "molgan.train",
    "evaluate": "molgan.evaluate",
    "gradient_penalty": "molgan.loss",
    "smiles_to_pyg": "molgan.convert",
    "Vocab": "molgan.vocab",
    "MoleculeDataset": "molgan.dataset",
    "load_dataset": "molgan.dataset",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'molgan' has no attribute {name!r}")
