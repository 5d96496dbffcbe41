"""Synthetic molecules larger than QM9, built from drug-like fragments (for tests and
benchmarks that check nothing assumes 9 atoms or QM9's elements)."""

from __future__ import annotations

import random

UNITS = ("C", "CC", "CO", "CN", "C(C)", "C(=O)", "c1ccccc1", "C1CC1", "C(F)", "C(Cl)", "CS",
         "c1ccncc1", "C(Br)", "OC", "NC(=O)")


def synthetic_smiles(n: int, max_atoms: int, seed: int = 0) -> list[str]:
    """``n`` distinct valid SMILES with 2..max_atoms heavy atoms (RDKit-checked)."""
    from rdkit import Chem

    rng = random.Random(seed)
    out: dict[str, None] = {}
    while len(out) < n:
        text = "".join(rng.choice(UNITS) for _ in range(rng.randint(1, 14)))
        mol = Chem.MolFromSmiles(text)
        if mol is not None and 2 <= mol.GetNumHeavyAtoms() <= max_atoms:
            out[Chem.MolToSmiles(mol)] = None
    return list(out)
