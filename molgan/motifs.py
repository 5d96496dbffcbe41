r"""Ring motifs: a discrete descriptor of each molecule, and a reward that matches its law.

The largest share of the FCD of molgan's samples comes from ring structure the critic does
not rank by: too few aromatic rings (alternating bonds around a ring), too many 3-rings,
4-rings and spiro atoms (docs/benchmarks.md, "Where the FCD comes from"). Each of these is a
pattern over many bonds, which a reward on whole drawn molecules can see and a per-bond
loss cannot.

**Descriptor.** :func:`motif_cell` maps a sanitized molecule to one of :data:`NUM_CELLS`
cells, the tuple (aromatic rings, 3-rings, 4-rings, rings, spiro atoms), each count capped at
:data:`CAPS` (RDKit's smallest set of smallest rings; a ring is aromatic when all its bonds
are, as RDKit perceives them after sanitization of the kekulized graph). The ``bridges``
descriptor (:data:`DESCRIPTORS`, ``--motif-descriptor bridges``) appends bridgehead atoms and
rings of 7 or more atoms, which drug-like data almost never has (MOSES's test split: 0.017
bridgehead atoms and 0.025 such rings per molecule) and which a generator of 27 atoms makes
by closing rings between distant atoms.

**Reward.** :class:`MotifBalance` holds the data's law :math:`p` of the cell (from the
training graphs, smoothed) and an exponentially decaying histogram :math:`q` of the cells of
the generator's recent valid draws. A valid draw in cell :math:`f` earns

.. math::
    r_f = \mathrm{clip}\big(\log p(f) - \log q(f), -c, c\big),

centered over the valid draws of its batch. Since :math:`\mathbb{E}_q[\nabla \log q] = 0`,
the policy gradient of :math:`\mathbb{E}_q[\log p - \log q]` is that of
:math:`-\mathrm{KL}(q \,\|\, p)`: the reward moves the generator's law of the cell towards
the data's, and is 0 in expectation once they agree. It does not reward a motif for itself,
so it cannot overshoot the data's share of aromatic rings. A draw that is not one valid
molecule earns 0, the valid draws' mean; with a ``floor`` share :math:`s` (``--motif-floor``)
it earns :math:`s \min_{\text{valid}} r`, and at :math:`s = 1` the batch's lowest valid reward,
so a rare cell is never worse than an invalid graph.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from molgan.vocab import Vocab

CAPS: tuple[int, ...] = (2, 2, 2, 4, 1)
"""Largest count kept of aromatic rings, 3-rings, 4-rings, rings and spiro atoms."""
NUM_CELLS = math.prod(c + 1 for c in CAPS)
"""Number of motif cells (270)."""
HORIZON = 8192
"""Valid draws after which a draw's weight in the generator's histogram falls to 1/e."""
CLIP = 3.0
"""Largest magnitude of a draw's log ratio :math:`\\log p(f) - \\log q(f)`."""
DATA_SMOOTHING = 0.5
"""Pseudo-count of every cell in the data's histogram."""
DRAW_SMOOTHING = 1.0
"""Pseudo-count of every cell in the generator's histogram (cells it never drew look rare)."""
DATA_GRAPHS = 20000
"""Training graphs, at most, from which the data's law is counted."""


BRIDGE_CAPS: tuple[int, ...] = CAPS + (2, 1)
"""Caps of the ``bridges`` descriptor: :data:`CAPS`, bridgehead atoms, rings of 7+ atoms."""
DESCRIPTORS: dict[str, tuple[int, ...]] = {"rings": CAPS, "bridges": BRIDGE_CAPS}
"""The motif descriptors by name, each with the caps of its counts."""


def num_cells(descriptor: str = "rings") -> int:
    """Number of cells of a descriptor (``rings``: 270, ``bridges``: 1,620)."""
    return math.prod(c + 1 for c in _caps(descriptor))


def _caps(descriptor: str) -> tuple[int, ...]:
    if descriptor not in DESCRIPTORS:
        raise ValueError(f"motif descriptor must be one of {', '.join(DESCRIPTORS)}, "
                         f"got {descriptor!r}")
    return DESCRIPTORS[descriptor]


def motif_counts(mol: Any, descriptor: str = "rings") -> tuple[int, ...]:
    """``(aromatic rings, 3-rings, 4-rings, rings, spiro atoms)`` of a sanitized RDKit
    molecule, uncapped; the ``bridges`` descriptor appends ``(bridgehead atoms, rings of 7 or
    more atoms)``."""
    from rdkit.Chem import rdMolDescriptors

    _caps(descriptor)
    rings = mol.GetRingInfo().BondRings()
    sizes = [len(ring) for ring in rings]
    aromatic = sum(all(mol.GetBondWithIdx(b).GetIsAromatic() for b in ring) for ring in rings)
    counts = (aromatic, sizes.count(3), sizes.count(4), len(rings),
              rdMolDescriptors.CalcNumSpiroAtoms(mol))
    if descriptor == "bridges":
        counts += (rdMolDescriptors.CalcNumBridgeheadAtoms(mol),
                   sum(size >= 7 for size in sizes))
    return counts


def motif_cell(mol: Any, descriptor: str = "rings") -> int:
    """The cell in ``[0, num_cells(descriptor))`` of a sanitized molecule: its
    :func:`motif_counts`, each capped at the descriptor's caps, as one mixed-radix number."""
    cell = 0
    for count, cap in zip(motif_counts(mol, descriptor), _caps(descriptor)):
        cell = cell * (cap + 1) + min(count, cap)
    return cell


def histogram(cells: Iterable[int], size: int = NUM_CELLS) -> np.ndarray:
    """Counts ``[size]`` float64 of the given cells."""
    return np.bincount(np.fromiter(cells, dtype=np.int64), minlength=size).astype(np.float64)


def graph_cells(x_idx: np.ndarray, adj_idx: np.ndarray, vocab: Vocab,
                descriptor: str = "rings") -> tuple[np.ndarray, np.ndarray]:
    """For graphs ``x_idx [B, N]``, ``adj_idx [B, N, N]``: ``valid [B]`` bool (one valid
    molecule, as :func:`molgan.chem.single_molecules`) and ``cells [B]`` int64 (-1 where not
    valid)."""
    from molgan.chem import single_molecule_mols

    cells = np.full(len(x_idx), -1, dtype=np.int64)
    for row, mol in single_molecule_mols(x_idx, adj_idx, vocab):
        cells[row] = motif_cell(mol, descriptor)
    return cells >= 0, cells


def data_log_law(x_idx: np.ndarray, adj_idx: np.ndarray, vocab: Vocab,
                 seed: int = 0, descriptor: str = "rings") -> np.ndarray:
    """``log p [num_cells(descriptor)]``: the smoothed law of the motif cell over at most
    :data:`DATA_GRAPHS` training graphs chosen with ``seed`` (every graph when fewer).
    Raises ValueError when none of them is one valid molecule."""
    rows = np.arange(len(x_idx))
    if len(rows) > DATA_GRAPHS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, DATA_GRAPHS, replace=False))
    valid, cells = graph_cells(np.asarray(x_idx)[rows], np.asarray(adj_idx)[rows], vocab,
                               descriptor)
    if not valid.any():
        raise ValueError("no training graph is one valid molecule; the motif reward needs some")
    counts = histogram(cells[valid], num_cells(descriptor)) + DATA_SMOOTHING
    return np.log(counts / counts.sum())


class MotifBalance:
    """The motif reward of one run (module docstring): the data's log law, the generator's
    decaying histogram, and the rewards of a batch of draws.

    Args:
        data_log_law: ``log p [C]`` (:func:`data_log_law`), C the descriptor's cells.
        device: where rewards are returned.
    """

    def __init__(self, data_log_law: np.ndarray, device: torch.device | str = "cpu") -> None:
        sizes = [num_cells(name) for name in DESCRIPTORS]
        if data_log_law.ndim != 1 or len(data_log_law) not in sizes:
            raise ValueError(f"the data's law has shape {data_log_law.shape}, expected one "
                             f"descriptor's cells ({', '.join(map(str, sizes))})")
        self.log_p = torch.as_tensor(data_log_law, dtype=torch.float64)
        self.drawn = torch.zeros(len(data_log_law), dtype=torch.float64)  # decayed counts
        self.device = torch.device(device)

    def log_q(self) -> Tensor:
        """``log q [C]``: the smoothed law of the generator's recent valid draws."""
        counts = self.drawn + DRAW_SMOOTHING
        return (counts / counts.sum()).log()

    def rewards(self, cells: Sequence[int] | np.ndarray, floor: float = 0.0) -> Tensor:
        """``[B]`` float32 rewards of draws in ``cells [B]`` (-1: not a valid molecule): the
        clipped log ratio, centered over the valid draws, from the histogram before this
        batch; the batch is then added to the histogram. A draw that is not a valid molecule
        earns ``floor`` times the lowest reward of a valid draw in the batch (a share in
        [0, 1]): 0 is the valid draws' mean, and at 1 no motif reward ranks it above a valid
        draw."""
        cells_t = torch.as_tensor(np.asarray(cells), dtype=torch.int64)
        valid = cells_t >= 0
        rewards = torch.zeros(len(cells_t), dtype=torch.float64)
        if valid.any():
            chosen = cells_t[valid]
            ratio = (self.log_p[chosen] - self.log_q()[chosen]).clamp(-CLIP, CLIP)
            rewards[valid] = ratio - ratio.mean()
            if floor:
                rewards[~valid] = float(floor) * float(rewards[valid].min())
            n = int(valid.sum())
            self.drawn = (self.drawn * math.exp(-n / HORIZON)
                          + torch.bincount(chosen, minlength=len(self.log_p)).double())
        return rewards.float().to(self.device)

    def divergence(self) -> float:
        r""":math:`\mathrm{KL}(q \,\|\, p)` of the current histogram (nats; a progress figure)."""
        log_q = self.log_q()
        return float((log_q.exp() * (log_q - self.log_p)).sum())

    def state(self) -> dict[str, Tensor]:
        return {"drawn": self.drawn.clone()}

    def load_state(self, state: dict[str, Tensor]) -> None:
        drawn = state["drawn"]
        if drawn.shape != self.log_p.shape:
            raise ValueError(f"the checkpoint's motif histogram has {drawn.shape[0]} cells, "
                             f"this run's descriptor has {len(self.log_p)}")
        self.drawn = drawn.to(torch.float64).clone()
