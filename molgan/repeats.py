r"""A memory of the graphs the generator made recently, to penalize the ones it repeats.

Mode collapse, as unique@10k measures it, is the generator drawing the same few thousand
graphs over and over. The critic sees one batch at a time and cannot see a graph that comes
back once every few hundred samples. This module keeps the keys of the last ``window``
argmax-decoded fakes (a ring buffer with running counts, on the host) and counts how often
each graph of the current batch occurs among them; :func:`molgan.loss.repeat_penalty` then lowers the
generator's confidence in the graphs it makes too often. It is the idea of REINVENT's
diversity filter (Blaschke et al. 2020: a memory of generated scaffolds, and no reward for a
bucket once it is full), applied inside a GAN's generator objective. Samples are never
changed afterwards. In a multi-process run each process remembers its own slice of the
batches.

A key is an exact hash of the node-ordered argmax graph (atom types and the upper triangle
of the bond types), not of the canonical SMILES: computing it costs one integer matmul and no
RDKit. The same molecule written in two node orders gets two keys; on 10,000 samples of the
stop-14 shipped generator the two counts differ by under 1% (2,307 distinct ordered graphs
among the valid samples, 2,292 distinct SMILES).
"""

from __future__ import annotations

from collections import Counter
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

    A ring of keys with a running count per key (a dict): adding or counting a batch costs
    O(B), not O(B * window). The state, one int64 tensor ``[window]`` and a position, goes
    into checkpoints, so a resumed run counts exactly as an uninterrupted one.
    """

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be positive, got {window}")
        self._ring = [_EMPTY] * window
        self._counts: Counter[int] = Counter()
        self.position = 0

    @property
    def keys(self) -> Tensor:
        """The remembered keys, ``[window]`` int64 (``-1`` for an unused slot)."""
        return torch.tensor(self._ring, dtype=torch.int64)

    def push_and_count(self, keys: Tensor) -> Tensor:
        """Add ``keys [B]`` to the ring (the oldest go), then return ``[B]`` counts: how often
        each key occurs among the last ``window`` keys, itself and its batch-mates included
        (so every count is at least 1). A batch larger than the window keeps its last
        ``window`` keys."""
        window = len(self._ring)
        for key in keys[-window:].tolist():
            old = self._ring[self.position]
            if old != _EMPTY:
                self._counts[old] -= 1
                if self._counts[old] == 0:
                    del self._counts[old]
            self._ring[self.position] = key
            self._counts[key] += 1
            self.position = (self.position + 1) % window
        return self.count(keys)

    def count(self, keys: Tensor) -> Tensor:
        """``[B]`` counts of ``keys [B]`` among the remembered keys (nothing is added)."""
        return torch.tensor([self._counts.get(key, 0) for key in keys.tolist()],
                            dtype=torch.int64, device=keys.device)

    def state(self) -> dict[str, Any]:
        return {"keys": self.keys, "position": self.position}

    def load_state(self, state: dict[str, Any]) -> None:
        keys = state["keys"]
        if keys.shape[0] != len(self._ring):
            raise ValueError(f"the checkpoint's repeat memory holds {keys.shape[0]} keys, "
                             f"this run's window is {len(self._ring)}")
        self._ring = keys.tolist()
        self._counts = Counter(key for key in self._ring if key != _EMPTY)
        self.position = int(state["position"])


def repeat_weights(counts: Tensor, threshold: float) -> Tensor:
    r"""Per-graph penalty weights ``[B]``: :math:`w = \max(0, \log(c / \tau))` for counts
    :math:`c` and threshold :math:`\tau`. A graph seen at most :math:`\tau` times in the window
    costs nothing; beyond, the weight grows with the log of the excess, so one molecule made a
    thousand times does not drown out the rest of the batch."""
    return torch.log(counts.float() / threshold).clamp(min=0)


#: How :func:`diversity_rewards` discounts repeated graphs (TrainConfig.diversity_reward).
DIVERSITY_REWARDS = ("penalty", "share")


def diversity_rewards(valid: Tensor, counts: Tensor, threshold: float,
                      mode: str = "penalty") -> Tensor:
    r"""Rewards ``[B]`` of the RL diversity term for graphs with validity ``valid [B]`` (1 for
    one valid molecule, else 0) seen ``counts [B]`` times in the repeat window, threshold
    :math:`\tau`:

    - ``penalty``: :math:`r = v - \max(0, \log(c / \tau))` (:func:`repeat_weights`); a graph
      repeated more than :math:`e\tau` times scores below an invalid one.
    - ``share``: :math:`r = v \min(1, \tau / c)`, fitness sharing: the :math:`c` copies share
      :math:`\tau` rewards, so a valid graph never scores below an invalid one (a count of 0,
      a graph not yet remembered, counts as 1).
    """
    if mode == "share":
        return valid * (threshold / counts.float().clamp(min=1)).clamp(max=1)
    if mode == "penalty":
        return valid - repeat_weights(counts, threshold)
    raise ValueError(f"unknown diversity reward {mode!r}; choose from {DIVERSITY_REWARDS}")
