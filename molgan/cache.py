"""Small on-disk cache of numpy arrays keyed by a list of SMILES (reference statistics)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np


def smiles_digest(smiles: Sequence[str], salt: str) -> str:
    """Stable hex digest of ``salt`` and the SMILES list (order matters)."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(salt.encode())
    for s in smiles:
        digest.update(s.encode() + b"\n")
    return digest.hexdigest()


def cached_arrays(path: Path, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Load ``path`` (.npz) if present, else compute, write atomically and return."""
    if path.is_file():
        with np.load(path, allow_pickle=False) as stored:
            return {k: stored[k] for k in stored.files}
    arrays = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(tmp, path)
    return arrays
