r"""Chemical rewards for MolGAN's RL term, computed with RDKit on decoded molecules.

Every component is mapped to ``[0, 1]`` (higher = better) and an **invalid molecule gets 0**:

- ``qed``: QED (Bickerton et al. 2012), already in ``[0, 1]``.
- ``logp``: Wildman-Crippen logP mapped linearly as in MolGAN,
  :math:`\mathrm{clip}((\log P + 2.1218) / (6.0429 + 2.1218), 0, 1)` (the range of QM9's logP).
- ``sa``: synthetic accessibility (1 easy .. 10 hard) mapped as in MolGAN,
  :math:`\mathrm{clip}((SA - 5) / (1.5 - 5), 0, 1)`: SA <= 1.5 gives 1, SA >= 5 gives 0.
- ``validity``: 1 for a molecule RDKit sanitizes.
- ``uniqueness``: :math:`1 / k` for a molecule that occurs ``k`` times in its batch (canonical
  SMILES), so a batch of copies earns little however good each copy is.

The reward of a molecule is the **product** of the selected components (as in MolGAN), so it is
high only when every objective is met. Per-molecule values are memoized by canonical SMILES
(a collapsing generator repeats itself; QM9 has ~134k distinct molecules).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REWARDS: tuple[str, ...] = ("qed", "logp", "sa", "validity", "uniqueness")
#: MolGAN's logP normalization range.
LOGP_RANGE = (-2.12178879609, 6.0429063424)
#: MolGAN's SA normalization: SA at reward 0 and SA at reward 1.
SA_RANGE = (5.0, 1.5)
_PER_MOLECULE = ("qed", "logp", "sa")


def parse_rewards(text: str | Iterable[str]) -> tuple[str, ...]:
    """``'qed,logp'`` -> ``('qed', 'logp')``; unknown names are an error, empty means none."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in REWARDS]
    if unknown:
        raise ValueError(f"unknown reward(s) {unknown}; choose from {', '.join(REWARDS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"reward listed twice: {names}")
    return tuple(names)


def normalize(name: str, values: np.ndarray) -> np.ndarray:
    """Raw ``qed`` / ``logp`` / ``sa`` values -> their ``[0, 1]`` reward (module docstring)."""
    if name == "qed":
        return np.asarray(values, dtype=np.float64)
    at_zero, at_one = {"logp": LOGP_RANGE, "sa": SA_RANGE}[name]
    return np.clip((np.asarray(values, dtype=np.float64) - at_zero) / (at_one - at_zero), 0, 1)


def rewarded_fractions(table: dict[str, np.ndarray], prefix: str = "") -> dict[str, float]:
    """Fraction of molecules whose ``qed`` / ``logp`` / ``sa`` reward is at least 0.5, i.e.
    QED >= 0.5, logP >= 1.96, SA <= 3.25 (``{prefix}{name}_reward_ge_half``); NaN when empty."""
    out = {}
    for name in _PER_MOLECULE:
        values = normalize(name, table[name])
        out[f"{prefix}{name}_reward_ge_half"] = (float((values >= 0.5).mean()) if values.size
                                                 else float("nan"))
    return out


def normalized_properties(mol: Any) -> dict[str, float]:
    """``{'qed', 'logp', 'sa'}`` of a valid RDKit molecule, each mapped to ``[0, 1]``."""
    from rdkit.Chem import QED, Crippen

    from molgan.properties import sa_score

    raw = {"qed": QED.qed(mol), "logp": Crippen.MolLogP(mol), "sa": sa_score(mol)}
    return {name: float(normalize(name, np.float64(value))) for name, value in raw.items()}


def _properties_chunk(smiles: Sequence[str]) -> list[tuple[float, float, float]]:
    """Worker: normalized (qed, logp, sa) of valid SMILES."""
    from molgan.chem import mol_from_smiles

    rows = []
    for s in smiles:
        values = normalized_properties(mol_from_smiles(s))
        rows.append((values["qed"], values["logp"], values["sa"]))
    return rows


def property_rewards(smiles: Sequence[str], cache_dir: Path,
                     workers: int | None = None) -> dict[str, np.ndarray]:
    """Normalized ``qed``, ``logp``, ``sa`` ``[M]`` of valid SMILES (a training split),
    computed once in parallel worker processes and cached as ``.npz`` in ``cache_dir``."""
    from molgan.cache import cached_arrays, smiles_digest
    from molgan.featurize import CHUNK_SIZE, default_workers, map_chunks

    def compute() -> dict[str, np.ndarray]:
        chunks = [list(smiles[i : i + CHUNK_SIZE]) for i in range(0, len(smiles), CHUNK_SIZE)]
        rows = map_chunks(_properties_chunk, chunks,
                          default_workers() if workers is None else workers, None,
                          [len(c) for c in chunks])
        table = np.asarray(rows, dtype=np.float64).reshape(-1, len(_PER_MOLECULE))
        return {name: table[:, i] for i, name in enumerate(_PER_MOLECULE)}

    key = smiles_digest(smiles, "rewards-v1")
    return cached_arrays(Path(cache_dir) / f"rewards-{key}.npz", compute)


class RewardFunction:
    """``reward(smiles) -> [B]`` float array in ``[0, 1]``: the product of the selected
    components (module docstring) for canonical SMILES (``None`` = invalid -> 0)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = parse_rewards(names)
        if not self.names:
            raise ValueError("no reward selected")
        self._memo: dict[str, dict[str, float]] = {}

    def components(self, smiles: Sequence[str | None]) -> dict[str, np.ndarray]:
        """Each selected component ``[B]`` (0 for invalid molecules)."""
        valid = np.array([bool(s) for s in smiles])
        out: dict[str, np.ndarray] = {}
        if any(n in _PER_MOLECULE for n in self.names):
            self._fill_memo(s for s in smiles if s)
            for name in (n for n in self.names if n in _PER_MOLECULE):
                out[name] = np.array([self._memo[s][name] if s else 0.0 for s in smiles])
        if "validity" in self.names:
            out["validity"] = valid.astype(np.float64)
        if "uniqueness" in self.names:
            counts: dict[str, int] = {}
            for s in smiles:
                if s:
                    counts[s] = counts.get(s, 0) + 1
            out["uniqueness"] = np.array([1.0 / counts[s] if s else 0.0 for s in smiles])
        return {name: out[name] for name in self.names}

    def __call__(self, smiles: Sequence[str | None]) -> np.ndarray:
        reward = np.array([1.0 if s else 0.0 for s in smiles])
        for values in self.components(smiles).values():
            reward = reward * values
        return reward

    def remember(self, smiles: Sequence[str], table: dict[str, np.ndarray]) -> None:
        """Seed the memo with precomputed :func:`property_rewards` of ``smiles``."""
        for i, s in enumerate(smiles):
            self._memo[s] = {name: float(table[name][i]) for name in _PER_MOLECULE}

    def _fill_memo(self, smiles: Iterable[str]) -> None:
        from molgan.chem import mol_from_smiles

        for s in set(smiles) - self._memo.keys():
            self._memo[s] = normalized_properties(mol_from_smiles(s))
