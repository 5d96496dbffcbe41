"""Shared fixtures: a small molecule list, and QM9 featurized once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

# Hand-picked QM9-like molecules: single atoms, charges, aromatic rings, triple bonds, rings.
SMALL_SMILES = [
    "C", "N", "O", "CC", "CO", "C#N", "C#C", "CC#N", "OCC", "C=O", "NC=O", "CC(=O)O",
    "c1ccccc1", "c1ccncc1", "c1cc[nH]c1", "c1ccoc1", "C1CC1", "C1CCC1", "FC(F)F",
    "C[NH3+]", "CC(=O)[O-]", "[NH3+]CC(=O)[O-]", "C[N+](C)(C)C", "[C-]#[N+]C", "CC1=CC=CO1",
    "O=C1CCCC1", "N#CC1CO1", "CC(C)(C)O", "OC1=NC=CO1", "C1=CN=CN1",
]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One featurization cache for the whole session."""
    return tmp_path_factory.mktemp("molgan_cache")


@pytest.fixture(scope="session")
def qm9(cache_dir: Path):
    """All of QM9, featurized (cold) once per session."""
    from molgan.dataset import load_dataset

    return load_dataset("qm9", cache_dir=cache_dir)


@pytest.fixture()
def small_smi(tmp_path: Path) -> Path:
    """A .smi file of :data:`SMALL_SMILES`."""
    path = tmp_path / "small.smi"
    path.write_text("\n".join(SMALL_SMILES) + "\n")
    return path


#: 2,001 QM9 molecules shipped in the repository (data/README.md, "Fixtures").
QM9_FIXTURE = Path(__file__).resolve().parents[1] / "data" / "fixtures" / "qm9_2k.smi"


@pytest.fixture(scope="session")
def train_data(cache_dir: Path):
    """A small QM9 sample, featurized once per session: what the fast training tests use."""
    from molgan.dataset import load_dataset

    return load_dataset(str(QM9_FIXTURE), cache_dir=cache_dir)
