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

With ``--by-filters`` (needs the molsets wheel, whose files hold the filters), also where the
FCD sits among the samples that pass MOSES's filters and those that do not: ``filters``, the
valid samples' share that passes (Test: 1.0 by construction); ``large_rings``, their share with
a ring of 8 or more atoms (which the filters reject); and ``fcd_pass``, ``fcd_fail`` and
``fcd_all``, the FCD/Test of ``m`` valid samples drawn (seed 0) from those that pass, from
those that fail and from all, with ``m`` the smaller of the two groups (``m`` in ``split_size``),
so that the three carry the same finite-sample bias. ``fcd_pass`` against ``fcd_all`` bounds
what a generator that only ever made molecules passing the filters would gain, if it made them
as it makes its passing ones now.

    python scripts/moses_screen.py runs/moses-a/samples.csv runs/moses-b/samples.csv --json screens.jsonl
    python scripts/moses_screen.py samples.csv --by-filters
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


def filter_split(samples: Sequence[str | None], fcd_reference: tuple[np.ndarray, np.ndarray],
                 patterns: Sequence[Any], seed: int = 0) -> dict[str, float]:
    """The ``--by-filters`` figures (module docstring) of ``samples``, with the filters'
    compiled SMARTS ``patterns`` (:func:`molgan.moses_metrics.filter_patterns`)."""
    from molgan.fcd_stats import chemnet_statistics, frechet_distance
    from molgan.metrics import canonicalize
    from molgan.moses_metrics import MAX_RING_SIZE, passes_filters

    canonical, mols = canonicalize(samples)
    valid = np.array([c for c in canonical if c is not None], dtype=object)
    passed = np.array([passes_filters(m, patterns) for m in mols], dtype=bool)
    large = [any(len(ring) > MAX_RING_SIZE for ring in m.GetRingInfo().AtomRings())
             for m in mols]
    size = int(min(passed.sum(), (~passed).sum()))
    rng = np.random.default_rng(seed)

    def fcd_of(chosen: np.ndarray) -> float:
        if size < 2:
            return float("nan")
        rows = rng.choice(np.flatnonzero(chosen), size, replace=False)
        return frechet_distance(chemnet_statistics(valid[rows].tolist()), fcd_reference)

    n = max(len(mols), 1)
    return {"filters": float(passed.sum()) / n, "large_rings": sum(large) / n,
            "split_size": size, "fcd_pass": fcd_of(passed), "fcd_fail": fcd_of(~passed),
            "fcd_all": fcd_of(np.ones(len(valid), dtype=bool))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("samples", nargs="+", help="samples files (.csv/.smi/.sdf)")
    parser.add_argument("--json", default=None, help="append one JSON line per file here")
    parser.add_argument("--by-filters", action="store_true",
                        help="also the FCD of the samples that pass MOSES's filters and of those "
                             "that fail (module docstring; needs the molsets wheel)")
    args = parser.parse_args()
    from rdkit import RDLogger

    from molgan.evaluate import read_samples
    from molgan.moses_metrics import filter_patterns, wheel_test_statistics
    from molgan.sources import moses_folder

    RDLogger.DisableLog("rdApp.*")
    stats = wheel_test_statistics()
    fcd_reference = (stats["FCD"]["mu"], stats["FCD"]["sigma"])
    fragment_reference = Counter(dict(stats["Frag"]["frag"]))
    patterns = filter_patterns(moses_folder()) if args.by_filters else None
    for path in args.samples:
        samples = read_samples(path)
        figures = {"samples": path, **screen_figures(samples, fcd_reference, fragment_reference)}
        if patterns is not None:
            figures.update(filter_split(samples, fcd_reference, patterns))
        line = json.dumps(figures)
        print(line)
        if args.json:
            with open(args.json, "a") as handle:
                handle.write(line + "\n")


if __name__ == "__main__":
    main()
