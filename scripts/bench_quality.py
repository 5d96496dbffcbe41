"""Quality benchmark: train a recipe under a step or wall-clock budget, sample 10,000 molecules
with a fixed seed, evaluate them against the data's reference (QM9's test split; MOSES's Test
and TestSF with ``--data moses``, whose MOSES table is recorded too), append one JSON line per
run to a results file.

    python scripts/bench_quality.py --name default --steps 2000 --repeats 3 \
        --results docs/quality.jsonl -- --relax softmax --batch-size 128

Everything after ``--`` is passed to ``molgan train`` unchanged (same flags, same defaults).
With ``--repeats K`` seeds 0..K-1 are run and a summary line (mean and sd) is printed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch

from molgan.cli import main as molgan
from molgan.evaluate import evaluate, load_reference
from molgan.sample import Sampler

KEYS = ("validity", "validity_connected", "uniqueness", "novelty", "novelty_molgan", "fcd",
        "internal_diversity", "qed_w1", "logp_w1", "sa_w1", "qed_mean", "logp_mean", "sa_mean",
        "qed_reward_ge_half", "logp_reward_ge_half", "sa_reward_ge_half")


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_once(args: argparse.Namespace, train_args: list[str], seed: int, commit: str) -> dict:
    """Train, sample and evaluate one seed; ``commit``: the code's commit, read at start."""
    out = Path(args.runs) / f"{args.name}-seed{seed}"
    command = ["train", "--out", str(out), "--seed", str(seed), "--eval-every", "1000000",
               "--data", args.data]
    if args.steps:
        command += ["--steps", str(args.steps)]
    if args.max_seconds:
        command += ["--max-seconds", str(args.max_seconds)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    command += train_args
    if (out / "ckpt.pt").exists():
        command.append("--resume")
    t0 = time.perf_counter()
    code = molgan(command)
    wall = time.perf_counter() - t0
    if code not in (0,):
        raise SystemExit(f"training failed with exit code {code}")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    sampler = Sampler.from_checkpoint(out, device=args.device)
    samples = sampler.sample(args.samples, seed=args.sample_seed).smiles
    result = evaluate(samples, load_reference(args.data))
    return {
        "name": args.name, "seed": seed, "train_args": train_args,
        "command": "molgan " + " ".join(command),
        "steps": records[-1]["step"], "train_seconds": records[-1]["seconds"],
        "wall_seconds": round(wall, 1), "samples": args.samples, "sample_seed": args.sample_seed,
        "decode": sampler.decode, "temperature": sampler.temperature,
        "device": str(sampler.device),
        "threads": torch.get_num_threads(), "machine": platform.machine(),
        "git_commit": commit, "data": args.data, "results": {k: result.get(k) for k in KEYS},
        **({"moses": result["moses"]} if "moses" in result else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True)
    parser.add_argument("--data", default="qm9", help="qm9, moses or a SMILES file")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--max-seconds", type=float, default=None)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--runs", default="runs/bench")
    parser.add_argument("--results", default="docs/quality.jsonl")
    args, train_args = parser.parse_known_args()
    train_args = [a for a in train_args if a != "--"]
    commit = git_commit()  # at start: the code this process imported (the tree may move on)
    lines = []
    for seed in range(args.first_seed, args.first_seed + args.repeats):
        line = run_once(args, train_args, seed, commit)
        lines.append(line)
        with open(args.results, "a") as handle:
            handle.write(json.dumps(line) + "\n")
        print(json.dumps(line))
    if len(lines) > 1:
        summary = {k: (statistics.mean(r["results"][k] for r in lines),
                       statistics.stdev(r["results"][k] for r in lines)) for k in KEYS}
        print(json.dumps({"name": args.name, "repeats": len(lines), "mean_sd": summary}))


if __name__ == "__main__":
    main()
