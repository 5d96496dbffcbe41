"""Config fields of levers that molgan measured and removed, and how saved configs meet them.

A checkpoint or config file written by an earlier release may still carry such a field.
At its *neutral* value (the lever off) the field changed nothing, so it is dropped without a
word and the run loads and samples exactly as before. At any other value the run depended on
code that is gone; loading it fails with one line that names the field and the release that
removed it. docs/ablations.md records what each lever measured.
"""

from __future__ import annotations

from typing import Any

#: Marks a retired field that is accepted at any value: a setting of a lever that is off
#: whenever its own switch (another retired field) is at its neutral value, or a field that
#: never changed the arithmetic (compile_loss).
ANY_VALUE = object()

#: The release that removed the fields below, unless :data:`REMOVED_LATER` names another.
REMOVED_IN = "0.2.0"

#: Config section (``TrainConfig``, ``GeneratorConfig``, ``CriticConfig``) -> retired field ->
#: its neutral value.
RETIRED: dict[str, dict[str, Any]] = {
    "TrainConfig": {
        "critic_drift": 0.0,
        "lr_d": None,
        "lr_decay": "none",
        "temperature": 1.0,
        "temperature_end": None,
        "temperature_steps": ANY_VALUE,
        "mode_seeking": 0.0,
        "diversity_sensitive": 0.0,
        "diversity_tau": ANY_VALUE,
        "repeat_penalty": 0.0,
        "repeat_critic": 0.0,
        "atom_temperature": None,
        "realism_valid_only": True,
        "descriptor_match": 0.0,
        "match_descriptors": ANY_VALUE,
        "diversity_reward": "penalty",
        "repeat_start": 0,
        "repeat_memory": "drawn",
        "isolation_penalty": 0.0,
        "real_smoothing": 0.0,
        "compile_loss": ANY_VALUE,
        "collision_kernel": "product",
        "collision_temperature": None,
    },
    "GeneratorConfig": {
        "gen_dropout": 0.0,
        "gen_activation": "tanh",
        "valence_draw_order": "row",
    },
    "CriticConfig": {
        "critic_pool": "sum",
        "walk_returns": 0,
        "spectral_norm": False,
        "pack": 1,
        "minibatch_kernel_metric": "l1",
        "minibatch_reduce": "mean",
        "minibatch_bank": 0,
        "minibatch_nearest": ANY_VALUE,
    },
}


#: Retired fields removed by a later release than :data:`REMOVED_IN`: field -> release.
REMOVED_LATER: dict[str, str] = {
    "collision_kernel": "0.3.22",
    "collision_temperature": "0.3.22",
}


def removed_in(name: str) -> str:
    """The release that removed retired field ``name``."""
    return REMOVED_LATER.get(name, REMOVED_IN)


class RetiredLeverError(ValueError):
    """A saved config sets a retired lever to a value other than its neutral one."""


def drop_retired(section: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` without the retired fields of ``section``, which must be at their neutral
    values.

    Raises:
        RetiredLeverError: a retired field at another value (one line: field, value, release).
    """
    retired = RETIRED.get(section, {})
    kept = {}
    for name, value in values.items():
        if name not in retired:
            kept[name] = value
            continue
        neutral = retired[name]
        if neutral is ANY_VALUE or _same(value, neutral):
            continue
        release = removed_in(name)
        raise RetiredLeverError(
            f"{name} = {value!r} needs a lever that molgan {release} removed (neutral "
            f"value: {neutral!r}; see docs/ablations.md); load this run with molgan < "
            f"{release}")
    return kept


def _same(value: Any, neutral: Any) -> bool:
    """Whether a saved value is the neutral one: numbers by value (0 and 0.0 alike, a bool
    never equal to a number), anything else by type and value."""
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if number(value) and number(neutral):
        return float(value) == float(neutral)
    return type(value) is type(neutral) and bool(value == neutral)
