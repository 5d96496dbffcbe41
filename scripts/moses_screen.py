"""Score samples of a MOSES run in about a minute: the figures a short screen decides on.

``molgan evaluate --train moses`` scores 30,000 samples in 7-13 minutes (SNN against 176,000
molecules per split, the filters, and its own statistics of Test, computed once per machine).
A screen of many short runs needs less: this script scores a samples file against the
statistics of MOSES's ``Test`` split that the molsets wheel ships (``test_stats.npz``, made by
MOSES's own code; molgan's statistics of the same molecules are within an FCD of 3e-7 of
them, docs/benchmarks.md, "The MOSES metrics, checked"). Per file, one JSON line:

- ``valid``: samples RDKit parses and sanitizes / all rows; ``connected``: valid samples in
  one fragment / all rows; ``unique``: distinct canonical SMILES / valid;
- ``fcd_test``: FCD between ChemNet's statistics of the valid samples' canonical SMILES and
  the wheel's statistics of Test (biased upward for a finite sample: 10,000 molecules drawn
  from Test itself score 0.118);
- ``frag_test``: cosine between the BRICS fragment counts of the valid samples and of Test;
- ``sa``: mean SA score of the first 3,000 valid samples (Test: 2.23 on its first 1,000);
- ``rings`` and ``aromatic_rings``: per valid sample (Test: 2.58 and 2.17 on its first
  1,000); ``atoms``: heavy atoms per valid sample (Test: 20.8).

    python scripts/moses_screen.py runs/moses-a/samples.csv runs/moses-b/samples.csv --json screens.jsonl
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

SA_MOLECULES = 3_000


def screen_figures(samples: Sequence[str | None], fcd_reference: tuple[np.ndarray, np.ndarray],
                   fragment_reference: Counter[str]) -> dict[str, float]:
    """The module docstring's figures for ``samples`` against the given Test statistics
    (ChemNet ``(mu [512], sigma [512, 512])`` and BRICS fragment counts)."""
    from rdkit.Chem import rdMolDescriptors

    from molgan.fcd_stats import chemnet_statistics, frechet_distance
    from molgan.metrics import canonicalize
    from molgan.moses_metrics import cosine_similarity, fragment_counts
    from molgan.properties import sa_score

    canonical, mols = canonicalize(samples)
    valid = [c for c in canonical if c is not None]
    n = max(len(samples), 1)

    def per_molecule(values: Sequence[float]) -> float:
        return float(np.mean(values)) if mols else float("nan")

    return {
        "n": len(samples),
        "valid": len(valid) / n,
        "connected": sum("." not in c for c in valid) / n,
        "unique": len(set(valid)) / max(len(valid), 1),
        "fcd_test": frechet_distance(chemnet_statistics(valid), fcd_reference),
        "frag_test": cosine_similarity(fragment_counts(mols), fragment_reference),
        "sa": per_molecule([sa_score(m) for m in mols[:SA_MOLECULES]]),
        "rings": per_molecule([m.GetRingInfo().NumRings() for m in mols]),
        "aromatic_rings": per_molecule([rdMolDescriptors.CalcNumAromaticRings(m) for m in mols]),
        "atoms": per_molecule([m.GetNumAtoms() for m in mols]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("samples", nargs="+", help="samples files (.csv/.smi/.sdf)")
    parser.add_argument("--json", default=None, help="append one JSON line per file here")
    args = parser.parse_args()
    from rdkit import RDLogger

    from molgan.evaluate import read_samples
    from molgan.moses_metrics import wheel_test_statistics

    RDLogger.DisableLog("rdApp.*")
    stats = wheel_test_statistics()
    fcd_reference = (stats["FCD"]["mu"], stats["FCD"]["sigma"])
    fragment_reference = Counter(dict(stats["Frag"]["frag"]))
    for path in args.samples:
        line = json.dumps({"samples": path, **screen_figures(read_samples(path), fcd_reference,
                                                             fragment_reference)})
        print(line)
        if args.json:
            with open(args.json, "a") as handle:
                handle.write(line + "\n")


if __name__ == "__main__":
    main()
