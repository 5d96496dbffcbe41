"""Sampling speed: molecules/s for generation + decoding (argmax or draws) + canonical SMILES.

Median over repeats after a warm-up, for a checkpoint (default: the shipped QM9 model). Reports
the generator-only rate and the full rate (``Sampler.sample``: RDKit decoding included, in
worker processes that overlap generation; ``--sequential``: all graphs first, then decoding)
separately, and how many distinct graphs had to be decoded.

    python scripts/bench_sample.py -n 10000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from molgan.checkpoint import pretrained_path
from molgan.decode import decode_all
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
    parser.add_argument("--sequential", action="store_true",
                        help="generate every graph, then decode (no overlap)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    sampler = Sampler.from_checkpoint(args.model or pretrained_path("qm9"), device="cpu",
                                      decode=args.decode, batch_size=args.batch_size)
    if args.threads:
        torch.set_num_threads(args.threads)
    sampler.sample(1000, seed=123)  # warm-up
    generate, full = [], []
    for seed in range(args.repeats):
        t0 = time.perf_counter()
        x_idx, adj_idx = sampler.sample_graphs(args.n, seed)
        generate.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        if args.sequential:  # all graphs first, then decode them (before the GraphDecoder)
            x_idx, adj_idx = sampler.sample_graphs(args.n, seed)
            smiles = decode_all(x_idx, adj_idx, sampler.vocab, workers=args.workers)
        else:  # molgan sample's path: decoding overlaps generation
            smiles = sampler.sample(args.n, seed, workers=args.workers).smiles
        full.append(time.perf_counter() - t0)
    distinct = len({(x.tobytes(), a.tobytes()) for x, a in zip(x_idx, adj_idx)})
    print(json.dumps({
        "n": args.n, "decode": sampler.decode, "temperature": sampler.temperature,
        "batch_size": args.batch_size, "workers": args.workers,
        "sequential": args.sequential, "threads": torch.get_num_threads(),
        "generate_mol_per_s": round(args.n / statistics.median(generate)),
        "full_mol_per_s": round(args.n / statistics.median(full)),
        "full_s_all": [round(t, 3) for t in full],
        "distinct_graphs_last_run": distinct,
        "valid_last_run": sum(1 for s in smiles if s),
    }))


if __name__ == "__main__":
    main()
