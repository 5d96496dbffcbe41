"""The command line under bad input: every user-caused failure exits with status 2 and one line
that names the input, with no traceback, before any long work; nothing half-written is left.

The table below is the one in docs/reliability.md; ``pytest tests/test_cli_fuzz.py`` runs it.
"""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from molgan.checkpoint import load_checkpoint, pretrained_path, save_checkpoint
from molgan.cli import main
from tests.conftest import QM9_FIXTURE

FIXTURE = str(QM9_FIXTURE)


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit status and stderr of ``molgan ARGS`` run in this process."""
    try:
        code = main(args)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, capsys.readouterr().err.strip()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Bad and odd files, and damaged checkpoints, made once."""
    return make_inputs(tmp_path_factory.mktemp("fuzz"))


def make_inputs(root: Path) -> dict[str, Path]:
    """Write the bad and odd files and damaged checkpoints of :data:`CASES` under ``root``."""
    files = {
        "empty.smi": b"", "empty.sdf": b"", "blank.smi": b"\n\n  \n",
        "junk.smi": b"not a smiles\n((((\nC1CC\n", "table.csv": b"name,weight\nx,1\n",
        "latin1.csv": b"smiles\nCC\xe9O\n", "data.xyz": b"C\n", "good.smi": b"CCO\nc1ccccc1\n",
        "broken.toml": b"steps = = 3\n", "list.json": b"[1, 2]\n", "afile": b"plain file\n",
        "unknown_field.toml": b"no_such_field = 3\n",
    }
    for name, content in files.items():
        (root / name).write_bytes(content)
    (root / "adir").mkdir()
    (root / "garbage.pt").write_bytes(random.Random(0).randbytes(4096))
    torch.save({"weights": torch.zeros(3)}, root / "foreign.pt")
    bundle = load_checkpoint(pretrained_path("qm9"))
    wrong_shape = {**bundle, **{key: {**bundle[key], "to_x.weight": bundle[key]["to_x.weight"][1:]}
                                for key in ("generator", "generator_ema")}}
    save_checkpoint(root / "wrong_shape.pt", wrong_shape)
    save_checkpoint(root / "no_config.pt", {k: v for k, v in bundle.items()
                                            if k != "generator_config"})
    vocab = dict(bundle["vocab"])
    vocab["atoms"], vocab["atom_symbols"] = vocab["atoms"][:-1], vocab["atom_symbols"][:-1]
    save_checkpoint(root / "other_vocab.pt", {**bundle, "vocab": vocab})
    (root / "stale_run").mkdir()
    # a model exported for inference (no optimizer state), of QM9's vocabulary, as a run of
    # the fixture: resuming it cannot work
    config = {**bundle["config"], "train": {**bundle["config"]["train"], "data": FIXTURE}}
    save_checkpoint(root / "stale_run" / "ckpt.pt", {**bundle, "config": config})
    return {**{name: root / name for name in files}, "root": root, "adir": root / "adir",
            **{p.stem: p for p in root.glob("*.pt")}, "stale_run": root / "stale_run"}


def case(*args: str) -> list[str]:
    return list(args)


#: (name, argv with {placeholders} from ``inputs``, a fragment the one line must contain)
CASES = [
    # files that cannot be read as molecules
    ("missing data file", case("prepare", "--data", "{root}/nope.smi"), "file not found"),
    ("folder as data", case("prepare", "--data", "{adir}"), "is a folder"),
    ("empty .smi", case("prepare", "--data", "{empty.smi}"), "no molecules"),
    ("blank lines only", case("prepare", "--data", "{blank.smi}"), "no molecules"),
    ("empty .sdf", case("prepare", "--data", "{empty.sdf}"), "no molecules"),
    ("unknown suffix", case("prepare", "--data", "{data.xyz}"), "unknown file type"),
    ("CSV without SMILES", case("prepare", "--data", "{table.csv}"), "no SMILES column"),
    ("CSV, named column absent", case("prepare", "--data", "{table.csv}", "--smiles-column",
                                      "smi"), "not in"),
    ("nothing parses", case("prepare", "--data", "{junk.smi}"), "could be featurized"),
    ("empty .sdf, train", case("train", "--data", "{empty.sdf}", "--out", "{root}/r1"),
     "no molecules"),
    ("missing samples", case("evaluate", "{root}/nope.smi", "--train", FIXTURE), "not found"),
    ("empty samples", case("evaluate", "{empty.smi}", "--train", FIXTURE), "no samples"),
    ("reference too small to split", case("evaluate", "{good.smi}", "--train", "{good.smi}"),
     "--whole"),
    ("folder as samples", case("evaluate", "{adir}", "--train", FIXTURE), "is a folder"),
    ("missing score input", case("score", "pretrained", "{root}/nope.smi", "-o",
                                 "{root}/s.csv"), "not found"),
    ("bad TOML config", case("train", "--data", FIXTURE, "--config", "{broken.toml}",
                             "--out", "{root}/r2"), "cannot read config file"),
    ("config not a table", case("train", "--data", FIXTURE, "--config", "{list.json}",
                                "--out", "{root}/r3"), "must hold a table"),
    ("unknown config field", case("train", "--data", FIXTURE, "--config",
                                  "{unknown_field.toml}", "--out", "{root}/r4"),
     "no_such_field"),
    ("unknown recipe", case("train", "--recipe", "nope", "--out", "{root}/r5"), "nope"),
    # checkpoints
    ("no checkpoint", case("sample", "{adir}", "-n", "5", "-o", "{root}/o1.smi"),
     "no checkpoint"),
    ("random bytes", case("sample", "{garbage}", "-n", "5", "-o", "{root}/o2.smi"),
     "cannot read checkpoint"),
    ("torch file, not molgan's", case("sample", "{foreign}", "-n", "5", "-o", "{root}/o3.smi"),
     "not a molgan checkpoint"),
    ("weights of another shape", case("sample", "{wrong_shape}", "-n", "5", "-o",
                                      "{root}/o4.smi"), "does not fit"),
    ("a key missing", case("sample", "{no_config}", "-n", "5", "-o", "{root}/o5.smi"),
     "lacks 'generator_config'"),
    ("another vocabulary, sample", case("sample", "{other_vocab}", "-n", "5", "-o",
                                        "{root}/o6.smi"), "does not fit"),
    ("another vocabulary, score", case("score", "{other_vocab}", "{good.smi}", "-o",
                                       "{root}/s1.csv"), "does not fit"),
    ("random bytes, score", case("score", "{garbage}", "{good.smi}", "-o", "{root}/s2.csv"),
     "cannot read checkpoint"),
    ("resume an exported model", case("train", "--out", "{stale_run}", "--resume"),
     "does not fit"),
    ("unknown pretrained", case("sample", "--pretrained", "zinc", "-n", "5", "-o",
                                "{root}/o7.smi"), "no pretrained model"),
    # impossible flag values (checked when parsed)
    ("negative sample count", case("sample", "--pretrained", "qm9", "-n", "-5", "-o",
                                   "{root}/o8.smi"), "must be at least 1"),
    ("sample count not a number", case("sample", "--pretrained", "qm9", "-n", "ten", "-o",
                                       "{root}/o9.smi"), "not an integer"),
    ("zero sample batch", case("sample", "--pretrained", "qm9", "--batch-size", "0", "-o",
                               "{root}/o10.smi"), "must be at least 1"),
    ("zero temperature", case("sample", "--pretrained", "qm9", "--temperature", "0", "-o",
                              "{root}/o11.smi"), "above 0"),
    ("NaN temperature", case("sample", "--pretrained", "qm9", "--temperature", "nan", "-o",
                             "{root}/o12.smi"), "above 0"),
    ("zero workers", case("sample", "--pretrained", "qm9", "--workers", "0", "-o",
                          "{root}/o13.smi"), "must be at least 1"),
    ("device that is not there", case("sample", "--pretrained", "qm9", "--device", "tpu", "-o",
                                      "{root}/o14.smi"), "tpu"),
    ("negative score batch", case("score", "pretrained", "{good.smi}", "-o", "{root}/s3.csv",
                                  "--batch-size", "-3"), "must be at least 1"),
    ("score on a device that is not there", case("score", "pretrained", "{good.smi}", "-o",
                                                 "{root}/s4.csv", "--device", "tpu"), "tpu"),
    ("negative steps", case("train", "--data", FIXTURE, "--steps", "-5", "--out", "{root}/r6"),
     "steps"),
    ("zero epochs", case("train", "--data", FIXTURE, "--epochs", "0", "--out", "{root}/r7"),
     "epochs"),
    ("zero critic steps", case("train", "--data", FIXTURE, "--n-critic", "0", "--out",
                               "{root}/r8"), "n_critic"),
    ("negative learning rate", case("train", "--data", FIXTURE, "--generator-lr", "-1",
                                    "--out", "{root}/r9"), "lr"),
    ("zero training batch", case("train", "--data", FIXTURE, "--batch-size", "0", "--out",
                                 "{root}/r10"), "batch_size"),
    ("zero max atoms, train", case("train", "--data", FIXTURE, "--max-atoms", "0", "--out",
                                   "{root}/r11"), "must be at least 1"),
    ("zero max atoms, prepare", case("prepare", "--data", FIXTURE, "--max-atoms", "0"),
     "must be at least 1"),
    ("negative threads", case("train", "--threads", "-2"), "must be at least 1"),
    ("unknown atom token", case("prepare", "--data", FIXTURE, "--atoms", "C,Xx"),
     "not an atom token: 'Xx'"),
    ("training device that is not there", case("train", "--data", FIXTURE, "--device", "tpu",
                                               "--out", "{root}/r12"), "tpu"),
    ("unknown flag", case("sample", "--pretrained", "qm9", "--frobnicate", "-o",
                          "{root}/o15.smi"), "unrecognized"),
    ("unknown command", case("sampel"), "invalid choice"),
    # outputs that cannot be written, refused before the work
    ("sample to an unknown suffix", case("sample", "--pretrained", "qm9", "-n", "5", "-o",
                                         "{root}/out.xyz"), "unknown file type"),
    ("sample to a folder", case("sample", "--pretrained", "qm9", "-n", "5", "-o", "{adir}"),
     "is a folder"),
    ("sample under a file", case("sample", "--pretrained", "qm9", "-n", "5", "-o",
                                 "{afile}/out.smi"), "is a file, not a folder"),
    ("image of an unknown type", case("sample", "--pretrained", "qm9", "-n", "5", "-o",
                                      "{root}/o16.smi", "--image", "{root}/grid.jpg"),
     "unknown file type"),
    ("score over its input", case("score", "pretrained", "{good.smi}", "-o", "{good.smi}"),
     "is an input file"),
    ("score to a non-CSV", case("score", "pretrained", "{good.smi}", "-o", "{root}/s.txt"),
     "unknown file type"),
    ("score under a file", case("score", "pretrained", "{good.smi}", "-o", "{afile}/s.csv"),
     "is a file, not a folder"),
    ("evaluate JSON under a file", case("evaluate", "{good.smi}", "--train", FIXTURE,
                                        "--json", "{afile}/m.json"), "is a file, not a folder"),
    ("evaluate JSON over the samples", case("evaluate", "{good.smi}", "--train", FIXTURE,
                                            "--json", "{good.smi}"), "is an input file"),
    ("evaluate plots in a file", case("evaluate", "{good.smi}", "--train", FIXTURE, "--plots",
                                      "{afile}"), "is a file, not a folder"),
    ("prepare JSON under a file", case("prepare", "--data", FIXTURE, "--json",
                                       "{afile}/r.json"), "is a file, not a folder"),
    ("train into a file", case("train", "--data", FIXTURE, "--out", "{afile}"),
     "is a file, not a folder"),
    ("train under a file", case("train", "--data", FIXTURE, "--out", "{afile}/run"),
     "is a file, not a folder"),
]


def fill(args: list[str], inputs: dict[str, Path]) -> list[str]:
    out = []
    for arg in args:
        for name, path in inputs.items():
            arg = arg.replace("{" + name + "}", str(path))
        assert "{" not in arg, arg
        out.append(arg)
    return out


@pytest.mark.parametrize("name, args, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line(name, args, fragment, inputs, capsys, monkeypatch,
                                         tmp_path):
    monkeypatch.setenv("MOLGAN_CACHE", str(tmp_path / "cache"))
    before = sorted(p.name for p in inputs["root"].rglob("*"))
    code, err = run_cli(fill(args, inputs), capsys)
    assert code == 2, (name, code, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err, (name, err)
    assert fragment in err, (name, err)
    # nothing written next to the inputs: no partial output, no run folder, no temporaries
    assert sorted(p.name for p in inputs["root"].rglob("*")) == before, name


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("args", [
    case("sample", "--pretrained", "qm9", "-n", "5", "-o", "{ro}/out.smi"),
    case("score", "pretrained", str(QM9_FIXTURE), "-o", "{ro}/s.csv"),
    case("evaluate", str(QM9_FIXTURE), "--train", FIXTURE, "--json", "{ro}/m.json"),
    case("prepare", "--data", FIXTURE, "--json", "{ro}/r.json"),
    case("train", "--data", FIXTURE, "--out", "{ro}/run"),
])
def test_read_only_output_folders_are_refused_before_work(args, tmp_path, capsys):
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    code, err = run_cli(fill(args, {"ro": read_only}), capsys)
    assert code == 2 and "permission denied" in err and len(err.splitlines()) == 1, err


def test_the_installed_command_prints_no_traceback(inputs):
    """The same path through a real process: exit status 2, one line on stderr."""
    for args in (["prepare", "--data", str(inputs["empty.sdf"])],
                 ["sample", str(inputs["wrong_shape"]), "-n", "3", "-o",
                  str(inputs["root"] / "p.smi")]):
        done = subprocess.run([sys.executable, "-m", "molgan", *args], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr


def random_file(rng: random.Random, path: Path) -> Path:
    """Bytes a careless export or a broken disk might produce: random bytes, random text lines,
    very long lines, SMILES-like junk, CSV with random columns."""
    kind = rng.randrange(5)
    if kind == 0:
        data = rng.randbytes(rng.randrange(1, 3000))
    elif kind == 1:
        alphabet = "CNOScnos()[]=#123456789+-@H%/\\. \t"
        data = "\n".join("".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
                         for _ in range(rng.randrange(1, 50))).encode()
    elif kind == 2:
        data = ("CCO\n" + "C" * rng.randrange(10_000, 200_000) + "\nc1ccccc1\n").encode()
    elif kind == 3:
        data = b"smiles,x\n" + b"\n".join(rng.randbytes(rng.randrange(1, 40)).replace(b"\n", b"")
                                          for _ in range(rng.randrange(1, 30)))
    else:
        data = "\n".join(rng.choice(["CCO", "", "C1CC1", "[Xe]", "*C", "C(", "[Cu+2]", "CC.O",
                                     "c1ccccc1", "[nH]", "C" * 300])
                         for _ in range(rng.randrange(1, 40))).encode()
    path = path.with_suffix(".csv" if kind == 3 else ".smi")
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("seed", range(8))
def test_random_files_give_a_result_or_one_line(seed, tmp_path, capsys, monkeypatch):
    """Fuzzed input files through prepare, evaluate and score: each run ends with status 0 or
    with status 2 and one line, never a traceback; score keeps one row per input row."""
    monkeypatch.setenv("MOLGAN_CACHE", str(tmp_path / "cache"))
    rng = random.Random(seed)
    source = random_file(rng, tmp_path / f"fuzz{seed}")
    runs = [["prepare", "--data", str(source), "--workers", "1"],
            ["evaluate", str(source), "--train", FIXTURE, "--no-fcd", "--no-properties"],
            ["score", "pretrained", str(source), "-o", str(tmp_path / "scores.csv")]]
    for args in runs:
        code, err = run_cli(args, capsys)
        assert code in (0, 2), (args, code, err)
        if code == 2:
            assert len(err.splitlines()) == 1 and "Traceback" not in err, (args, err)
        elif args[0] == "score":
            from molgan.evaluate import read_samples

            with open(tmp_path / "scores.csv", newline="") as handle:
                rows = list(csv.reader(handle))
            assert len(rows) == len(read_samples(source)) + 1


def test_a_folder_without_write_permission_is_refused(tmp_path, monkeypatch, capsys):
    """The permission branch itself (root passes every access check, so it is stubbed)."""
    import molgan.files

    monkeypatch.setattr(molgan.files.os, "access", lambda path, mode: False)
    code, err = run_cli(["sample", "--pretrained", "qm9", "-n", "5", "-o",
                         str(tmp_path / "out.smi")], capsys)
    assert code == 2 and "permission denied" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out.smi").exists()
