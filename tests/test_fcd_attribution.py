"""``scripts/fcd_attribution.py``: the reweighting that matches one descriptor's distribution,
and the weighted statistics the FCD is taken from."""

from __future__ import annotations

import numpy as np
import pytest

from tests.scripts import load_script


@pytest.fixture(scope="module")
def attribution():
    return load_script("fcd_attribution")


def test_weights_give_the_samples_the_test_distribution(attribution) -> None:
    samples = np.array([0, 0, 0, 1, 2, 2])  # frequencies 1/2, 1/6, 1/3
    test = np.array([0, 1, 1, 1, 3])  # 1/5, 3/5, 0, and a value (3) the samples never have
    weights, covered, tv = attribution.weights_matching(samples, test)
    for value, share in ((0, 1 / 5), (1, 3 / 5), (2, 0.0)):
        assert weights[samples == value].sum() / len(samples) == pytest.approx(share)
    assert covered == pytest.approx(4 / 5)
    assert tv == pytest.approx(0.5 * (abs(1 / 2 - 1 / 5) + abs(1 / 6 - 3 / 5) + 1 / 3 + 1 / 5))


def test_weighted_statistics(attribution) -> None:
    rng = np.random.default_rng(0)
    activations = rng.normal(size=(50, 3))
    mu, sigma = attribution.weighted_statistics(activations, np.ones(50))
    np.testing.assert_allclose(mu, activations.mean(0))
    np.testing.assert_allclose(sigma, np.cov(activations.T))
    # integer weights weigh the mean as repeating the rows would
    weights = rng.integers(1, 4, size=50).astype(float)
    repeated = np.repeat(activations, weights.astype(int), axis=0)
    mu_w, _ = attribution.weighted_statistics(activations, weights)
    np.testing.assert_allclose(mu_w, repeated.mean(0))


def test_descriptor_rows_give_means_and_distances_without_chemnet(attribution) -> None:
    from rdkit import Chem

    samples = [Chem.MolFromSmiles(s) for s in ("C1CC1C1CC1", "C1CC1", "CCO")]
    test = [Chem.MolFromSmiles(s) for s in ("c1ccccc1", "CCO")]
    rows = {r["descriptor"]: r for r in attribution.descriptor_rows(samples, test)}
    assert rows["rings"]["sample_mean"] == 1.0 and rows["rings"]["test_mean"] == 0.5
    assert rows["3-rings"]["tv"] == pytest.approx(2 / 3, abs=1e-4)
    assert rows["aromatic bonds"]["test_mean"] == 3.0 and rows["aromatic bonds"]["covered"] == 0.5
    assert "fcd_drop" not in rows["rings"]
    cages = [Chem.MolFromSmiles(s) for s in ("C1CC2CCC1C2", "C1CCCCCCC1", "CC(N)O", "C1=CCCC1")]
    rows = {r["descriptor"]: r for r in attribution.descriptor_rows(cages, test)}
    # norbornane: 2 bridgeheads, 2 bonds (the bridge) in two rings; cyclooctane: an 8-ring;
    # stereocentres, unassigned: norbornane's two bridgeheads and CC(N)O's carbon; cyclopentene:
    # one double bond in a ring
    assert rows["bridgehead atoms"]["sample_mean"] == 0.5
    assert rows["fused bonds"]["sample_mean"] == 0.5
    assert rows["8+-rings"]["sample_mean"] == 0.25
    assert rows["stereocentres"]["sample_mean"] == 0.75
    assert rows["ring double bonds"]["sample_mean"] == 0.25
    assert rows["aromatic rings"]["test_mean"] == 0.5
    ordered = [r["tv"] for r in attribution.descriptor_rows(samples, test)]
    assert ordered == sorted(ordered, reverse=True)
    # with an FCD of the reweighted samples, each row says what matching it would save
    scored = attribution.descriptor_rows(samples, test, plain=2.0,
                                         matched_fcd=lambda w: 2.0 - w.max())
    rings = next(r for r in scored if r["descriptor"] == "rings")
    # sample rings 2, 1, 0 (a third each), test 1, 0 (a half each): weights 0, 1.5, 1.5
    assert rings["fcd_matched"] == 0.5 and rings["fcd_drop"] == 1.5
    drops = [r["fcd_drop"] for r in scored]
    assert drops == sorted(drops, reverse=True)
