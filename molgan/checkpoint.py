"""One checkpoint bundle per run: written atomically, read with ``weights_only=True``.

The bundle is a plain dict of ints, floats, strings, lists, dicts and tensors (model and
optimizer state dicts, configs as dicts, the vocabulary as a dict, RNG states as uint8 tensors),
so ``torch.load(..., weights_only=True)`` reads it and nothing arbitrary is ever unpickled.
There is no fallback to ``weights_only=False``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from molgan.files import atomic_output

#: Stored in every bundle; bumped on incompatible changes.
FORMAT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint that is missing, truncated, corrupt or of another format (one-line message)."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a temp file in the same folder, fsync, rename.

    An interrupted save leaves the previous file at ``path`` untouched.
    """
    path = Path(path)
    bundle = {"format_version": FORMAT_VERSION, **state}
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        torch.save(bundle, handle)
        handle.flush()
        os.fsync(handle.fileno())
    _remove_stale_temporaries(path)


def _remove_stale_temporaries(path: Path) -> None:
    """Delete ``.<name>.<pid>.tmp`` files beside ``path`` left by saves of processes that no
    longer run (a save killed with SIGKILL cannot clean up after itself)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        pid = stale.name[len(path.name) + 2 : -len(".tmp")]
        if pid.isdigit() and not _process_alive(int(pid)):
            stale.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a bundle written by :func:`save_checkpoint` (``weights_only=True``, no fallback).

    Raises:
        CheckpointError: missing, unreadable, truncated or not a molgan checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "ckpt.pt"
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        bundle = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for damaged files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read checkpoint {path} (truncated or corrupt?): "
                              f"{first_line[:200]}") from None
    if not isinstance(bundle, dict) or bundle.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} is not a molgan checkpoint of format {FORMAT_VERSION}")
    return bundle


@contextmanager
def bundle_contents(path: str | Path) -> Iterator[None]:
    """Read a loaded bundle inside this block: a missing key, a tensor of another shape or a
    vocabulary that does not fit the weights becomes one :class:`CheckpointError` naming
    ``path``, instead of a ``KeyError`` or ``RuntimeError`` from deep inside torch."""
    try:
        yield
    except CheckpointError:
        raise
    except KeyError as exc:
        raise CheckpointError(f"{path} lacks {exc} (not a molgan checkpoint, or one of "
                              "another version)") from None
    except (RuntimeError, TypeError, ValueError, IndexError, AttributeError) as exc:
        text = str(exc).strip().splitlines()
        first = text[0] if text else type(exc).__name__
        if len(text) > 1:
            first += " ..."
        raise CheckpointError(f"{path} does not fit this model ({first}): a checkpoint of "
                              "another vocabulary, shape or version?") from None


def build_config(kind: type, values: dict[str, Any], saved: bool = True) -> Any:
    """A config dataclass from a dict: lists become tuples, unknown fields (a newer format) are
    an error. Fields of retired levers (:mod:`molgan.retired`) are dropped at their neutral
    value and refused at any other. Fields missing from a ``saved`` dict (a checkpoint of an
    older version) take the value they had before the field existed
    (``kind.ABSENT_IN_OLDER_RUNS``), so an old run keeps its recipe when the defaults change;
    other missing fields take their defaults.

    Raises:
        CheckpointError: an unknown field, or a retired lever that is not at its neutral value.
    """
    from dataclasses import fields

    from molgan.retired import RetiredLeverError, drop_retired

    try:
        values = drop_retired(kind.__name__, values)
    except RetiredLeverError as exc:
        raise CheckpointError(str(exc)) from None
    if saved:
        values = {**getattr(kind, "ABSENT_IN_OLDER_RUNS", {}), **values}
    known = {f.name for f in fields(kind)}
    unknown = set(values) - known
    if unknown:
        raise CheckpointError(f"unknown {kind.__name__} fields {sorted(unknown)}: "
                              f"written by a newer molgan?")
    return kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


#: Models shipped inside the package: name -> file under ``molgan/pretrained``.
PRETRAINED = {"qm9": "qm9.pt", "moses": "moses.pt"}


def pretrained_path(name: str = "qm9") -> Path:
    """Path of a shipped model (``molgan/pretrained/<name>.pt``)."""
    if name not in PRETRAINED:
        raise CheckpointError(f"no pretrained model {name!r}; available: {sorted(PRETRAINED)}")
    return Path(__file__).resolve().parent / "pretrained" / PRETRAINED[name]


def model_path(model: str | Path) -> str | Path:
    """Where a model named on the command line lives: ``'pretrained'`` (the shipped QM9
    model) and ``'pretrained:NAME'`` are shipped models, anything else a run dir or file."""
    text = str(model)
    if text == "pretrained" or text.startswith("pretrained:"):
        return pretrained_path(text.partition(":")[2] or "qm9")
    return model


def export_model(bundle: dict[str, Any], path: str | Path, note: dict[str, Any]) -> None:
    """Write a slim, inference-only copy of a training bundle (no optimizer or RNG state)."""
    keep = ("step", "vocab", "config", "generator_config", "critic_config", "generator",
            "critic")
    slim = {k: bundle[k] for k in keep}
    if "generator_ema" in bundle:
        slim["generator_ema"] = bundle["generator_ema"]
    slim["note"] = note
    save_checkpoint(path, slim)
