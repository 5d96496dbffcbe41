r"""Where a sample's FCD comes from: how far each descriptor's distribution is from the test
set's, and what the FCD would be if that one distribution matched.

For a discrete descriptor ``d`` (heavy atoms, rings of each size, atoms of each element,
charged atoms, bonds of each order, bridgehead, spiro and stereocentre atoms, bonds in two
rings or more, functional groups), the valid samples are reweighted by
:math:`w(s) = q_{test}(d(s)) / q_{sample}(d(s))` (empirical frequencies; a value the test
set never has gets weight 0), which makes the weighted samples' distribution of ``d`` equal to
the test set's wherever the samples have that value, and leaves everything else about them as
it is (conditionals on ``d``). The FCD is then taken with the weighted mean and covariance of
the samples' ChemNet activations against the test set's statistics. The drop from the plain
FCD is what that one mismatch costs; ``covered`` is the test set's share of values the
samples have (the rest cannot be matched by reweighting). ``tv`` is the total variation
distance between the two distributions of ``d``.

    python scripts/fcd_attribution.py samples.csv --train qm9 --json attribution.json
    python scripts/fcd_attribution.py samples.csv --descriptors-only   # means and TV, no ChemNet
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np


def descriptors() -> dict[str, Callable[[Any], int]]:
    """Name -> discrete function of a valid RDKit molecule."""
    from rdkit import Chem
    from rdkit.Chem import Fragments, rdMolDescriptors

    def ring_count(size: int) -> Callable[[Any], int]:
        return lambda m: sum(len(r) == size for r in m.GetRingInfo().AtomRings())

    def element_count(symbol: str) -> Callable[[Any], int]:
        return lambda m: sum(a.GetSymbol() == symbol for a in m.GetAtoms())

    def bond_count(kind: Any) -> Callable[[Any], int]:
        return lambda m: sum(b.GetBondType() == kind for b in m.GetBonds())

    table: dict[str, Callable[[Any], int]] = {
        "heavy atoms": lambda m: m.GetNumHeavyAtoms(),
        "rings": lambda m: m.GetRingInfo().NumRings(),
        **{f"{k}-rings": ring_count(k) for k in (3, 4, 5, 6, 7)},
        "largest ring": lambda m: max((len(r) for r in m.GetRingInfo().AtomRings()), default=0),
        "ring atoms": lambda m: sum(a.IsInRing() for a in m.GetAtoms()),
        **{f"{s} atoms": element_count(s) for s in ("C", "N", "O", "F")},
        "charged atoms": lambda m: sum(a.GetFormalCharge() != 0 for a in m.GetAtoms()),
        "double bonds": bond_count(Chem.BondType.DOUBLE),
        "triple bonds": bond_count(Chem.BondType.TRIPLE),
        "aromatic bonds": bond_count(Chem.BondType.AROMATIC),
        "bridgehead atoms": rdMolDescriptors.CalcNumBridgeheadAtoms,
        "spiro atoms": rdMolDescriptors.CalcNumSpiroAtoms,
        "8+-rings": lambda m: sum(len(r) >= 8 for r in m.GetRingInfo().AtomRings()),
        "aromatic rings": rdMolDescriptors.CalcNumAromaticRings,
        "fused bonds": lambda m: sum(m.GetRingInfo().NumBondRings(b.GetIdx()) > 1
                                     for b in m.GetBonds()),
        "ring double bonds": lambda m: sum(b.GetBondType() == Chem.BondType.DOUBLE
                                           and b.IsInRing() for b in m.GetBonds()),
        "stereocentres": lambda m: len(Chem.FindMolChiralCenters(m, includeUnassigned=True,
                                                                 useLegacyImplementation=False)),
    }
    for name in ("fr_Al_OH", "fr_ether", "fr_ketone", "fr_aldehyde", "fr_nitrile", "fr_NH2",
                 "fr_NH1", "fr_amide", "fr_ester", "fr_epoxide", "fr_Imine"):
        table[name] = getattr(Fragments, name)
    return table


def weights_matching(sample_values: np.ndarray, test_values: np.ndarray) -> tuple[np.ndarray,
                                                                                  float, float]:
    """``(w, covered, tv)``: per-sample weights that give the samples the test set's
    distribution of the values, the test share of values the samples have, and the total
    variation distance between the two distributions."""
    sample_freq = Counter(sample_values.tolist())
    test_freq = Counter(test_values.tolist())
    n_s, n_t = len(sample_values), len(test_values)
    weights = np.array([(test_freq.get(v, 0) / n_t) / (sample_freq[v] / n_s)
                        for v in sample_values.tolist()])
    covered = sum(c for v, c in test_freq.items() if v in sample_freq) / n_t
    keys = set(sample_freq) | set(test_freq)
    tv = 0.5 * sum(abs(sample_freq.get(k, 0) / n_s - test_freq.get(k, 0) / n_t) for k in keys)
    return weights, covered, tv


def weighted_statistics(activations: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray,
                                                                               np.ndarray]:
    """Weighted mean ``[D]`` and covariance ``[D, D]`` (reliability weights, unbiased)."""
    w = weights / weights.sum()
    mu = w @ activations
    centred = activations - mu
    sigma = (centred * w[:, None]).T @ centred / (1.0 - (w**2).sum())
    return mu, sigma


def descriptor_rows(mols: list[Any], test_mols: list[Any], plain: float = float("nan"),
                    matched_fcd: Callable[[np.ndarray], float] | None = None
                    ) -> list[dict[str, Any]]:
    """One row per descriptor: TV, covered share, sample and test means; with
    ``matched_fcd`` (the FCD of reweighted samples) also ``fcd_matched`` and ``fcd_drop`` from
    ``plain``. Sorted by the FCD drop, or without ``matched_fcd`` by TV, largest first."""
    rows = []
    for name, function in descriptors().items():
        sample_values = np.array([function(m) for m in mols])
        test_values = np.array([function(m) for m in test_mols])
        weights, covered, tv = weights_matching(sample_values, test_values)
        row = {"descriptor": name, "tv": round(tv, 4), "covered": round(covered, 4),
               "sample_mean": round(float(sample_values.mean()), 3),
               "test_mean": round(float(test_values.mean()), 3)}
        if matched_fcd is not None:
            matched = matched_fcd(weights)
            row.update(fcd_matched=round(matched, 4), fcd_drop=round(plain - matched, 4))
        rows.append(row)
    key = "fcd_drop" if matched_fcd is not None else "tv"
    return sorted(rows, key=lambda r: -r[key])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("samples")
    parser.add_argument("--train", default="qm9", help="reference (split as evaluate does)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--descriptors-only", action="store_true",
                        help="only each descriptor's means and TV (seconds instead of minutes)")
    args = parser.parse_args()

    from molgan.chem import mol_from_smiles
    from molgan.evaluate import load_reference, read_samples
    from molgan.fcd_stats import chemnet_activations, frechet_distance
    from molgan.metrics import canonicalize

    reference = load_reference(args.train)
    canonical, mols = canonicalize(read_samples(args.samples))
    valid = [s for s in canonical if s]
    test_mols = [mol_from_smiles(s) for s in reference.test]
    plain = float("nan")
    matched_fcd = None
    if not args.descriptors_only:
        activations = chemnet_activations(valid)
        test_stats = reference.fcd_statistics()
        plain = frechet_distance(weighted_statistics(activations, np.ones(len(valid))),
                                 test_stats)

        def matched_fcd(weights: np.ndarray) -> float:
            return frechet_distance(weighted_statistics(activations, weights), test_stats)

    rows = descriptor_rows(mols, test_mols, plain, matched_fcd)
    fcd_text = "descriptors only" if args.descriptors_only else f"FCD {plain:.4f}"
    print(f"valid samples {len(valid):,}; {fcd_text} against {len(reference.test):,} test "
          "molecules")
    print(f"{'descriptor':<18} {'TV':>6} {'covered':>8} {'mean':>7} {'test':>7} "
          f"{'FCD matched':>12} {'drop':>7}")
    for r in rows:
        print(f"{r['descriptor']:<18} {r['tv']:>6.3f} {r['covered']:>8.3f} "
              f"{r['sample_mean']:>7.3f} {r['test_mean']:>7.3f} "
              f"{r.get('fcd_matched', float('nan')):>12.4f} {r.get('fcd_drop', float('nan')):>7.4f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"samples": args.samples, "valid": len(valid),
                       "fcd": None if args.descriptors_only else plain,
                       "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
