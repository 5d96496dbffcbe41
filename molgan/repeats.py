r"""A memory of the graphs the generator made recently, to penalize the ones it repeats.

Mode collapse, as unique@10k measures it, is the generator drawing the same few thousand
graphs over and over. The critic sees one batch at a time and cannot see a graph that comes
back once every few hundred samples. This module keeps the keys of the last ``window``
argmax-decoded fakes (a ring buffer on the training device) and counts how often each graph
of the current batch occurs among them; :func:`molgan.loss.repeat_penalty` then lowers the
generator's confidence in the graphs it makes too often. It is the idea of REINVENT's
diversity filter (Blaschke et al. 2020: a memory of generated scaffolds, and no reward for a
bucket once it is full), applied inside a GAN's generator objective. Samples are never
changed afterwards.

A key is an exact hash of the node-ordered argmax graph (atom types and the upper triangle
of the bond types), not of the canonical SMILES: computing it costs one integer matmul and no
RDKit. The same molecule written in two node orders gets two keys; on 10,000 samples of the
stop-14 shipped generator the two counts differ by under 1% (2,307 distinct ordered graphs
among the valid samples, 2,292 distinct SMILES).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

_PRIME = 2**31 - 1
_EMPTY = -1
"""Key of an unused ring slot (:func:`graph_keys` returns only non-negative keys)."""


def graph_keys(x_idx: Tensor, adj_idx: Tensor) -> Tensor:
    r"""One int64 key per graph, ``[B]``, from ``x_idx [B, N]`` and ``adj_idx [B, N, N]``.

    Two universal hashes of the codes :math:`c` (atom types, then the upper-triangle bond
    types), :math:`h_k = \sum_m c_m w_{k,m} \bmod p` with :math:`p = 2^{31} - 1` and fixed
    seeded weights :math:`w_{k,m} \in [1, p)` (the same in every process and after a resume),
    packed as :math:`k = h_1 p + h_2`. No intermediate overflows int64 for codes below 256
    and up to a million code positions. Equal graphs get equal keys; two different graphs
    collide with probability :math:`p^{-2} \approx 2^{-62}`.
    """
    n = x_idx.shape[1]
    rows, cols = torch.triu_indices(n, n, offset=1, device=adj_idx.device)
    codes = torch.cat([x_idx.long(), adj_idx[:, rows, cols].long()], dim=1)  # [B, M]
    seeded = torch.Generator().manual_seed(codes.shape[1])
    weights = torch.randint(1, _PRIME, (codes.shape[1], 2), generator=seeded).to(codes.device)
    h1, h2 = ((codes.unsqueeze(2) * weights) % _PRIME).sum(1).remainder(_PRIME).unbind(1)
    return h1 * _PRIME + h2


class RepeatMemory:
    """The keys of the last ``window`` generated graphs; counts how often a key occurs.

    The state is one int64 tensor ``[window]`` and a position, saved in checkpoints so that a
    resumed run counts exactly as an uninterrupted one.
    """

    def __init__(self, window: int, device: torch.device | str = "cpu") -> None:
        if window < 1:
            raise ValueError(f"window must be positive, got {window}")
        self.keys = torch.full((window,), _EMPTY, dtype=torch.int64, device=device)
        self.position = 0

    def push_and_count(self, keys: Tensor) -> Tensor:
        """Add ``keys [B]`` to the ring (the oldest go), then return ``[B]`` counts: how often
        each key occurs among the last ``window`` keys, itself and its batch-mates included
        (so every count is at least 1). A batch larger than the window keeps its last
        ``window`` keys."""
        window = self.keys.shape[0]
        kept = keys[-window:]
        slots = (self.position + torch.arange(kept.shape[0], device=keys.device)) % window
        self.keys[slots] = kept
        self.position = (self.position + kept.shape[0]) % window
        return self.count(keys)

    def count(self, keys: Tensor) -> Tensor:
        """``[B]`` counts of ``keys [B]`` among the remembered keys (nothing is added)."""
        return (keys.unsqueeze(1) == self.keys.unsqueeze(0)).sum(1)

    def state(self) -> dict[str, Any]:
        return {"keys": self.keys.clone(), "position": self.position}

    def load_state(self, state: dict[str, Any]) -> None:
        keys = state["keys"]
        if keys.shape != self.keys.shape:
            raise ValueError(f"the checkpoint's repeat memory holds {keys.shape[0]} keys, "
                             f"this run's window is {self.keys.shape[0]}")
        self.keys.copy_(keys)
        self.position = int(state["position"])


def repeat_weights(counts: Tensor, threshold: float) -> Tensor:
    r"""Per-graph penalty weights ``[B]``: :math:`w = \max(0, \log(c / \tau))` for counts
    :math:`c` and threshold :math:`\tau`. A graph seen at most :math:`\tau` times in the window
    costs nothing; beyond, the weight grows with the log of the excess, so one molecule made a
    thousand times does not drown out the rest of the batch."""
    return torch.log(counts.float() / threshold).clamp(min=0)
