import json

import numpy as np
import pytest

from molgan.dataset import load_dataset, read_split_file
from molgan.featurize import roundtrip_exact
from molgan.sources import DataError

from .conftest import SMALL_SMILES


@pytest.mark.slow
def test_all_of_qm9_is_kept_and_round_trips_exactly(qm9):
    """SMILES -> tensors -> SMILES over all 130,831 QM9 molecules."""
    assert len(qm9) == 130_831
    assert qm9.report["skipped"] == {}
    assert qm9.vocab.max_atoms == 9
    assert qm9.vocab.atom_symbols[1:] == ["C", "O", "N", "F", "N+", "O-", "C-", "N-"]
    fraction, misses = roundtrip_exact(qm9.x_idx, qm9.adj_idx, list(qm9.smiles), qm9.vocab)
    assert misses == [] and fraction == 1.0


@pytest.mark.slow
def test_qm9_node_existence_comes_from_atoms_not_bonds(qm9):
    n_atoms = (qm9.x_idx > 0).sum(1)
    assert (n_atoms == 1).sum() == 3  # methane, ammonia, water
    assert set(qm9.smiles[n_atoms == 1].tolist()) == {"C", "N", "O"}
    assert qm9.ids.min() >= 1 and qm9.ids.max() <= 133_885


def test_cache_hit_returns_identical_arrays(small_smi, tmp_path):
    first = load_dataset(str(small_smi), cache_dir=tmp_path)
    second = load_dataset(str(small_smi), cache_dir=tmp_path)
    assert second.report.get("cache_hit") and not first.report.get("cache_hit")
    np.testing.assert_array_equal(first.x_idx, second.x_idx)
    np.testing.assert_array_equal(first.adj_idx, second.adj_idx)
    assert first.smiles.tolist() == second.smiles.tolist()
    assert first.vocab == second.vocab


def test_cache_is_invalidated_by_max_atoms_tokens_and_content(small_smi, tmp_path):
    base = load_dataset(str(small_smi), cache_dir=tmp_path)
    other_n = load_dataset(str(small_smi), cache_dir=tmp_path, max_atoms=12)
    assert not other_n.report.get("cache_hit") and other_n.x_idx.shape[1] == 12
    only_cno = load_dataset(str(small_smi), cache_dir=tmp_path, atoms=["C", "N", "O"])
    assert not only_cno.report.get("cache_hit") and len(only_cno) < len(base)
    small_smi.write_text("CCO\nCCN\n")
    changed = load_dataset(str(small_smi), cache_dir=tmp_path)
    assert not changed.report.get("cache_hit") and len(changed) == 2


def test_bad_rows_are_counted_and_written_with_reasons(tmp_path):
    path = tmp_path / "bad.smi"
    path.write_text("CCO\nnot_a_smiles\n\nC[Si](C)(C)C\n" + "C" * 40 + "\nc1ccccc1\n")
    data = load_dataset(str(path), cache_dir=tmp_path, max_atoms=9, atoms=["C", "N", "O", "F"])
    assert data.report["n_read"] == 6 and data.report["n_kept"] == 2
    assert data.report["skipped"] == {"unparsable": 1, "empty": 1, "unknown_atom": 1,
                                      "too_many_atoms": 1}
    rows = open(data.report["cache_files"]["skipped"]).read().splitlines()
    assert len(rows) == 5 and rows[0] == "row,id,smiles,reason,detail"


def test_csv_with_a_chosen_column_and_missing_column(tmp_path):
    path = tmp_path / "mols.csv"
    path.write_text("name,smi_col\na,CCO\nb,C#N\n")
    data = load_dataset(str(path), smiles_column="smi_col", cache_dir=tmp_path)
    assert sorted(data.smiles.tolist()) == ["C#N", "CCO"]
    with pytest.raises(DataError, match="no SMILES column"):
        load_dataset(str(path), cache_dir=tmp_path)


def test_sdf_input_is_read_and_unreadable_records_are_counted(tmp_path):
    from rdkit import Chem

    path = tmp_path / "mols.sdf"
    writer = Chem.SDWriter(str(path))
    for smiles in ("CCO", "c1ccccc1"):
        writer.write(Chem.MolFromSmiles(smiles))
    writer.close()
    pentavalent = Chem.MolFromSmiles("C(C)(C)(C)(C)C", sanitize=False)  # fails sanitization
    path.write_text(path.read_text() + Chem.MolToMolBlock(pentavalent, kekulize=False) + "$$$$\n")
    data = load_dataset(str(path), cache_dir=tmp_path)
    assert sorted(data.smiles.tolist()) == ["CCO", "c1ccccc1"]
    assert data.report["skipped"] == {"unparsable": 1}


def test_seeded_split_is_deterministic_and_disjoint(small_smi, tmp_path):
    data = load_dataset(str(small_smi), cache_dir=tmp_path)
    a = data.split_indices(seed=3)
    b = data.split_indices(seed=3)
    c = data.split_indices(seed=4)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert any(not np.array_equal(a[k], c[k]) for k in a)
    together = np.concatenate([a["train"], a["valid"], a["test"]])
    assert sorted(together.tolist()) == list(range(len(SMALL_SMILES)))
    assert len(a["train"]) == round(0.8 * len(SMALL_SMILES))


def test_split_file_of_ids_fixes_the_test_set(small_smi, tmp_path):
    data = load_dataset(str(small_smi), cache_dir=tmp_path)
    split_path = tmp_path / "split.json"
    split_path.write_text(json.dumps({"valid_idxs": ["000002", "000004"]}))
    ids = read_split_file(split_path, offset=1)  # 0-based file ids -> ids 3 and 5
    parts = data.split_indices(split_ids=ids)
    assert data.ids[parts["test"]].tolist() == [3, 5]
    assert len(parts["valid"]) == 0 and len(parts["train"]) == len(data) - 2


@pytest.mark.slow
def test_gdss_split_file_selects_qm9_test_molecules(qm9):
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "data/splits/qm9_gdss_test.json"
    ids = read_split_file(path)  # QM9 Index values (the published 0-based row ids + 1)
    assert len(ids["test"]) == 13_082 and ids["test"].min() >= 1
    parts = qm9.split_indices(split_ids=ids)
    # 13,082 row ids of the 133,885-row table; rows that qm9pack lacks are not in the dataset
    assert 12_000 < len(parts["test"]) <= 13_082
    assert len(parts["train"]) + len(parts["test"]) == len(qm9)


def test_missing_and_empty_files_raise_data_error(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_dataset(str(tmp_path / "missing.smi"), cache_dir=tmp_path)
    empty = tmp_path / "empty.smi"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="no molecules"):
        load_dataset(str(empty), cache_dir=tmp_path)


def test_rare_tokens_below_min_count_are_left_out_and_their_molecules_reported(tmp_path):
    path = tmp_path / "rare.smi"
    path.write_text("CCO\nCCN\nCCF\nOCCN\n")
    data = load_dataset(str(path), cache_dir=tmp_path, min_atom_count=2)
    assert data.vocab.atom_symbols[1:] == ["C", "N", "O"]
    assert data.report["skipped"] == {"unknown_atom": 1}
    assert sorted(data.smiles.tolist()) == ["CCN", "CCO", "NCCO"]


def test_given_vocabulary_is_used_as_is(tmp_path):
    from molgan.vocab import Vocab

    path = tmp_path / "v.smi"
    path.write_text("CCO\nC[N+](C)(C)C\nCCCCCC\nCCN\n")
    vocab = Vocab.from_symbols(["C", "O", "N+"], max_atoms=5)
    data = load_dataset(str(path), cache_dir=tmp_path, vocab=vocab)
    assert data.vocab == vocab
    assert data.report["skipped"] == {"too_many_atoms": 1, "unknown_atom": 1}
    assert data.x_idx.tolist() == [[1, 1, 2, 0, 0], [1, 3, 1, 1, 1]]


def test_cached_arrays_are_read_only_memory_maps(small_smi, tmp_path):
    load_dataset(str(small_smi), cache_dir=tmp_path)
    data = load_dataset(str(small_smi), cache_dir=tmp_path)
    assert data.report["cache_hit"]
    for array in (data.x_idx, data.adj_idx, data.smiles, data.ids):
        assert isinstance(array, np.memmap) and not array.flags.writeable
    assert data.x_idx.dtype == data.adj_idx.dtype == np.uint8
    train = data.subset(np.arange(5))
    assert not isinstance(train.x_idx, np.memmap)  # the chosen rows are copied into RAM


def test_interrupted_featurization_resumes_without_redoing_finished_chunks(tmp_path,
                                                                           monkeypatch):
    import molgan.featurize as featurize_module

    smiles = (SMALL_SMILES * 4) + ["not a smiles"]
    source = tmp_path / "many.smi"
    source.write_text("\n".join(smiles) + "\n")
    monkeypatch.setattr(featurize_module, "CHUNK_SIZE", 10)
    parsed_chunks = []
    real_parse = featurize_module._parse_chunk

    def counting_parse(chunk):
        parsed_chunks.append(chunk[0])
        return real_parse(chunk)

    monkeypatch.setattr(featurize_module, "_parse_chunk", counting_parse)
    finished_rows = []

    def interrupt_after_three_chunks(rows):
        finished_rows.append(rows)
        if len(finished_rows) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        load_dataset(str(source), cache_dir=tmp_path / "cache", workers=1,
                     progress=interrupt_after_three_chunks)
    assert len(parsed_chunks) == 3
    parsed_chunks.clear()
    finished_rows.clear()
    resumed = load_dataset(str(source), cache_dir=tmp_path / "cache", workers=1,
                           progress=finished_rows.append)
    assert len(parsed_chunks) == 10  # 121 rows in 13 chunks of 10: only the unfinished ones
    assert sum(finished_rows) == len(smiles)  # the progress bar counts the resumed rows too
    fresh = load_dataset(str(source), use_cache=False, workers=1)
    np.testing.assert_array_equal(resumed.x_idx, fresh.x_idx)
    np.testing.assert_array_equal(resumed.adj_idx, fresh.adj_idx)
    assert resumed.smiles.tolist() == fresh.smiles.tolist()
    assert resumed.report["skipped"] == fresh.report["skipped"] == {"unparsable": 1}
    assert not list((tmp_path / "cache").glob("*.chunks-*"))  # removed once the cache is whole


def test_a_dummy_atom_is_skipped_when_featurizing_not_found_in_training(tmp_path):
    source = tmp_path / "star.smi"
    source.write_text("CCO\n*CCO\nc1ccccc1\n")
    data = load_dataset(str(source), cache_dir=tmp_path / "cache")
    assert data.report["skipped"] == {"unknown_atom": 1} and len(data) == 2
    assert "#0" not in data.vocab.atom_symbols
