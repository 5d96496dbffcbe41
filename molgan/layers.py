"""Dense relational graph layers of the critic."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class RelationalGraphConv(nn.Module):
    r"""Relational graph convolution over a dense, possibly soft, adjacency.

    .. math::
        h'_i = \sigma\Big(\Theta_0 h_i + b + \sum_{r=1}^{R} \sum_j A_{ijr}\, \Theta_r h_j\Big)
        \cdot m_i

    with one weight :math:`\Theta_r` per bond type ``r`` (no-bond channel excluded) plus the
    self-connection :math:`\Theta_0`. All relations are done in one batched matmul: ``h`` is
    projected to ``[B, N, R, F']`` and multiplied by ``A`` viewed as ``[B, N, N*R]``.

    Args:
        in_channels: ``F``.
        out_channels: ``F'``.
        num_relations: ``R`` (bond types without "no bond").
    """

    def __init__(self, in_channels: int, out_channels: int, num_relations: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_relations = num_relations
        self.relation = nn.Linear(in_channels, num_relations * out_channels, bias=False)
        self.root = nn.Linear(in_channels, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-style uniform init per relation, default init for the root."""
        bound = math.sqrt(6.0 / (self.in_channels + self.out_channels))
        nn.init.uniform_(self.relation.weight, -bound, bound)
        self.root.reset_parameters()

    def forward(self, h: Tensor, adj: Tensor, node_weight: Tensor) -> Tensor:
        r"""Args: ``h [B, N, F]``, ``adj [B, N, N, R]``, ``node_weight [B, N]`` (1 = atom, 0 =
        padding; soft for relaxed graphs). Returns ``[B, N, F']``, zero on padded nodes.

        The batched matmul runs over the narrower side: project then aggregate
        (:math:`A (h \Theta)`, width ``F'``) when ``F >= F'``, aggregate then project
        (:math:`(A h) \Theta`, width ``F``) otherwise. Both give the same messages."""
        b, n, f = h.shape
        r = self.num_relations
        if f >= self.out_channels:
            projected = self.relation(h).view(b, n * r, self.out_channels)
            messages = torch.bmm(adj.reshape(b, n, n * r), projected)
        else:
            # (A_r h) for all r at once: rows (r, i) of [B, R*N, N] times h [B, N, F]
            aggregated = torch.bmm(adj.permute(0, 3, 1, 2).reshape(b, r * n, n), h)
            aggregated = aggregated.view(b, r, n, f).transpose(1, 2).reshape(b * n, r * f)
            # Theta as [F', R*F]: weight rows are (relation, out), columns in
            weight = self.relation.weight.view(r, self.out_channels, f).transpose(0, 1)
            messages = torch.nn.functional.linear(
                aggregated, weight.reshape(self.out_channels, r * f)).view(b, n, -1)
        return torch.tanh(messages + self.root(h)) * node_weight.unsqueeze(-1)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"num_relations={self.num_relations})")


class GraphAggregation(nn.Module):
    r"""Gated sum over nodes (Li et al. 2016, as in MolGAN).

    .. math::
        g = \tanh\Big(\sum_i m_i\, \mathrm{sigmoid}(W_i h_i + b_i) \odot
        \tanh(W_j h_i + b_j)\Big)

    Args:
        in_channels: ``F`` of the node features.
        out_channels: ``F'`` of the graph representation.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.gate = nn.Linear(in_channels, out_channels)
        self.value = nn.Linear(in_channels, out_channels)

    def reset_parameters(self) -> None:
        self.gate.reset_parameters()
        self.value.reset_parameters()

    def forward(self, h: Tensor, node_weight: Tensor) -> Tensor:
        """``h [B, N, F]``, ``node_weight [B, N]`` -> ``[B, F']``."""
        gated = torch.sigmoid(self.gate(h)) * torch.tanh(self.value(h))
        return torch.tanh((gated * node_weight.unsqueeze(-1)).sum(1))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels})"


def closed_walk_features(bonds: Tensor, node_weight: Tensor, longest: int) -> Tensor:
    r"""Closed-walk (return) features of every node: what a message-passing critic cannot see.

    A relational GCN sees each atom's neighbourhood to the depth of its layers, so it cannot
    tell a benzene ring from a conjugated chain or an 8-membered ring (every node of a cycle
    looks the same to it). These features give each node the weight of the closed walks
    through it, by length (random-walk structural encodings, Dwivedi et al. 2022), once over
    any bond and once with a sign per multiple bond:

    .. math::
        W_{ij} = \tfrac{1}{2} m_i m_j \sum_{r} A_{ijr}, \qquad
        Q_{ij} = \tfrac{1}{2} m_i m_j \sum_{r} (-1)^{r+1} A_{ijr}, \qquad
        f_i = \big[(W^k)_{ii},\ (Q^k)_{ii}\big]_{k=2}^{L}

    with ``r = 1, 2, 3`` for single, double, triple bonds and node weights ``m`` (bonds to
    padding count as much as the padding: nothing). ``(W^k)_ii`` counts closed walks
    of length ``k`` (odd ``k``: only through odd rings; a ring of ``k`` atoms adds to length
    ``k``); ``(W^k)_ii - (Q^k)_ii`` is twice the weight of those that cross an odd number of
    double bonds, which is zero on any tree and nonzero on an alternating (Kekulé) ring. The
    scale ``1/2`` keeps powers of molecular graphs (degree at most 4) of order one. Soft
    adjacencies give soft features, differentiable in ``A``.

    Args:
        bonds: ``[B, N, N, R]`` bond channels without "no bond" (one-hot or relaxed).
        node_weight: ``[B, N]``, 1 = atom, 0 = padding (soft for relaxed graphs).
        longest: ``L >= 2``, the longest walk counted.

    Returns:
        ``[B, N, 2 (L - 1)]``: for ``k = 2..L``, ``(W^k)_ii`` then ``(Q^k)_ii``.
    """
    if longest < 2:
        raise ValueError(f"closed walks need a longest length of at least 2, got {longest}")
    relations = bonds.shape[-1]
    signs = torch.tensor([(-1.0) ** r for r in range(relations)], dtype=bonds.dtype,
                         device=bonds.device)
    pair_weight = 0.5 * node_weight.unsqueeze(-1) * node_weight.unsqueeze(-2)
    walk = pair_weight * bonds.sum(-1)
    signed = pair_weight * (bonds * signs).sum(-1)
    features = []
    walk_power, signed_power = walk, signed
    for _ in range(2, longest + 1):
        walk_power = walk_power @ walk
        signed_power = signed_power @ signed
        features += [walk_power.diagonal(dim1=1, dim2=2), signed_power.diagonal(dim1=1, dim2=2)]
    return torch.stack(features, dim=-1)
