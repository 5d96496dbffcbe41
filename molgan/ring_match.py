r"""Matching the ring composition of the training set with a density-ratio reward.

What still tells our samples from QM9 most is their rings: the generator makes too many three-
and four-membered rings and too few five-membered ones (docs/benchmarks.md, "Stop 20"). The
critic, a few relational convolutions, cannot count ring sizes, and giving it ring features of
the soft graphs failed (``--walk-returns``). This module gives the policy-gradient term a
reward that can.

Each molecule gets a *ring signature* :math:`s`: how many rings of each size 3, 4, 5, 6, 7
and 8 or more its symmetrized SSSR holds, each count capped at 2, so there are
:math:`3^6 = 729` signatures (:func:`signature_ids`). :class:`RingMatch` knows their
frequency :math:`p_\mathrm{data}(s)` among the training molecules and keeps a running
frequency :math:`p_\mathrm{gen}(s)` among the valid single-molecule draws of the recent
batches (an exponential moving count over about ``window`` draws). A valid draw with
signature :math:`s` is rewarded

.. math::
    r(s) = \operatorname{clip}\Big(\log \frac{p_\mathrm{data}(s) + \epsilon}
                                       {p_\mathrm{gen}(s) + \epsilon}, -c, c\Big),

an invalid one 0. The reward is positive where the generator makes a signature less often
than QM9 holds it and negative where more often; it is zero for every draw exactly when the
two distributions agree, so at the optimum it leaves the generator's distribution of ring
signatures equal to the data's. It is the density-ratio reward of distribution matching by
policy gradient, on a hand-chosen descriptor. With weight :math:`w` and :math:`w c < 1` a valid
draw still always earns more than an invalid one (reward 1 versus 0 in the diversity term).
Samples are never changed afterwards.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

RING_SIZES = (3, 4, 5, 6, 7, 8)
"""Ring sizes counted; the last also counts every larger ring."""
MAX_COUNT = 2
"""Rings of one size counted up to this many (more count as this many)."""
SIGNATURES = (MAX_COUNT + 1) ** len(RING_SIZES)
"""Number of distinct ring signatures (729)."""
INVALID = -1
"""Signature id of a graph that is not one valid molecule."""


def signature_of_ring_sizes(sizes: list[int]) -> int:
    r"""The signature id of a molecule whose rings have these ``sizes``:
    :math:`\sum_k \min(n_k, 2)\, 3^k`, :math:`n_k` the number of rings of the k-th size of
    :data:`RING_SIZES` (sizes above the last counted as the last; below 3 impossible)."""
    counts = [0] * len(RING_SIZES)
    for size in sizes:
        counts[min(size, RING_SIZES[-1]) - RING_SIZES[0]] += 1
    return sum(min(n, MAX_COUNT) * (MAX_COUNT + 1) ** k for k, n in enumerate(counts))


def signature_ids(x_idx: np.ndarray, adj_idx: np.ndarray, vocab: Any) -> np.ndarray:
    """``[B]`` int64 ring-signature ids of the graphs ``x_idx [B, N]``, ``adj_idx [B, N, N]``;
    :data:`INVALID` where a graph is not one valid molecule (the rule of
    :func:`molgan.chem.single_molecules`, which ``ids >= 0`` equals)."""
    from molgan.chem import connected_graphs, sanitized_mols

    connected = connected_graphs(x_idx, adj_idx)
    ids = np.full(len(connected), INVALID, dtype=np.int64)
    rows = np.flatnonzero(connected)
    mols = sanitized_mols(np.asarray(x_idx)[rows], np.asarray(adj_idx)[rows], vocab)
    for row, mol in zip(rows.tolist(), mols):
        if mol is not None:
            ids[row] = signature_of_ring_sizes([len(r) for r in mol.GetRingInfo().AtomRings()])
    return ids


class RingMatch:
    """Density-ratio rewards of ring signatures (module docstring).

    Args:
        data_ids: ``[M]`` signature ids of training molecules (:data:`INVALID` ones ignored).
        window: about how many recent valid draws ``p_gen`` remembers (decay per batch of
            ``n`` draws: ``1 - n / window``).
        clip: the reward bound ``c``.
        eps: the smoothing ``epsilon`` of both frequencies.
    """

    def __init__(self, data_ids: np.ndarray, window: int = 16384, clip: float = 1.0,
                 eps: float = 1e-4) -> None:
        data_ids = np.asarray(data_ids)
        data_ids = data_ids[data_ids >= 0]
        if len(data_ids) == 0:
            raise ValueError("no valid training molecule to take ring signatures from")
        self.p_data = torch.from_numpy(
            np.bincount(data_ids, minlength=SIGNATURES) / len(data_ids)).float()
        self.counts = torch.zeros(SIGNATURES)
        self.window = window
        self.clip = clip
        self.eps = eps

    def p_gen(self) -> Tensor:
        """``[SIGNATURES]`` running frequencies of the generated signatures (0 before any)."""
        total = self.counts.sum()
        return self.counts / total if total > 0 else self.counts

    def push_and_reward(self, ids: np.ndarray) -> Tensor:
        """Add the valid draws' signatures ``ids [B]`` to the running counts, then return
        their rewards ``[B]`` (0 for :data:`INVALID`), as float32 on the CPU."""
        ids_t = torch.as_tensor(np.asarray(ids), dtype=torch.long)
        valid = ids_t >= 0
        batch = torch.bincount(ids_t[valid], minlength=SIGNATURES).float()
        self.counts.mul_(max(0.0, 1.0 - len(ids_t) / self.window)).add_(batch)
        ratio = torch.log((self.p_data + self.eps) / (self.p_gen() + self.eps))
        rewards = ratio.clamp(-self.clip, self.clip)[ids_t.clamp(min=0)]
        return torch.where(valid, rewards, torch.zeros(()))

    def distance(self) -> float:
        """Total-variation distance between ``p_gen`` and ``p_data`` (0 to 1), for the logs."""
        return 0.5 * float((self.p_gen() - self.p_data).abs().sum())

    def state(self) -> dict[str, Tensor]:
        """The running counts, for checkpoints (``p_data`` is recomputed from the data)."""
        return {"counts": self.counts.clone()}

    def load_state(self, state: dict[str, Tensor]) -> None:
        self.counts = state["counts"].detach().cpu().float().clone()
