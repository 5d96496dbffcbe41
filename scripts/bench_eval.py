"""Evaluation speed for 10,000 samples once the reference is cached (median over repeats).

Times validity/uniqueness/novelty (parsing every sample with RDKit included) and, separately,
the full ``evaluate`` with FCD, properties and internal diversity.

    python scripts/bench_eval.py --samples ../shared/reference/digress_qm9_noH_samples.smi
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from molgan.evaluate import evaluate, load_reference, read_samples
from molgan.metrics import basic_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", required=True)
    parser.add_argument("--train", default="qm9")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--full-repeats", type=int, default=1,
                        help="timed full evaluations (FCD, properties, diversity); 0 = none")
    args = parser.parse_args()
    if args.repeats < 1 or args.full_repeats < 0:
        parser.error("--repeats must be at least 1 and --full-repeats at least 0")
    reference = load_reference(args.train)
    samples = read_samples(args.samples)
    evaluate(samples[:100], reference)  # warm the reference caches (FCD stats, properties)
    basic = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        basic_metrics(samples, reference.train, reference.dataset)
        basic.append(time.perf_counter() - t0)
    report = {"samples": args.samples, "n": len(samples),
              "basic_s_median": round(statistics.median(basic), 3),
              "basic_s_all": [round(t, 3) for t in basic]}
    full = []
    for _ in range(args.full_repeats):
        t0 = time.perf_counter()
        result = evaluate(samples, reference)
        full.append(time.perf_counter() - t0)
    if full:
        report.update(full_s_median=round(statistics.median(full), 2),
                      full_parts_s=result["seconds"])
    print(json.dumps(report))


if __name__ == "__main__":
    main()
