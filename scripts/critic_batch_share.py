"""How much of a trained critic's real/fake separation runs through its batch features?

A minibatch-distance critic scores each graph from its own representation ``h`` and from
``F`` features that compare it with the other graphs of its batch (molgan.critic). This
script loads a run's checkpoint, draws real and fake batches as its training does (fakes
relaxed, with its share of valence draws), and reports, as medians over ``--batches``:

- ``wasserstein``: ``E[D(real)] - E[D(fake)]``, the critic's estimate;
- ``wasserstein_features_swapped``: the same, each fake graph scored with the real batch's
  mean batch features in place of its own (its ``h`` unchanged);
- ``share_through_features``: ``1 - swapped / wasserstein``, the part of the separation that
  the batch features alone carry;
- the mean feature of real and fake batches and the first MLP layer's column norms;
- the critic's steepness where it is used and where the gradient penalty looks: median
  per-graph gradient norms with respect to the graph (``x`` and ``adj``) and to the batch
  features, on real batches, fake batches and batches of interpolates (one epsilon per
  graph, as in training).

    python scripts/critic_batch_share.py runs/qm9 --batches 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from molgan.checkpoint import load_checkpoint
from molgan.critic import Critic
from molgan.dataset import load_dataset
from molgan.graph import DenseGraph
from molgan.loss import interpolate, scores_and_gradient_norms
from molgan.train import RunConfig, Trainer


def steepness(critic: Critic, graph: DenseGraph) -> tuple[float, float]:
    """Median per-graph gradient norms of the scores of one batch ``graph`` with respect to
    the graph itself (``x`` and ``adj`` together) and to its batch features."""
    norms = scores_and_gradient_norms(critic, graph.x, graph.adj, graph=True,
                                      num_features=critic.num_batch_features)
    return norms.graph.median().item(), norms.features.median().item()


def separation(trainer: Trainer) -> dict[str, float]:
    """One real and one fake batch's scores with their own and with swapped features, and
    the critic's steepness on them and on their interpolates."""
    critic = trainer.critic
    real = trainer._real_batch()
    with torch.no_grad():
        fake = trainer._with_draws(trainer._fake_batch(trainer._latents(), trainer.generator))
    row = {}
    epsilon = torch.rand(real.x.shape[0], generator=trainer.noise, device=real.x.device)
    for name, graph in (("real", real), ("fake", fake),
                        ("interpolates", interpolate(real, fake, epsilon))):
        row[f"grad_graph_{name}"], row[f"grad_features_{name}"] = steepness(critic, graph)
    with torch.no_grad():
        return {**_swapped(critic, real, fake), **row}


def _swapped(critic: Critic, real: DenseGraph, fake: DenseGraph) -> dict[str, float]:
    """The estimate from one real and one fake batch, and again with each fake graph given
    the real batch's mean batch features (its own representation ``h`` kept)."""
    own = critic.config.critic_agg
    real_in = critic._with_batch_feature(critic._embed_dense(*real))
    fake_in = critic._with_batch_feature(critic._embed_dense(*fake))
    swapped = fake_in.clone()
    swapped[:, own:] = real_in[:, own:].mean(0)
    s_real, s_fake, s_swapped = (critic.mlp(t).squeeze(-1).mean().item()
                                 for t in (real_in, fake_in, swapped))
    return {"wasserstein": s_real - s_fake, "wasserstein_features_swapped": s_real - s_swapped,
            "real_score": s_real, "feature_real": real_in[:, own:].mean().item(),
            "feature_fake": fake_in[:, own:].mean().item()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run dir or its ckpt.pt")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run = Path(args.run)
    bundle = load_checkpoint(run / "ckpt.pt" if run.is_dir() else run, map_location="cpu")
    saved = bundle["config"]
    saved["train"]["compile"] = False  # eager is enough for a few batches
    config = RunConfig.from_dict(saved)
    if not config.critic.minibatch_distance:
        parser.error(f"{run}'s critic has no batch features (minibatch_distance off)")
    data = load_dataset(config.train.data, smiles_column=config.train.smiles_column,
                        max_atoms=config.train.max_atoms, atoms=config.train.atoms)
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(config, data, scratch)
    # the trained networks only: the batches below come from --seed, not the run's state
    trainer.generator.load_state_dict(bundle["generator"])
    trainer.critic.load_state_dict(bundle["critic"])
    torch.manual_seed(args.seed)
    trainer.noise.manual_seed(args.seed)
    rows = [separation(trainer) for _ in range(args.batches)]
    report = {"run": str(run), "step": int(bundle["step"]), "batches": args.batches}
    report.update({key: round(statistics.median(row[key] for row in rows), 4) for key in rows[0]})
    w, swapped = report["wasserstein"], report["wasserstein_features_swapped"]
    report["share_through_features"] = round(1 - swapped / w, 3) if abs(w) > 1e-9 else None
    first = next(m for m in trainer.critic.mlp.modules() if isinstance(m, torch.nn.Linear))
    norms = first.weight.detach().norm(dim=0)
    own = trainer.critic.config.critic_agg
    report["mlp_column_norm_h"] = round(norms[:own].mean().item(), 4)
    report["mlp_column_norm_features"] = round(norms[own:].mean().item(), 4)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
