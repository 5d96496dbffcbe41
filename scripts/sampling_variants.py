"""Four sampling-time variants of a trained generator, for measuring against plain sampling.

    python scripts/sampling_variants.py RUN_OR_CKPT --latent-scale 1.25 -o samples.csv
    python scripts/sampling_variants.py RUN_OR_CKPT --presence-temperature 1.0 -o samples.csv
    python scripts/sampling_variants.py RUN_OR_CKPT --pair-temperature 1.0 -o samples.csv
    python scripts/sampling_variants.py RUN_OR_CKPT --order-temperature 1.0 -o samples.csv
    molgan evaluate samples.csv --train qm9

- ``--latent-scale s`` draws the latents from ``N(0, s^2 I)`` instead of ``N(0, I)``
  (``s < 1`` is the truncation trick's direction, ``s > 1`` the opposite): does the network
  hold more distinct molecules in the latent than the standard normal reaches?
- ``--presence-temperature Tp`` draws whether a slot holds an atom at ``Tp`` and which
  element it holds, and every bond, at the sampling temperature ``T``: the node law becomes
  ``q(empty) = p_Tp(empty)``, ``q(e) = (1 - p_Tp(empty)) softmax(l / T)_e`` over the elements
  ``e``, where ``p_Tp = softmax(l / Tp)``. A warm draw flattens the "no atom" logit too, so
  it makes molecules smaller than the network's law at ``T = 1``; this keeps their size.
- ``--pair-temperature Tb`` does the same for the pairs: whether two atoms bond is drawn at
  ``Tb``, which bond order at ``T``: ``q(none) = p_Tb(none)``, ``q(k) = (1 - p_Tb(none))
  softmax(l / T)_k`` over the orders ``k``. A warm draw flattens every pair's "no bond"
  logit; at 27 atoms, 351 pairs each get that chance of a bond the network did not put
  there, and those extra bonds close rings.
- ``--order-temperature To`` is the converse: whether two atoms bond is drawn at ``T``
  (or ``Tb``), which bond order at ``To``: ``q(k) = (1 - p(none)) softmax(l / To)_k``. A
  warm draw also flattens the orders of the bonds it keeps, so that a bond the network
  holds single with p = 0.95 is double or triple far more often; a Kekulé ring's
  alternation survives only if every one of its bonds keeps its order.

Everything else is ``molgan sample``'s: the model's decoding, its valence draw (or
``--valence-draw``), ``-n`` samples from one stream seeded with ``--seed``. With
``--latent-scale 1`` and none of the temperatures the samples are ``molgan sample``'s.
"""

from __future__ import annotations

import argparse

import torch
from torch import Tensor, nn

from molgan.graph import DenseGraph
from molgan.sample import Sampler, write_samples


class SamplingVariant(nn.Module):
    """A trained :class:`molgan.generator.Generator` seen through the four variants: latents
    ``s z``, node logits ``l [B, N, T]`` and pair logits ``[B, N, N, Y]`` replaced by ``T log
    q`` (so that the sampler's draw from ``softmax(. / T)`` draws from ``q``, see the
    module's docstring). Token 0 of the nodes is "no atom", of the pairs "no bond"."""

    def __init__(self, generator: nn.Module, latent_scale: float = 1.0,
                 presence_temperature: float | None = None, temperature: float = 1.0,
                 pair_temperature: float | None = None,
                 order_temperature: float | None = None) -> None:
        super().__init__()
        if not latent_scale > 0:
            raise ValueError(f"the latent scale must be > 0, got {latent_scale}")
        for name, value in (("presence", presence_temperature), ("pair", pair_temperature),
                            ("order", order_temperature)):
            if value is not None and not value > 0:
                raise ValueError(f"the {name} temperature must be > 0, got {value}")
        self.generator = generator
        self.config = generator.config
        self.latent_scale = latent_scale
        self.presence_temperature = presence_temperature
        self.pair_temperature = pair_temperature
        self.order_temperature = order_temperature
        self.temperature = temperature

    def sample_z(self, batch_size: int, generator: torch.Generator | None = None,
                 device: torch.device | str | None = None) -> Tensor:
        """``s z`` with ``z ~ N(0, I)`` of shape ``[batch_size, Z]``."""
        return self.generator.sample_z(batch_size, generator=generator,
                                       device=device) * self.latent_scale

    def forward(self, z: Tensor) -> DenseGraph:
        """Logits ``DenseGraph(x [B, N, T], adj [B, N, N, Y])``, nodes and pairs re-weighted."""
        logits = self.generator(z)
        x, adj = logits.x, logits.adj
        if self.presence_temperature is not None:
            x = self._split_law(x, self.presence_temperature, self.temperature)
        if self.pair_temperature is not None or self.order_temperature is not None:
            adj = self._split_law(adj, self.pair_temperature or self.temperature,
                                  self.order_temperature or self.temperature)
        return DenseGraph(x, adj)

    def _split_law(self, logits: Tensor, first_temperature: float,
                   rest_temperature: float) -> Tensor:
        """``T log q`` for logits ``[..., K]``: token 0 ("no atom", "no bond") keeps its
        chance at ``first_temperature``, the others share the rest as at ``rest_temperature``."""
        none = torch.softmax(logits / first_temperature, dim=-1)[..., :1]
        others = torch.softmax(logits[..., 1:] / rest_temperature, dim=-1) * (1 - none)
        law = torch.cat([none, others], dim=-1).clamp_min(torch.finfo(logits.dtype).tiny)
        return self.temperature * law.log()


def add_model_arguments(parser: argparse.ArgumentParser, counted: str = "samples",
                        valence_draw: str | None = None) -> None:
    """The arguments every script that draws from a trained model shares with ``molgan
    sample``: the model, ``-n``, ``--seed``, ``--temperature`` and ``--valence-draw``
    (``valence_draw``: its default, None for the model's own)."""
    parser.add_argument("run", help="run directory or ckpt.pt (molgan/pretrained/qm9.pt)")
    parser.add_argument("-n", type=int, default=10000, help=counted)
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--temperature", type=float, default=None,
                        help="sampling temperature (default: the model's)")
    parser.add_argument("--valence-draw", choices=("true", "false"), default=valence_draw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_arguments(parser)
    parser.add_argument("--latent-scale", type=float, default=1.0)
    parser.add_argument("--presence-temperature", type=float, default=None)
    parser.add_argument("--pair-temperature", type=float, default=None)
    parser.add_argument("--order-temperature", type=float, default=None)
    parser.add_argument("-o", "--output", required=True, help=".smi, .csv or .sdf")
    args = parser.parse_args()
    valence = None if args.valence_draw is None else args.valence_draw == "true"
    plain = Sampler.from_checkpoint(args.run, decode="sample",
                                    temperature=args.temperature, valence_draw=valence)
    variant = SamplingVariant(plain.generator, args.latent_scale, args.presence_temperature,
                              plain.temperature, args.pair_temperature,
                              args.order_temperature)
    sampler = Sampler(variant, plain.vocab, plain.device, decode="sample",
                      temperature=plain.temperature, valence_draw=plain.max_valence is not None)
    result = sampler.sample(args.n, seed=args.seed)
    written = write_samples(result.smiles, args.output)
    valid = sum(s is not None for s in result.smiles)
    print(f"{written} samples ({valid} valid) at T {plain.temperature}, latent scale "
          f"{args.latent_scale}, presence temperature {args.presence_temperature}, pair "
          f"temperature {args.pair_temperature}, order temperature {args.order_temperature} "
          f"-> {args.output}")


if __name__ == "__main__":
    main()
