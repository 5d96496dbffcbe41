"""``scripts/moses_screen.py``: the quick figures of a MOSES screen, on molecules counted by hand."""

from __future__ import annotations

import numpy as np
import pytest

from tests.scripts import load_script

pytest.importorskip("rdkit.Chem")
pytest.importorskip("fcd")

DRUGS = [
    "CC(=O)Oc1ccccc1C(=O)O",  # aspirin: 13 heavy atoms, 1 ring
    "CC(=O)Nc1ccc(O)cc1",  # paracetamol: 11, 1 ring
    "Cn1cnc2c1c(=O)n(C)c(=O)n2C",  # caffeine: 14, 2 rings
    "CC(C)Cc1ccc(C(C)C(=O)O)cc1",  # ibuprofen: 15, 1 ring
    "COc1ccc2cc(C(C)C(=O)O)ccc2c1",  # naproxen: 17, 2 rings
    "CN1CCC[C@H]1c1cccnc1",  # nicotine: 12, 2 rings
]
OTHERS = ["CCCCCCCC", "C=CC=CC=CC=CC=C", "OCC(O)CO", "CC1CCCCC1", "c1ccc2ccccc2c1", "CCN(CC)CC"]


@pytest.fixture(scope="module")
def screen():
    return load_script("moses_screen")


def _reference(smiles: list[str]) -> tuple:
    from molgan.fcd_stats import chemnet_statistics
    from molgan.metrics import canonicalize
    from molgan.moses_metrics import fragment_counts

    canonical, mols = canonicalize(smiles)
    return chemnet_statistics(canonical), fragment_counts(mols)


def test_counts_of_valid_connected_unique_and_per_molecule_means(screen) -> None:
    # 10 rows: six drugs, a two-fragment molecule, an unclosed ring, an empty row, a repeat
    samples = [*DRUGS, "CCO.CC", "C1CC", None, DRUGS[0]]
    fcd_reference, fragments = _reference(DRUGS)
    figures = screen.screen_figures(samples, fcd_reference, fragments)
    assert figures["n"] == 10
    assert figures["valid"] == pytest.approx(8 / 10)
    assert figures["connected"] == pytest.approx(7 / 10)
    assert figures["unique"] == pytest.approx(7 / 8)
    assert figures["atoms"] == pytest.approx((13 + 11 + 14 + 15 + 17 + 12 + 5 + 13) / 8)
    assert figures["rings"] == pytest.approx((1 + 1 + 2 + 1 + 2 + 2 + 0 + 1) / 8)
    assert 0 < figures["aromatic_rings"] <= figures["rings"]
    assert 1 < figures["sa"] < 10


def test_a_set_scored_against_itself_is_closer_than_another_set(screen) -> None:
    fcd_reference, fragments = _reference(DRUGS)
    itself = screen.screen_figures(DRUGS, fcd_reference, fragments)
    other = screen.screen_figures(OTHERS, fcd_reference, fragments)
    assert itself["fcd_test"] == pytest.approx(0.0, abs=1e-3)
    assert itself["frag_test"] == pytest.approx(1.0)
    assert other["fcd_test"] > 1.0
    assert other["frag_test"] < itself["frag_test"]


def test_the_wheel_statistics_when_molsets_is_installed() -> None:
    from molgan.moses_metrics import wheel_test_statistics
    from molgan.sources import package_folder

    if package_folder("moses") is None:
        pytest.skip("the molsets wheel is not installed")
    stats = wheel_test_statistics()
    assert stats["FCD"]["mu"].shape == (512,)
    assert stats["FCD"]["sigma"].shape == (512, 512)
    assert len(stats["Frag"]["frag"]) > 10_000
    assert np.isfinite(stats["FCD"]["sigma"]).all()


def test_the_filter_split_scores_passing_and_failing_samples_apart(screen) -> None:
    from rdkit import Chem

    # a stand-in filter that rejects any oxygen: nicotine and five of OTHERS pass; five drugs,
    # glycerol and a 9-membered ring (too large for MOSES's filters) fail; one row is invalid
    patterns = [Chem.MolFromSmarts("[#8]")]
    passing = [DRUGS[5], *[s for s in OTHERS if "O" not in s]]
    samples = [*DRUGS, *OTHERS, "C1CCCCCCCC1", "C1CC"]
    fcd_reference, _ = _reference(passing)
    figures = screen.filter_split(samples, fcd_reference, patterns)
    assert figures["filters"] == pytest.approx(6 / 13)
    assert figures["large_rings"] == pytest.approx(1 / 13)
    assert figures["split_size"] == 6
    assert figures["fcd_pass"] == pytest.approx(0.0, abs=1e-3)  # all six passing ones
    assert figures["fcd_fail"] > 1.0
    assert figures["fcd_pass"] < figures["fcd_all"] < figures["fcd_fail"]
