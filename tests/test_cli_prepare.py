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
        assert code == 1
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        assert err.startswith("molgan prepare: error:")
