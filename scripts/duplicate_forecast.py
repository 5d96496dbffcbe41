r"""Forecast of the duplicates among a model's own draws, from its law alone: the probability
that two latents draw the same labelled graph, and the duplicate pairs it predicts.

    python scripts/duplicate_forecast.py RUN_OR_CKPT --temperature 1.0 1.2 1.4
    python scripts/duplicate_forecast.py molgan/pretrained/qm9.pt --temperature 2.15 --latents 8192

``molgan sample --valence-draw false --temperature T`` draws each slot's atom type and each
pair's bond independently from softmax(logits / T). For ``--latents`` latents
:math:`z_1, \dots, z_L` (seeded) the script averages, over every ordered pair :math:`i \ne
j`, the probability :math:`c_{ij}` that the two laws draw the same labelled graph
(:func:`molgan.loss.pair_log_collisions`): an unbiased estimate of the chance :math:`\bar c`
that two samples collide. Among ``--samples`` draws, :math:`\binom{n}{2}\,\bar c` pairs are
then expected to be equal, which is about the number of repeated molecules that unique@n
counts when repeats come in pairs. Collisions of relabelled graphs, of graphs that differ in
bonds of empty slots, and of draws within valences are not counted; invalid draws are
(the measured figure counts valid molecules only), so the forecast and the measurement can
differ both ways.
"""

from __future__ import annotations

import argparse
import json

import torch

from molgan.generator import Generator
from molgan.graph import DenseGraph
from molgan.loss import pair_log_collisions


def mean_collision(law: DenseGraph, block: int = 512) -> float:
    r""":math:`\bar c = \frac{1}{L(L-1)} \sum_{i \ne j} c_{ij}` of the laws ``law [L]``
    (``x [L, N, T]``, ``adj [L, N, N, Y]``), computed ``block`` rows at a time."""
    count = law.x.shape[0]
    if count < 2:
        raise ValueError("the forecast needs at least 2 latents")
    total = 0.0
    for start in range(0, count, block):
        stop = min(start + block, count)
        c = pair_log_collisions(law.rows(slice(start, stop)), law).exp()
        rows = torch.arange(stop - start)
        c[rows, rows + start] = 0.0  # a latent with itself is not a pair
        total += c.double().sum().item()
    return total / (count * (count - 1))


@torch.no_grad()
def forecast(generator: Generator, temperatures: list[float], latents: int, seed: int,
             samples: int) -> list[dict[str, float]]:
    """One row per temperature: ``temperature``, ``pair_collision`` (:math:`\\bar c`) and
    ``duplicate_pairs`` among ``samples`` draws."""
    rng = torch.Generator().manual_seed(seed)
    device = next(generator.parameters()).device
    logits = generator(generator.sample_z(latents, generator=rng, device=device))
    rows = []
    for t in temperatures:
        law = DenseGraph(torch.softmax(logits.x.float() / t, -1),
                         torch.softmax(logits.adj.float() / t, -1))
        c = mean_collision(law)
        rows.append({"temperature": t, "pair_collision": c,
                     "duplicate_pairs": samples * (samples - 1) / 2 * c})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="run directory or ckpt.pt (molgan/pretrained/qm9.pt)")
    parser.add_argument("--temperature", type=float, nargs="+", default=[1.0])
    parser.add_argument("--latents", type=int, default=4096, help="latents averaged over")
    parser.add_argument("--samples", type=int, default=10000, help="the n of unique@n")
    parser.add_argument("--seed", type=int, default=0, help="seed of the latents")
    parser.add_argument("--json", default=None, help="write the rows here")
    args = parser.parse_args()
    from molgan.sample import Sampler

    generator = Sampler.from_checkpoint(args.run, device="cpu").generator
    rows = forecast(generator, args.temperature, args.latents, args.seed, args.samples)
    print(f"{args.run}: {args.latents} latents (seed {args.seed}), draws without the "
          f"valence constraint")
    for row in rows:
        print(f"  T {row['temperature']:<5g} pair collision {row['pair_collision']:.3g}  "
              f"expected duplicate pairs among {args.samples}: {row['duplicate_pairs']:.0f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"model": args.run, "latents": args.latents, "seed": args.seed,
                       "samples": args.samples, "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
