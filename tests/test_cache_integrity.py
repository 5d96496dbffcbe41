"""The dataset cache verifies itself, concurrent writers publish one entry, and hostile input
(one enormous line, very many long lines) costs bounded memory and time."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from molgan.chem import MAX_PARSE_ATOMS, SkipMolecule, check_size, heavy_atoms_at_least
from molgan.dataset import DamagedEntry, load_dataset, verify_entry
from molgan.sources import read_smiles_file
from tests.conftest import QM9_FIXTURE


def entry_of(data) -> Path:
    return Path(data.report["cache_files"]["entry"])


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def flip_in_range(path: Path) -> None:
    """Change one bond token to another valid token: data that would still load and train."""
    array = np.load(path)
    flat = array.reshape(-1)
    position = int(np.flatnonzero(flat == 1)[0])
    raw = bytearray(path.read_bytes())
    header = len(raw) - array.nbytes
    raw[header + position] = 2
    path.write_bytes(bytes(raw))


def delete(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize("damage, file", [
    (truncate, "x_idx.npy"), (flip_in_range, "adj_idx.npy"), (delete, "smiles.npy"),
    (truncate, "manifest.json"), (flip_in_range, "x_idx.npy"), (delete, "report.json"),
])
def test_a_damaged_entry_is_detected_reported_and_rebuilt(damage, file, small_smi, tmp_path,
                                                          caplog):
    cache = tmp_path / "cache"
    first = load_dataset(str(small_smi), cache_dir=cache)
    expected = (np.array(first.x_idx), np.array(first.adj_idx), first.smiles.tolist())
    entry = entry_of(first)
    damage(entry / file)
    with pytest.raises(DamagedEntry):
        verify_entry(entry)
    with caplog.at_level(logging.WARNING, logger="molgan.dataset"):
        again = load_dataset(str(small_smi), cache_dir=cache)
    assert not again.report.get("cache_hit")  # rebuilt, not read
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "damaged" in warnings[0] and "rebuilding" in warnings[0]
    np.testing.assert_array_equal(again.x_idx, expected[0])
    np.testing.assert_array_equal(again.adj_idx, expected[1])
    assert again.smiles.tolist() == expected[2]
    verify_entry(entry)  # the rebuilt entry is whole
    third = load_dataset(str(small_smi), cache_dir=cache)
    assert third.report["cache_hit"]
    assert [p.name for p in cache.iterdir()] == [entry.name]  # nothing left aside


def test_a_damaged_featurization_chunk_is_parsed_again(tmp_path, monkeypatch):
    import molgan.featurize as featurize_module

    monkeypatch.setattr(featurize_module, "CHUNK_SIZE", 500)
    source = str(QM9_FIXTURE)
    fresh = load_dataset(source, use_cache=False, workers=1)
    store = featurize_module.ChunkStore(tmp_path / "chunks")
    smiles = read_smiles_file(QM9_FIXTURE).smiles
    featurize_module.featurize(smiles, workers=1, chunk_store=store)
    chunks = sorted((tmp_path / "chunks").glob("chunk-*.npz"))
    assert len(chunks) == 5
    truncate(chunks[1])
    rebuilt = featurize_module.featurize(smiles, workers=1, chunk_store=store)
    np.testing.assert_array_equal(rebuilt.adj_idx, fresh.adj_idx)


def test_concurrent_prepare_runs_publish_one_whole_entry(tmp_path):
    """Two processes featurize the same file into one cache at once: both succeed, and the
    cache holds exactly one verified entry and no temporaries."""
    command = [sys.executable, "-m", "molgan", "prepare", "--data", str(QM9_FIXTURE),
               "--cache-dir", str(tmp_path), "--workers", "1", "--no-roundtrip"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(3)]
    results = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], results
    entries = [p for p in tmp_path.iterdir()]
    assert len(entries) == 1 and entries[0].is_dir(), entries
    verify_entry(entries[0])
    report = json.loads((entries[0] / "report.json").read_text())
    assert report["n_kept"] == 2001


def test_heavy_atoms_are_counted_from_the_text_without_rdkit():
    from rdkit import Chem

    for smiles in ["CCO", "c1cc[nH]c1", "[2H]C([H])Cl", "[Hg]CC[C@@H](Br)[13CH3]",
                   "[Na+].[Cl-]", "C1CC1*", "[C@SP1](F)(Cl)Br", "N#[N+][O-]"]:
        heavy = sum(1 for a in Chem.MolFromSmiles(smiles).GetAtoms() if a.GetAtomicNum() != 1)
        # the count is exact for heavy atoms (so nothing within a limit is ever refused)
        assert heavy_atoms_at_least(smiles, heavy)
        assert not heavy_atoms_at_least(smiles, heavy + 1)


def test_a_line_beyond_the_limit_is_refused_before_parsing():
    with pytest.raises(SkipMolecule) as too_long:
        check_size("C" * 10_000_000, 9)
    assert too_long.value.reason == "too_long"
    with pytest.raises(SkipMolecule) as too_many:
        check_size("C" * 300)
    assert too_many.value.reason == "too_many_atoms" and str(MAX_PARSE_ATOMS) in str(
        too_many.value)
    check_size("C" * MAX_PARSE_ATOMS)  # at the limit: parsed


def peak_rss_mb(args: list[str]) -> float:
    """Peak resident memory (MB) of ``molgan ARGS`` in a fresh process tree."""
    probe = ("import resource, subprocess, sys; "
             "done = subprocess.run(sys.argv[1:], capture_output=True); "
             "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "molgan", *args],
                         capture_output=True, text=True, timeout=300, check=True).stdout.split()
    assert out[0] == "0", out
    return int(out[1]) / 1024


def test_one_ten_megabyte_line_costs_bounded_memory(tmp_path):
    """A 10-million-character SMILES took 14 GB inside RDKit; now it is refused from its text:
    the run costs no more than the same command on a two-line file, plus the line itself."""
    tiny = tmp_path / "tiny.smi"
    tiny.write_text("CCO\nc1ccccc1\n")
    hostile = tmp_path / "long.smi"
    hostile.write_text("CCO\n" + "C" * 10_000_000 + "\nc1ccccc1\n")
    common = ["--max-atoms", "9", "--workers", "1", "--cache-dir", str(tmp_path / "cache")]
    baseline = peak_rss_mb(["prepare", "--data", str(tiny), *common])
    peak = peak_rss_mb(["prepare", "--data", str(hostile), "--json", str(tmp_path / "r.json"),
                        *common])
    assert peak - baseline < 150, (baseline, peak)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["skipped"] == {"too_long": 1} and report["n_kept"] == 2
    skipped_csv = (tmp_path / "r-skipped.csv").read_text()
    assert len(skipped_csv) < 2_000  # the line is cut in the report, not copied whole


def test_dense_arrays_beyond_half_the_memory_are_refused_in_one_line(monkeypatch):
    import molgan.featurize as featurize_module

    monkeypatch.setattr(featurize_module, "memory_bytes", lambda: 2**30)
    featurize_module.check_dense_size(1000, 9)
    with pytest.raises(ValueError, match="pass a smaller --max-atoms"):
        featurize_module.check_dense_size(100_000, 200)
