r"""Critic rejection sampling: keep a drawn graph with a probability that grows with its
critic score (discriminator rejection sampling, Azadi et al. 2019, with the calibration of
Turner et al. 2019). An opt-in sampling mode: its figures are always reported beside plain
sampling's.

A WGAN critic's score :math:`D(x)` is not a log density ratio. A logistic regression of
"real" on the score, fitted on held-out real graphs against the generator's draws (equal
weight to both classes), gives one:

.. math::  \ell(x) = a D(x) + b \approx \log \frac{p_{data}(x)}{p_G(x)}.

A draw is then accepted with probability :math:`\min(1, \exp(\ell(x) - M))`, where
:math:`M` is the ``quantile`` of :math:`\ell` over the calibration draws: with quantile 1
(the largest) this is rejection sampling from :math:`p_G \cdot e^{\ell} \propto p_{data}`
where the calibration holds; lower quantiles accept more and correct less.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from molgan.critic import Critic
from molgan.graph import one_hot_graph
from molgan.sample import Sampler, SampleResult

#: Graphs scored per critic call.
SCORE_BATCH = 1024


@dataclass(frozen=True)
class Calibration:
    """``log_ratio(score) = slope * score + intercept``; ``threshold`` = M above."""

    slope: float
    intercept: float
    threshold: float

    def log_ratio(self, scores: Tensor) -> Tensor:
        return self.slope * scores.double() + self.intercept

    def acceptance(self, scores: Tensor) -> Tensor:
        """Acceptance probabilities ``[B]`` of graphs with critic ``scores [B]``."""
        return torch.exp((self.log_ratio(scores) - self.threshold).clamp(max=0.0))


def fit_logistic(real_scores: Tensor, fake_scores: Tensor, iterations: int = 50) -> tuple[float, float]:
    r"""``(a, b)`` maximizing the class-balanced log-likelihood of
    :math:`P(\mathrm{real} \mid s) = \sigma(a s + b)` (real weight :math:`1/R`, fake
    :math:`1/F`), by Newton's method in float64 (a tiny ridge on ``a`` and ``b`` keeps it
    finite on separable scores)."""
    s = torch.cat([real_scores, fake_scores]).double()
    y = torch.cat([torch.ones(len(real_scores)), torch.zeros(len(fake_scores))]).double()
    w = torch.cat([torch.full((len(real_scores),), 0.5 / len(real_scores)),
                   torch.full((len(fake_scores),), 0.5 / len(fake_scores))]).double()
    center, scale = s.mean(), s.std().clamp_min(1e-12)
    design = torch.stack([(s - center) / scale, torch.ones_like(s)], dim=1)  # [S, 2]
    theta = torch.zeros(2, dtype=torch.float64)
    ridge = 1e-6 * torch.eye(2, dtype=torch.float64)
    for _ in range(iterations):
        p = torch.sigmoid(design @ theta)
        gradient = design.T @ (w * (p - y)) + ridge @ theta
        hessian = (design * (w * p * (1 - p))[:, None]).T @ design + ridge
        step = torch.linalg.solve(hessian, gradient)
        theta = theta - step
        if step.abs().max() < 1e-10:
            break
    slope = float(theta[0] / scale)
    return slope, float(theta[1] - slope * center)


def critic_scores(critic: Critic, x_idx: np.ndarray, adj_idx: np.ndarray) -> Tensor:
    """Scores ``[M]`` (:meth:`Critic.score_dense`, independent of batch-mates) of index graphs
    ``x_idx [M, N]``, ``adj_idx [M, N, N]``."""
    device = next(critic.parameters()).device
    t, y = critic.vocab.num_atom_types, critic.vocab.num_bond_types
    scores = []
    with torch.no_grad():
        for start in range(0, len(x_idx), SCORE_BATCH):
            x = torch.as_tensor(np.array(x_idx[start:start + SCORE_BATCH]), device=device)
            adj = torch.as_tensor(np.array(adj_idx[start:start + SCORE_BATCH]), device=device)
            scores.append(critic.score_dense(*one_hot_graph(x, adj, t, y)).float().cpu())
    return torch.cat(scores) if scores else torch.zeros(0)


def auc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """Probability that a random ``positive`` score exceeds a random ``negative`` one (ties
    count one half): the Mann-Whitney statistic over ``len(positive) * len(negative)``."""
    scores = torch.cat([positive, negative]).double()
    _, group, counts = scores.unique(return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()  # 1-based rank of each distinct value's last copy
    ranks = (ends - (counts - 1) / 2)[group]  # ties share their mean rank
    m, n = len(positive), len(negative)
    return float((ranks[:m].sum() - m * (m + 1) / 2) / (m * n))


def fit_calibration(real_scores: Tensor, fake_scores: Tensor, quantile: float) -> Calibration:
    """:class:`Calibration` from critic scores of held-out real graphs ``[R]`` and of the
    generator's draws ``[F]``: the logistic fit of :func:`fit_logistic`, and ``M`` the
    ``quantile`` (in (0, 1]) of the draws' log ratios."""
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"the rejection quantile must be in (0, 1], got {quantile}")
    if len(real_scores) < 2 or len(fake_scores) < 2:
        raise ValueError("calibrating the critic needs at least 2 real graphs and 2 draws")
    slope, intercept = fit_logistic(real_scores, fake_scores)
    log_ratios = Calibration(slope, intercept, 0.0).log_ratio(fake_scores)
    return Calibration(slope, intercept, float(torch.quantile(log_ratios, quantile)))


@dataclass
class RejectionResult:
    """Accepted samples and how many draws it took."""

    samples: SampleResult
    drawn: int

    @property
    def acceptance_rate(self) -> float:
        return len(self.samples.smiles) / max(1, self.drawn)


def sample_with_rejection(sampler: Sampler, critic: Critic, calibration: Calibration, n: int,
                          seed: int = 0, max_draws: int | None = None) -> RejectionResult:
    """Exactly ``n`` accepted samples: rounds of ``sampler.batch_size`` draws (round ``k``
    with seed ``seed + k``), each kept with probability ``calibration.acceptance`` of its
    critic score (uniforms from a generator seeded with ``seed``), in draw order.

    Raises:
        RuntimeError: more than ``max_draws`` (default ``1000 * n``) draws were needed.
    """
    from molgan.featurize import decode_all

    limit = max_draws if max_draws is not None else 1000 * max(n, 1)
    uniforms = torch.Generator().manual_seed(seed)
    xs: list[np.ndarray] = []
    adjs: list[np.ndarray] = []
    kept = drawn = 0
    round_seed = seed
    while kept < n:
        if drawn >= limit:
            raise RuntimeError(f"critic rejection accepted {kept} of {drawn} draws, short of "
                               f"{n}: lower the rejection quantile")
        x_idx, adj_idx = sampler.sample_graphs(sampler.batch_size, round_seed)
        round_seed += 1
        accept = calibration.acceptance(critic_scores(critic, x_idx, adj_idx))
        keep = (torch.rand(len(accept), generator=uniforms, dtype=torch.float64) < accept).numpy()
        take = np.flatnonzero(keep)[: n - kept]
        # the draws looked at: all of a round, or up to the last one needed
        drawn += len(x_idx) if kept + len(take) < n else int(take[-1]) + 1
        xs.append(x_idx[take])
        adjs.append(adj_idx[take])
        kept += len(take)
    x_all, adj_all = np.concatenate(xs), np.concatenate(adjs)
    smiles = decode_all(x_all, adj_all, sampler.vocab)
    return RejectionResult(SampleResult(x_all, adj_all, smiles), drawn)
