"""Latent coverage (molgan.coverage): log-likelihoods of real graphs under the generator's
law, the nearest latent, and the term in training."""

import json
import math

import pytest
import torch

from molgan.coverage import (coverage_loss, nearest_latents, paired_scores,
                             pairwise_scores)
from molgan.graph import DenseGraph, one_hot_graph
from molgan.train import Trainer
from tests.test_train import config, train_straight_and_resumed


def two_atom_graph(atom_types, bond):
    """One-hot graph of two atom slots (2 atom tokens, 3 bond channels)."""
    x_idx = torch.tensor([atom_types])
    adj_idx = torch.tensor([[[0, bond], [bond, 0]]])
    return one_hot_graph(x_idx, adj_idx, 2, 3)


def test_the_log_likelihood_per_variable_matches_a_case_computed_by_hand():
    # 2 atoms, 1 pair: V = 3 variables. Atom 0 has p(type 1) = e^1 / (e^0 + e^1); atom 1
    # has uniform logits (p = 1/2); the pair has logits (0, log 2, 0): p(bond 1) = 2 / 4.
    x = torch.tensor([[[0.0, 1.0], [0.0, 0.0]]])
    adj = torch.zeros(1, 2, 2, 3)
    adj[0, 0, 1] = adj[0, 1, 0] = torch.tensor([0.0, math.log(2.0), 0.0])
    real = two_atom_graph([1, 0], 1)
    expected = (math.log(math.e / (1 + math.e)) + math.log(0.5) + math.log(0.5)) / 3
    got = paired_scores(DenseGraph(x, adj), real)
    assert torch.allclose(got, torch.tensor([expected]), atol=1e-6)
    assert torch.allclose(pairwise_scores(DenseGraph(x, adj), real),
                          torch.tensor([[expected]]), atol=1e-6)


def test_pairwise_likelihoods_hold_every_paired_one():
    torch.manual_seed(0)
    logits = DenseGraph(torch.randn(5, 4, 3), torch.randn(5, 4, 4, 2))
    logits = DenseGraph(logits.x, (logits.adj + logits.adj.transpose(1, 2)) / 2)
    upper = torch.randint(0, 2, (5, 4, 4)).triu(1)
    real = one_hot_graph(torch.randint(0, 3, (5, 4)), upper + upper.transpose(1, 2), 3, 2)
    matrix = pairwise_scores(logits, real)
    assert matrix.shape == (5, 5)
    assert torch.allclose(matrix.diagonal(), paired_scores(logits, real), atol=1e-6)


class TableGenerator(torch.nn.Module):
    """Latent ``z [M, 1]`` holding an index into a fixed table of logits."""

    def __init__(self, table: DenseGraph) -> None:
        super().__init__()
        self.table = table

    def forward(self, z):
        index = z[:, 0].long()
        return DenseGraph(self.table.x[index], self.table.adj[index])


def test_each_real_graph_gets_the_latent_whose_law_draws_it_likeliest():
    graphs = [two_atom_graph([0, 1], 0), two_atom_graph([1, 1], 2), two_atom_graph([0, 0], 1)]
    table = DenseGraph(torch.cat([g.x for g in graphs]) * 5.0,
                       torch.cat([g.adj for g in graphs]) * 5.0)
    pool = torch.tensor([[2.0], [0.0], [1.0]])
    real = DenseGraph(torch.cat([graphs[1].x, graphs[2].x, graphs[1].x]),
                      torch.cat([graphs[1].adj, graphs[2].adj, graphs[1].adj]))
    chosen = nearest_latents(TableGenerator(table), real, pool)
    assert chosen[:, 0].tolist() == [1.0, 2.0, 1.0]


def test_masked_bond_orders_leave_the_term_and_its_gradient_finite():
    x = torch.zeros(1, 2, 2, requires_grad=True)
    adj = torch.zeros(1, 2, 2, 3)
    adj[0, 0, 1, 2] = adj[0, 1, 0, 2] = -1e4  # the real graph's triple bond is masked
    adj.requires_grad_(True)
    loss = coverage_loss(DenseGraph(x, adj), two_atom_graph([0, 1], 2))
    loss.backward()
    assert torch.isfinite(loss) and loss.item() < 20
    assert torch.isfinite(x.grad).all() and torch.isfinite(adj.grad).all()


def test_training_with_coverage_lowers_the_logged_term_and_resumes_exactly(train_data,
                                                                             tmp_path):
    def run(steps):
        return config(steps, latent_coverage=5.0, coverage_pool=2, log_every=10)

    train_straight_and_resumed(run, 40, train_data, tmp_path)
    logged = [json.loads(line)["coverage"] for line in (tmp_path / "straight" /
              "metrics.jsonl").read_text().splitlines()]
    assert len(logged) == 4 and all(math.isfinite(v) and v > 0 for v in logged)
    assert logged[-1] < logged[0]


def test_without_coverage_nothing_is_logged_or_drawn(train_data, tmp_path):
    trainer = Trainer(config(5), train_data, tmp_path / "off")
    trainer.fit()
    records = (tmp_path / "off" / "metrics.jsonl").read_text().splitlines()
    assert all("coverage" not in json.loads(line) for line in records)


def test_the_law_at_a_temperature_is_the_law_of_the_divided_logits():
    torch.manual_seed(1)
    logits = DenseGraph(torch.randn(3, 4, 3), torch.randn(3, 4, 4, 2))
    upper = torch.randint(0, 2, (3, 4, 4)).triu(1)
    real = one_hot_graph(torch.randint(0, 3, (3, 4)), upper + upper.transpose(1, 2), 3, 2)
    divided = DenseGraph(logits.x / 2.1, logits.adj / 2.1)
    assert torch.allclose(paired_scores(logits, real, 2.1),
                          paired_scores(divided, real), atol=1e-6)
    assert not torch.allclose(paired_scores(logits, real, 2.1),
                              paired_scores(logits, real), atol=1e-3)


def test_the_hits_score_is_the_expected_share_of_variables_drawn_right():
    # the hand case above: p = e / (1 + e), 1/2 and 1/2 for the three variables
    x = torch.tensor([[[0.0, 1.0], [0.0, 0.0]]])
    adj = torch.zeros(1, 2, 2, 3)
    adj[0, 0, 1] = adj[0, 1, 0] = torch.tensor([0.0, math.log(2.0), 0.0])
    real = two_atom_graph([1, 0], 1)
    hits = (math.e / (1 + math.e) + 0.5 + 0.5) / 3
    got = coverage_loss(DenseGraph(x, adj), real, score="hits")
    assert torch.allclose(got, torch.tensor(1 - hits), atol=1e-6)
    with pytest.raises(ValueError, match="log, hits"):
        coverage_loss(DenseGraph(x, adj), real, score="brier")
