"""Per-molecule properties and set-level diversity, with RDKit (imported lazily).

- ``qed``: quantitative estimate of drug-likeness (Bickerton et al. 2012), ``rdkit.Chem.QED``.
- ``logp``: Wildman-Crippen logP, ``Crippen.MolLogP``.
- ``sa``: synthetic accessibility score 1 (easy) .. 10 (hard), Ertl & Schuffenhauer 2009, from
  RDKit Contrib's ``sascorer``.
- ``mol_weight``: average molecular weight (g/mol), implicit hydrogens included.
- ``atoms``: heavy atoms; ``rings``: SSSR ring count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

PROPERTIES = ("qed", "logp", "sa", "mol_weight", "atoms", "rings")


def sa_score(mol: Any) -> float:
    """Synthetic accessibility, 1 (easy) .. 10 (hard), of a valid RDKit molecule."""
    from rdkit.Contrib.SA_Score import sascorer  # ships inside the rdkit wheel

    return float(sascorer.calculateScore(mol))


def property_table(mols: Sequence[Any]) -> dict[str, np.ndarray]:
    """``{property: [len(mols)] float array}`` for RDKit molecules (all must be valid)."""
    from rdkit.Chem import QED, Crippen, Descriptors, rdMolDescriptors

    table: dict[str, list[float]] = {name: [] for name in PROPERTIES}
    for mol in mols:
        table["qed"].append(QED.qed(mol))
        table["logp"].append(Crippen.MolLogP(mol))
        table["sa"].append(sa_score(mol))
        table["mol_weight"].append(Descriptors.MolWt(mol))
        table["atoms"].append(mol.GetNumHeavyAtoms())
        table["rings"].append(rdMolDescriptors.CalcNumRings(mol))
    return {name: np.asarray(values, dtype=np.float64) for name, values in table.items()}


def internal_diversity(mols: Sequence[Any], max_molecules: int = 10_000, seed: int = 0) -> float:
    """Mean pairwise Tanimoto distance ``1 - T(a, b)`` over all pairs ``a != b`` of molecules.

    Morgan fingerprints, radius 2, 2048 bits (MOSES IntDiv1 on the valid samples, repeats
    included). Above ``max_molecules`` a seeded random subset of that size is used.
    """
    from rdkit import DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    if len(mols) < 2:
        return float("nan")
    if len(mols) > max_molecules:
        keep = np.random.default_rng(seed).choice(len(mols), max_molecules, replace=False)
        mols = [mols[i] for i in sorted(keep)]
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    fps = [generator.GetFingerprint(m) for m in mols]
    total = 0.0
    for i in range(len(fps) - 1):
        total += float(np.sum(DataStructs.BulkTanimotoSimilarity(fps[i], fps[i + 1 :])))
    pairs = len(fps) * (len(fps) - 1) / 2
    return 1.0 - total / pairs
