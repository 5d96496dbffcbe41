import json
from pathlib import Path

import pytest

from molgan.cli import main
from molgan.evaluate import evaluate, load_reference, read_samples
from tests.conftest import QM9_FIXTURE

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


@pytest.fixture(scope="module")
def qm9_reference(cache_dir, qm9):
    return load_reference("qm9", cache_dir=cache_dir)


@pytest.mark.slow
@pytest.mark.parametrize("name,valid,unique", [("digress_qm9_noH_samples.smi", 0.9921, 0.9688),
                                               ("grum_qm9_samples.smi", 1.0, 0.9688)])
def test_published_samples_reproduce_their_validity_and_uniqueness(name, valid, unique,
                                                                   qm9_reference):
    path = REFERENCE / name
    if not path.is_file():
        pytest.skip("shared/reference is not beside the checkout")
    samples = read_samples(path)
    result = evaluate(samples, qm9_reference, fcd=False, properties=False, diversity=False)
    assert result["n"] == 10_000
    assert round(result["validity"], 4) == valid
    assert round(result["uniqueness"], 4) == unique


@pytest.mark.slow
def test_fcd_is_small_for_the_same_distribution_and_large_for_another(qm9_reference, qm9):
    test = set(qm9_reference.test)
    # every 100th QM9 molecule outside the test split (QM9 is ordered by size: no prefix)
    same = [s for s in qm9.smiles.tolist()[::100] if s not in test][:1000]
    chains = ["C" * k + "O" for k in range(1, 9)] * 125  # alcohols only
    close = evaluate(same, qm9_reference, properties=False, diversity=False)["fcd"]
    far = evaluate(chains, qm9_reference, properties=False, diversity=False)["fcd"]
    # measured: 0.63 (1,000 QM9 molecules; FCD is biased upward at small n) vs 25.3
    assert close < 2 and far > 10


def test_read_samples_keeps_invalid_rows(tmp_path):
    path = tmp_path / "s.smi"
    path.write_text("CCO\n\nxx\n")
    assert read_samples(path) == ["CCO", None, "xx"]
    csv = tmp_path / "s.csv"
    csv.write_text("index,smiles,valid\n0,CCO,1\n1,,0\n")
    assert read_samples(csv) == ["CCO", None]


@pytest.mark.slow
def test_sample_then_evaluate_end_to_end(cache_dir, tmp_path, capsys):
    run = tmp_path / "run"
    # argmax decoding: after 30 steps some argmax graphs are valid, few draws are
    assert main(["train", "--steps", "30", "--batch-size", "16", "--out", str(run),
                 "--cache-dir", str(cache_dir), "--eval-every", "1000",
                 "--decode", "argmax"]) == 0
    for suffix in ("csv", "smi", "sdf"):
        out = tmp_path / f"samples.{suffix}"
        assert main(["sample", str(run), "-n", "300", "--seed", "1", "-o", str(out),
                     "--image", str(tmp_path / "grid.png")]) == 0
        assert len(read_samples(out)) == 300  # exactly n rows, invalid ones included
    assert (tmp_path / "grid.png").stat().st_size > 1000
    report = tmp_path / "eval.json"
    assert main(["evaluate", str(tmp_path / "samples.csv"), "--train", "qm9", "--cache-dir",
                 str(cache_dir), "--json", str(report), "--plots", str(tmp_path / "plots")]) == 0
    result = json.loads(report.read_text())
    for key in ("n", "validity", "validity_connected", "uniqueness", "novelty", "novelty_molgan",
                "fcd", "internal_diversity", "qed_mean", "logp_mean", "sa_mean",
                "qed_reward_ge_half", "ref_sa_reward_ge_half"):
        assert key in result, key
    assert result["n"] == 300
    assert (tmp_path / "plots" / "properties.png").is_file()
    # same seed, same samples
    again = tmp_path / "again.csv"
    main(["sample", str(run), "-n", "300", "--seed", "1", "-o", str(again)])
    assert again.read_text() == (tmp_path / "samples.csv").read_text()


def test_valid_only_drops_invalid_rows(cache_dir, tmp_path):
    from molgan.sample import write_samples

    path = tmp_path / "v.smi"
    assert write_samples(["CCO", None, "C"], path, valid_only=True) == 2
    assert path.read_text() == "CCO\nC\n"


def test_sampler_generate_follows_the_guacamol_protocol(cache_dir, tmp_path):
    from molgan.sample import Sampler

    run = tmp_path / "run"
    assert main(["train", "--data", str(QM9_FIXTURE), "--steps", "3", "--batch-size", "8",
                 "--out", str(run), "--cache-dir", str(cache_dir)]) == 0
    sampler = Sampler.from_checkpoint(run)
    out = sampler.generate(number_samples=57)
    assert len(out) == 57 and all(isinstance(s, str) for s in out)
    assert len(sampler.sample(13, seed=0).smiles) == 13


def test_chemnet_activations_match_the_fcd_package_and_need_no_row_stack(monkeypatch):
    """Our batching of ChemNet gives fcd.get_predictions' activations (up to float32
    rounding), and keeps working where numpy has no ``row_stack`` (numpy >= 2.5)."""
    import fcd
    import numpy as np

    from molgan.fcd_stats import chemnet_activations

    smiles = ["CCO", "c1ccccc1", "CC(=O)N", "N#CC1CC1", "OCC(O)CO"]
    expected = fcd.get_predictions(fcd.load_ref_model(), smiles, batch_size=2)
    monkeypatch.delattr(np, "row_stack", raising=False)
    got = chemnet_activations(smiles, batch_size=2)
    assert got.shape == (5, 512) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert chemnet_activations([]).shape == (0, 512)


def test_frechet_distance_by_hand_and_against_the_fcd_package(monkeypatch):
    """Diagonal covariances: FCD = |mu_a - mu_b|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2. On full
    covariances it agrees with fcd.calculate_frechet_distance, and it never passes ``sqrtm``
    the ``disp`` argument that scipy removed."""
    import fcd
    import numpy as np
    from scipy import linalg

    from molgan.fcd_stats import frechet_distance

    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    mu_a, mu_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    # |mu diff|^2 = 1 + 0 + 4 = 5; (1-2)^2 + (2-2)^2 + (3-1)^2 = 5
    assert frechet_distance((mu_a, np.diag(a)), (mu_b, np.diag(b))) == pytest.approx(10.0)

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 16)), rng.normal(0.3, 1.5, size=(200, 16))
    stats_x, stats_y = (x.mean(0), np.cov(x.T)), (y.mean(0), np.cov(y.T))
    expected = fcd.calculate_frechet_distance(stats_x[0], stats_x[1], stats_y[0], stats_y[1])

    sqrtm = linalg.sqrtm

    def sqrtm_without_disp(matrix):  # the signature of scipy releases without ``disp``
        return sqrtm(matrix)

    monkeypatch.setattr(linalg, "sqrtm", sqrtm_without_disp)
    assert frechet_distance(stats_x, stats_y) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="different sizes"):
        frechet_distance(stats_x, (np.zeros(3), np.eye(3)))
