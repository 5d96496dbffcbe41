"""The models shipped inside the package work offline right after install."""

import pytest
import csv

import torch

from molgan.cli import main
from molgan.critic import Critic
from molgan.graph import one_hot_graph
from tests.graphs import DRUGS
from tests.scripts import load_script


@pytest.mark.slow
def test_pretrained_critic_prefers_real_test_molecules_to_random_graphs(qm9):
    critic = Critic.pretrained("qm9")
    assert critic.vocab == qm9.vocab and not critic.training
    test = qm9.subset(qm9.split_indices(seed=0)["test"])
    x_idx, adj_idx = torch.from_numpy(test.x_idx), torch.from_numpy(test.adj_idx)
    t, y = critic.vocab.num_atom_types, critic.vocab.num_bond_types
    random_graphs = load_script("critic_check").random_graphs_like(x_idx, t, y)
    with torch.no_grad():  # pipeline scores: independent of the batch they are computed in
        real = critic.score_dense(*one_hot_graph(x_idx, adj_idx, t, y))
        fake = critic.score_dense(*one_hot_graph(*random_graphs, t, y))
    # scripts/critic_check.py on the shipped model (docs/benchmarks.md, "The shipped
    # critics") gives the test molecules' and the random graphs' figures
    assert real.mean() - fake.mean() > 0.5


def test_the_moses_critic_prefers_drugs_to_random_graphs_of_their_sizes():
    from molgan.convert import mols_to_indices

    critic = Critic.pretrained("moses")
    assert critic.vocab.max_atoms == 27 and not critic.training
    x_idx, _, reasons = mols_to_indices(DRUGS, critic.vocab)
    assert reasons == [None] * len(DRUGS)
    t, y = critic.vocab.num_atom_types, critic.vocab.num_bond_types
    random_graphs = load_script("critic_check").random_graphs_like(x_idx, t, y)
    with torch.no_grad():
        fake = critic.score_dense(*one_hot_graph(*random_graphs, t, y))
    real = critic.score(DRUGS)
    # scripts/critic_check.py on MOSES's Test split: 0.44 +- 0.23 against -3.26 +- 1.13
    assert real.mean() - fake.mean() > 1.0


def test_the_moses_model_draws_drug_sized_molecules(tmp_path):
    from molgan.chem import mol_from_smiles

    out = tmp_path / "moses.smi"
    assert main(["sample", "--pretrained", "moses", "-n", "100", "-o", str(out)]) == 0
    smiles = out.read_text().splitlines()
    assert len(smiles) == 100 and all(smiles)  # drawn within valences: every row valid
    sizes = [mol_from_smiles(s).GetNumHeavyAtoms() for s in smiles]
    assert max(sizes) <= 27 and sum(sizes) / len(sizes) > 15  # QM9's are at most 9


def test_sample_with_the_pretrained_model(tmp_path):
    out = tmp_path / "s.smi"
    assert main(["sample", "--pretrained", "qm9", "-n", "200", "-o", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 200


def test_sampling_temperature_on_the_command_line(tmp_path, capsys):
    out = tmp_path / "t.smi"
    args = ["sample", "--pretrained", "qm9", "-n", "100", "-o", str(out), "--temperature", "0.5"]
    assert main([*args, "--decode", "sample"]) == 0
    assert len(out.read_text().splitlines()) == 100
    assert main([*args, "--decode", "argmax"]) == 2
    assert "needs decode='sample'" in capsys.readouterr().err
    default = tmp_path / "default.smi"  # the model's own temperature, 2.15
    assert main(["sample", "--pretrained", "qm9", "-n", "100", "-o", str(default)]) == 0
    assert out.read_text() != default.read_text()


def test_a_seed_gives_the_same_samples_through_the_cli_and_the_python_api(tmp_path):
    """The CLI's default batch is the Sampler's: the same seed, the same molecules (the
    stream is drawn batch by batch, so a batch of 4,096 + 904 must match too)."""
    from molgan.checkpoint import pretrained_path
    from molgan.sample import SAMPLE_BATCH, Sampler

    out = tmp_path / "s.smi"
    assert main(["sample", "--pretrained", "qm9", "-n", "5000", "--seed", "3", "-o",
                 str(out)]) == 0
    api = Sampler.from_checkpoint(pretrained_path("qm9"), device="cpu").sample(5000, seed=3)
    assert out.read_text().splitlines() == [s or "" for s in api.smiles]
    assert SAMPLE_BATCH < 5000


def test_score_pretrained_writes_every_row(tmp_path):
    data = tmp_path / "mixed.smi"
    data.write_text("CCO\nnot_a_smiles\nC[Si](C)(C)C\n" + "C" * 12 + "\nc1ccncc1\n\nO\n")
    out = tmp_path / "scores.csv"
    assert main(["score", "pretrained", str(data), "-o", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 7
    scored = [r for r in rows if r["score"]]
    assert [r["smiles"] for r in scored] == ["CCO", "c1ccncc1", "O"]
    assert all(r["reason"] for r in rows if not r["score"])


@pytest.mark.slow
def test_export_ships_a_run_generator_beside_another_models_critic(qm9, tmp_path, monkeypatch):
    import runpy
    import sys
    from pathlib import Path

    from molgan.checkpoint import load_checkpoint
    from molgan.sample import Sampler
    from molgan.config import RunConfig, TrainConfig
    from molgan.train import Trainer

    run = tmp_path / "run"
    Trainer(RunConfig(TrainConfig.from_flat(dict(steps=1, batch_size=16, n_critic=1,
                                                 eval_every=1000, decode="sample"))),
            qm9, run).fit()
    shipped = Path(__file__).resolve().parents[1] / "molgan" / "pretrained" / "qm9.pt"
    out = tmp_path / "model.pt"
    script = Path(__file__).resolve().parents[1] / "scripts" / "export_pretrained.py"
    monkeypatch.setattr(sys, "argv", ["export_pretrained.py", str(run), "--out", str(out),
                                      "--command", "molgan train (test)",
                                      "--critic-from", str(shipped),
                                      "--sample-temperature", "1.1"])
    runpy.run_path(str(script), run_name="__main__")
    exported, donor, trained = (load_checkpoint(p) for p in (out, shipped, run / "ckpt.pt"))
    for key, value in donor["critic"].items():
        torch.testing.assert_close(exported["critic"][key], value)
    for key, value in trained["generator"].items():
        torch.testing.assert_close(exported["generator"][key], value)
    assert exported["critic_config"] == donor["critic_config"]
    assert exported["note"]["critic"] == donor["note"]["critic"]
    assert Critic.from_checkpoint(out).config.minibatch_distance is False
    sampler = Sampler.from_checkpoint(out)  # draws at the exported temperature by default
    assert (sampler.decode, sampler.temperature) == ("sample", 1.1)

    average = tmp_path / "average.pt"  # the moving average as the only generator weights
    monkeypatch.setattr(sys, "argv", ["export_pretrained.py", str(run), "--out", str(average),
                                      "--command", "molgan train (test)", "--average-only",
                                      "--critic-from", str(shipped), "--critic-note", "why"])
    runpy.run_path(str(script), run_name="__main__")
    slim = load_checkpoint(average)
    assert "generator_ema" not in slim and "generator_weights" in slim["note"]
    assert slim["note"]["critic"] == "why"
    for key, value in trained["generator_ema"].items():
        torch.testing.assert_close(slim["generator"][key], value)
    both = Sampler.from_checkpoint(out, temperature=1.1).sample(50, seed=0).smiles
    assert Sampler.from_checkpoint(average, temperature=1.1).sample(50, seed=0).smiles == both


def test_score_names_a_shipped_model(tmp_path, capsys):
    data = tmp_path / "two.smi"
    data.write_text("CCO\nc1ccncc1\n")
    named, plain = tmp_path / "named.csv", tmp_path / "plain.csv"
    assert main(["score", "pretrained:qm9", str(data), "-o", str(named)]) == 0
    assert main(["score", "pretrained", str(data), "-o", str(plain)]) == 0
    assert named.read_text() == plain.read_text()
    assert main(["score", "pretrained:nothing", str(data), "-o", str(tmp_path / "x.csv")]) == 2
    assert "no pretrained model 'nothing'" in capsys.readouterr().err


@pytest.mark.slow
def test_critic_check_reports_every_set_and_counts_what_it_cannot_score(
        qm9, cache_dir, tmp_path, monkeypatch):
    import json
    import sys

    samples = tmp_path / "samples.smi"
    samples.write_text("CCO\nc1ccncc1\n\nC[Si](C)(C)C\n" + "C" * 12 + "\n")  # 2 too foreign
    report = tmp_path / "critic.json"
    monkeypatch.setenv("MOLGAN_CACHE", str(cache_dir))  # QM9 as the qm9 fixture cached it
    monkeypatch.setattr(sys, "argv", ["critic_check.py", "pretrained:qm9", "--data", "qm9",
                                      "--limit", "500", "--samples", str(samples),
                                      "--json", str(report)])
    load_script("critic_check").main()
    result = json.loads(report.read_text())
    assert result["test"]["n"] == result["random"]["n"] == 500
    assert result["random"]["auc_test_vs"] > 0.75  # molecules above random graphs
    assert result[str(samples)]["n"] == 2 and result["skipped"] == {str(samples): 2}
