"""Small on-disk cache of numpy arrays keyed by a list of SMILES (reference statistics)."""

from __future__ import annotations

import hashlib
import logging
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from molgan.files import atomic_output

log = logging.getLogger(__name__)


def smiles_digest(smiles: Sequence[str], salt: str) -> str:
    """Stable hex digest of ``salt`` and the SMILES list (order matters)."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(salt.encode())
    for s in smiles:
        digest.update(s.encode() + b"\n")
    return digest.hexdigest()


def cached_arrays(path: Path, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Load ``path`` (.npz) if present and intact, else compute, write atomically and return.

    A damaged file (truncated, or a byte changed: the zip format's CRC-32 of each array
    catches it) is reported in one log line and computed again.
    """
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                return {k: stored[k] for k in stored.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            log.warning("cached statistics %s are damaged (%s); computing them again", path,
                        type(exc).__name__)
    arrays = compute()
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    return arrays
