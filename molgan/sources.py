"""Where molecules come from: the embedded QM9 (``qm9pack`` wheel), MOSES (``molsets`` wheel,
optional) or a user file.

Every source is read on demand (never at import) into a :class:`SmilesTable`: the SMILES strings,
one id per row (QM9's original ``Index`` 1..133885, or the 0-based row number of a MOSES split or
a user file), a name and a content hash that keys the featurization cache.

Source names: ``qm9``; ``moses`` (MOSES's train split, 1,584,663 molecules), ``moses:test``
(176,074) and ``moses:test_scaffolds`` (176,225, scaffolds absent from train); else a path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

QM9_PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
SMILES_COLUMN_GUESSES = ("SMILES", "smiles", "Smiles", "canonical_smiles", "smi")
#: MOSES source name -> file inside the ``molsets`` wheel's ``moses/dataset/data``.
MOSES_SPLITS = {"moses": "train.csv.gz", "moses:test": "test.csv.gz",
                "moses:test_scaffolds": "test_scaffolds.csv.gz"}
#: molsets pins pomegranate 0.12, which does not build on current Python, and molgan needs only
#: its data files: hence ``--no-deps``.
MOSES_INSTALL = "pip install --no-deps molsets==0.3.1"


class DataError(Exception):
    """A data source that cannot be read (missing, empty, wrong column); message is one line."""


@dataclass(frozen=True)
class SmilesTable:
    """Raw rows of a source. ``smiles[i]`` has id ``ids[i]``; empty rows are ``''``."""

    smiles: list[str]
    ids: np.ndarray
    name: str
    content_hash: str


def require_file(path: Path) -> None:
    """Raise :class:`DataError` unless ``path`` is a readable file (saying what it is instead)."""
    if path.is_dir():
        raise DataError(f"{path} is a folder; give a .smi, .txt, .csv or .sdf file")
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    if not os.access(path, os.R_OK):
        raise DataError(f"cannot read {path} (permission denied)")


def qm9_files() -> list[Path]:
    """Paths of the QM9 CSVs inside the installed ``qm9pack`` wheel, found without importing it.

    ``import qm9pack`` (and ``importlib.resources.files('qm9pack')``) runs its ``__init__``,
    which imports ``pkg_resources``, gone from current setuptools; ``find_spec`` only locates it.
    """
    package = package_folder("qm9pack")
    if package is None:
        raise DataError("QM9 needs the 'qm9pack' package: pip install qm9pack")
    root = package / "data"
    paths = [root / part for part in QM9_PARTS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"qm9pack is installed but its data files are missing: {missing}")
    return paths


def package_folder(name: str) -> Path | None:
    """Folder of the installed package ``name``, found without importing (executing) it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def is_moses(source: str) -> bool:
    """Whether ``source`` names a MOSES split (``moses``, ``moses:test``, ...)."""
    return source.lower() in MOSES_SPLITS


def moses_folder() -> Path:
    """``moses/`` of the installed ``molsets`` wheel (data and filter files), not imported:
    ``import moses`` fails on pandas >= 2 and would pull its dependencies into the run."""
    root = package_folder("moses")
    if root is None:
        raise DataError(f"MOSES needs the data files of the 'molsets' package (51 MB): "
                        f"{MOSES_INSTALL}")
    return root


def moses_file(source: str) -> Path:
    """The gzipped CSV of a MOSES split (see :data:`MOSES_SPLITS`)."""
    if not is_moses(source):
        raise DataError(f"unknown MOSES split {source!r}: use one of {sorted(MOSES_SPLITS)}")
    path = moses_folder() / "dataset" / "data" / MOSES_SPLITS[source.lower()]
    if not path.is_file():
        raise DataError(f"a 'moses' package is installed at {path.parents[2]} but {path.name} "
                        f"is not in it: {MOSES_INSTALL}")
    return path


def hash_files(paths: list[Path], extra: str = "") -> str:
    """BLAKE2b (16 bytes, hex) of ``extra`` and the bytes of ``paths`` in order, read in
    4 MiB blocks."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(extra.encode())
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def _wheel_fingerprint(distribution: str, paths: list[Path]) -> str:
    """Hash of data files from their wheel's RECORD (sha256 per file) and their sizes.

    Hashing the 217 MB of QM9 CSVs would take most of a second on every cache hit; the wheel's
    RECORD already holds a content hash of each file. Falls back to hashing the bytes.
    """
    from importlib import metadata

    try:
        files = metadata.distribution(distribution).files or []
    except metadata.PackageNotFoundError:
        files = []
    record = {Path(str(f)).name: f.hash.value for f in files if f.hash is not None}
    if all(p.name in record for p in paths):
        text = ";".join(f"{p.name}:{record[p.name]}:{p.stat().st_size}" for p in paths)
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    return hash_files(paths)


def source_fingerprint(source: str, smiles_column: str | None = None) -> tuple[str, str]:
    """``(name, content_hash)`` of a source without parsing it (cheap: keys the cache)."""
    if source.lower() == "qm9":
        return "qm9", _wheel_fingerprint("qm9pack", qm9_files())
    if is_moses(source):
        name = source.lower().replace(":", "-")
        return name, _wheel_fingerprint("molsets", [moses_file(source)])
    path = Path(source)
    require_file(path)
    return path.stem, hash_files([path], extra=f"{path.suffix.lower()}:{smiles_column}")


def read_qm9() -> SmilesTable:
    """All 130,831 QM9 molecules: the ``SMILES`` and ``Index`` columns of qm9pack's CSVs."""
    import pandas as pd

    paths = qm9_files()
    frames = [pd.read_csv(p, usecols=["Index", "SMILES"]) for p in paths]
    table = pd.concat(frames, ignore_index=True)
    return SmilesTable(
        smiles=table["SMILES"].fillna("").astype(str).tolist(),
        ids=table["Index"].to_numpy(dtype=np.int64),
        name="qm9",
        content_hash=_wheel_fingerprint("qm9pack", paths),
    )


def read_moses(source: str = "moses") -> SmilesTable:
    """A MOSES split: the ``SMILES`` column of its CSV; ids are row numbers (0-based)."""
    smiles = read_csv_column(moses_file(source), "SMILES")
    name, content_hash = source_fingerprint(source)
    return SmilesTable(smiles=smiles, ids=np.arange(len(smiles), dtype=np.int64),
                       name=name, content_hash=content_hash)


def read_smiles_file(path: str | Path, smiles_column: str | None = None) -> SmilesTable:
    """Read a ``.smi``/``.txt`` (first token per line), ``.csv`` or ``.sdf`` file.

    Args:
        path: the file.
        smiles_column: CSV column holding SMILES; by default the first of
            :data:`SMILES_COLUMN_GUESSES` present.

    Raises:
        DataError: missing, unreadable or empty file, unknown extension, or missing column.
    """
    path = Path(path)
    require_file(path)
    suffix = path.suffix.lower()
    if suffix in (".smi", ".txt", ".smiles"):
        smiles = _read_smi(path)
    elif suffix == ".csv":
        smiles = read_csv_column(path, smiles_column)
    elif suffix == ".sdf":
        smiles = read_sdf_smiles(path)
    else:
        raise DataError(f"unknown file type {suffix!r} for {path}: use .smi, .txt, .csv or .sdf")
    if not smiles or all(not s.strip() for s in smiles):
        raise DataError(f"no molecules in {path}")
    return SmilesTable(
        smiles=smiles,
        ids=np.arange(len(smiles), dtype=np.int64),
        name=path.stem,
        content_hash=source_fingerprint(str(path), smiles_column)[1],
    )


def read_source(source: str, smiles_column: str | None = None) -> SmilesTable:
    """``'qm9'`` for the embedded QM9, a MOSES split name, anything else is a file path."""
    if source.lower() == "qm9":
        return read_qm9()
    if is_moses(source):
        return read_moses(source)
    return read_smiles_file(source, smiles_column)


def read_text_lines(path: Path) -> list[str]:
    """The lines of a text file, the one reading policy of every command: UTF-8, with bytes
    that are not UTF-8 replaced (U+FFFD), so such a row fails to parse and is counted, as
    invalid or skipped, instead of stopping the command."""
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def _read_smi(path: Path) -> list[str]:
    lines = read_text_lines(path)
    rows = [line.split()[0] if line.split() else "" for line in lines]
    if rows and rows[0].lower() in ("smiles", "smi"):
        rows = rows[1:]
    # trailing blank lines are file formatting, not rows
    while rows and not rows[-1]:
        rows.pop()
    return rows


def read_csv_column(path: Path, smiles_column: str | None) -> list[str]:
    import pandas as pd

    try:
        header = pd.read_csv(path, nrows=0, encoding_errors="replace")
    except pd.errors.EmptyDataError:
        raise DataError(f"no molecules in {path}") from None
    columns = list(header.columns)
    column = smiles_column
    if column is None:
        column = next((c for c in SMILES_COLUMN_GUESSES if c in columns), None)
        if column is None:
            raise DataError(
                f"{path} has no SMILES column among {columns}; choose one with --smiles-column"
            )
    elif column not in columns:
        raise DataError(f"column {column!r} not in {path}; columns are {columns}")
    frame = pd.read_csv(path, usecols=[column], dtype=str, keep_default_na=False,
                        encoding_errors="replace")
    return frame[column].astype(str).tolist()


def read_sdf_smiles(path: Path) -> list[str]:
    from rdkit import Chem, rdBase

    smiles: list[str] = []
    with rdBase.BlockLogs():
        try:
            supplier = Chem.SDMolSupplier(str(path), sanitize=True, removeHs=True)
        except OSError:  # RDKit refuses an empty file
            raise DataError(f"no molecules in {path} (an empty or unreadable SDF file)") from None
        for i, mol in enumerate(supplier):
            if mol is None:
                # kept as a row that will fail to parse, so it is counted, not lost
                smiles.append(f"<unreadable SDF record {i}>")
            else:
                smiles.append(Chem.MolToSmiles(mol))
    return smiles
