"""Sample-quality metrics as pure functions over lists of SMILES (``None`` or ``''`` = invalid).

Definitions (each also in its function's docstring):

- **validity** = valid / n, where *valid* means RDKit parses and sanitizes the SMILES as given:
  no valence correction, no largest-fragment trick.
- **validity_connected** = valid single-fragment molecules / n.
- **uniqueness** = distinct canonical SMILES among the valid / valid (report with n: unique@n).
- **novelty** (MOSES) = distinct valid canonical SMILES not in the training set / distinct valid.
- **novelty_molgan** (MolGAN) = valid samples (with repeats) not in the dataset / valid.

Training and dataset sets must hold canonical SMILES without stereo
(:func:`molgan.chem.canonical_smiles`), as the featurized datasets do.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

Samples = Sequence[str | None]


def canonicalize(samples: Samples) -> tuple[list[str | None], list[Any]]:
    """Canonical SMILES (no stereo) per sample, ``None`` where RDKit rejects it as given, and the
    list of valid RDKit molecules. Nothing is repaired."""
    from molgan.chem import SkipMolecule, canonical_smiles, mol_from_smiles

    canonical: list[str | None] = []
    mols: list[Any] = []
    for s in samples:
        mol = None
        if s:
            try:
                mol = mol_from_smiles(s)
            except SkipMolecule:
                mol = None
        canonical.append(None if mol is None else canonical_smiles(mol))
        if mol is not None:
            mols.append(mol)
    return canonical, mols


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else float("nan")


def validity(samples: Samples) -> float:
    """Fraction of all ``n`` samples that are valid (sanitizable as generated, no repair)."""
    canonical, _ = canonicalize(samples)
    return _ratio(sum(1 for s in canonical if s), len(canonical))


def validity_connected(samples: Samples) -> float:
    """Fraction of all ``n`` samples that are valid **and** a single fragment."""
    canonical, _ = canonicalize(samples)
    return _ratio(sum(1 for s in canonical if s and "." not in s), len(canonical))


def uniqueness(samples: Samples) -> float:
    """Distinct canonical SMILES among the valid samples / number of valid samples."""
    valid = [s for s in canonicalize(samples)[0] if s]
    return _ratio(len(set(valid)), len(valid))


def novelty(samples: Samples, training: Collection[str]) -> float:
    """MOSES: distinct valid canonical SMILES not in ``training`` / distinct valid."""
    distinct = {s for s in canonicalize(samples)[0] if s}
    return _ratio(sum(1 for s in distinct if s not in training), len(distinct))


def novelty_molgan(samples: Samples, dataset: Collection[str]) -> float:
    """MolGAN: valid samples (counting repeats) not in ``dataset`` / valid samples."""
    valid = [s for s in canonicalize(samples)[0] if s]
    return _ratio(sum(1 for s in valid if s not in dataset), len(valid))


def basic_metrics(samples: Samples, training: Collection[str],
                  dataset: Collection[str] | None = None,
                  canonical: list[str | None] | None = None) -> dict[str, Any]:
    """Validity, connected validity, uniqueness and both novelties, with counts, in one pass.

    Args:
        samples: generated SMILES, ``None``/``''`` for invalid.
        training: canonical training SMILES (novelty).
        dataset: canonical SMILES of the whole dataset (``novelty_molgan``; default training).
        canonical: precomputed :func:`canonicalize` output of ``samples`` (skips parsing).
    """
    if canonical is None:
        canonical, _ = canonicalize(samples)
    dataset = training if dataset is None else dataset
    valid = [s for s in canonical if s]
    distinct = set(valid)
    return {
        "n": len(canonical),
        "n_valid": len(valid),
        "n_unique": len(distinct),
        "validity": _ratio(len(valid), len(canonical)),
        "validity_connected": _ratio(sum(1 for s in valid if "." not in s), len(canonical)),
        "uniqueness": _ratio(len(distinct), len(valid)),
        "novelty": _ratio(sum(1 for s in distinct if s not in training), len(distinct)),
        "novelty_molgan": _ratio(sum(1 for s in valid if s not in dataset), len(valid)),
    }
