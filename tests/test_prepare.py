import json

from molgan.cli import main


def test_prepare_counts_bad_rows_writes_skipped_csv_and_exits_zero(tmp_path, capsys):
    data = tmp_path / "bad.smi"
    data.write_text("CCO\nnot_a_smiles\n\nC[Si](C)(C)C\n" + "C" * 40 + "\nc1ccccc1\n")
    report_path = tmp_path / "new_dir" / "r.json"
    code = main(["prepare", "--data", str(data), "--max-atoms", "9", "--atoms", "C,N,O,F",
                 "--cache-dir", str(tmp_path / "cache"), "--json", str(report_path)])
    assert code == 0
    report = json.loads(report_path.read_text())
    assert report["n_read"] == 6 and report["n_kept"] == 2
    assert report["skipped"] == {"unparsable": 1, "empty": 1, "unknown_atom": 1,
                                 "too_many_atoms": 1}
    assert report["roundtrip_exact"] == 1.0
    for key in ("atom_tokens", "bond_tokens", "max_atoms", "seconds"):
        assert key in report
    skipped = (tmp_path / "new_dir" / "r-skipped.csv").read_text().splitlines()
    assert [line.split(",")[3] for line in skipped[1:]] == [
        "unparsable", "empty", "unknown_atom", "too_many_atoms"]


def test_empty_or_missing_file_is_a_one_line_error(tmp_path, capsys):
    empty = tmp_path / "empty.smi"
    empty.write_text("")
    for path in (empty, tmp_path / "missing.smi"):
        code = main(["prepare", "--data", str(path), "--cache-dir", str(tmp_path)])
        err = capsys.readouterr().err.strip()
        assert code == 2
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        assert err.startswith("molgan prepare: error:")


def test_train_atoms_restricts_the_vocabulary_and_reports_the_skipped(tmp_path, caplog):
    import logging

    from molgan.sample import Sampler

    data = tmp_path / "mols.smi"
    data.write_text("\n".join(["CCO", "CC[NH3+]", "C[O-]", "CCN", "OCCO", "CC#N", "NCC=O",
                               "CCC", "C1CC1", "CO"] * 4) + "\n")
    run = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="molgan"):
        assert main(["train", "--data", str(data), "--atoms", "C,O,N", "--steps", "2",
                     "--batch-size", "8", "--eval-every", "1000", "--out", str(run),
                     "--cache-dir", str(tmp_path / "cache")]) == 0
    assert "unknown_atom 8 skipped" in caplog.text  # the 2 x 4 charged molecules
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["atoms"] == ["C", "O", "N"]
    assert Sampler.from_checkpoint(run).vocab.atom_symbols == ["*none", "C", "O", "N"]
