"""Critic rejection sampling measured against plain sampling, for one trained run.

    python scripts/critic_rejection.py RUN_DIR --quantiles 0.5 0.95 --out runs/rejection

Loads the run's generator (its own decoding) and its critic, takes real graphs from the
validation split of the run's data (never the test split the FCD is measured against),
reports how well the critic tells them from the generator's draws (AUC), fits the calibration
of :mod:`molgan.rejection`, and for plain sampling and each quantile draws ``-n`` samples
(seed ``--seed``) and scores them with ``molgan evaluate``'s metrics. Writes the SMILES and
one JSON report to ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from molgan.checkpoint import load_checkpoint
from molgan.critic import Critic
from molgan.dataset import load_dataset
from molgan.evaluate import evaluate, load_reference
from molgan.rejection import auc, critic_scores, fit_calibration, sample_with_rejection
from molgan.sample import Sampler, write_samples

KEYS = ("validity", "validity_connected", "uniqueness", "novelty", "fcd", "rings_mean",
        "sa_mean", "qed_mean")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run directory or ckpt.pt (the critic must be the "
                                    "generator's own)")
    parser.add_argument("--quantiles", type=float, nargs="+", default=[0.5, 0.95])
    parser.add_argument("-n", "--num-samples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real", type=int, default=5000, help="validation graphs to calibrate")
    parser.add_argument("--calibration-draws", type=int, default=10_000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sampler = Sampler.from_checkpoint(args.run, device="cpu")
    critic = Critic.from_checkpoint(args.run)
    run = load_checkpoint(args.run)["config"]["train"]
    data = load_dataset(run["data"], smiles_column=run.get("smiles_column"),
                        max_atoms=run.get("max_atoms"), atoms=run.get("atoms"),
                        vocab=sampler.vocab)
    valid = data.subset(data.split_indices(seed=run.get("split_seed", 0))["valid"][:args.real])
    calibration_seed = args.seed + 1_000_000  # draws apart from those that are kept
    real = critic_scores(critic, valid.x_idx, valid.adj_idx)
    fake = critic_scores(critic, *sampler.sample_graphs(args.calibration_draws,
                                                         calibration_seed))
    calibration = fit_calibration(real, fake, quantile=1.0)
    reference = load_reference(run["data"])
    report = {"run": str(args.run), "samples": args.num_samples, "seed": args.seed,
              "decode": sampler.decode, "temperature": sampler.temperature,
              "auc_valid_vs_draws": auc(real, fake), "slope": calibration.slope,
              "intercept": calibration.intercept, "rows": []}
    plain = sampler.sample(args.num_samples, seed=args.seed).smiles
    rows = [("plain", None, plain, 1.0)]
    for quantile in args.quantiles:
        result = sample_with_rejection(sampler, critic, fit_calibration(real, fake, quantile),
                                       args.num_samples, seed=args.seed)
        rows.append((f"q{quantile:g}", quantile, result.samples.smiles, result.acceptance_rate))
    for name, quantile, smiles, rate in rows:
        write_samples(smiles, out / f"{name}.smi")
        metrics = evaluate(smiles, reference)
        row = {"mode": name, "quantile": quantile, "acceptance": rate,
               **{k: metrics.get(k) for k in KEYS}}
        report["rows"].append(row)
        print(json.dumps(row))
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "rows"}))


if __name__ == "__main__":
    main()
