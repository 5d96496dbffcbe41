"""RDKit side of the data flow: SMILES <-> molecule <-> token indices.

RDKit is imported inside the functions so that ``import molgan`` stays light.

Encoding: a molecule is kekulized (aromatic bonds become alternating single/double bonds),
hydrogens stay implicit, stereochemistry and isotopes are dropped, and every heavy atom becomes
an ``(atomic_number, formal_charge)`` token. Decoding builds an ``RWMol`` from the atoms that exist
(node index > 0) and the bonds between them, then sanitizes it; if RDKit rejects it the graph is
*invalid* and decoding returns ``None``. Nothing is repaired.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import islice
from typing import TYPE_CHECKING

import numpy as np

from molgan.vocab import AtomToken, Vocab

if TYPE_CHECKING:
    from rdkit import Chem

#: Reasons a molecule can be skipped during featurization (keys of the ``skipped`` report).
SKIP_REASONS = (
    "empty",
    "unparsable",
    "radical",
    "kekulize_failed",
    "unknown_bond",
    "too_many_atoms",
    "too_long",
    "unknown_atom",
)

#: Molecules with more heavy atoms than this are skipped before RDKit parses them, when no
#: smaller limit (``max_atoms``, a vocabulary's ``N``) applies. RDKit's parsing and
#: canonicalization grow faster than linearly in the atom count (16,000 atoms take seconds, a
#: 10-million-character line tens of gigabytes), so nothing that large reaches it.
MAX_PARSE_ATOMS = 256
#: SMILES longer than this many characters per allowed atom (and at least 10,000) are skipped
#: as ``too_long`` before parsing: no molecule within the atom limit needs that much text.
CHARS_PER_ATOM = 40

# the heavy atoms of a SMILES: organic-subset atoms, ``*``, and bracket atoms other than
# hydrogen (``[H]``, ``[2H]`` are hydrogens; ``[Hg]``, ``[He]`` are not)
_ATOM_TOKEN = re.compile(r"\[\d*(\*|[A-Z][a-z]?|[a-z][a-z]?)[^\]]*\]|Cl|Br|[BCNOPSFI]|[bcnops]|\*")


def heavy_atoms_at_least(smiles: str, count: int) -> bool:
    """Whether ``smiles`` writes at least ``count`` heavy atoms, read from the text alone
    (no RDKit). Stops reading at the ``count``-th atom, so it costs ``O(count)`` on any input."""
    if len(smiles) < count:
        return False  # every atom takes at least one character
    atoms = (m for m in _ATOM_TOKEN.finditer(smiles) if m.group(1) != "H")
    return sum(1 for _ in islice(atoms, count)) >= count


def check_size(smiles: str, max_atoms: int | None = MAX_PARSE_ATOMS) -> None:
    """Raise :class:`SkipMolecule` (``too_long`` or ``too_many_atoms``) if ``smiles`` is beyond
    ``max_atoms`` heavy atoms (default :data:`MAX_PARSE_ATOMS`), judged on the text, before
    any parsing. ``None`` means the default cap."""
    limit = MAX_PARSE_ATOMS if max_atoms is None else max_atoms
    max_chars = max(10_000, CHARS_PER_ATOM * limit)
    if len(smiles) > max_chars:
        raise SkipMolecule("too_long", f"{len(smiles):,} characters > {max_chars:,}")
    if heavy_atoms_at_least(smiles, limit + 1):
        raise SkipMolecule("too_many_atoms", f"more than {limit} (counted in the SMILES text)")


class SkipMolecule(ValueError):
    """A molecule that cannot be represented; ``reason`` is one of :data:`SKIP_REASONS`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


RawGraph = tuple[list[AtomToken], list[tuple[int, int, int]]]
"""Atoms as ``(atomic_number, charge)`` and bonds as ``(i, j, order)`` with order 1, 2 or 3."""


def mol_from_smiles(smiles: str, max_atoms: int | None = MAX_PARSE_ATOMS) -> Chem.Mol:
    """Parse and sanitize a SMILES string; raise :class:`SkipMolecule` instead of returning junk.

    A SMILES beyond ``max_atoms`` heavy atoms (:func:`check_size`) is refused before RDKit sees
    it, so a hostile line costs time and memory in proportion to the limit, not to its length.
    """
    from rdkit import Chem, rdBase

    if smiles is None or not str(smiles).strip():
        raise SkipMolecule("empty")
    text = str(smiles).strip()
    check_size(text, max_atoms)
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(text)
    if mol is None or mol.GetNumAtoms() == 0:
        raise SkipMolecule("unparsable", shorten(text))
    return mol


def shorten(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was (for reports and CSVs)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def canonical_smiles(mol: Chem.Mol) -> str:
    """Canonical SMILES without stereochemistry (what the graph representation can hold)."""
    from rdkit import Chem

    return str(Chem.MolToSmiles(mol, isomericSmiles=False))


def mol_to_graph(mol: Chem.Mol) -> RawGraph:
    """Kekulized heavy-atom graph of ``mol`` with implicit hydrogens.

    Raises:
        SkipMolecule: ``radical`` (unpaired electrons cannot be stored with implicit H),
            ``kekulize_failed``, ``unknown_bond`` (not single/double/triple after
            kekulization), or ``unknown_atom`` for a dummy atom ``*`` (no element: it has no
            valence a generator could learn).
    """
    from rdkit import Chem

    mol = Chem.Mol(mol)
    try:
        Chem.Kekulize(mol, clearAromaticFlags=True)
    except Exception as exc:  # noqa: BLE001 - RDKit raises several types here
        raise SkipMolecule("kekulize_failed", str(exc)) from None
    atoms: list[AtomToken] = []
    for atom in mol.GetAtoms():
        if atom.GetAtomicNum() == 0:
            raise SkipMolecule("unknown_atom", "* (a dummy atom)")
        if atom.GetNumRadicalElectrons():
            raise SkipMolecule("radical", atom.GetSymbol())
        atoms.append((atom.GetAtomicNum(), atom.GetFormalCharge()))
    orders = {
        Chem.BondType.SINGLE: 1,
        Chem.BondType.DOUBLE: 2,
        Chem.BondType.TRIPLE: 3,
    }
    bonds: list[tuple[int, int, int]] = []
    for bond in mol.GetBonds():
        order = orders.get(bond.GetBondType())
        if order is None:
            raise SkipMolecule("unknown_bond", str(bond.GetBondType()))
        bonds.append((bond.GetBeginAtomIdx(), bond.GetEndAtomIdx(), order))
    return atoms, bonds


def graph_to_indices(graph: RawGraph, vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """Encode a raw graph as ``x_idx [N]`` and ``adj_idx [N, N]`` (uint8, symmetric).

    Raises:
        SkipMolecule: ``too_many_atoms`` (more than ``vocab.max_atoms``) or ``unknown_atom``.
    """
    atoms, bonds = graph
    n = vocab.max_atoms
    if len(atoms) > n:
        raise SkipMolecule("too_many_atoms", f"{len(atoms)} > {n}")
    index = vocab.atom_index()
    x = np.zeros(n, dtype=np.uint8)
    for i, token in enumerate(atoms):
        if token not in index:
            from molgan.vocab import atom_symbol

            raise SkipMolecule("unknown_atom", atom_symbol(token))
        x[i] = index[token]
    adj = np.zeros((n, n), dtype=np.uint8)
    for i, j, order in bonds:
        adj[i, j] = adj[j, i] = order
    return x, adj


def indices_to_mol(x_idx: np.ndarray, adj_idx: np.ndarray, vocab: Vocab) -> Chem.Mol | None:
    """Decode ``x_idx [N]``, ``adj_idx [N, N]`` into a sanitized molecule, or ``None`` if invalid.

    Only nodes with ``x_idx > 0`` become atoms (padding is dropped, never turned into ``*``);
    bonds are read from the upper triangle between existing atoms; bonds that touch a padding
    node are ignored. A graph with no atoms, or one that RDKit cannot sanitize (valence, charge,
    kekulization), is invalid: ``None`` is returned, the molecule is never repaired.
    """
    return indices_to_mols(np.asarray(x_idx)[None], np.asarray(adj_idx)[None], vocab)[0]


def indices_to_mols(x_idx: np.ndarray, adj_idx: np.ndarray, vocab: Vocab) -> list[Chem.Mol | None]:
    """:func:`indices_to_mol` for a batch ``x_idx [B, N]``, ``adj_idx [B, N, N]``."""
    return [None if mol is None else mol.GetMol()
            for mol in sanitized_mols(x_idx, adj_idx, vocab)]


def sanitized_mols(x_idx: np.ndarray, adj_idx: np.ndarray,
                    vocab: Vocab) -> Iterator[Chem.RWMol | None]:
    """Yield each graph of ``x_idx [B, N]``, ``adj_idx [B, N, N]`` as a sanitized ``RWMol``, or
    ``None`` if it is invalid (the rules of :func:`indices_to_mol`).

    The index work (which nodes exist, the bonds of the upper triangle between them, their
    atom numbers) is done once for the whole batch in numpy, and every atom is a copy of one
    template per token, so each molecule costs only its RDKit calls. Callers that only write a
    SMILES or test validity use the ``RWMol`` as it is, without the copy of ``GetMol()``
    (docs/benchmarks.md, "Sampling speed", for the measured gains).
    """
    from rdkit import Chem, rdBase

    x_idx = np.asarray(x_idx)
    adj_idx = np.asarray(adj_idx)
    batch = x_idx.shape[0]
    exists = x_idx > 0                                             # [B, N]
    atom_number = np.cumsum(exists, axis=1) - 1                    # node -> atom index
    upper = np.triu(adj_idx, 1) * (exists[:, :, None] & exists[:, None, :])
    mol_of_bond, rows, cols = np.nonzero(upper)                    # sorted by molecule
    bond_codes = upper[mol_of_bond, rows, cols].tolist()
    begins = atom_number[mol_of_bond, rows].tolist()
    ends = atom_number[mol_of_bond, cols].tolist()
    bounds = np.searchsorted(mol_of_bond, np.arange(batch + 1)).tolist()
    templates = [None]
    for z, charge in vocab.atoms:
        atom = Chem.Atom(z)
        atom.SetFormalCharge(charge)
        templates.append(atom)
    bond_types = (None, Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE)
    with rdBase.BlockLogs():
        for k, tokens in enumerate(x_idx.tolist()):
            atoms = [templates[t] for t in tokens if t]
            if not atoms:
                yield None
                continue
            mol = Chem.RWMol()
            for atom in atoms:
                mol.AddAtom(atom)  # a copy
            for b in range(bounds[k], bounds[k + 1]):
                mol.AddBond(begins[b], ends[b], bond_types[bond_codes[b]])
            try:
                Chem.SanitizeMol(mol)
            except Exception:  # noqa: BLE001 - any sanitization failure means "invalid"
                yield None
                continue
            yield mol


def decode_smiles(x_idx: np.ndarray, adj_idx: np.ndarray, vocab: Vocab) -> list[str | None]:
    """Decode a batch ``x_idx [B, N]``, ``adj_idx [B, N, N]`` to canonical SMILES (``None`` if
    invalid), written by :func:`canonical_smiles` from the sanitized ``RWMol`` as it is."""
    return [None if mol is None else canonical_smiles(mol)
            for mol in sanitized_mols(x_idx, adj_idx, vocab)]


def connected_graphs(x_idx: np.ndarray, adj_idx: np.ndarray) -> np.ndarray:
    """``[B]`` bool: whether the atoms of each graph (``x_idx [B, N] > 0``) form one connected
    component through the bonds of ``adj_idx [B, N, N]`` between them (bonds to padding
    nodes ignored, as in decoding); False for a graph without atoms.

    Reachability from each graph's first atom, by repeated squaring of the boolean
    adjacency-with-self-loops (``ceil(log2 N)`` batched matmuls), without RDKit.
    """
    x_idx = np.asarray(x_idx)
    exists = x_idx > 0                                                  # [B, N]
    n = x_idx.shape[1]
    linked = (np.asarray(adj_idx) > 0) & exists[:, :, None] & exists[:, None, :]
    reach = (linked | np.eye(n, dtype=bool)).astype(np.float32)         # [B, N, N]
    for _ in range(max(1, int(np.ceil(np.log2(max(n, 2)))))):
        reach = np.minimum(reach @ reach, 1.0)
    first = exists.argmax(axis=1)                                       # first atom
    from_first = reach[np.arange(len(x_idx)), first] > 0                # [B, N]
    return exists.any(axis=1) & (from_first | ~exists).all(axis=1)


def single_molecules(x_idx: np.ndarray, adj_idx: np.ndarray, vocab: Vocab) -> np.ndarray:
    """``[B]`` bool: whether each graph decodes to one valid molecule, the same as
    ``s is not None and "." not in s`` for its :func:`decode_smiles` output, at a fraction of
    the cost: disconnected graphs are never built, and no SMILES is written."""
    flags = np.zeros(len(x_idx), dtype=bool)
    for row, _ in single_molecule_mols(x_idx, adj_idx, vocab):
        flags[row] = True
    return flags


def single_molecule_mols(x_idx: np.ndarray, adj_idx: np.ndarray,
                         vocab: Vocab) -> Iterator[tuple[int, Chem.RWMol]]:
    """Yield ``(row, sanitized RWMol)`` for each graph of ``x_idx [B, N]``, ``adj_idx
    [B, N, N]`` that is one valid molecule (:func:`single_molecules`), in row order; the
    disconnected graphs are never built."""
    rows = np.flatnonzero(connected_graphs(x_idx, adj_idx))
    mols = sanitized_mols(np.asarray(x_idx)[rows], np.asarray(adj_idx)[rows], vocab)
    for row, mol in zip(rows.tolist(), mols):
        if mol is not None:
            yield row, mol


def max_valences(vocab: Vocab) -> list[int]:
    """Largest total bond order each atom index may carry, ``[T]`` (index 0, "no atom": 0).

    An ion takes the default valence of its isoelectronic neutral element (``N+`` as ``C``: 4,
    ``O-`` as ``F``: 1, ``C-`` as ``N``: 3), the largest of RDKit's allowed valences for that
    element (``S``: 6, ``P``: 7); an element RDKit leaves unconstrained gets 8. With implicit
    hydrogens filling the rest, a graph whose atoms exceed these valences cannot sanitize
    (QM9's vocabulary: C 4, N 3, O 2, F 1).
    """
    from rdkit import Chem

    table = Chem.GetPeriodicTable()
    valences = [0]
    for z, charge in vocab.atoms:
        element = z - charge
        if not 1 <= element <= 118:
            raise ValueError(f"no element is isoelectronic with token {(z, charge)}")
        allowed = list(table.GetValenceList(element))
        valences.append(8 if -1 in allowed else max(allowed))
    return valences
