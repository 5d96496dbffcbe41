"""The graph critic: relational GCN -> gated aggregation -> MLP -> one unbounded score."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from molgan.layers import GraphAggregation, RelationalGraphConv
from molgan.vocab import Vocab


@dataclass
class CriticConfig:
    """Critic hyperparameters (``T`` and ``Y`` come from the vocabulary)."""

    critic_conv: tuple[int, ...] = (128, 64)
    """Widths of the relational graph convolutions."""
    critic_agg: int = 128
    """Width of the aggregated graph representation."""
    critic_mlp: tuple[int, ...] = (128, 64)
    """Widths of the MLP on the graph representation (tanh)."""


class Critic(nn.Module):
    r"""WGAN critic ``D(x, adj) -> [B]``: unbounded scores, no batch norm, no sigmoid.

    Each convolution sees the node annotations concatenated to the previous layer's output
    (as in MolGAN): :math:`h^{(l+1)} = \mathrm{RGCN}([h^{(l)}, x], A_{1:})`, where ``A_{1:}``
    drops the no-bond channel. Node weights :math:`m_i = 1 - x_{i0}` (the probability that node
    ``i`` is an atom) multiply every node's input and output, so padded nodes contribute nothing
    and relaxed graphs are weighted softly. The gated aggregation sums over nodes, so the score
    is invariant to node order and a graph's score does not depend on its batch-mates (which
    the per-sample gradient penalty requires).
    """

    def __init__(self, config: CriticConfig, vocab: Vocab) -> None:
        super().__init__()
        self.config = config
        self.vocab = vocab
        t, relations = vocab.num_atom_types, vocab.num_bond_types - 1
        convs = []
        width = 0
        for out in config.critic_conv:
            convs.append(RelationalGraphConv(width + t, out, relations))
            width = out
        self.convs = nn.ModuleList(convs)
        self.aggregate = GraphAggregation(width + t, config.critic_agg)
        mlp: list[nn.Module] = []
        width = config.critic_agg
        for hidden in config.critic_mlp:
            mlp += [nn.Linear(width, hidden), nn.Tanh()]
            width = hidden
        mlp.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*mlp)

    def embed(self, x: Tensor, adj: Tensor) -> Tensor:
        """Graph representation ``[B, critic_agg]`` of ``x [B, N, T]``, ``adj [B, N, N, Y]``."""
        node_weight = 1.0 - x[..., 0]
        weight = node_weight.unsqueeze(-1)
        bonds = adj[..., 1:]
        h = x.new_zeros(x.shape[0], x.shape[1], 0)
        for conv in self.convs:
            h = conv(torch.cat([h, x], dim=-1) * weight, bonds, node_weight)
        return self.aggregate(torch.cat([h, x], dim=-1) * weight, node_weight)

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        """Scores ``[B]`` of graphs ``x [B, N, T]``, ``adj [B, N, N, Y]`` (one-hot or relaxed)."""
        return self.mlp(self.embed(x, adj)).squeeze(-1)
