"""SMILES -> dense uint8 token arrays, in parallel worker processes.

Two phases: workers parse and kekulize chunks of SMILES into raw graphs (the slow RDKit part);
the main process learns the vocabulary from all kept graphs (unless one is given) and packs them
into ``x_idx [M, N]`` and ``adj_idx [M, N, N]`` (uint8). Every row that cannot be represented is
kept in the skip list with its reason; nothing is dropped silently.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
import logging
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

import numpy as np

from molgan.chem import (
    RawGraph,
    SkipMolecule,
    canonical_smiles,
    decode_smiles,
    graph_to_indices,
    mol_from_smiles,
    mol_to_graph,
)
from molgan.vocab import AtomToken, Vocab, parse_atom_symbol

#: Bump when the encoding changes: it is part of every cache key.
FEATURIZER_VERSION = 1
CHUNK_SIZE = 4096
#: Below this many rows the work runs in-process (starting workers costs about a second).
PARALLEL_MIN_ROWS = 20_000

Progress = Callable[[int], None]
log = logging.getLogger(__name__)


@dataclass
class Skipped:
    """Rows that were not kept: their position in the source, SMILES, reason and detail."""

    rows: list[int] = field(default_factory=list)
    smiles: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def add(self, row: int, smiles: str, error: SkipMolecule) -> None:
        self.rows.append(row)
        self.smiles.append(smiles)
        self.reasons.append(error.reason)
        self.details.append(error.detail)

    def counts(self) -> dict[str, int]:
        """Reason -> number of rows, most common first."""
        return dict(Counter(self.reasons).most_common())

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class Featurized:
    """Result of :func:`featurize`: arrays over the ``M`` kept rows, plus what was skipped.

    Attributes:
        x_idx: ``[M, N]`` uint8 atom token indices (0 = no atom).
        adj_idx: ``[M, N, N]`` uint8 bond token indices, symmetric, zero diagonal.
        smiles: canonical SMILES (no stereo) of the kept inputs, length ``M``.
        rows: ``[M]`` positions of the kept rows in the source.
        vocab: the vocabulary used.
        skipped: rows not kept, with reasons.
    """

    x_idx: np.ndarray
    adj_idx: np.ndarray
    smiles: list[str]
    rows: np.ndarray
    vocab: Vocab
    skipped: Skipped


def default_workers() -> int:
    """Worker processes to use: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _parse_chunk(smiles: Sequence[str]) -> list[tuple[str, RawGraph] | SkipMolecule]:
    """Worker: SMILES -> (canonical SMILES, raw graph) or the reason it was skipped."""
    out: list[tuple[str, RawGraph] | SkipMolecule] = []
    for s in smiles:
        try:
            mol = mol_from_smiles(s)
            out.append((canonical_smiles(mol), mol_to_graph(mol)))
        except SkipMolecule as error:
            out.append(error)
    return out


def _decode_chunk(args: tuple[np.ndarray, np.ndarray, dict[str, Any]]) -> list[str | None]:
    x_idx, adj_idx, vocab = args
    return decode_smiles(x_idx, adj_idx, Vocab.from_dict(vocab))


def _map_chunks(
    function: Callable[[Any], list[Any]],
    chunks: list[Any],
    workers: int,
    progress: Progress | None,
    sizes: list[int],
) -> list[Any]:
    results: list[Any] = []
    if workers <= 1 or sum(sizes) < PARALLEL_MIN_ROWS:
        for chunk, size in zip(chunks, sizes):
            results.extend(function(chunk))
            if progress:
                progress(size)
        return results
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            for part, size in zip(pool.map(function, chunks), sizes):
                results.extend(part)
                if progress:
                    progress(size)
    except BrokenProcessPool:
        # spawn cannot re-import a __main__ read from stdin or some notebooks: do it here
        log.warning("worker processes could not start; continuing in this process")
        return _map_chunks(function, chunks, 1, None, sizes)
    return results


def featurize(
    smiles: Sequence[str],
    vocab: Vocab | None = None,
    max_atoms: int | None = None,
    atoms: Sequence[str] | None = None,
    min_atom_count: int = 1,
    workers: int | None = None,
    progress: Progress | None = None,
) -> Featurized:
    """Featurize SMILES into dense token arrays.

    Args:
        smiles: input rows (``''`` rows are skipped as ``empty``).
        vocab: use this vocabulary (and its ``max_atoms``) instead of learning one.
        max_atoms: ``N``; molecules with more heavy atoms are skipped. Default: the largest kept.
        atoms: restrict the learned vocabulary to these tokens (e.g. ``['C', 'N', 'O', 'F']``);
            molecules with other atoms are skipped as ``unknown_atom``.
        min_atom_count: learned tokens must occur at least this often (in kept molecules).
        workers: processes for RDKit parsing (default: all usable CPUs).
        progress: called with the number of rows finished, per chunk.
    """
    workers = default_workers() if workers is None else workers
    chunks = [list(smiles[i : i + CHUNK_SIZE]) for i in range(0, len(smiles), CHUNK_SIZE)]
    parsed = _map_chunks(_parse_chunk, chunks, workers, progress, [len(c) for c in chunks])

    skipped = Skipped()
    kept: list[tuple[int, str, RawGraph]] = []
    limit = vocab.max_atoms if vocab is not None else max_atoms
    allowed: set[AtomToken] | None = None
    if vocab is not None:
        allowed = set(vocab.atoms)
    elif atoms is not None:
        allowed = {parse_atom_symbol(a) for a in atoms}
    for row, item in enumerate(parsed):
        if isinstance(item, SkipMolecule):
            skipped.add(row, smiles[row], item)
            continue
        canon, graph = item
        if limit is not None and len(graph[0]) > limit:
            skipped.add(row, smiles[row], SkipMolecule("too_many_atoms", f"{len(graph[0])} > {limit}"))
            continue
        unknown = [t for t in graph[0] if allowed is not None and t not in allowed]
        if unknown:
            from molgan.vocab import atom_symbol

            skipped.add(row, smiles[row], SkipMolecule("unknown_atom", atom_symbol(unknown[0])))
            continue
        kept.append((row, canon, graph))

    if vocab is None:
        counts: Counter[AtomToken] = Counter(t for _, _, g in kept for t in g[0])
        n_max = limit if limit is not None else max((len(g[0]) for _, _, g in kept), default=1)
        vocab = Vocab.from_counts(counts, max_atoms=n_max, min_count=min_atom_count)

    m = len(kept)
    n = vocab.max_atoms
    x_idx = np.zeros((m, n), dtype=np.uint8)
    adj_idx = np.zeros((m, n, n), dtype=np.uint8)
    out_rows: list[int] = []
    out_smiles: list[str] = []
    for row, canon, graph in kept:
        try:
            x, adj = graph_to_indices(graph, vocab)
        except SkipMolecule as error:  # only rare tokens below min_atom_count get here
            skipped.add(row, smiles[row], error)
            continue
        k = len(out_rows)
        x_idx[k], adj_idx[k] = x, adj
        out_rows.append(row)
        out_smiles.append(canon)
    k = len(out_rows)
    return Featurized(
        x_idx=x_idx[:k],
        adj_idx=adj_idx[:k],
        smiles=out_smiles,
        rows=np.asarray(out_rows, dtype=np.int64),
        vocab=vocab,
        skipped=skipped,
    )


def decode_all(
    x_idx: np.ndarray,
    adj_idx: np.ndarray,
    vocab: Vocab,
    workers: int | None = None,
    progress: Progress | None = None,
) -> list[str | None]:
    """Decode ``[M, N]``/``[M, N, N]`` index arrays to canonical SMILES in parallel (``None`` = invalid)."""
    workers = default_workers() if workers is None else workers
    m = len(x_idx)
    if m == 0:
        return []
    # identical graphs decode identically: decode each distinct graph once
    keys = np.concatenate([x_idx.reshape(m, -1), adj_idx.reshape(m, -1)], axis=1)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    x_u, adj_u = x_idx[first], adj_idx[first]
    step = CHUNK_SIZE
    chunks = [(x_u[i : i + step], adj_u[i : i + step], vocab.to_dict())
              for i in range(0, len(x_u), step)]
    decoded = _map_chunks(_decode_chunk, chunks, workers, None, [len(c[0]) for c in chunks])
    if progress:
        progress(m)
    return [decoded[j] for j in inverse.reshape(-1).tolist()]


def roundtrip_exact(
    featurized_x: np.ndarray,
    featurized_adj: np.ndarray,
    smiles: Sequence[str],
    vocab: Vocab,
    workers: int | None = None,
    progress: Progress | None = None,
) -> tuple[float, list[int]]:
    """Fraction of rows whose decoded canonical SMILES equals the canonical input, and the misses."""
    decoded = decode_all(featurized_x, featurized_adj, vocab, workers, progress)
    misses = [i for i, (d, s) in enumerate(zip(decoded, smiles)) if d != s]
    total = len(smiles)
    return (1.0 - len(misses) / total if total else float("nan")), misses
