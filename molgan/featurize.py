"""SMILES -> dense uint8 token arrays, in parallel worker processes.

Two phases: workers parse and kekulize chunks of SMILES into raw graphs (the slow RDKit part);
the main process learns the vocabulary from all kept graphs (unless one is given) and packs them
into ``x_idx [M, N]`` and ``adj_idx [M, N, N]`` (uint8). Every row that cannot be represented is
kept in the skip list with its reason; nothing is dropped silently.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from molgan.chem import (
    SkipMolecule,
    canonical_smiles,
    decode_smiles,
    mol_from_smiles,
    mol_to_graph,
    shorten,
)
from molgan.files import atomic_output
from molgan.vocab import Vocab, atom_symbol, parse_atom_symbol

#: Bump when the encoding changes: it is part of every cache key.
FEATURIZER_VERSION = 1
CHUNK_SIZE = 4096
#: Below this many rows the work runs in-process (starting workers costs about a second).
PARALLEL_MIN_ROWS = 20_000
#: The same for forked workers (:func:`map_chunks` with ``fork=True``: about 20 ms to start).
FORK_MIN_ROWS = 2_048

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
        self.smiles.append(shorten(smiles, 1000))  # a hostile line is not copied whole
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


@dataclass
class _ParsedChunk:
    """Worker output for one chunk, as flat arrays (cheap to send between processes).

    Kept molecules are numbered ``0..K-1`` inside the chunk; atoms and bonds point at them.
    """

    rows: np.ndarray  # [K] row of each kept molecule inside the chunk
    canonical: list[str]  # [K] canonical input SMILES
    n_atoms: np.ndarray  # [K]
    atom_z: np.ndarray  # [sum n_atoms] atomic numbers, molecule by molecule
    atom_charge: np.ndarray  # [sum n_atoms]
    bond_mol: np.ndarray  # [E] kept-molecule index of each bond
    bond_ij: np.ndarray  # [E, 2] atom positions inside the molecule
    bond_order: np.ndarray  # [E] 1, 2 or 3
    skipped: list[tuple[int, SkipMolecule]]


class ChunkStore:
    """Finished parse chunks on disk, so an interrupted featurization resumes where it stopped.

    One ``chunk-<number>.npz`` per finished chunk in ``directory`` (written atomically, read
    with ``allow_pickle=False``). The caller keys the directory by source content and chunk
    size, so a stored chunk is never reused for other input.
    """

    _ARRAYS = ("rows", "n_atoms", "atom_z", "atom_charge", "bond_mol", "bond_ij", "bond_order")

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _path(self, number: int) -> Path:
        return self.directory / f"chunk-{number:06d}.npz"

    def finished(self, count: int) -> list[int]:
        """Numbers ``< count`` of the chunks already on disk."""
        return [k for k in range(count) if self._path(k).is_file()]

    def save(self, number: int, chunk: _ParsedChunk) -> None:
        """Store a finished chunk; a store removed meanwhile (a concurrent run finished the
        same source) is not an error: the chunk only saves work on a rerun."""
        skipped = chunk.skipped
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with atomic_output(self._path(number), make_parent=False) as tmp, \
                    open(tmp, "wb") as handle:
                np.savez(handle, **{name: getattr(chunk, name) for name in self._ARRAYS},
                         canonical=np.asarray(chunk.canonical, dtype=str),
                         skipped_rows=np.asarray([r for r, _ in skipped], dtype=np.int64),
                         skipped_reasons=np.asarray([e.reason for _, e in skipped], dtype=str),
                         skipped_details=np.asarray([e.detail for _, e in skipped], dtype=str))
        except FileNotFoundError:
            log.debug("chunk store %s was removed; chunk %d not kept", self.directory, number)

    def load(self, number: int) -> _ParsedChunk | None:
        """A stored chunk, or ``None`` if it is gone or damaged (a zip CRC or size mismatch):
        the chunk is then parsed again."""
        try:
            with np.load(self._path(number), allow_pickle=False) as stored:
                skipped = [(int(r), SkipMolecule(str(reason), str(detail)))
                           for r, reason, detail in zip(stored["skipped_rows"],
                                                        stored["skipped_reasons"],
                                                        stored["skipped_details"])]
                return _ParsedChunk(**{name: stored[name] for name in self._ARRAYS},
                                    canonical=stored["canonical"].tolist(), skipped=skipped)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            log.warning("featurization chunk %s is unreadable (%s); parsing it again",
                        self._path(number), type(exc).__name__)
            return None

    def remove(self) -> None:
        """Delete the stored chunks (after the featurized cache is written)."""
        shutil.rmtree(self.directory, ignore_errors=True)


def _parse_chunk(task: tuple[Sequence[str], int | None]) -> list[_ParsedChunk]:
    """Worker: SMILES -> canonical SMILES and kekulized graphs, or the reason for a skip.

    ``task`` is ``(smiles, max_atoms)``: rows beyond ``max_atoms`` heavy atoms (or
    :data:`molgan.chem.MAX_PARSE_ATOMS` when ``None``) are skipped before RDKit parses them.
    """
    smiles, max_atoms = task
    rows, canonical, n_atoms, z, charge = [], [], [], [], []
    bond_mol, bond_ij, bond_order = [], [], []
    skipped: list[tuple[int, SkipMolecule]] = []
    for row, text in enumerate(smiles):
        try:
            mol = mol_from_smiles(text, max_atoms)
            canon = canonical_smiles(mol)
            atoms, bonds = mol_to_graph(mol)
        except SkipMolecule as error:
            skipped.append((row, error))
            continue
        k = len(rows)
        rows.append(row)
        canonical.append(canon)
        n_atoms.append(len(atoms))
        z.extend(a[0] for a in atoms)
        charge.extend(a[1] for a in atoms)
        for i, j, order in bonds:
            bond_mol.append(k)
            bond_ij.append((i, j))
            bond_order.append(order)
    return [_ParsedChunk(
        rows=np.asarray(rows, dtype=np.int64), canonical=canonical,
        n_atoms=np.asarray(n_atoms, dtype=np.int64), atom_z=np.asarray(z, dtype=np.int64),
        atom_charge=np.asarray(charge, dtype=np.int64),
        bond_mol=np.asarray(bond_mol, dtype=np.int64),
        bond_ij=np.asarray(bond_ij, dtype=np.int64).reshape(-1, 2),
        bond_order=np.asarray(bond_order, dtype=np.uint8), skipped=skipped)]


def _merge(parts: list[_ParsedChunk], chunk_size: int) -> _ParsedChunk:
    """Concatenate chunk outputs; rows become source rows, molecule indices global."""
    offsets = np.cumsum([0] + [len(p.rows) for p in parts])
    return _ParsedChunk(
        rows=np.concatenate([p.rows + c * chunk_size for c, p in enumerate(parts)] or
                            [np.zeros(0, np.int64)]),
        canonical=[s for p in parts for s in p.canonical],
        n_atoms=np.concatenate([p.n_atoms for p in parts] or [np.zeros(0, np.int64)]),
        atom_z=np.concatenate([p.atom_z for p in parts] or [np.zeros(0, np.int64)]),
        atom_charge=np.concatenate([p.atom_charge for p in parts] or [np.zeros(0, np.int64)]),
        bond_mol=np.concatenate([p.bond_mol + o for p, o in zip(parts, offsets)] or
                                [np.zeros(0, np.int64)]),
        bond_ij=np.concatenate([p.bond_ij for p in parts] or [np.zeros((0, 2), np.int64)]),
        bond_order=np.concatenate([p.bond_order for p in parts] or [np.zeros(0, np.uint8)]),
        skipped=[(r + c * chunk_size, e) for c, p in enumerate(parts) for r, e in p.skipped],
    )


def _token_code(z: np.ndarray | int, charge: np.ndarray | int) -> Any:
    """One integer per (atomic number, charge) token."""
    return z * 256 + (charge + 128)


def _decode_chunk(args: tuple[np.ndarray, np.ndarray, dict[str, Any]]) -> list[str | None]:
    x_idx, adj_idx, vocab = args
    return decode_smiles(x_idx, adj_idx, Vocab.from_dict(vocab))


def map_chunks(
    function: Callable[[Any], list[Any]],
    chunks: list[Any],
    workers: int,
    progress: Progress | None,
    sizes: list[int],
    done: Callable[[int, list[Any]], None] | None = None,
    fork: bool = False,
) -> list[Any]:
    """``function`` over ``chunks`` (each returns a list; the lists are concatenated in order),
    in ``workers`` spawned processes when there are at least ``PARALLEL_MIN_ROWS`` rows, with
    ``progress(size)`` and ``done(chunk_number, result)`` after each chunk, in order.
    ``function`` must be importable (module level). ``fork=True`` forks the workers instead
    (Linux only; from ``FORK_MIN_ROWS`` rows): they start in milliseconds with this process's
    modules loaded, and must not use torch (its thread pools do not survive a fork). A forked
    pool has ``workers - 1`` processes, and this process maps every ``workers``-th chunk
    itself while they run (docs/benchmarks.md, "Sampling speed": 1.3x faster decoding of
    10,000 samples with 2 workers than a pool of 2 and an idle parent)."""
    parts: list[list[Any]] = []

    def finish(part: list[Any], size: int) -> None:
        if done:
            done(len(parts), part)
        parts.append(part)
        if progress:
            progress(size)

    fork = fork and sys.platform == "linux"
    if workers > 1 and sum(sizes) >= (FORK_MIN_ROWS if fork else PARALLEL_MIN_ROWS):
        pool = ProcessPoolExecutor(max_workers=workers - 1 if fork else workers,
                                   mp_context=get_context("fork" if fork else "spawn"))
        try:
            if fork:
                futures = {k: pool.submit(function, chunk)
                           for k, chunk in enumerate(chunks) if k % workers}
                own = {k: function(chunk) for k, chunk in enumerate(chunks) if k % workers == 0}
                for k, size in enumerate(sizes):
                    finish(own[k] if k in own else futures[k].result(), size)
            else:
                for part, size in zip(pool.map(function, chunks), sizes):
                    finish(part, size)
        except BrokenProcessPool:
            # spawn cannot re-import a __main__ read from stdin or some notebooks
            log.warning("worker processes could not start; continuing in this process")
        finally:  # on Ctrl-C, do not wait for the chunks not yet started
            pool.shutdown(wait=True, cancel_futures=True)
    for chunk, size in zip(chunks[len(parts):], sizes[len(parts):]):
        finish(function(chunk), size)
    return [item for part in parts for item in part]


def memory_bytes() -> int | None:
    """Physical memory of this machine in bytes (``None`` where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def check_dense_size(m: int, n: int) -> None:
    """Refuse dense arrays (``m * (n + n^2)`` bytes) larger than half this machine's memory,
    in one line that says what to do, instead of running the machine out of memory.

    Raises:
        ValueError: the arrays would not fit.
    """
    needed = m * (n + n * n)
    total = memory_bytes()
    if total is not None and needed > total // 2:
        raise ValueError(f"{m:,} molecules of up to {n} atoms need {needed / 2**30:.1f} GiB as "
                         f"dense arrays, more than half of this machine's "
                         f"{total / 2**30:.0f} GiB; pass a smaller --max-atoms")


def featurize(
    smiles: Sequence[str],
    vocab: Vocab | None = None,
    max_atoms: int | None = None,
    atoms: Sequence[str] | None = None,
    min_atom_count: int = 1,
    workers: int | None = None,
    progress: Progress | None = None,
    chunk_store: ChunkStore | None = None,
) -> Featurized:
    """Featurize SMILES into dense token arrays.

    Args:
        smiles: input rows (``''`` rows are skipped as ``empty``).
        vocab: use this vocabulary (and its ``max_atoms``) instead of learning one.
        max_atoms: ``N``; molecules with more heavy atoms are skipped. Default: the largest kept,
            at most :data:`molgan.chem.MAX_PARSE_ATOMS` (larger ones are skipped unparsed).
        atoms: restrict the learned vocabulary to these tokens (e.g. ``['C', 'N', 'O', 'F']``);
            molecules with other atoms are skipped as ``unknown_atom``.
        min_atom_count: learned tokens must occur at least this often (in kept molecules).
        workers: processes for RDKit parsing (default: all usable CPUs).
        progress: called with the number of rows finished, per chunk.
        chunk_store: keep each parsed chunk there as it finishes and reuse the chunks found
            there, so an interrupted run (Ctrl-C, a killed job) loses no finished chunk.
    """
    workers = default_workers() if workers is None else workers
    chunks = [list(smiles[i : i + CHUNK_SIZE]) for i in range(0, len(smiles), CHUNK_SIZE)]
    parsed_chunks: dict[int, _ParsedChunk] = {}
    if chunk_store is not None:
        for number in chunk_store.finished(len(chunks)):
            stored = chunk_store.load(number)
            if stored is not None:
                parsed_chunks[number] = stored
        if parsed_chunks:
            log.info("resuming featurization: %d of %d chunks already done",
                     len(parsed_chunks), len(chunks))
            if progress:
                progress(sum(len(chunks[k]) for k in parsed_chunks))
    todo = [k for k in range(len(chunks)) if k not in parsed_chunks]
    limit = vocab.max_atoms if vocab is not None else max_atoms

    def keep_chunk(position: int, part: list[_ParsedChunk]) -> None:
        if chunk_store is not None:
            chunk_store.save(todo[position], part[0])

    tasks = [(chunks[k], limit) for k in todo]
    for number, part in zip(todo, map_chunks(_parse_chunk, tasks, workers, progress,
                                             [len(chunks[k]) for k in todo], keep_chunk)):
        parsed_chunks[number] = part
    parsed = _merge([parsed_chunks[k] for k in range(len(chunks))], CHUNK_SIZE)
    reasons: list[tuple[int, SkipMolecule]] = list(parsed.skipped)
    k_total = len(parsed.rows)
    mol_of_atom = np.repeat(np.arange(k_total), parsed.n_atoms)
    codes = _token_code(parsed.atom_z, parsed.atom_charge)
    keep = np.ones(k_total, dtype=bool)

    if limit is not None:
        for k in np.flatnonzero(parsed.n_atoms > limit).tolist():
            reasons.append((int(parsed.rows[k]), SkipMolecule(
                "too_many_atoms", f"{int(parsed.n_atoms[k])} > {limit}")))
        keep &= parsed.n_atoms <= limit

    def drop_unknown(allowed_codes: np.ndarray) -> None:
        unknown = ~np.isin(codes, allowed_codes) & keep[mol_of_atom]
        molecules, first = np.unique(mol_of_atom[unknown], return_index=True)
        atom_rows = np.flatnonzero(unknown)[first]
        for k, a in zip(molecules.tolist(), atom_rows.tolist()):
            token = (int(parsed.atom_z[a]), int(parsed.atom_charge[a]))
            reasons.append((int(parsed.rows[k]), SkipMolecule("unknown_atom", atom_symbol(token))))
        keep[molecules] = False

    if vocab is not None:
        drop_unknown(np.asarray([_token_code(z, c) for z, c in vocab.atoms], dtype=np.int64))
    elif atoms is not None:
        drop_unknown(np.asarray([_token_code(*parse_atom_symbol(a)) for a in atoms],
                                dtype=np.int64))
    if vocab is None:
        kept_atoms = keep[mol_of_atom]
        tokens, counts = np.unique(np.stack([parsed.atom_z[kept_atoms],
                                             parsed.atom_charge[kept_atoms]], 1),
                                   axis=0, return_counts=True)
        n_max = limit if limit is not None else int(parsed.n_atoms[keep].max(initial=1))
        vocab = Vocab.from_counts({(int(z), int(c)): int(n) for (z, c), n in zip(tokens, counts)},
                                  max_atoms=n_max, min_count=min_atom_count)
        if min_atom_count > 1:  # tokens below the count make their molecules unknown
            drop_unknown(np.asarray([_token_code(z, c) for z, c in vocab.atoms], dtype=np.int64))

    # pack the kept molecules into dense arrays, all at once
    n = vocab.max_atoms
    new_id = np.cumsum(keep) - 1
    m = int(keep.sum())
    check_dense_size(m, n)
    x_idx = np.zeros((m, n), dtype=np.uint8)
    adj_idx = np.zeros((m, n, n), dtype=np.uint8)
    vocab_codes = np.asarray([_token_code(z, c) for z, c in vocab.atoms], dtype=np.int64)
    order = np.argsort(vocab_codes)
    starts = np.cumsum(parsed.n_atoms) - parsed.n_atoms
    position = np.arange(len(codes)) - np.repeat(starts, parsed.n_atoms)
    atom_kept = keep[mol_of_atom]
    token_index = order[np.searchsorted(vocab_codes[order], codes[atom_kept])] + 1
    x_idx[new_id[mol_of_atom[atom_kept]], position[atom_kept]] = token_index
    bond_kept = keep[parsed.bond_mol] if len(parsed.bond_mol) else np.zeros(0, dtype=bool)
    target = new_id[parsed.bond_mol[bond_kept]]
    i, j = parsed.bond_ij[bond_kept, 0], parsed.bond_ij[bond_kept, 1]
    adj_idx[target, i, j] = parsed.bond_order[bond_kept]
    adj_idx[target, j, i] = parsed.bond_order[bond_kept]

    skipped = Skipped()
    for row, error in sorted(reasons, key=lambda item: item[0]):
        skipped.add(row, smiles[row], error)
    kept_index = np.flatnonzero(keep)
    return Featurized(
        x_idx=x_idx,
        adj_idx=adj_idx,
        smiles=[parsed.canonical[k] for k in kept_index.tolist()],
        rows=parsed.rows[keep],
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
    """Decode ``[M, N]``/``[M, N, N]`` index arrays to canonical SMILES (``None`` = invalid),
    each distinct graph once, in ``workers`` forked processes from ``FORK_MIN_ROWS`` distinct
    graphs on Linux (else spawned ones from ``PARALLEL_MIN_ROWS``)."""
    workers = default_workers() if workers is None else workers
    m = len(x_idx)
    if m == 0:
        return []
    # identical graphs decode identically: decode each distinct graph once (a dict of row
    # bytes: about 10x faster than np.unique(axis=0), which sorts the rows)
    keys = np.concatenate([x_idx.reshape(m, -1), adj_idx.reshape(m, -1)], axis=1)
    distinct: dict[bytes, int] = {}  # row bytes -> number of the distinct graph
    first: list[int] = []  # row of each distinct graph's first occurrence
    inverse = []
    for row, key in enumerate(keys):
        number = distinct.setdefault(key.tobytes(), len(distinct))
        if number == len(first):
            first.append(row)
        inverse.append(number)
    x_u, adj_u = x_idx[first], adj_idx[first]
    # chunks of at most CHUNK_SIZE graphs, in a multiple of ``workers`` equal chunks
    rounds = -(-len(x_u) // (max(workers, 1) * CHUNK_SIZE))
    step = -(-len(x_u) // (max(workers, 1) * rounds))
    chunks = [(x_u[i : i + step], adj_u[i : i + step], vocab.to_dict())
              for i in range(0, len(x_u), step)]
    # forked workers: decoding is RDKit and numpy only, and a fork starts in milliseconds
    decoded = map_chunks(_decode_chunk, chunks, workers, None, [len(c[0]) for c in chunks],
                         fork=True)
    if progress:
        progress(m)
    return [decoded[j] for j in inverse]


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
