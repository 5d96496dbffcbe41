"""MOSES: the data located in the molsets wheel without importing it, and the MOSES metrics
checked against cases computed by hand and against RDKit's own Tanimoto."""

from __future__ import annotations

import gzip
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from molgan import moses_metrics as mm
from molgan.sources import DataError, moses_file, read_source, source_fingerprint
from tests.graphs import DRUGS

Chem = pytest.importorskip("rdkit.Chem")

#: Fragments of the MCF list's style: a terminal alkyne with an ene ("ene_nitrile" style) and
#: a PAINS-style pattern written with explicit hydrogens, as the wheel's PAINS file does.
MCF = "names,smarts\nMCF_test,[#6]=&!@[#6]-[#6]#[#7]\n"
PAINS = '"[#8]-[#1]","<regId=test_hydroxyl>"\n'


@pytest.fixture()
def fake_molsets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``moses`` package laid out as the molsets wheel, whose ``__init__`` fails if run."""
    root = tmp_path / "site" / "moses"
    data = root / "dataset" / "data"
    data.mkdir(parents=True)
    (root / "metrics").mkdir()
    (root / "__init__.py").write_text("raise ImportError('molgan must not import moses')\n")
    splits = {"train.csv.gz": DRUGS[:8], "test.csv.gz": DRUGS[8:], "test_scaffolds.csv.gz":
              DRUGS[4:10]}
    for name, rows in splits.items():
        with gzip.open(data / name, "wt") as handle:
            handle.write("SMILES\n" + "\n".join(rows) + "\n")
    (root / "metrics" / "mcf.csv").write_text(MCF)
    (root / "metrics" / "wehi_pains.csv").write_text(PAINS)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return root


def mols(smiles: list[str]) -> list:
    return [Chem.MolFromSmiles(s) for s in smiles]


def test_moses_splits_are_read_without_importing_the_package(fake_molsets: Path) -> None:
    table = read_source("moses")
    assert table.smiles == DRUGS[:8]
    assert table.ids.tolist() == list(range(8))
    assert read_source("moses:test").smiles == DRUGS[8:]
    assert read_source("MOSES:test_scaffolds").smiles == DRUGS[4:10]
    assert moses_file("moses").parent == fake_molsets / "dataset" / "data"
    names = {source_fingerprint(s)[0] for s in ("moses", "moses:test", "moses:test_scaffolds")}
    assert names == {"moses", "moses-test", "moses-test_scaffolds"}
    assert len({source_fingerprint(s)[1] for s in ("moses", "moses:test")}) == 2


def test_missing_molsets_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("molgan.sources.package_folder", lambda name: None)
    with pytest.raises(DataError, match=r"pip install --no-deps molsets==0\.3\.1"):
        read_source("moses")


def test_a_moses_package_without_the_data_is_named(fake_molsets: Path) -> None:
    (fake_molsets / "dataset" / "data" / "test.csv.gz").unlink()
    with pytest.raises(DataError, match="test.csv.gz is not in it"):
        read_source("moses:test")


def test_tanimoto_equals_rdkit() -> None:
    from rdkit import DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    molecules = mols(DRUGS)
    fps = mm.morgan_fingerprints(molecules)
    assert fps.shape == (len(DRUGS), 1024) and set(np.unique(fps)) <= {0, 1}
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    bitvects = [generator.GetFingerprint(m) for m in molecules]
    blocks = dict(mm.tanimoto_blocks(fps, fps, block_rows=5))
    assert sorted(blocks) == [0, 5, 10]
    full = np.concatenate([blocks[k].numpy() for k in sorted(blocks)])
    for i, fp in enumerate(bitvects):
        np.testing.assert_allclose(full[i], DataStructs.BulkTanimotoSimilarity(fp, bitvects),
                                   rtol=1e-6)


def test_empty_fingerprints_are_identical() -> None:
    empty = np.zeros((2, 1024), dtype=np.uint8)
    (_, block), = mm.tanimoto_blocks(empty, empty)
    assert block.numpy().tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_snn_and_internal_diversity_by_hand() -> None:
    # three fingerprints over 4 bits (padded to 1024): a = {0, 1}, b = {1, 2}, c = {0, 1}
    fps = np.zeros((3, 1024), dtype=np.uint8)
    fps[0, [0, 1]] = 1
    fps[1, [1, 2]] = 1
    fps[2, [0, 1]] = 1
    t = np.array([[1, 1 / 3, 1], [1 / 3, 1, 1 / 3], [1, 1 / 3, 1]])
    assert mm.internal_diversity(fps, p=1) == pytest.approx(1 - t.mean())
    per_row = np.sqrt((t**2).mean(1))
    assert mm.internal_diversity(fps, p=2) == pytest.approx(1 - per_row.mean())
    # SNN of {b} against {a, c}: 1/3; of {a} against {b, c}: 1
    assert mm.nearest_neighbour_similarity(fps[[1]], fps[[0, 2]]) == pytest.approx(1 / 3)
    assert mm.nearest_neighbour_similarity(fps[[0, 1]], fps[[1, 2]]) == pytest.approx(1.0)
    assert math.isnan(mm.nearest_neighbour_similarity(fps[:0], fps))


def test_cosine_similarity_by_hand() -> None:
    a = Counter({"x": 1, "y": 2})
    b = Counter({"y": 2, "z": 1})
    assert mm.cosine_similarity(a, b) == pytest.approx(4 / (math.sqrt(5) * math.sqrt(5)))
    assert mm.cosine_similarity(a, a) == pytest.approx(1.0)
    assert math.isnan(mm.cosine_similarity(a, Counter()))


def test_fragments_and_scaffolds() -> None:
    aspirin, benzene, biphenyl_ether = mols(["CC(=O)Oc1ccccc1C(=O)O", "c1ccccc1",
                                             "c1ccc(Oc2ccccc2)cc1"])
    fragments = mm.fragment_counts([aspirin, aspirin])
    assert all(count % 2 == 0 for count in fragments.values())  # every fragment twice
    assert any("*" in key for key in fragments)  # cut points are dummy atoms
    assert mm.fragment_counts([benzene]) == Counter({"c1ccccc1": 1})  # no BRICS bond
    # one ring: not counted (MOSES counts scaffolds of two rings or more); two rings: counted
    assert mm.scaffold_counts([aspirin, benzene]) == Counter()
    assert mm.scaffold_counts([biphenyl_ether] * 3) == Counter({"c1ccc(Oc2ccccc2)cc1": 3})
    assert mm.scaffold_counts([benzene], min_rings=1) == Counter({"c1ccccc1": 1})


def test_filters(fake_molsets: Path) -> None:
    patterns = mm.filter_patterns(fake_molsets)
    assert len(patterns) == 2
    verdicts = {s: mm.passes_filters(Chem.MolFromSmiles(s), patterns) for s in [
        "CC(=O)Nc1ccccc1",  # clean
        "CC(=O)[O-]",  # charged
        "CCP(C)C",  # phosphorus
        "C1CCCCCCC1",  # an 8-ring
        "C1CCCCCC1",  # a 7-ring is allowed
        "C=C(C)C#N",  # the MCF pattern
        "CCO",  # the PAINS-style pattern: matches only with explicit hydrogens
    ]}
    assert verdicts == {"CC(=O)Nc1ccccc1": True, "CC(=O)[O-]": False, "CCP(C)C": False,
                        "C1CCCCCCC1": False, "C1CCCCCC1": True, "C=C(C)C#N": False,
                        "CCO": False}


def test_unique_at_counts_the_first_k_valid() -> None:
    assert mm.unique_at(["a", "b", "a", "c"], 2) == 1.0
    assert mm.unique_at(["a", "b", "a", "c"], 3) == pytest.approx(2 / 3)
    assert mm.unique_at(["a", "a"], 10) == 0.5
    assert math.isnan(mm.unique_at([], 10))


def test_reference_statistics_are_cached_exactly(tmp_path: Path) -> None:
    fresh = mm.reference_statistics(DRUGS, tmp_path)
    again = mm.reference_statistics(DRUGS, tmp_path)
    assert len(list(tmp_path.glob("moses-stats-*.npz"))) == 1
    np.testing.assert_array_equal(fresh.fingerprints, mm.morgan_fingerprints(mols(DRUGS)))
    np.testing.assert_array_equal(again.fingerprints, fresh.fingerprints)
    assert again.fragments == fresh.fragments and again.scaffolds == fresh.scaffolds


def test_evaluate_against_moses_from_the_command_line(fake_molsets: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    from molgan.cli import main

    samples = tmp_path / "samples.smi"
    samples.write_text("\n".join(DRUGS[:6] + ["not a molecule", DRUGS[0]]) + "\n")
    out = tmp_path / "eval.json"
    code = main(["evaluate", str(samples), "--train", "moses", "--json", str(out),
                 "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "MOSES SNN/TestSF" in printed
    table = json.loads(out.read_text())["moses"]
    assert table["valid"] == pytest.approx(7 / 8)
    assert table["unique@1000"] == pytest.approx(6 / 7)
    assert table["novelty"] == 0.0  # every sample is a training molecule
    for key in ("FCD/Test", "FCD/TestSF", "SNN/Test", "SNN/TestSF", "Frag/Test", "Scaf/Test",
                "IntDiv1", "IntDiv2", "Filters", "logP", "SA", "QED", "weight"):
        assert key in table, key
    assert 0 < table["SNN/Test"] < 1 and 0 < table["IntDiv1"] < 1
    # the PAINS-style hydroxyl pattern fails aspirin, paracetamol, ibuprofen...
    assert 0 < table["Filters"] < 1


def test_split_options_do_not_apply_to_moses(fake_molsets: Path, tmp_path: Path) -> None:
    from molgan.evaluate import load_reference

    with pytest.raises(DataError, match="--whole and --test-ids do not apply"):
        load_reference("moses", whole=True, cache_dir=tmp_path)
    with pytest.raises(DataError, match="own train"):
        load_reference("moses:test", cache_dir=tmp_path)


def test_real_moses_test_split_passes_its_own_filters() -> None:
    """On the real wheel (skipped where molsets is not installed): MOSES was built with these
    filters, so its molecules pass them all."""
    from molgan.sources import moses_folder, package_folder

    if package_folder("moses") is None:
        pytest.skip("molsets is not installed")
    import pandas as pd

    smiles = pd.read_csv(moses_file("moses:test"), nrows=300)["SMILES"].tolist()
    patterns = mm.filter_patterns(moses_folder())
    assert all(mm.passes_filters(Chem.MolFromSmiles(s), patterns) for s in smiles)


def test_filters_in_worker_processes_match_one_process(fake_molsets: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    smiles = DRUGS + ["CC(=O)[O-]", "C1CCCCCCC1", "C=C(C)C#N"]
    patterns = mm.filter_patterns(fake_molsets)
    expected = sum(mm.passes_filters(Chem.MolFromSmiles(s), patterns) for s in smiles)
    monkeypatch.setattr("molgan.featurize.FORK_MIN_ROWS", 1)
    monkeypatch.setattr(mm, "CHUNK", 4)
    assert mm.filter_fraction(smiles, fake_molsets, workers=2) == expected / len(smiles)
    assert mm.filter_fraction(smiles, fake_molsets, workers=1) == expected / len(smiles)
    assert math.isnan(mm.filter_fraction([], fake_molsets))
