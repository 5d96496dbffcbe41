"""Nothing assumes QM9's 9 atoms or 4 elements: 38-atom molecules train, sample and score."""

from molgan.cli import main
from molgan.synthetic import synthetic_smiles


def test_molecules_up_to_38_atoms_train_sample_and_round_trip(tmp_path, capsys):
    data = tmp_path / "large.smi"
    smiles = synthetic_smiles(300, max_atoms=38, seed=1)
    data.write_text("\n".join(smiles) + "\n")
    cache = str(tmp_path / "cache")
    report = tmp_path / "r.json"
    assert main(["prepare", "--data", str(data), "--cache-dir", cache, "--json",
                 str(report)]) == 0
    import json

    prepared = json.loads(report.read_text())
    assert prepared["n_kept"] == 300 and prepared["roundtrip_exact"] == 1.0
    assert prepared["max_atoms"] > 30
    assert {"S", "Cl", "Br"} <= set(prepared["atom_tokens"])
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--steps", "3",
                 "--batch-size", "16", "--cache-dir", cache, "--eval-samples", "20"]) == 0
    samples = tmp_path / "s.smi"
    assert main(["sample", str(run), "-n", "50", "-o", str(samples)]) == 0
    assert len(samples.read_text().splitlines()) == 50
    assert main(["score", str(run), str(data), "-o", str(tmp_path / "scores.csv")]) == 0
