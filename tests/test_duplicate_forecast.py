"""scripts/duplicate_forecast.py: the mean chance that two latents draw one labelled graph."""

from __future__ import annotations

import itertools

import pytest
import torch

from molgan.graph import DenseGraph, one_hot_graph
from tests.scripts import load_script


def _random_laws(count: int, n: int = 3) -> DenseGraph:
    x = torch.softmax(torch.randn(count, n, 3) * 2, -1)
    logits = torch.randn(count, n, n, 2) * 2
    return DenseGraph(x, torch.softmax(logits + logits.transpose(1, 2), -1))


def _brute_force(law: DenseGraph) -> float:
    """Mean over ordered pairs of sum over labelled graphs of p_i(G) p_j(G), enumerated."""
    count, n, t = law.x.shape
    y = law.adj.shape[-1]
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    total = 0.0
    for types in itertools.product(range(t), repeat=n):
        for orders in itertools.product(range(y), repeat=len(pairs)):
            p = torch.ones(count, dtype=torch.float64)
            for slot, k in enumerate(types):
                p = p * law.x[:, slot, k].double()
            for (a, b), k in zip(pairs, orders):
                p = p * law.adj[:, a, b, k].double()
            total += (p.sum() ** 2 - (p ** 2).sum()).item()  # sum over i != j
    return total / (count * (count - 1))


@pytest.mark.parametrize("block", [1, 2, 512])
def test_the_mean_collision_equals_enumeration_over_every_labelled_graph(block):
    script = load_script("duplicate_forecast")
    torch.manual_seed(0)
    law = _random_laws(5)
    assert script.mean_collision(law, block) == pytest.approx(_brute_force(law), rel=1e-5)


def test_identical_one_hot_graphs_collide_surely_and_distinct_ones_never():
    script = load_script("duplicate_forecast")
    x_idx = torch.tensor([[1, 2, 0], [1, 2, 0], [2, 1, 0]])
    adj_idx = torch.zeros(3, 3, 3, dtype=torch.long)
    graph = one_hot_graph(x_idx, adj_idx, 3, 2)
    assert script.mean_collision(graph) == pytest.approx(2 / 6)  # 2 of 6 ordered pairs
    with pytest.raises(ValueError, match="at least 2 latents"):
        script.mean_collision(graph.rows(slice(0, 1)))


def test_the_forecast_scales_the_mean_collision_by_the_pairs_among_the_samples():
    from molgan.config import GeneratorConfig
    from molgan.generator import Generator
    from molgan.vocab import Vocab

    script = load_script("duplicate_forecast")
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(), Vocab(atoms=((6, 0), (8, 0)), max_atoms=4)).eval()
    rows = script.forecast(generator, [0.5, 2.0], latents=64, seed=1, samples=100)
    assert [r["temperature"] for r in rows] == [0.5, 2.0]
    for row in rows:
        assert row["duplicate_pairs"] == pytest.approx(100 * 99 / 2 * row["pair_collision"])
    # a colder law is sharper, so its draws collide more often
    assert rows[0]["pair_collision"] > rows[1]["pair_collision"] > 0
    again = script.forecast(generator, [0.5], latents=64, seed=1, samples=100)
    assert again[0]["pair_collision"] == rows[0]["pair_collision"]
