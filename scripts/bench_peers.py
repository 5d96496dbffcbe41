"""MolGAN's recipe in molgan against deepchem's ``BasicMolGANModel``, timed in the same run.

deepchem stays out of molgan's dependencies: it runs in its own Python (``--deepchem-python``,
an environment with deepchem and the same torch), as a worker process that this script drives
window by window. Both sides train on the same QM9 one-hot batches (molgan's featurization,
handed over as index arrays), with the same tensor shapes, WGAN-GP (penalty 10), 5 critic
updates per generator update, one thread each; the windows alternate, so both see the same
load. A graph counts once per update it takes part in (as ``bench_train.py`` counts), so a
generator step at batch B is 6 * B graphs on either side.

    python3 -m venv /tmp/dc && /tmp/dc/bin/pip install -c constraints.txt torch==2.13.0 deepchem==2.8.0
    python scripts/bench_peers.py --deepchem-python /tmp/dc/bin/python --batch-size 32 128 --threads 1
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

N_CRITIC = 5


def worker(args: argparse.Namespace) -> None:
    """Inside deepchem's environment: build the model, then answer ``<steps>`` lines on stdin
    with the seconds that many generator steps (and 5x critic steps) took."""
    import torch

    torch.set_num_threads(args.threads)
    import torch.nn.functional as F
    from deepchem.models.torch_models import BasicMolGANModel

    data = np.load(args.arrays)
    x_idx, adj_idx = data["x_idx"], data["adj_idx"]
    types, bonds = int(data["atom_types"]), int(data["bond_types"])
    model = BasicMolGANModel(edges=bonds, vertices=x_idx.shape[1], nodes=types,
                             batch_size=args.batch_size, device=torch.device("cpu"))
    rng = np.random.default_rng(0)

    def batches(count: int):
        for _ in range(count):
            rows = rng.integers(0, len(x_idx), args.batch_size)
            adjacency = F.one_hot(torch.from_numpy(adj_idx[rows].astype(np.int64)), bonds)
            nodes = F.one_hot(torch.from_numpy(x_idx[rows].astype(np.int64)), types)
            yield {model.data_inputs[0]: adjacency.float(), model.data_inputs[1]: nodes.float()}

    def window(steps: int) -> float:
        start = time.perf_counter()
        model.fit_gan(batches(steps * N_CRITIC), generator_steps=1.0 / N_CRITIC,
                      checkpoint_interval=0)
        return time.perf_counter() - start

    window(3)  # warm-up
    from flop_count import count_flops  # scripts/ is on sys.path when run as a script

    flops = count_flops(lambda: window(1))
    print(json.dumps({"ready": True, "gflop_per_iteration": flops / (N_CRITIC + 1) / 1e9}),
          flush=True)
    for line in sys.stdin:
        seconds = window(int(line))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps({"seconds": seconds, "peak_rss": peak}), flush=True)


def bench(args: argparse.Namespace, batch_size: int, arrays: Path, data: Any) -> dict:
    """Time molgan's MolGAN recipe on ``data`` (QM9, featurized) against the deepchem worker
    fed the same rows as ``arrays``."""
    import torch

    # scripts/ is on sys.path when this file runs as a script
    from bench_train import flops_per_iteration

    from molgan.recipes import load_recipe
    from molgan.train import Trainer

    config = load_recipe("molgan", batch_size=batch_size, device="cpu")
    trainer = Trainer(config, data, "/tmp/molgan-bench-unused")
    trainer.prepare_networks()
    n_critic = config.train.optim.n_critic
    assert n_critic == N_CRITIC, n_critic

    def molgan_window(steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            for _ in range(n_critic):
                trainer.critic_step()
            trainer.generator_step()
        return time.perf_counter() - start

    molgan_window(3)  # warm-up
    command = [args.deepchem_python, __file__, "--worker", "--arrays", str(arrays),
               "--batch-size", str(batch_size), "--threads", str(args.threads)]
    peer = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert peer.stdin is not None and peer.stdout is not None
    while (line := peer.stdout.readline()) and not line.startswith('{"ready"'):
        pass
    if not line:
        raise SystemExit(f"the deepchem worker did not start: {' '.join(command)}")
    peer_flops = json.loads(line)["gflop_per_iteration"]
    ours, theirs, peak = [], [], 0
    for _ in range(args.windows):
        ours.append(molgan_window(args.steps_per_window))
        peer.stdin.write(f"{args.steps_per_window}\n")
        peer.stdin.flush()
        answer = json.loads(peer.stdout.readline())
        theirs.append(answer["seconds"])
        peak = answer["peak_rss"]
    peer.stdin.close()
    peer.wait()
    graphs = args.steps_per_window * (N_CRITIC + 1) * batch_size
    molgan_rate = graphs / statistics.median(ours)
    deepchem_rate = graphs / statistics.median(theirs)
    return {"batch_size": batch_size, "threads": torch.get_num_threads(),
            "windows": args.windows, "steps_per_window": args.steps_per_window,
            "molgan_graphs_per_s": round(molgan_rate, 1),
            "deepchem_graphs_per_s": round(deepchem_rate, 1),
            "ratio": round(molgan_rate / deepchem_rate, 3),
            "molgan_gflop_per_iteration": round(flops_per_iteration(trainer) / 1e9, 4),
            "deepchem_gflop_per_iteration": round(peer_flops, 4),
            "molgan_window_s": [round(t, 4) for t in ours],
            "deepchem_window_s": [round(t, 4) for t in theirs],
            "molgan_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                        / 1024, 1),
            "deepchem_peak_rss_mb": round(peak / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deepchem-python", default=None,
                        help="python of an environment with deepchem 2.8 and torch")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--windows", type=int, default=15)
    parser.add_argument("--steps-per-window", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="append one JSON line per batch size")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--arrays", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.batch_size = args.batch_size[0]
        worker(args)
        return
    if not args.deepchem_python:
        parser.error("--deepchem-python is required (an environment with deepchem)")
    import torch

    from molgan.dataset import load_dataset

    torch.set_num_threads(args.threads)
    data = load_dataset("qm9")
    with tempfile.TemporaryDirectory() as folder:
        arrays = Path(folder) / "qm9.npz"
        np.savez(arrays, x_idx=data.x_idx, adj_idx=data.adj_idx,
                 atom_types=data.vocab.num_atom_types, bond_types=data.vocab.num_bond_types)
        for batch_size in args.batch_size:
            record = bench(args, batch_size, arrays, data)
            print(json.dumps(record))
            if args.json:
                with open(args.json, "a") as handle:
                    handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
