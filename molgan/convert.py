"""Conversions into the critic's dense tensors: SMILES, RDKit molecules and PyG graphs.

Every entry point produces index tensors ``x_idx [B, N]``, ``adj_idx [B, N, N]`` in a given
vocabulary plus, per molecule, ``None`` (converted) or the reason it could not be (``empty``,
``unparsable``, ``unknown_atom``, ``too_many_atoms``, ...). Nothing is substituted: a molecule
that cannot be represented is reported, never scored as something else.

PyG convention (what :func:`smiles_to_pyg` produces and :func:`pyg_to_dense` reads):
``data.x`` holds atom token indices ``[n]`` (1..T-1, as :class:`~molgan.vocab.Vocab` defines
them) or one-hot rows ``[n, T]``; ``data.edge_index [2, E]`` lists each bond in both directions;
``data.edge_attr`` holds bond token indices ``[E]`` (1 single, 2 double, 3 triple, on the
kekulized molecule) or one-hot rows ``[E, Y]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from molgan.vocab import Vocab

Converted = tuple[Tensor, Tensor, list[str | None]]


def mols_to_indices(items: Sequence[Any], vocab: Vocab) -> Converted:
    """SMILES strings or RDKit molecules -> ``x_idx [B, N]``, ``adj_idx [B, N, N]`` (uint8) and
    a reason per item (``None`` when converted; the rows of failed items are all zero)."""
    from molgan.chem import SkipMolecule, graph_to_indices, mol_from_smiles, mol_to_graph

    n = vocab.max_atoms
    x_idx = np.zeros((len(items), n), dtype=np.uint8)
    adj_idx = np.zeros((len(items), n, n), dtype=np.uint8)
    reasons: list[str | None] = []
    for i, item in enumerate(items):
        try:
            if item is None:
                raise SkipMolecule("empty")
            mol = mol_from_smiles(item, n) if isinstance(item, str) else item
            x_idx[i], adj_idx[i] = graph_to_indices(mol_to_graph(mol), vocab)
            reasons.append(None)
        except SkipMolecule as error:
            reasons.append(error.reason if not error.detail else f"{error.reason}: {error.detail}")
    return torch.from_numpy(x_idx), torch.from_numpy(adj_idx), reasons


def smiles_to_pyg(smiles: Sequence[str], vocab: Vocab) -> list[Any]:
    """PyG ``Data`` objects (atom token ``x [n]``, ``edge_index``, bond token ``edge_attr [E]``).

    Raises:
        ValueError: naming the first SMILES that cannot be represented and why.
    """
    from torch_geometric.data import Data

    from molgan.chem import SkipMolecule, mol_from_smiles, mol_to_graph, shorten

    index = vocab.atom_index()
    out = []
    for s in smiles:
        try:
            atoms, bonds = mol_to_graph(mol_from_smiles(s))
        except SkipMolecule as error:
            raise ValueError(f"cannot convert {shorten(str(s))!r}: {error}") from None
        unknown = [t for t in atoms if t not in index]
        if unknown:
            raise ValueError(f"cannot convert {s!r}: unknown_atom {unknown[0]}")
        x = torch.tensor([index[t] for t in atoms], dtype=torch.long)
        pairs = [(i, j) for i, j, _ in bonds] + [(j, i) for i, j, _ in bonds]
        orders = [o for _, _, o in bonds] * 2
        edge_index = (torch.tensor(pairs, dtype=torch.long).t() if pairs
                      else torch.zeros(2, 0, dtype=torch.long))
        out.append(Data(x=x, edge_index=edge_index,
                        edge_attr=torch.tensor(orders, dtype=torch.long), smiles=s))
    return out


def pyg_to_dense(batch: Any, vocab: Vocab) -> tuple[Tensor, Tensor, list[str | None]]:
    """A PyG ``Batch`` (or list of ``Data``) -> one-hot ``x [B, N, T]``, ``adj [B, N, N, Y]``
    and a reason per graph (``too_many_atoms``), via ``to_dense_batch`` / ``to_dense_adj``.

    Padding nodes get the "no atom" channel and absent edges the "no bond" channel.
    """
    from torch_geometric.data import Batch
    from torch_geometric.utils import to_dense_adj, to_dense_batch

    if isinstance(batch, (list, tuple)):
        batch = Batch.from_data_list(list(batch))
    t, y, n = vocab.num_atom_types, vocab.num_bond_types, vocab.max_atoms
    x = batch.x
    x = torch.nn.functional.one_hot(x.long(), t).float() if x.dim() == 1 else x.float()
    if x.shape[-1] != t:
        raise ValueError(f"node features have {x.shape[-1]} channels; the vocabulary has {t}")
    edge_attr = batch.edge_attr
    if edge_attr is None:
        raise ValueError("graphs need edge_attr (bond token per edge)")
    edge_attr = (torch.nn.functional.one_hot(edge_attr.long(), y).float()
                 if edge_attr.dim() == 1 else edge_attr.float())
    graph_index = batch.batch
    sizes = torch.bincount(graph_index, minlength=batch.num_graphs)
    reasons: list[str | None] = [f"too_many_atoms: {int(s)} > {n}" if s > n else None
                                 for s in sizes.tolist()]
    keep_node = _rank_in_graph(graph_index) < n
    keep_edge = keep_node[batch.edge_index].all(0)
    x_dense, mask = to_dense_batch(x[keep_node], graph_index[keep_node], max_num_nodes=n,
                                   batch_size=batch.num_graphs)
    x_dense[..., 0] = x_dense[..., 0] + (~mask).float()
    remap = torch.cumsum(keep_node.long(), 0) - 1
    adj = to_dense_adj(remap[batch.edge_index[:, keep_edge]], graph_index[keep_node],
                       edge_attr[keep_edge], max_num_nodes=n, batch_size=batch.num_graphs)
    adj[..., 0] = 1.0 - adj[..., 1:].sum(-1)
    return x_dense, adj, reasons


def _rank_in_graph(graph_index: Tensor) -> Tensor:
    """Position of each node inside its graph (PyG batches keep a graph's nodes contiguous)."""
    counts = torch.bincount(graph_index)
    starts = torch.cumsum(counts, 0) - counts
    return torch.arange(graph_index.numel(), device=graph_index.device) - starts[graph_index]
