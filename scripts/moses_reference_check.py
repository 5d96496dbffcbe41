"""Check molgan's MOSES metrics on MOSES's own molecules, beside the values MOSES publishes.

Draws 30,000 molecules (seeded) from MOSES's train split and from its Test split, and scores
each set as if it were a model's samples with ``molgan evaluate --train moses``. MOSES's
published "Train" row (its README's table: the train set scored against Test and TestSF)
is what the train sample should reproduce; the Test sample scored against itself has SNN/Test
= 1 and novelty 1 by construction. Filters are 1.0 for both: MOSES was built with them.

First it compares molgan's reference statistics of ``Test`` with the ones the molsets wheel
ships (``test_stats.npz``, computed by MOSES's own code): the FCD between the two ChemNet
statistics, the share of identical fingerprint rows, the cosine of the fragment and scaffold
counts, and the property means.

    python scripts/moses_reference_check.py --out /tmp/moses-check --json moses_check.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

#: MOSES's published Train row (README of molecularsets/moses).
PUBLISHED_TRAIN = {"valid": 1.0, "unique@1000": 1.0, "unique@10000": 1.0, "FCD/Test": 0.008,
                   "FCD/TestSF": 0.4755, "SNN/Test": 0.6419, "SNN/TestSF": 0.5859,
                   "Frag/Test": 1.0, "Frag/TestSF": 0.9986, "Scaf/Test": 0.9907,
                   "Scaf/TestSF": 0.0, "IntDiv1": 0.8567, "IntDiv2": 0.8508, "Filters": 1.0}


def compare_with_wheel_statistics(reference) -> dict:
    """Print and return how molgan's statistics of MOSES's Test split match the wheel's."""
    from collections import Counter

    from molgan.fcd_stats import frechet_distance
    from molgan.moses_metrics import (cosine_similarity, reference_statistics,
                                      wheel_test_statistics)

    stored = wheel_test_statistics()
    ours = reference_statistics(reference.test, reference.cache_dir)
    properties = reference.property_arrays()
    fingerprints = stored["SNN"]["fps"].astype(np.uint8)
    same_rows = (fingerprints == ours.fingerprints).all(1) if (
        fingerprints.shape == ours.fingerprints.shape) else np.zeros(1, dtype=bool)
    comparison = {
        "fcd_between_statistics": frechet_distance(reference.fcd_statistics(),
                                                   (stored["FCD"]["mu"], stored["FCD"]["sigma"])),
        "identical_fingerprint_rows": float(same_rows.mean()),
        "fragment_cosine": cosine_similarity(ours.fragments, Counter(dict(stored["Frag"]["frag"]))),
        "scaffold_cosine": cosine_similarity(ours.scaffolds, Counter(dict(stored["Scaf"]["scaf"]))),
        **{f"{name}_mean_difference": float(np.mean(properties[key])
                                            - np.mean(stored[name]["values"]))
           for name, key in (("logP", "logp"), ("SA", "sa"), ("QED", "qed"),
                             ("weight", "mol_weight"))},
    }
    for key, value in comparison.items():
        print(f"{key:<28} {value:.7g}")
    return comparison


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=30_000, help="molecules per sample (30,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/moses-check", help="folder for the samples")
    parser.add_argument("--json", default=None, help="append one JSON line per sample")
    args = parser.parse_args()
    import pandas as pd

    from molgan.evaluate import evaluate, load_reference
    from molgan.sources import read_moses

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    reference = load_reference("moses")
    compare_with_wheel_statistics(reference)
    rows = []
    for split in ("moses", "moses:test"):
        smiles = np.asarray(read_moses(split).smiles)
        pick = np.sort(np.random.default_rng(args.seed).choice(len(smiles), args.n,
                                                                 replace=False))
        sample = smiles[pick].tolist()
        name = "train" if split == "moses" else "test"
        pd.DataFrame({"SMILES": sample}).to_csv(out / f"{name}-{args.n}.csv", index=False)
        start = time.perf_counter()
        result = evaluate(sample, reference, moses=True)
        record = {"sample": f"{args.n:,} seeded rows of MOSES {name}", "seed": args.seed,
                  "seconds": round(time.perf_counter() - start, 1),
                  "timings": result["seconds"], "moses": result["moses"]}
        rows.append(record)
        if args.json:
            with open(args.json, "a") as handle:
                handle.write(json.dumps(record) + "\n")
    print(f"{'metric':<14} {'train sample':>13} {'test sample':>12} {'MOSES Train':>12}")
    for key, value in rows[0]["moses"].items():
        if isinstance(value, float):
            published = PUBLISHED_TRAIN.get(key)
            print(f"{key:<14} {value:>13.4f} {rows[1]['moses'][key]:>12.4f} "
                  f"{'' if published is None else f'{published:.4f}':>12}")


if __name__ == "__main__":
    main()
