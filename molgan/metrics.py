"""Sample-quality metrics as pure functions over lists of SMILES (``None`` or ``''`` = invalid).

Definitions (each also in its function's docstring):

- **validity** = valid / n, where *valid* means RDKit parses and sanitizes the SMILES as given:
  no valence correction, no largest-fragment trick.
- **validity_connected** = valid single-fragment molecules / n.
- **uniqueness** = distinct canonical SMILES among the valid / valid (report with n: unique@n).
- **novelty** (MOSES) = distinct valid canonical SMILES not in the training set / distinct valid.
- **novelty_molgan** (MolGAN) = valid samples (with repeats) not in the dataset / valid.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

Samples = Sequence[str | None]


def canonicalize(samples: Samples) -> list[str | None]:
    """Canonical SMILES (no stereo) of each sample, ``None`` where RDKit rejects it.

    SMILES that are already canonical are parsed once; nothing is repaired.
    """
    from molgan.chem import SkipMolecule, canonical_smiles, mol_from_smiles

    out: list[str | None] = []
    for s in samples:
        if not s:
            out.append(None)
            continue
        try:
            out.append(canonical_smiles(mol_from_smiles(s)))
        except SkipMolecule:
            out.append(None)
    return out


def validity(canonical: Samples) -> float:
    """Fraction of all ``n`` samples that are valid (sanitizable as generated, no repair)."""
    return sum(1 for s in canonical if s) / len(canonical) if canonical else float("nan")


def validity_connected(canonical: Samples) -> float:
    """Fraction of all ``n`` samples that are valid **and** a single fragment (no ``.``)."""
    return sum(1 for s in canonical if s and "." not in s) / len(canonical) if canonical \
        else float("nan")


def uniqueness(canonical: Samples) -> float:
    """Distinct canonical SMILES among the valid samples / number of valid samples."""
    valid = [s for s in canonical if s]
    return len(set(valid)) / len(valid) if valid else float("nan")


def novelty(canonical: Samples, training: set[str] | frozenset[str]) -> float:
    """MOSES: distinct valid canonical SMILES not in ``training`` / distinct valid."""
    distinct = {s for s in canonical if s}
    return len(distinct - training) / len(distinct) if distinct else float("nan")


def novelty_molgan(canonical: Samples, dataset: set[str] | frozenset[str]) -> float:
    """MolGAN: valid samples (counting repeats) not in ``dataset`` / valid samples."""
    valid = [s for s in canonical if s]
    return sum(1 for s in valid if s not in dataset) / len(valid) if valid else float("nan")


def basic_metrics(canonical: Samples, training: Iterable[str],
                  dataset: Iterable[str] | None = None) -> dict[str, Any]:
    """Validity, connected validity, uniqueness and both novelties, with counts.

    ``canonical`` must already be canonical (see :func:`canonicalize`); ``training`` and
    ``dataset`` are canonical SMILES sets (``dataset`` defaults to ``training``).
    """
    train_set = training if isinstance(training, (set, frozenset)) else set(training)
    data_set = train_set if dataset is None else (
        dataset if isinstance(dataset, (set, frozenset)) else set(dataset))
    valid = [s for s in canonical if s]
    return {
        "n": len(canonical),
        "n_valid": len(valid),
        "n_unique": len(set(valid)),
        "validity": validity(canonical),
        "validity_connected": validity_connected(canonical),
        "uniqueness": uniqueness(canonical),
        "novelty": novelty(canonical, train_set),
        "novelty_molgan": novelty_molgan(canonical, data_set),
    }
