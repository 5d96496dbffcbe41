"""QM9 featurization: cold (empty cache) and cached load times, median over repeats.

    python scripts/bench_data.py --cold-repeats 2 --cached-repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

from molgan.dataset import load_dataset
from molgan.featurize import default_workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="qm9")
    parser.add_argument("--cold-repeats", type=int, default=2)
    parser.add_argument("--cached-repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    cold, cached = [], []
    for _ in range(args.cold_repeats):
        with tempfile.TemporaryDirectory() as cache:
            t0 = time.perf_counter()
            data = load_dataset(args.data, cache_dir=cache, workers=args.workers)
            cold.append(time.perf_counter() - t0)
            for _ in range(args.cached_repeats):
                t0 = time.perf_counter()
                load_dataset(args.data, cache_dir=cache)
                cached.append(time.perf_counter() - t0)
    print(json.dumps({
        "data": args.data, "molecules": len(data),
        "workers": args.workers or default_workers(),
        "cold_s_median": round(statistics.median(cold), 3), "cold_s_all": [round(t, 3) for t in cold],
        "cached_s_median": round(statistics.median(cached), 4),
        "cached_s_all": [round(t, 4) for t in cached],
    }))


if __name__ == "__main__":
    main()
