"""Featurized datasets: the on-disk cache, train/validation/test splits, and device batches.

The cache key hashes the source content, the vocabulary request (given vocabulary, allowed
atoms, minimum count), ``max_atoms`` and :data:`molgan.featurize.FEATURIZER_VERSION`; a changed
input never reuses a stale cache. An entry is published whole (one folder renamed into place,
so concurrent runs produce one complete entry) and verified against the sizes and checksums of
its manifest each time it is opened; a damaged entry is reported in one line and rebuilt,
never read as data.

Default split (documented, deterministic): a permutation of the kept molecules by
``numpy.random.default_rng(seed)``, then the first 80% train, next 10% validation, last 10% test.
A split file of source ids (QM9 ``Index``) can instead fix the test (and validation) set.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from molgan.featurize import (
    CHUNK_SIZE,
    FEATURIZER_VERSION,
    ChunkStore,
    Featurized,
    Progress,
    featurize,
)
from molgan.files import temporary_name
from molgan.sources import DataError, hash_files, read_source, source_fingerprint
from molgan.vocab import Vocab

SPLITS = ("train", "valid", "test")
#: Sources at least this large announce their featurization (minutes) when no progress is shown.
LARGE_SOURCE_ROWS = 100_000
log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$MOLGAN_CACHE``, else ``$XDG_CACHE_HOME/molgan``, else ``~/.cache/molgan``."""
    if os.environ.get("MOLGAN_CACHE"):
        return Path(os.environ["MOLGAN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "molgan"


@dataclass
class MoleculeDataset:
    """Featurized molecules of one source.

    Attributes:
        x_idx: ``[M, N]`` uint8 atom token indices, 0 = no atom.
        adj_idx: ``[M, N, N]`` uint8 bond token indices, 0 = no bond; symmetric, zero diagonal.
        smiles: ``[M]`` canonical SMILES (no stereo) of each molecule.
        ids: ``[M]`` int64 source ids (QM9 ``Index``; row number for user files).

    Loaded from the cache, the arrays are read-only memory maps: opening a dataset of millions
    of molecules costs no RAM until rows are used; :meth:`subset` copies only the chosen rows.
        vocab: the vocabulary (``T``, ``Y``, ``N``).
        report: the preparation report (counts, skipped reasons, timings).
    """

    x_idx: np.ndarray
    adj_idx: np.ndarray
    smiles: np.ndarray
    ids: np.ndarray
    vocab: Vocab
    report: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.x_idx.shape[0])

    def subset(self, index: np.ndarray) -> MoleculeDataset:
        """The molecules at ``index`` (same vocabulary)."""
        return MoleculeDataset(
            self.x_idx[index], self.adj_idx[index], self.smiles[index], self.ids[index],
            self.vocab, self.report,
        )

    def split_indices(
        self,
        seed: int = 0,
        fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
        split_ids: dict[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """Indices of the train/valid/test split.

        Without ``split_ids``: a seeded permutation cut by ``fractions`` (train, valid, test).
        With ``split_ids`` (``{'test': ids, 'valid': ids}``, source ids): those molecules form the
        named splits (ids not in the dataset are ignored) and the rest is train.
        """
        n = len(self)
        if split_ids is None:
            if abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
                raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
            order = np.random.default_rng(seed).permutation(n)
            n_train = int(round(fractions[0] * n))
            n_valid = int(round(fractions[1] * n))
            return {
                "train": np.sort(order[:n_train]),
                "valid": np.sort(order[n_train : n_train + n_valid]),
                "test": np.sort(order[n_train + n_valid :]),
            }
        out: dict[str, np.ndarray] = {}
        taken = np.zeros(n, dtype=bool)
        for name in ("test", "valid"):
            ids = split_ids.get(name)
            member = np.isin(self.ids, ids) if ids is not None else np.zeros(n, dtype=bool)
            member &= ~taken
            out[name] = np.flatnonzero(member)
            taken |= member
        out["train"] = np.flatnonzero(~taken)
        return {name: out[name] for name in SPLITS}

    def split(self, **kwargs: Any) -> dict[str, MoleculeDataset]:
        """The splits of :meth:`split_indices` as datasets."""
        return {k: self.subset(v) for k, v in self.split_indices(**kwargs).items()}


def read_split_file(path: str | Path, offset: int = 0) -> dict[str, np.ndarray]:
    """Read a JSON split file of source ids.

    Accepted forms: a list (the test ids) or an object whose keys name splits: ``test``,
    ``valid``/``val``/``validation``; GDSS/MoFlow's ``valid_idxs`` file (their test set) is read
    as ``test``. Ids may be ints or digit strings; ``offset`` is added to each (the GDSS file
    holds 0-based QM9 row ids: pass ``offset=1`` to get QM9 ``Index`` values).
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read split file {path}: {exc}") from None
    aliases = {"test": "test", "valid_idxs": "test", "valid": "valid", "val": "valid",
               "validation": "valid"}
    if isinstance(data, list):
        data = {"test": data}
    if not isinstance(data, dict) or not any(k in aliases for k in data):
        raise DataError(f"split file {path} has none of the keys {sorted(aliases)}")
    out: dict[str, np.ndarray] = {}
    for key, values in data.items():
        if key in aliases:
            out[aliases[key]] = np.asarray([int(v) for v in values], dtype=np.int64) + offset
    return out


def _cache_key(content_hash: str, request: dict[str, Any]) -> str:
    text = json.dumps({"content": content_hash, "version": FEATURIZER_VERSION,
                       "cache_format": CACHE_FORMAT, **request},
                      sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


#: Bumped when the cache layout changes (part of every cache key).
CACHE_FORMAT = 3
_ARRAY_NAMES = ("x_idx", "adj_idx", "smiles", "ids")
_MANIFEST = "manifest.json"


class DamagedEntry(Exception):
    """A cache entry whose files do not match its manifest (message: which file and how)."""


def cache_paths(cache_dir: Path, name: str, key: str) -> dict[str, Path]:
    """Where one cached dataset lives.

    ``entry`` is a folder published whole by one rename: the ``.npy`` arrays (memory-mapped
    when read), ``report.json``, ``skipped.csv`` and ``manifest.json`` (the size and BLAKE2b
    checksum of every other file, written last). ``chunks`` holds the finished parse chunks
    while featurization is under way.
    """
    stem = f"{name}-{key}"
    entry = cache_dir / stem
    return {
        "entry": entry,
        "report": entry / "report.json",
        "skipped": entry / "skipped.csv",
        "chunks": cache_dir / f"{stem}.chunks-{CHUNK_SIZE}",
    }


def verify_entry(entry: Path) -> None:
    """Check every file of a cache entry against its manifest (sizes first, then checksums).

    Raises:
        DamagedEntry: a file is missing, of another size, or of other content; or the
            manifest itself is missing or unreadable.
    """
    try:
        manifest = json.loads((entry / _MANIFEST).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DamagedEntry(f"{_MANIFEST} unreadable ({type(exc).__name__})") from None
    for name, expected in files.items():
        path = entry / name
        if not path.is_file():
            raise DamagedEntry(f"{name} is missing")
        size = path.stat().st_size
        if size != expected["bytes"]:
            raise DamagedEntry(f"{name} has {size:,} bytes, {expected['bytes']:,} expected")
    for name, expected in files.items():
        if hash_files([entry / name]) != expected["blake2b"]:
            raise DamagedEntry(f"{name} does not match its checksum")


def _discard(entry: Path) -> None:
    """Remove a cache folder: renamed aside first, so no reader ever sees it half deleted."""
    aside = entry.with_name(f".{entry.name}.{os.getpid()}.discarded")
    try:
        os.replace(entry, aside)
    except FileNotFoundError:  # another process discarded it first
        return
    shutil.rmtree(aside, ignore_errors=True)


def load_dataset(
    source: str = "qm9",
    smiles_column: str | None = None,
    max_atoms: int | None = None,
    atoms: Sequence[str] | None = None,
    min_atom_count: int = 1,
    vocab: Vocab | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    workers: int | None = None,
    progress: Progress | None = None,
) -> MoleculeDataset:
    """Read, featurize and cache a source (``'qm9'`` or a file); a cache hit skips RDKit entirely.

    Raises:
        DataError: the source cannot be read, or no molecule in it can be represented.
    """
    start = time.perf_counter()
    name, content_hash = source_fingerprint(source, smiles_column)
    request = {
        "max_atoms": max_atoms,
        "atoms": sorted(atoms) if atoms else None,
        "min_atom_count": min_atom_count,
        "vocab": vocab.to_dict() if vocab else None,
        "smiles_column": smiles_column,
    }
    key = _cache_key(content_hash, request)
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    paths = cache_paths(directory, name, key)
    if use_cache and paths["entry"].is_dir():
        cached = _open_entry(paths, start)
        if cached is not None:
            return cached

    table = read_source(source, smiles_column)
    if progress is None and len(table.smiles) >= LARGE_SOURCE_ROWS:
        log.info("featurizing %s (%s molecules) once, into the cache at %s: minutes for a set "
                 "this large ('molgan prepare --data %s' shows progress)", name,
                 f"{len(table.smiles):,}", directory, source)

    chunk_store = ChunkStore(paths["chunks"]) if use_cache else None
    result = featurize(table.smiles, vocab=vocab, max_atoms=max_atoms, atoms=atoms,
                       min_atom_count=min_atom_count, workers=workers, progress=progress,
                       chunk_store=chunk_store)
    if len(result.rows) == 0:
        reasons = ", ".join(f"{k}: {v}" for k, v in result.skipped.counts().items())
        raise DataError(f"no molecule in {source} could be featurized ({reasons})")
    report = _report(source, table.smiles, result, time.perf_counter() - start)
    report["cache_files"] = {k: str(v) for k, v in paths.items()}
    dataset = MoleculeDataset(
        x_idx=result.x_idx,
        adj_idx=result.adj_idx,
        smiles=np.asarray(result.smiles, dtype=str),
        ids=table.ids[result.rows],
        vocab=result.vocab,
        report=report,
    )
    if use_cache:
        assert chunk_store is not None
        if not _publish_entry(paths, dataset, result, table.ids):
            # another process published the same entry first: read that one
            cached = _open_entry(paths, start)
            if cached is not None:
                dataset = cached
        chunk_store.remove()
    return dataset


def _report(source: str, rows: Sequence[str], result: Featurized, seconds: float) -> dict[str, Any]:
    return {
        "source": source,
        "n_read": len(rows),
        "n_kept": len(result.rows),
        "skipped": result.skipped.counts(),
        "atom_tokens": result.vocab.atom_symbols[1:],
        "bond_tokens": result.vocab.to_dict()["bonds"],
        "max_atoms": result.vocab.max_atoms,
        "vocab": result.vocab.to_dict(),
        "featurizer_version": FEATURIZER_VERSION,
        "featurize_seconds": round(seconds, 3),
    }


def _publish_entry(
    paths: dict[str, Path], data: MoleculeDataset, result: Featurized, source_ids: np.ndarray,
) -> bool:
    """Write a complete entry into a temporary folder and rename it into place in one step.

    Returns ``False`` when another process published the entry first (its entry is kept).
    """
    entry = paths["entry"]
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(entry)
    try:
        tmp.mkdir()
        for name in _ARRAY_NAMES:
            np.save(tmp / f"{name}.npy", getattr(data, name), allow_pickle=False)
        with open(tmp / "skipped.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["row", "id", "smiles", "reason", "detail"])
            skipped = result.skipped
            for row, smi, reason, detail in zip(skipped.rows, skipped.smiles, skipped.reasons,
                                                skipped.details):
                writer.writerow([row, int(source_ids[row]), smi, reason, detail])
        (tmp / "report.json").write_text(json.dumps(data.report, indent=2))
        files = {path.name: {"bytes": path.stat().st_size, "blake2b": hash_files([path])}
                 for path in sorted(tmp.iterdir())}
        (tmp / _MANIFEST).write_text(json.dumps({"format": CACHE_FORMAT, "files": files},
                                                indent=2))
        try:
            os.rename(tmp, entry)  # fails if the folder exists: the first publisher wins
        except OSError:
            if entry.is_dir():
                return False
            raise
        return True
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)


def _open_entry(paths: dict[str, Path], start: float) -> MoleculeDataset | None:
    """The cached dataset, verified against its manifest; ``None`` (after saying so in one
    log line and discarding the entry) when it is damaged, so the caller rebuilds it."""
    entry = paths["entry"]
    try:
        verify_entry(entry)
        report = json.loads(paths["report"].read_text())
        arrays = {name: np.load(entry / f"{name}.npy", mmap_mode="r", allow_pickle=False)
                  for name in _ARRAY_NAMES}
        dataset = MoleculeDataset(**arrays, vocab=Vocab.from_dict(report["vocab"]),
                                  report=report)
    except (DamagedEntry, OSError, ValueError, KeyError) as exc:
        log.warning("cache entry %s is damaged (%s); rebuilding it", entry, exc)
        _discard(entry)
        return None
    report["cache_hit"] = True
    report["cache_files"] = {k: str(v) for k, v in paths.items()}
    report["load_seconds"] = round(time.perf_counter() - start, 3)
    return dataset
