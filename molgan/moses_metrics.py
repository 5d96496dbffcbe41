r"""The MOSES benchmark metrics (Polykovskiy et al. 2020), computed by molgan from their definitions.

``G`` is the list of valid generated molecules (canonical SMILES, repeats kept, in sample order);
``R`` a reference set (MOSES's ``Test`` or ``TestSF``, the scaffold split); ``T(a, b)`` the
Tanimoto similarity of Morgan fingerprints (radius 2, 1024 bits) of molecules ``a`` and ``b``.

- **valid** = valid samples / all samples.
- **unique@k** = distinct SMILES among the first ``k`` of ``G`` / ``min(k, |G|)``
  (``unique_short@k`` names the metrics where ``|G| < k``).
- **novelty** = distinct molecules of ``G`` not in the training set / distinct molecules of ``G``.
- **FCD/R**: Fréchet ChemNet distance between ``G`` and ``R`` (:mod:`molgan.fcd_stats`).
- **SNN/R** = :math:`\frac{1}{|G|}\sum_{g \in G} \max_{r \in R} T(g, r)`.
- **Frag/R** = cosine similarity of the fragment counts of ``G`` and ``R``: each molecule is cut
  at every BRICS bond and each fragment (SMILES with the cut points as dummy atoms) counted.
- **Scaf/R** = cosine similarity of the Bemis-Murcko scaffold counts of ``G`` and ``R``; as in
  MOSES's published figures, only scaffolds of at least two rings are counted.
- **IntDiv_p** = :math:`1 - \frac{1}{|G|}\sum_{a \in G}\big(\frac{1}{|G|}\sum_{b \in G}
  T(a, b)^p\big)^{1/p}` for ``p = 1, 2``, self pairs included; this is how MOSES's reference
  implementation computes it (its paper writes the root outside the outer mean; the two
  agree for ``p = 1``).
- **Filters** = fraction of ``G`` that passes the filters MOSES was built with: atoms only C, N,
  S, O, F, Cl, Br (and H), no formal charge, no ring of 8 or more atoms, and no match of the
  MCF or PAINS SMARTS (read from the installed ``molsets`` wheel) in the molecule with explicit
  hydrogens.
- **logP, SA, QED, weight**: the 1-D Wasserstein distance between the values over ``G`` and over
  ``Test`` (``evaluate`` computes them as ``{logp,sa,qed,mol_weight}_w1``).

Tanimoto similarities are exact: fingerprints are 0/1 matrices and ``|a & b|`` their product
(fp32 counts, exact far beyond 1024), taken block by block so memory stays bounded.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from molgan.cache import cached_arrays, smiles_digest

FINGERPRINT_RADIUS = 2
FINGERPRINT_BITS = 1024
FILTER_ATOMS = frozenset({"C", "N", "S", "O", "F", "Cl", "Br", "H"})
MAX_RING_SIZE = 7
SCAFFOLD_MIN_RINGS = 2
UNIQUE_AT = (1_000, 10_000)
#: Rows of one similarity block: ``BLOCK x |R|`` fp32 values (176k test molecules: 0.7 GB).
BLOCK_ROWS = 1024
CACHE_SALT = "moses-reference-v1"
#: Molecules per task of the worker processes.
CHUNK = 1024


def morgan_fingerprints(mols: Sequence[Any]) -> np.ndarray:
    """``[len(mols), 1024]`` uint8 0/1 Morgan fingerprints (radius 2) of RDKit molecules."""
    from rdkit.Chem import rdFingerprintGenerator

    generator = rdFingerprintGenerator.GetMorganGenerator(radius=FINGERPRINT_RADIUS,
                                                          fpSize=FINGERPRINT_BITS)
    out = np.zeros((len(mols), FINGERPRINT_BITS), dtype=np.uint8)
    for i, mol in enumerate(mols):
        out[i] = generator.GetFingerprintAsNumPy(mol)
    return out


def tanimoto_blocks(a: np.ndarray, b: np.ndarray,
                    block_rows: int = BLOCK_ROWS) -> Iterator[tuple[int, Any]]:
    """Yield ``(start, T)`` with ``T [rows, len(b)]`` (torch fp32) = Tanimoto of ``a[start:start+rows]``
    against all of ``b``; two empty fingerprints have similarity 1.

    ``T = |a & b| / (|a| + |b| - |a & b|)`` with ``|a & b| = a @ b.T`` on 0/1 matrices.
    """
    import torch

    right = torch.from_numpy(np.ascontiguousarray(b)).float()
    right_bits = right.sum(1)
    right_empty = bool((right_bits == 0).any())
    for start in range(0, len(a), block_rows):
        left = torch.from_numpy(np.ascontiguousarray(a[start:start + block_rows])).float()
        left_bits = left.sum(1, keepdim=True)
        similarity = left @ right.T  # |a & b|, then turned into T in place (memory-bound)
        union = (left_bits + right_bits[None, :]).sub_(similarity)
        empty = (union == 0) if right_empty and bool((left_bits == 0).any()) else None
        similarity.div_(union.clamp_(min=1))
        if empty is not None:
            similarity.masked_fill_(empty, 1.0)
        yield start, similarity


def nearest_neighbour_similarity(generated: np.ndarray, reference: np.ndarray) -> float:
    """SNN: mean over generated fingerprints of the largest Tanimoto to any reference one."""
    if len(generated) == 0 or len(reference) == 0:
        return float("nan")
    best = [block.max(1).values.sum().item() for _, block in tanimoto_blocks(generated, reference)]
    return float(sum(best) / len(generated))


def internal_diversity(fingerprints: np.ndarray, p: int = 1) -> float:
    """IntDiv_p of a set of fingerprints (definition in the module docstring)."""
    if len(fingerprints) == 0:
        return float("nan")
    total = 0.0
    for _, block in tanimoto_blocks(fingerprints, fingerprints):
        total += block.pow(p).mean(1).pow(1.0 / p).sum().item()
    return float(1.0 - total / len(fingerprints))


def fragment_counts(mols: Sequence[Any]) -> Counter[str]:
    """BRICS fragment SMILES (cut points as dummy atoms) -> occurrences over ``mols``."""
    from rdkit import Chem

    counts: Counter[str] = Counter()
    for mol in mols:
        counts.update(Chem.MolToSmiles(Chem.FragmentOnBRICSBonds(mol)).split("."))
    return counts


def scaffold_counts(mols: Sequence[Any], min_rings: int = SCAFFOLD_MIN_RINGS) -> Counter[str]:
    """Bemis-Murcko scaffold SMILES -> molecules of ``mols`` with that scaffold, for scaffolds of
    at least ``min_rings`` rings (others, acyclic molecules included, are not counted)."""
    from rdkit import Chem
    from rdkit.Chem.Scaffolds import MurckoScaffold

    counts: Counter[str] = Counter()
    for mol in mols:
        try:
            scaffold = MurckoScaffold.GetScaffoldForMol(mol)
        except (ValueError, RuntimeError):
            continue
        if scaffold.GetRingInfo().NumRings() >= min_rings:
            counts[Chem.MolToSmiles(scaffold)] += 1
    return counts


def cosine_similarity(a: Counter[str], b: Counter[str]) -> float:
    """Cosine of two count vectors indexed by key (a missing key counts 0); NaN if one is empty."""
    if not a or not b:
        return float("nan")
    dot = sum(count * b[key] for key, count in a.items() if key in b)
    norm_a = math.sqrt(sum(c * c for c in a.values()))
    norm_b = math.sqrt(sum(c * c for c in b.values()))
    return float(dot / (norm_a * norm_b))


def filter_patterns(moses_folder: Path) -> list[Any]:
    """The MCF and PAINS SMARTS shipped in the ``molsets`` wheel, compiled."""
    import csv

    from rdkit import Chem

    metrics = Path(moses_folder) / "metrics"
    smarts: list[str] = []
    with open(metrics / "mcf.csv", newline="") as handle:
        smarts += [row["smarts"] for row in csv.DictReader(handle)]
    with open(metrics / "wehi_pains.csv", newline="") as handle:
        smarts += [row[0] for row in csv.reader(handle) if row]  # no header: smarts, name
    patterns = [Chem.MolFromSmarts(s.strip()) for s in smarts]
    if any(p is None for p in patterns):
        raise ValueError(f"unreadable filter SMARTS in {metrics}")
    return patterns


def _filter_chunk(task: tuple[list[str], str]) -> list[bool]:
    """:func:`passes_filters` over SMILES in a worker process (patterns compiled there)."""
    from molgan.chem import mol_from_smiles

    smiles, folder = task
    patterns = filter_patterns(Path(folder))
    return [passes_filters(mol_from_smiles(s), patterns) for s in smiles]


def filter_fraction(smiles: Sequence[str], moses_folder: Path, workers: int = 1) -> float:
    """Fraction of valid (canonical) ``smiles`` that pass :func:`passes_filters`, in
    ``workers`` forked processes (about 10 ms a molecule: 502 SMARTS on each)."""
    from molgan.featurize import map_chunks

    if not smiles:
        return float("nan")
    chunks = [(list(smiles[i:i + CHUNK]), str(moses_folder))
              for i in range(0, len(smiles), CHUNK)]
    passed = map_chunks(_filter_chunk, chunks, workers, None, [len(c[0]) for c in chunks],
                        fork=True)
    return sum(passed) / len(smiles)


def passes_filters(mol: Any, patterns: Sequence[Any]) -> bool:
    """Whether ``mol`` passes MOSES's filters (definition in the module docstring)."""
    from rdkit import Chem

    if any(len(ring) > MAX_RING_SIZE for ring in mol.GetRingInfo().AtomRings()):
        return False
    for atom in mol.GetAtoms():
        if atom.GetFormalCharge() != 0 or atom.GetSymbol() not in FILTER_ATOMS:
            return False
    with_hydrogens = Chem.AddHs(mol)
    return not any(with_hydrogens.HasSubstructMatch(p) for p in patterns)


@dataclass
class SetStatistics:
    """What SNN, Frag and Scaf need of a reference set (cached by :func:`reference_statistics`)."""

    fingerprints: np.ndarray  # [|R|, 1024] uint8
    fragments: Counter[str]
    scaffolds: Counter[str]


def set_statistics(mols: Sequence[Any]) -> SetStatistics:
    """Fingerprints, fragment counts and scaffold counts of valid RDKit molecules."""
    return SetStatistics(morgan_fingerprints(mols), fragment_counts(mols), scaffold_counts(mols))


def _counter_arrays(prefix: str, counts: Counter[str]) -> dict[str, np.ndarray]:
    keys = sorted(counts)
    return {f"{prefix}_keys": np.array(keys, dtype=str),
            f"{prefix}_counts": np.array([counts[k] for k in keys], dtype=np.int64)}


def wheel_test_statistics() -> dict[str, Any]:
    """The installed molsets wheel's own statistics of MOSES's ``Test`` split, made by MOSES's
    code (``moses/dataset/data/test_stats.npz``): ``{'FCD': {'mu', 'sigma'}, 'SNN': {'fps'},
    'Frag': {'frag'}, 'Scaf': {'scaf'}, 'logP' | 'SA' | 'QED' | 'weight': {'values'}}``.

    MOSES stores them as a pickled dict; this unpickles only that data file of the installed
    wheel. Raises :class:`molgan.sources.DataError` when molsets is not installed."""
    from molgan.sources import moses_folder

    path = moses_folder() / "dataset" / "data" / "test_stats.npz"
    return np.load(path, allow_pickle=True)["stats"].item()


def reference_statistics(smiles: Sequence[str], cache_dir: Path) -> SetStatistics:
    """:func:`set_statistics` of a reference SMILES list, cached on disk (bits packed)."""
    from molgan.chem import mol_from_smiles

    def compute() -> dict[str, np.ndarray]:
        stats = set_statistics([mol_from_smiles(s) for s in smiles])
        return {"fingerprints": np.packbits(stats.fingerprints, axis=1),
                **_counter_arrays("fragments", stats.fragments),
                **_counter_arrays("scaffolds", stats.scaffolds)}

    key = smiles_digest(smiles, CACHE_SALT)
    stored = cached_arrays(Path(cache_dir) / f"moses-stats-{key}.npz", compute)
    fingerprints = np.unpackbits(stored["fingerprints"], axis=1)[:, :FINGERPRINT_BITS]

    def counter(prefix: str) -> Counter[str]:
        return Counter(dict(zip(stored[f"{prefix}_keys"].tolist(),
                                stored[f"{prefix}_counts"].tolist())))

    return SetStatistics(fingerprints, counter("fragments"), counter("scaffolds"))


def unique_at(valid_canonical: Sequence[str], k: int) -> float:
    """unique@k: distinct SMILES among the first ``k`` valid ones / how many were taken."""
    head = valid_canonical[:k]
    return len(set(head)) / len(head) if head else float("nan")


def moses_metrics(valid_canonical: Sequence[str], mols: Sequence[Any],
                  references: dict[str, SetStatistics],
                  moses_folder: Path | None, workers: int = 1) -> dict[str, Any]:
    """unique@k, SNN/Frag/Scaf per reference (``{'Test': ..., 'TestSF': ...}``), IntDiv1/2 and
    Filters of the valid samples (``mols[i]`` is the molecule of ``valid_canonical[i]``).

    FCD, validity, novelty and the property distances come from :func:`molgan.evaluate.evaluate`.
    ``moses_folder=None`` (no ``molsets`` wheel, whose files hold the filters) leaves Filters
    out; they run in ``workers`` processes.
    """
    out: dict[str, Any] = {}
    for k in UNIQUE_AT:
        out[f"unique@{k}"] = unique_at(valid_canonical, k)
        if len(valid_canonical) < k:
            out[f"unique_short@{k}"] = len(valid_canonical)
    generated = set_statistics(mols)
    for name, reference in references.items():
        out[f"SNN/{name}"] = nearest_neighbour_similarity(generated.fingerprints,
                                                          reference.fingerprints)
        out[f"Frag/{name}"] = cosine_similarity(generated.fragments, reference.fragments)
        out[f"Scaf/{name}"] = cosine_similarity(generated.scaffolds, reference.scaffolds)
    out["IntDiv1"] = internal_diversity(generated.fingerprints, p=1)
    out["IntDiv2"] = internal_diversity(generated.fingerprints, p=2)
    if moses_folder is not None:
        out["Filters"] = filter_fraction(valid_canonical, moses_folder, workers)
    return out
