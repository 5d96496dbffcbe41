"""The one dense graph type that every producer and consumer of graphs uses."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class DenseGraph(NamedTuple):
    """A batch of dense molecular graphs, in PyG's ``(x, adj)`` order.

    Attributes:
        x: ``[B, N, T]`` node distributions over atom tokens (one-hot, relaxed, or logits);
            channel 0 = no atom.
        adj: ``[B, N, N, Y]`` bond distributions, symmetric in the two node axes; channel 0 = no
            bond.

    ``critic(*graph)`` works because the fields are in the critic's argument order.
    """

    x: Tensor
    adj: Tensor

    def rows(self, index: slice) -> DenseGraph:
        """The graphs ``index`` selects along the batch axis: ``x[index]``, ``adj[index]``."""
        return DenseGraph(self.x[index], self.adj[index])


def one_hot_graph(x_idx: Tensor, adj_idx: Tensor, num_atom_types: int, num_bond_types: int,
                  dtype: torch.dtype = torch.float32) -> DenseGraph:
    """One-hot ``X [B, N, T]`` and ``A [B, N, N, Y]`` from index tensors ``[B, N]``, ``[B, N, N]``.

    Built on whatever device the indices live on (the training device), so the dataset can
    stay compact (uint8) and no host copy happens per batch.
    """
    x = torch.nn.functional.one_hot(x_idx.long(), num_atom_types).to(dtype)
    adj = torch.nn.functional.one_hot(adj_idx.long(), num_bond_types).to(dtype)
    return DenseGraph(x, adj)


def argmax_graph(graph: DenseGraph) -> tuple[Tensor, Tensor]:
    """Index tensors ``x_idx [B, N]``, ``adj_idx [B, N, N]`` (uint8) by argmax over channels.

    The adjacency is read from the upper triangle and mirrored, so the result is symmetric
    with a zero diagonal even when the input is not exactly symmetric.
    """
    x_idx = graph.x.argmax(-1).to(torch.uint8)
    adj_idx = graph.adj.argmax(-1)
    upper = torch.triu(adj_idx, diagonal=1)
    return x_idx, (upper + upper.transpose(1, 2)).to(torch.uint8)
