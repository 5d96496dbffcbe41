r"""Latent coverage: a generator term that gives every training graph a latent that draws it.

Implicit maximum likelihood estimation (Li and Malik 2018) beside the WGAN loss. The
generator's logits for a latent :math:`z` define a factorized law :math:`p(G \mid z)`: one
categorical per atom slot (softmax of ``x / T``) and one per atom pair :math:`n < m` (softmax
of ``adj / T``), the law that ``molgan sample --valence-draw false --temperature T`` draws
from (``coverage_temperature``).
For real graphs :math:`G_1 .. G_B` and a pool of :math:`K B` fresh latents, the mean
log-likelihood per variable

.. math::
    \ell(G, z) = \frac{1}{V} \Big[ \sum_n \log p(x_n \mid z)
                 + \sum_{n < m} \log p(a_{nm} \mid z) \Big],
    \qquad V = N + N (N - 1) / 2,

picks each real graph's nearest latent :math:`z^*_i = \arg\max_j \ell(G_i, z_j)` (without
gradient), and the term is :math:`-\frac{1}{B} \sum_i \ell(G_i, z^*_i)`. Each real graph pulls
the law of its nearest latent toward itself, so no region of the data goes without latents
(the mode collapse that the WGAN loss alone leaves), and the law drawn at temperature T learns
valences from valid graphs. Log-probabilities below ``floor`` are clipped there (and pass no
gradient): bond orders that the generator's valence mask forbids have logits of ``-1e4``.
Atom slots are compared in the data's order (no search over permutations).

The log-likelihood is a proper scoring rule: the law it fits to the graphs that share a
latent is their mixture, as broad as they differ. With ``score="hits"`` the score is instead
the expected share of variables a draw gets right,
:math:`h(G, z) = \frac{1}{V} [\sum_n p(x_n \mid z) + \sum_{n<m} p(a_{nm} \mid z)]`, and the
term :math:`1 - h`: the expected Hamming distance per variable, whose best law puts each
variable's mass on its commonest value (a sharp law per latent, its diversity left to the
latents).
"""

from __future__ import annotations

import torch
from torch import Tensor

from molgan.graph import DenseGraph

SCORES = ("log", "hits")
"""What the coverage term scores a real graph by under a latent's law (module docstring)."""

LOG_FLOOR = -20.0
"""Lowest log-probability a variable contributes (masked bond orders sit near ``-1e4``)."""


def _flat_scores(logits: DenseGraph, floor: float, temperature: float,
                    score: str = "log") -> tuple[Tensor, Tensor]:
    """Log-probabilities (``score="hits"``: probabilities) of ``logits / temperature`` as
    ``x [M, N T]`` and upper-triangle ``adj [M, P Y]``."""
    if score not in SCORES:
        raise ValueError(f"coverage score must be one of {', '.join(SCORES)}, got {score!r}")
    n = logits.x.shape[1]
    rows, cols = torch.triu_indices(n, n, 1, device=logits.x.device)
    parts = []
    for part in (logits.x.float(), logits.adj[:, rows, cols].float()):
        if score == "log":
            parts.append(torch.log_softmax(part / temperature, -1).clamp(min=floor).flatten(1))
        else:
            parts.append(torch.softmax(part / temperature, -1).flatten(1))
    return parts[0], parts[1]


def flat_one_hots(real: DenseGraph) -> tuple[Tensor, Tensor]:
    """One-hot ``real`` as ``x [B, N T]`` and upper-triangle ``adj [B, P Y]``."""
    n = real.x.shape[1]
    rows, cols = torch.triu_indices(n, n, 1, device=real.x.device)
    return real.x.float().flatten(1), real.adj[:, rows, cols].float().flatten(1)


def variables_per_graph(num_nodes: int) -> int:
    """:math:`V = N + N (N - 1) / 2`: atom slots and atom pairs of a graph of ``N`` slots."""
    return num_nodes + num_nodes * (num_nodes - 1) // 2


def pairwise_scores(logits: DenseGraph, real: DenseGraph, temperature: float = 1.0,
                             floor: float = LOG_FLOOR, score: str = "log") -> Tensor:
    r""":math:`\ell(G_i, z_j)` ``[B, M]`` of one-hot ``real`` graphs ``[B]`` under the laws of
    ``logits [M]`` (``x [M, N, T]``, ``adj [M, N, N, Y]``) at ``temperature`` (with
    ``score="hits"``: :math:`h(G_i, z_j)`)."""
    per_x, per_adj = _flat_scores(logits, floor, temperature, score)
    real_x, real_adj = flat_one_hots(real)
    return (real_x @ per_x.T + real_adj @ per_adj.T) / variables_per_graph(real.x.shape[1])


def paired_scores(logits: DenseGraph, real: DenseGraph, temperature: float = 1.0,
                           floor: float = LOG_FLOOR, score: str = "log") -> Tensor:
    r""":math:`\ell(G_i, z_i)` ``[B]`` of one-hot ``real [B]`` under ``logits [B]`` at
    ``temperature`` (with ``score="hits"``: :math:`h(G_i, z_i)`), differentiable in
    ``logits``."""
    per_x, per_adj = _flat_scores(logits, floor, temperature, score)
    real_x, real_adj = flat_one_hots(real)
    total = (real_x * per_x).sum(1) + (real_adj * per_adj).sum(1)
    return total / variables_per_graph(real.x.shape[1])


@torch.no_grad()
def nearest_latents(generator: torch.nn.Module, real: DenseGraph, pool: Tensor,
                    temperature: float = 1.0, score: str = "log") -> Tensor:
    r"""``z* [B, Z]``: for each of the ``B`` real graphs the latent of ``pool [M, Z]`` under
    whose law at ``temperature`` it scores highest (:func:`pairwise_scores`)."""
    best = pairwise_scores(generator(pool), real, temperature,
                                    score=score).argmax(1)
    return pool[best]


def coverage_loss(chosen: DenseGraph, real: DenseGraph, temperature: float = 1.0,
                  score: str = "log") -> Tensor:
    r"""The term :math:`-\frac{1}{B}\sum_i \ell(G_i, z^*_i)` (``score="hits"``:
    :math:`1 - \frac{1}{B}\sum_i h(G_i, z^*_i)`), a scalar: ``chosen`` are the generator's
    logits ``[B]`` at :func:`nearest_latents` of ``real [B]``."""
    scores = paired_scores(chosen, real, temperature, score=score).mean()
    return 1 - scores if score == "hits" else -scores
