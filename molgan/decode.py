"""Index graphs -> canonical SMILES, each distinct graph once, in worker processes while the
caller makes the next batch of graphs.

:class:`GraphDecoder` takes graphs batch by batch (``add``) and returns their SMILES in arrival
order (``finish``). On Linux with ``workers > 1``, once ``FORK_MIN_ROWS`` distinct graphs have
arrived it forks ``workers - 1`` processes (they start in milliseconds with this process's
modules loaded, and use RDKit and numpy only: torch's thread pools do not survive a fork),
which decode chunks of ``STREAM_CHUNK`` distinct graphs while the caller generates. At
``finish`` this process decodes the chunks that no worker has started yet, from the last one
backwards, while the workers take them from the front: the two sides meet wherever the work
is shared equally, without a fixed split.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from types import TracebackType
from typing import Any

import numpy as np

from molgan.chem import decode_smiles
from molgan.featurize import Progress, default_workers, map_chunks
from molgan.vocab import Vocab

#: Distinct graphs from which a :class:`GraphDecoder` forks its workers (about 20 ms to start;
#: spawned ones, from ``molgan.featurize.PARALLEL_MIN_ROWS``, take about a second).
FORK_MIN_ROWS = 2_048
#: Distinct graphs per chunk of a :class:`GraphDecoder`: about 60 ms of RDKit, small enough
#: for the sharing at ``finish`` to come out nearly even.
STREAM_CHUNK = 1024


def _decode_chunk(args: tuple[np.ndarray, np.ndarray, dict[str, Any]]) -> list[str | None]:
    x_idx, adj_idx, vocab = args
    return decode_smiles(x_idx, adj_idx, Vocab.from_dict(vocab))


class GraphDecoder:
    """Canonical SMILES (``None`` = invalid) of index graphs ``x_idx [M, N]``,
    ``adj_idx [M, N, N]`` that arrive batch by batch; each distinct graph is decoded once.

    Use as a context manager (the worker processes are shut down on leaving it)::

        with GraphDecoder(vocab, workers=2) as decoder:
            for x_idx, adj_idx in batches:
                decoder.add(x_idx, adj_idx)
            smiles = decoder.finish()

    Without forked workers (one worker, fewer than ``FORK_MIN_ROWS`` distinct graphs, or not
    Linux), ``finish`` decodes everything with :func:`molgan.featurize.map_chunks`: in this
    process, or in spawned workers from ``PARALLEL_MIN_ROWS`` rows.
    """

    def __init__(self, vocab: Vocab, workers: int | None = None,
                 chunk_size: int = STREAM_CHUNK) -> None:
        self.vocab = vocab
        self.workers = default_workers() if workers is None else workers
        self.chunk_size = chunk_size
        self._fork = self.workers > 1 and sys.platform == "linux"
        self._number: dict[bytes, int] = {}  # row bytes -> number of the distinct graph
        self._inverse: list[int] = []  # number of each added row's distinct graph
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []  # distinct, not yet chunked
        self._pending_rows = 0
        self._chunks: list[tuple[np.ndarray, np.ndarray, dict[str, Any]]] = []
        self._futures: list[Future[list[str | None]]] = []  # of the first chunks, in order
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> GraphDecoder:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Shut the worker processes down; chunks not yet started are dropped."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def add(self, x_idx: np.ndarray, adj_idx: np.ndarray) -> None:
        """Queue one batch; its distinct graphs not seen before go to the workers in chunks."""
        m = len(x_idx)
        # a dict of row bytes: about 10x faster than np.unique(axis=0), which sorts the rows
        keys = np.concatenate([x_idx.reshape(m, -1), adj_idx.reshape(m, -1)], axis=1)
        before = len(self._number)
        new: list[int] = []  # rows of the graphs not seen before
        for row, key in enumerate(keys):
            number = self._number.setdefault(key.tobytes(), len(self._number))
            if number == before + len(new):
                new.append(row)
            self._inverse.append(number)
        if new:
            self._pending.append((x_idx[new], adj_idx[new]))
            self._pending_rows += len(new)
        self._dispatch(final=False)

    def _dispatch(self, final: bool) -> None:
        """Cut the pending graphs into chunks (whole ones, or all with ``final``) and hand the
        chunks not yet handed out to the workers, forking them when due."""
        if self._pending_rows >= self.chunk_size or (final and self._pending_rows):
            x = np.concatenate([p[0] for p in self._pending])
            adj = np.concatenate([p[1] for p in self._pending])
            whole = len(x) if final else len(x) // self.chunk_size * self.chunk_size
            vocab = self.vocab.to_dict()
            self._chunks += [(x[i : i + self.chunk_size], adj[i : i + self.chunk_size], vocab)
                             for i in range(0, whole, self.chunk_size)]
            self._pending = [(x[whole:], adj[whole:])]
            self._pending_rows = len(x) - whole
        if self._fork and self._pool is None and len(self._number) >= FORK_MIN_ROWS:
            self._pool = ProcessPoolExecutor(max_workers=self.workers - 1,
                                             mp_context=get_context("fork"))
        if self._pool is not None:
            self._futures += [self._pool.submit(_decode_chunk, chunk)
                              for chunk in self._chunks[len(self._futures):]]

    def finish(self) -> list[str | None]:
        """The SMILES of every added row, in the order added (``None`` = invalid)."""
        self._dispatch(final=True)
        if self._pool is None:
            decoded = map_chunks(_decode_chunk, self._chunks, self.workers, None,
                                 [len(chunk[0]) for chunk in self._chunks])
        else:
            parts: list[list[str | None] | None] = [None] * len(self._chunks)
            # this process takes the chunks no worker has started, from the last backwards
            for k in reversed(range(len(self._chunks))):
                if not self._futures[k].cancel():
                    break
                parts[k] = _decode_chunk(self._chunks[k])
            for k, part in enumerate(parts):
                if part is None:
                    try:
                        parts[k] = self._futures[k].result()
                    except BrokenProcessPool:  # a worker died: decode its chunk here
                        parts[k] = _decode_chunk(self._chunks[k])
            self.close()
            decoded = [smiles for part in parts for smiles in part or []]
        return [decoded[number] for number in self._inverse]


def decode_all(
    x_idx: np.ndarray,
    adj_idx: np.ndarray,
    vocab: Vocab,
    workers: int | None = None,
    progress: Progress | None = None,
) -> list[str | None]:
    """Decode ``[M, N]``/``[M, N, N]`` index arrays to canonical SMILES (``None`` = invalid),
    each distinct graph once, with a :class:`GraphDecoder` of ``workers`` processes."""
    with GraphDecoder(vocab, workers) as decoder:
        decoder.add(x_idx, adj_idx)
        smiles = decoder.finish()
    if progress:
        progress(len(x_idx))
    return smiles


def roundtrip_exact(
    featurized_x: np.ndarray,
    featurized_adj: np.ndarray,
    smiles: Sequence[str],
    vocab: Vocab,
    workers: int | None = None,
    progress: Progress | None = None,
) -> tuple[float, list[int]]:
    """Fraction of rows whose decoded canonical SMILES equals the canonical input, and the
    misses."""
    decoded = decode_all(featurized_x, featurized_adj, vocab, workers, progress)
    misses = [i for i, (d, s) in enumerate(zip(decoded, smiles)) if d != s]
    total = len(smiles)
    return (1.0 - len(misses) / total if total else float("nan")), misses
