"""How well a critic's pipeline scores tell a data set's test molecules from other graphs.

    python scripts/critic_check.py pretrained:moses --data moses --limit 10000 \
        --samples samples.csv --json critic.json

Scores (``Critic.score_dense``, independent of batch-mates) of three sets:

- ``test``: the first ``--limit`` molecules of the test split (QM9: the split of seed 0;
  MOSES: its ``Test`` split), never seen in training;
- ``random``: as many random graphs of the same sizes: each atom a uniformly drawn atom token,
  each pair a uniformly drawn bond token (no bond, single, double, triple), chemistry ignored;
- each ``--samples`` file (SMILES; rows the vocabulary cannot represent are counted and left
  out).

For each set the mean and standard deviation of its scores, and for each other set the AUC
of ``test`` against it (the chance that a test molecule outscores one of the set's; 0.5 = no
better than a coin). A critic fit for pipelines puts real molecules above random graphs
(AUC near 1). The shipped critics' figures are in docs/benchmarks.md ("The shipped
critics").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from molgan.checkpoint import model_path
from molgan.critic import Critic
from molgan.dataset import load_dataset
from molgan.evaluate import read_samples
from molgan.rejection import auc, critic_scores


def random_graphs_like(x_idx: torch.Tensor, num_atom_types: int, num_bond_types: int,
                       seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random graphs ``x [M, N]``, ``adj [M, N, N]`` (uint8) with the atom counts of
    ``x_idx [M, N]`` (its atoms first, padding after): each atom a uniform token in
    ``1..T-1``, each pair of atoms a uniform bond token in ``0..Y-1``, symmetric."""
    g = torch.Generator().manual_seed(seed)
    n = x_idx.shape[1]
    exists = torch.arange(n)[None, :] < (x_idx > 0).sum(1)[:, None]
    x = torch.zeros(x_idx.shape, dtype=torch.uint8)
    x[exists] = torch.randint(1, num_atom_types, (int(exists.sum()),), generator=g).to(x.dtype)
    adj = torch.triu(torch.randint(0, num_bond_types, (len(x_idx), n, n), generator=g), 1)
    adj = (adj + adj.transpose(1, 2)) * (exists[:, :, None] & exists[:, None, :])
    return x, adj.to(torch.uint8)


def test_graphs(data: str, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays of the first ``limit`` test molecules of ``data`` (qm9 or moses)."""
    if data == "moses":
        test = load_dataset("moses:test")
        return test.x_idx[:limit], test.adj_idx[:limit]
    dataset = load_dataset(data)
    rows = dataset.split_indices(seed=0)["test"][:limit]
    return dataset.x_idx[rows], dataset.adj_idx[rows]


def summary(scores: torch.Tensor) -> dict[str, float]:
    """Count, mean and standard deviation of ``scores [M]``."""
    return {"n": len(scores), "mean": float(scores.mean()), "sd": float(scores.std())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="run directory, ckpt.pt, pretrained or pretrained:NAME")
    parser.add_argument("--data", default="qm9", choices=("qm9", "moses"))
    parser.add_argument("--limit", type=int, default=10_000, help="test molecules scored")
    parser.add_argument("--samples", nargs="*", default=[], help="SMILES files to score")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random graphs")
    parser.add_argument("--json", default=None, help="write the report here")
    args = parser.parse_args()
    critic = Critic.from_checkpoint(model_path(args.model))
    t, y = critic.vocab.num_atom_types, critic.vocab.num_bond_types
    x_idx, adj_idx = test_graphs(args.data, args.limit)
    test = critic_scores(critic, x_idx, adj_idx)
    x_rand, adj_rand = random_graphs_like(torch.from_numpy(np.asarray(x_idx)), t, y, args.seed)
    sets = {"random": critic_scores(critic, x_rand.numpy(), adj_rand.numpy())}
    skipped = {}
    for path in args.samples:
        smiles = [s for s in read_samples(path) if s]
        scores = critic.score(smiles)
        kept = scores[~scores.isnan()]
        skipped[path] = len(smiles) - len(kept)
        sets[path] = kept
    report = {"model": args.model, "data": args.data, "test": summary(test),
              **{name: {**summary(s), "auc_test_vs": auc(test, s)} for name, s in sets.items()},
              "skipped": skipped}
    for name in ("test", *sets):
        row = report[name]
        extra = f", AUC of test against it {row['auc_test_vs']:.3f}" if name in sets else ""
        print(f"{name}: {row['n']:,} graphs, score {row['mean']:.3f} +- {row['sd']:.3f}{extra}")
    for path, count in skipped.items():
        if count:
            print(f"{path}: {count:,} valid SMILES the vocabulary cannot represent, left out")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
