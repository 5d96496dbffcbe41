"""Vocabulary of atom and bond tokens, saved with every dataset cache and model.

Atom tokens are ``(atomic_number, formal_charge)`` pairs; index 0 is reserved for "no atom"
(padding). Bond tokens are fixed: index 0 = no bond, 1 = single, 2 = double, 3 = triple, for
kekulized molecules with implicit hydrogens. The vocabulary is plain data (ints and strings), so
it can be stored in a ``weights_only`` checkpoint and in JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Bond token names by index; index 0 means "no bond".
BOND_TOKENS: tuple[str, ...] = ("none", "single", "double", "triple")

_SYMBOLS = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se "
    "Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe"
).split()
_TOKEN_RE = re.compile(r"^([A-Z][a-z]?)(\+\d*|-\d*)?$")

AtomToken = tuple[int, int]


def atom_symbol(token: AtomToken) -> str:
    """Return a readable name for an ``(atomic_number, charge)`` token, e.g. ``'N+'``, ``'O-'``."""
    z, charge = token
    name = _SYMBOLS[z - 1] if 1 <= z <= len(_SYMBOLS) else f"#{z}"
    if charge == 0:
        return name
    sign = "+" if charge > 0 else "-"
    return name + sign + (str(abs(charge)) if abs(charge) > 1 else "")


def parse_atom_symbol(text: str) -> AtomToken:
    """Inverse of :func:`atom_symbol`: ``'N+'`` -> ``(7, 1)``, ``'O-2'`` -> ``(8, -2)``."""
    match = _TOKEN_RE.match(text.strip())
    if not match or match.group(1) not in _SYMBOLS:
        raise ValueError(f"not an atom token: {text!r} (expected e.g. C, N+, O-)")
    z = _SYMBOLS.index(match.group(1)) + 1
    charge_text = match.group(2) or ""
    charge = 0
    if charge_text:
        magnitude = int(charge_text[1:]) if len(charge_text) > 1 else 1
        charge = magnitude if charge_text[0] == "+" else -magnitude
    return (z, charge)


@dataclass(frozen=True)
class Vocab:
    """Atom and bond vocabulary plus the graph size.

    Attributes:
        atoms: atom tokens for indices ``1..T-1``; index 0 is "no atom".
        max_atoms: ``N``, the number of node slots of every dense graph.

    Derived sizes: ``T = num_atom_types = len(atoms) + 1`` and ``Y = num_bond_types = 4``.
    """

    atoms: tuple[AtomToken, ...]
    max_atoms: int

    def __post_init__(self) -> None:
        if len(set(self.atoms)) != len(self.atoms):
            raise ValueError(f"duplicate atom tokens in vocabulary: {self.atoms}")
        if len(self.atoms) + 1 > 255:
            raise ValueError("at most 254 atom tokens fit the uint8 storage")
        if self.max_atoms < 1:
            raise ValueError(f"max_atoms must be >= 1, got {self.max_atoms}")

    @property
    def num_atom_types(self) -> int:
        """``T``: atom tokens including the "no atom" index 0."""
        return len(self.atoms) + 1

    @property
    def num_bond_types(self) -> int:
        """``Y``: bond tokens including the "no bond" index 0."""
        return len(BOND_TOKENS)

    @property
    def atom_symbols(self) -> list[str]:
        """Readable names of the atom tokens, index 0 shown as ``'*none'``."""
        return ["*none"] + [atom_symbol(t) for t in self.atoms]

    def atom_index(self) -> dict[AtomToken, int]:
        """Map from token to its index (``1..T-1``)."""
        return {token: i + 1 for i, token in enumerate(self.atoms)}

    @classmethod
    def from_counts(
        cls, counts: Mapping[AtomToken, int], max_atoms: int, min_count: int = 1
    ) -> Vocab:
        """Learn a vocabulary: tokens seen at least ``min_count`` times, most frequent first.

        Ties are broken by ``(atomic_number, charge)`` so the order is deterministic.
        """
        kept = [t for t, c in counts.items() if c >= min_count]
        kept.sort(key=lambda t: (-counts[t], t))
        return cls(atoms=tuple(kept), max_atoms=max_atoms)

    @classmethod
    def from_symbols(cls, symbols: Iterable[str], max_atoms: int) -> Vocab:
        """Build from readable names, e.g. ``Vocab.from_symbols(['C', 'N', 'O', 'F'], 9)``."""
        return cls(atoms=tuple(parse_atom_symbol(s) for s in symbols), max_atoms=max_atoms)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON and ``weights_only`` checkpoint safe)."""
        return {
            "atoms": [list(t) for t in self.atoms],
            "atom_symbols": self.atom_symbols[1:],
            "bonds": list(BOND_TOKENS),
            "max_atoms": self.max_atoms,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vocab:
        """Inverse of :meth:`to_dict`."""
        bonds = tuple(data.get("bonds", BOND_TOKENS))
        if bonds != BOND_TOKENS:
            raise ValueError(f"unsupported bond vocabulary {bonds}; expected {BOND_TOKENS}")
        atoms = tuple((int(z), int(c)) for z, c in data["atoms"])
        return cls(atoms=atoms, max_atoms=int(data["max_atoms"]))

    def __str__(self) -> str:
        return (
            f"Vocab(atoms=[{', '.join(self.atom_symbols[1:])}], "
            f"bonds=[{', '.join(BOND_TOKENS[1:])}], max_atoms={self.max_atoms})"
        )
