r"""The autoencoder term: an encoder gives each training graph a latent, the generator decodes it.

A variational autoencoder (Kingma and Welling 2014) beside the WGAN loss, with the generator
as its decoder. The generator's logits for a latent :math:`z` define the factorized law
:math:`p(G \mid z)` of :mod:`molgan.coverage` (one categorical per atom slot, one per atom
pair), the law that ``molgan sample --valence-draw false --temperature 1`` draws from. The
encoder :math:`q(z \mid G) = \mathcal{N}(\mu(G), \mathrm{diag}\, \sigma^2(G))` reads a real
graph's one-hots in the data's atom order (an MLP on the flattened atom types and upper
triangle of bond types, the generator's widths reversed), and the term is the negative
evidence lower bound per variable,

.. math::
    L = \frac{1}{B} \sum_i \Big[ -\ell(G_i, z_i)
        + \frac{\beta}{V} \mathrm{KL}\big(q(z \mid G_i) \,\|\, \mathcal{N}(0, I)\big) \Big],
    \qquad z_i = \mu(G_i) + \sigma(G_i) \odot \epsilon_i,

with :math:`\ell` the mean log-likelihood per variable (:func:`molgan.coverage.paired_scores`),
:math:`V = N + N(N-1)/2` variables per graph, :math:`\beta` = :data:`KL_WEIGHT` (the
evidence lower bound itself) and

.. math::
    \mathrm{KL} = \tfrac{1}{2} \sum_k \big(\mu_k^2 + \sigma_k^2 - 1 - \log \sigma_k^2\big).

Where latent coverage picks each real graph's nearest of a few fresh latents, the encoder
reaches every graph: each training graph gets a region of the prior whose law draws it, and the
KL term keeps those regions where ``molgan sample`` draws its latents. Atom slots are compared
in the data's order (no search over permutations); the data's order is a function of the
molecule when its SMILES are canonical.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from molgan.coverage import flat_one_hots, paired_scores, variables_per_graph
from molgan.graph import DenseGraph

KL_WEIGHT = 1.0
""":math:`\\beta`, the weight of the KL term per variable: 1 is the evidence lower bound."""
LOG_VARIANCE_RANGE = (-12.0, 6.0)
"""Range to which the encoder's :math:`\\log \\sigma^2` is clipped (keeps the KL finite)."""


class GraphEncoder(nn.Module):
    r"""``q(z | G)``: one-hot graphs ``x [B, N, T]``, ``adj [B, N, N, Y]`` -> ``(mu, log_var)``,
    each ``[B, Z]``.

    An MLP (tanh) on the concatenated atom one-hots ``[B, N T]`` and upper-triangle bond one-hots
    ``[B, N(N-1)/2 Y]``: it reads atoms by slot, as the generator writes them.

    Args:
        num_nodes: ``N``.
        num_atom_types: ``T``.
        num_bond_types: ``Y`` (with "no bond").
        hidden: widths of the hidden layers.
        z_dim: ``Z``.
    """

    def __init__(self, num_nodes: int, num_atom_types: int, num_bond_types: int,
                 hidden: Sequence[int], z_dim: int) -> None:
        super().__init__()
        self.num_nodes = num_nodes
        width = num_nodes * num_atom_types + num_nodes * (num_nodes - 1) // 2 * num_bond_types
        layers: list[nn.Module] = []
        for out in hidden:
            layers += [nn.Linear(width, out), nn.Tanh()]
            width = out
        self.body = nn.Sequential(*layers)
        self.to_mean = nn.Linear(width, z_dim)
        self.to_log_var = nn.Linear(width, z_dim)

    def forward(self, x: Tensor, adj: Tensor) -> tuple[Tensor, Tensor]:
        n = x.shape[1]
        if n != self.num_nodes:
            raise ValueError(f"the encoder reads graphs of {self.num_nodes} atom slots, got {n}")
        h = self.body(torch.cat(flat_one_hots(DenseGraph(x, adj)), dim=1))
        return self.to_mean(h), self.to_log_var(h).clamp(*LOG_VARIANCE_RANGE)


def reparameterize(mean: Tensor, log_var: Tensor, generator: torch.Generator | None = None
                   ) -> Tensor:
    r""":math:`z = \mu + \sigma \odot \epsilon`, :math:`\epsilon \sim \mathcal{N}(0, I)` drawn
    with ``generator``; differentiable in ``mean`` and ``log_var``."""
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + (0.5 * log_var).exp() * noise


def gaussian_kl(mean: Tensor, log_var: Tensor) -> Tensor:
    r""":math:`\mathrm{KL}(\mathcal{N}(\mu, \sigma^2) \,\|\, \mathcal{N}(0, I))` per graph,
    ``[B]``, for ``mean`` and ``log_var`` ``[B, Z]`` (module docstring)."""
    return 0.5 * (mean.square() + log_var.exp() - 1 - log_var).sum(1)


class AutoencoderTerm(NamedTuple):
    """The term and its two parts, each a scalar (batch means)."""

    loss: Tensor
    """:math:`-\\ell + \\beta\\, \\mathrm{KL} / V`."""
    reconstruction: Tensor
    """:math:`-\\ell`: negative log-likelihood per variable of the real graphs."""
    kl: Tensor
    """KL per graph, in nats (not divided by ``V``)."""


def autoencoder_loss(decoded: DenseGraph, real: DenseGraph, mean: Tensor, log_var: Tensor,
                     kl_weight: float = KL_WEIGHT) -> AutoencoderTerm:
    r"""The module docstring's :math:`L` for ``real [B]`` one-hot graphs, ``decoded [B]`` the
    generator's logits at their encoded latents (``x [B, N, T]``, ``adj [B, N, N, Y]``) and
    ``mean``, ``log_var`` ``[B, Z]`` the encoder's outputs."""
    reconstruction = -paired_scores(decoded, real).mean()
    kl = gaussian_kl(mean.float(), log_var.float()).mean()
    variables = variables_per_graph(real.x.shape[1])
    return AutoencoderTerm(reconstruction + kl_weight * kl / variables, reconstruction, kl)
