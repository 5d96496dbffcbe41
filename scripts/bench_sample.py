"""Sampling speed: molecules/s for generation + decoding (argmax or draws) + canonical SMILES.

Median over repeats after a warm-up, for a checkpoint (default: the shipped QM9 model). Reports
the generator-only rate and the full rate (RDKit decoding included) separately, and how many
distinct graphs had to be decoded.

    python scripts/bench_sample.py -n 10000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from molgan.checkpoint import pretrained_path
from molgan.featurize import decode_all
from molgan.sample import Sampler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="run dir or checkpoint (default: shipped)")
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--decode", default=None, choices=("argmax", "sample"))
    parser.add_argument("--batch-size", type=int, default=4096,
                        help="generator batch (molgan sample's default)")
    args = parser.parse_args()
    sampler = Sampler.from_checkpoint(args.model or pretrained_path("qm9"), device="cpu",
                                      decode=args.decode, batch_size=args.batch_size)
    sampler.sample(1000, seed=123)  # warm-up
    generate, full = [], []
    for seed in range(args.repeats):
        t0 = time.perf_counter()
        x_idx, adj_idx = sampler.sample_graphs(args.n, seed)
        t1 = time.perf_counter()
        smiles = decode_all(x_idx, adj_idx, sampler.vocab, workers=args.workers)
        t2 = time.perf_counter()
        generate.append(t1 - t0)
        full.append(t2 - t0)
    distinct = len({(x.tobytes(), a.tobytes()) for x, a in zip(x_idx, adj_idx)})
    print(json.dumps({
        "n": args.n, "decode": sampler.decode, "temperature": sampler.temperature,
        "batch_size": args.batch_size, "workers": args.workers,
        "generate_mol_per_s": round(args.n / statistics.median(generate)),
        "full_mol_per_s": round(args.n / statistics.median(full)),
        "full_s_all": [round(t, 3) for t in full],
        "distinct_graphs_last_run": distinct,
        "valid_last_run": sum(1 for s in smiles if s),
    }))


if __name__ == "__main__":
    main()
