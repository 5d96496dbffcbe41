"""Bad input and faults end in one clear line, and lose nothing."""

import os

import pytest

from molgan.checkpoint import load_checkpoint, save_checkpoint
from molgan.cli import main
from tests.conftest import QM9_FIXTURE


@pytest.mark.parametrize("args", [
    ["sample", "--pretrained", "qm9", "-n", "-5", "-o", "x.smi"],
    ["sample", "--pretrained", "qm9", "-n", "5", "--batch-size", "0", "-o", "x.smi"],
    ["score", "pretrained", "in.smi", "-o", "s.csv", "--batch-size", "-3"],
    ["train", "--threads", "-2"],
])
def test_impossible_counts_are_usage_errors(args, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("flag, value", [("--steps", "-5"), ("--epochs", "0"),
                                         ("--n-critic", "0"), ("--max-atoms", "0"),
                                         ("--batch-size", "0"), ("--device", "tpu")])
def test_impossible_training_settings_fail_in_one_line_before_any_work(flag, value, tmp_path,
                                                                      capsys):
    code = main(["train", "--data", str(QM9_FIXTURE), "--out", str(tmp_path / "run"),
                 flag, value])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_score_refuses_to_overwrite_its_input_and_writes_complete_files(tmp_path, capsys):
    source = tmp_path / "in.smi"
    source.write_text("CCO\nc1ccccc1\nnot a smiles\n")
    assert main(["score", "pretrained", str(source), "-o", str(source)]) == 2
    assert "is an input file" in capsys.readouterr().err
    assert source.read_text().startswith("CCO")
    out = tmp_path / "scores.csv"
    assert main(["score", "pretrained", str(source), "-o", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 4
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_score_on_a_missing_device_says_so(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    source = tmp_path / "in.smi"
    source.write_text("CCO\n")
    assert main(["score", "pretrained", str(source), "-o", str(tmp_path / "s.csv"),
                 "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_scoring_nothing_gives_nothing():
    from molgan import Critic

    assert Critic.pretrained("qm9").score([]).shape == (0,)


def test_a_save_removes_temporaries_of_killed_saves_only(tmp_path):
    path = tmp_path / "ckpt.pt"
    dead = tmp_path / ".ckpt.pt.999999999.tmp"  # no such process
    alive = tmp_path / f".ckpt.pt.{os.getppid()}.tmp"
    dead.write_bytes(b"partial")
    alive.write_bytes(b"in progress")
    save_checkpoint(path, {"step": 3})
    assert load_checkpoint(path)["step"] == 3
    assert not dead.exists() and alive.exists()


def test_fcd_of_too_few_reference_molecules_is_nan_not_a_hang():
    import numpy as np

    from molgan.fcd_stats import frechet_distance

    one = (np.zeros(4), np.full((4, 4), np.nan))  # the covariance of a single molecule
    two = (np.zeros(4), np.eye(4))
    assert np.isnan(frechet_distance(one, two)) and frechet_distance(two, two) == 0


def test_bytes_that_are_not_utf8_make_an_invalid_row_in_every_command(tmp_path):
    from molgan.evaluate import read_samples
    from molgan.sources import read_smiles_file

    smi = tmp_path / "bad.smi"
    smi.write_bytes(b"CCO\nCC\xff\xfeO\nc1ccccc1\n")
    csv = tmp_path / "bad.csv"
    csv.write_bytes(b"smiles\nCCO\nCC\xff\xfeO\n")
    assert len(read_samples(smi)) == 3 and len(read_smiles_file(smi).smiles) == 3
    assert read_samples(csv)[0] == "CCO" and len(read_samples(csv)) == 2


class _Exploit:
    """A pickle that would write a file when unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_that_would_run_code_is_refused_unexecuted(tmp_path, capsys):
    import torch

    marker = tmp_path / "pwned"
    torch.save({"format_version": 1, "payload": _Exploit(str(marker))}, tmp_path / "evil.pt")
    code = main(["sample", str(tmp_path / "evil.pt"), "-n", "2", "-o", str(tmp_path / "o.smi")])
    assert code == 2 and "cannot read checkpoint" in capsys.readouterr().err
    assert not marker.exists()
