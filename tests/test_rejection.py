"""Critic rejection sampling (molgan.rejection) and its measuring script."""

import numpy as np
import pytest
import torch

from molgan.critic import Critic, CriticConfig
from molgan.generator import Generator, GeneratorConfig
from molgan.rejection import (
    Calibration,
    critic_scores,
    fit_calibration,
    fit_logistic,
    sample_with_rejection,
)
from molgan.sample import Sampler
from tests.graphs import VOCAB


def test_the_logistic_fit_recovers_the_log_density_ratio_of_two_gaussians():
    """Real scores ~ N(1, 1), draws ~ N(0, 1): log p_real(s) / p_draw(s) = s - 1/2 exactly,
    which the class-balanced fit must find (here with 3x more draws than reals)."""
    rng = torch.Generator().manual_seed(0)
    real = torch.randn(100_000, generator=rng, dtype=torch.float64) + 1.0
    fake = torch.randn(300_000, generator=rng, dtype=torch.float64)
    slope, intercept = fit_logistic(real, fake)
    assert slope == pytest.approx(1.0, abs=0.02)
    assert intercept == pytest.approx(-0.5, abs=0.02)


def test_acceptance_is_the_ratio_to_the_threshold_capped_at_one():
    calibration = Calibration(slope=2.0, intercept=-1.0, threshold=1.0)
    scores = torch.tensor([0.0, 0.5, 1.0, 3.0])
    expected = torch.tensor([np.exp(-2.0), np.exp(-1.0), 1.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(calibration.acceptance(scores), expected)
    fitted = fit_calibration(torch.randn(50) + 2, torch.randn(80), quantile=1.0)
    assert fitted.acceptance(torch.randn(80)).max() <= 1.0
    with pytest.raises(ValueError, match="quantile"):
        fit_calibration(torch.randn(5), torch.randn(5), quantile=0.0)


def model():
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(z_dim=8, gen_hidden=(16,)), VOCAB)
    sampler = Sampler(generator, VOCAB, batch_size=64, decode="sample")
    critic = Critic(CriticConfig(minibatch_distance=False), VOCAB).eval()
    return sampler, critic


def test_rejection_keeps_exactly_the_draws_its_uniforms_accept_in_order():
    sampler, critic = model()
    scores = critic_scores(critic, *sampler.sample_graphs(64, 7))
    calibration = fit_calibration(scores + 0.1, scores, quantile=0.5)
    # what the first round must keep: draw i of seed 7 where uniform_i < acceptance_i
    x_idx, adj_idx = sampler.sample_graphs(64, 7)
    accept = calibration.acceptance(critic_scores(critic, x_idx, adj_idx))
    uniforms = torch.rand(64, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    expected = np.flatnonzero((uniforms < accept).numpy())
    assert 0 < len(expected) < 64
    result = sample_with_rejection(sampler, critic, calibration, len(expected), seed=7)
    np.testing.assert_array_equal(result.samples.x_idx, x_idx[expected])
    np.testing.assert_array_equal(result.samples.adj_idx, adj_idx[expected])
    assert result.drawn == expected[-1] + 1
    assert len(result.samples.smiles) == len(expected)
    more = sample_with_rejection(sampler, critic, calibration, 100, seed=7)
    assert len(more.samples.smiles) == 100 and more.drawn > 100
    assert 0 < more.acceptance_rate < 1


def test_rejection_says_so_when_it_accepts_too_little():
    sampler, critic = model()
    never = Calibration(slope=0.0, intercept=-50.0, threshold=0.0)
    with pytest.raises(RuntimeError, match="lower the rejection quantile"):
        sample_with_rejection(sampler, critic, never, 10, max_draws=200)


def test_auc_counts_ties_as_one_half():
    from molgan.rejection import auc

    assert auc(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 1.0
    assert auc(torch.tensor([0.0]), torch.tensor([1.0])) == 0.0
    assert auc(torch.tensor([1.0, 1.0]), torch.tensor([1.0])) == 0.5
    assert auc(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 0.0])) == 0.75
