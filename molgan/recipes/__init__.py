"""Named training recipes, shipped as TOML files beside this module.

A recipe sets the hyperparameters of a run (optimization, penalties, diversity RL,
sampling, both architectures); the run settings (data, budget, device, seeds) stay the
user's. ``molgan train --recipe NAME`` starts from one, ``--config FILE`` and flags override
it::

    from molgan.recipes import load_recipe, recipe_names
    recipe_names()   # ('default', 'molgan', 'pretrained-moses', 'pretrained-qm9')
    config = load_recipe("molgan")  # a molgan.config.RunConfig

The file's tables (``[optimization]``, ``[generator]``, ...) are for the reader: field names
are unique across them, as the command line's flags are.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any


def recipe_names() -> tuple[str, ...]:
    """The shipped recipes' names, sorted."""
    return tuple(sorted(entry.name[:-5] for entry in resources.files(__name__).iterdir()
                        if entry.name.endswith(".toml")))


def recipe_fields(name: str) -> dict[str, Any]:
    """The flat ``{field: value}`` of shipped recipe ``name``.

    Raises:
        ValueError: no such recipe (the message lists the shipped ones).
    """
    if name not in recipe_names():
        raise ValueError(f"no recipe {name!r}; choose from {', '.join(recipe_names())}")
    from molgan.options import read_config_file

    return read_config_file(Path(str(resources.files(__name__) / f"{name}.toml")))


def load_recipe(name: str, **overrides: Any) -> Any:
    """The :class:`molgan.config.RunConfig` of recipe ``name`` with ``overrides`` (flat
    fields, e.g. ``steps=100``) applied."""
    from molgan.config import RunConfig

    return RunConfig.from_flat({**recipe_fields(name), **overrides})
