"""The critic: scores, invariances, batch features (molgan.critic)."""

import torch

from molgan.critic import Critic, CriticConfig
from molgan.graph import DenseGraph, argmax_graph
from tests.graphs import VOCAB, critic, molecules


def test_critic_returns_one_unbounded_score_per_graph():
    c = critic()
    g = molecules()
    scores = c(g.x.double(), g.adj.double())
    assert scores.shape == (3,)
    assert not any(isinstance(m, (torch.nn.BatchNorm1d, torch.nn.Sigmoid)) for m in c.modules())


def test_critic_is_invariant_to_node_permutations():
    c = critic()
    g = DenseGraph(*(t.double() for t in molecules()))
    perm = torch.tensor([4, 2, 0, 5, 1, 3])
    permuted = DenseGraph(g.x[:, perm], g.adj[:, perm][:, :, perm])
    torch.testing.assert_close(c(*g), c(*permuted), rtol=0, atol=1e-12)


def test_a_graph_scores_the_same_alone_and_in_any_batch():
    c = critic()
    g = DenseGraph(*(t.double() for t in molecules()))
    together = c(*g)
    for i in range(3):
        alone = c(g.x[i : i + 1], g.adj[i : i + 1])
        torch.testing.assert_close(alone[0], together[i], rtol=0, atol=1e-12)
    reversed_scores = c(g.x.flip(0), g.adj.flip(0))
    torch.testing.assert_close(reversed_scores.flip(0), together, rtol=0, atol=1e-12)


def test_permuting_bond_channels_changes_the_score():
    c = critic()
    g = DenseGraph(*(t.double() for t in molecules()))
    swapped = g.adj[..., [0, 2, 1, 3]]  # single <-> double
    assert (c(g.x, swapped) - c(*g))[:2].abs().min() > 1e-6


def test_padded_nodes_contribute_nothing():
    c = critic()
    g = DenseGraph(*(t.double() for t in molecules()))
    noisy_adj = g.adj.clone()
    noisy_adj[2, 0, 3] = noisy_adj[2, 3, 0] = torch.tensor([0.0, 1.0, 0.0, 0.0],
                                                           dtype=torch.float64)
    torch.testing.assert_close(c(g.x, noisy_adj), c(*g), rtol=0, atol=1e-12)


def test_minibatch_distance_sees_a_collapsed_batch_and_keeps_gradients_per_sample():
    torch.manual_seed(0)
    c = Critic(CriticConfig(minibatch_distance=True, minibatch_kernels=0), VOCAB).double()
    g = DenseGraph(*(t.double() for t in molecules()))
    same = DenseGraph(g.x[:1].repeat(3, 1, 1), g.adj[:1].repeat(3, 1, 1, 1))
    h_same = c._with_batch_feature(c._embed_dense(*same))
    h_varied = c._with_batch_feature(c._embed_dense(*g))
    assert h_same[:, -1].abs().max() < 1e-12 and (h_varied[:, -1] > 0).all()
    x = g.x.clone().requires_grad_(True)
    grad = torch.autograd.grad(c(x, g.adj)[0], x)[0]
    assert grad[1:].abs().sum() == 0  # batch-mates enter as constants


def test_minibatch_distance_pipeline_scores_use_the_stored_reference_not_batch_mates():
    torch.manual_seed(0)
    c = Critic(CriticConfig(minibatch_distance=True, minibatch_kernels=0, reference_size=2), VOCAB).double()
    g = DenseGraph(*(t.double() for t in molecules()))
    x_idx, adj_idx = argmax_graph(g)
    c.set_reference(x_idx[:2], adj_idx[:2])
    together = c.score_dense(*g)
    for i in range(3):  # alone, or beside copies of another graph: the same score
        torch.testing.assert_close(c.score_dense(g.x[i : i + 1], g.adj[i : i + 1]),
                                   together[i : i + 1])
        crowd = DenseGraph(torch.cat([g.x[i : i + 1], g.x[2:].repeat(4, 1, 1)]),
                           torch.cat([g.adj[i : i + 1], g.adj[2:].repeat(4, 1, 1, 1)]))
        torch.testing.assert_close(c.score_dense(*crowd)[0], together[i])
    # by hand: the feature is the mean L1 distance to the reference representations
    h, h_ref = c._embed_dense(*g), c._embed_dense(*g)[:2]
    distance = (h[:, None] - h_ref[None]).abs().mean(-1).mean(1, keepdim=True)
    torch.testing.assert_close(together, c.mlp(torch.cat([h, distance], 1)).squeeze(-1))
    # the reference travels with the weights
    clone = Critic(CriticConfig(minibatch_distance=True, minibatch_kernels=0, reference_size=2), VOCAB).double()
    clone.load_state_dict(c.state_dict())
    torch.testing.assert_close(clone.score_dense(*g), together)


def test_minibatch_kernels_see_a_collapsed_batch_and_keep_gradients_per_sample():
    torch.manual_seed(0)
    config = CriticConfig(minibatch_distance=True, minibatch_kernels=4, reference_size=2)
    c = Critic(config, VOCAB).double()
    g = DenseGraph(*(t.double() for t in molecules()))
    same = DenseGraph(g.x[:1].repeat(3, 1, 1), g.adj[:1].repeat(3, 1, 1, 1))
    h_same = c._with_batch_feature(c._embed_dense(*same))
    h_varied = c._with_batch_feature(c._embed_dense(*g))
    assert h_same.shape == (3, 128 + 4)
    torch.testing.assert_close(h_same[:, -4:], torch.ones(3, 4, dtype=torch.float64))
    assert (h_varied[:, -4:] < 1).all()
    x = g.x.clone().requires_grad_(True)
    grad = torch.autograd.grad(c(x, g.adj)[0], x)[0]
    assert grad[1:].abs().sum() == 0
    x_idx, adj_idx = argmax_graph(g)
    c.set_reference(x_idx[:2], adj_idx[:2])
    together = c.score_dense(*g)
    alone = torch.cat([c.score_dense(g.x[i : i + 1], g.adj[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(alone, together)


def test_default_critic_is_permutation_invariant_in_training_and_pipeline_scores():
    torch.manual_seed(0)
    config = CriticConfig(reference_size=2)
    c = Critic(config, VOCAB).double()  # minibatch kernels: the default
    assert c.config.minibatch_distance and c.config.minibatch_kernels > 0
    g = DenseGraph(*(t.double() for t in molecules()))
    x_idx, adj_idx = argmax_graph(g)
    c.set_reference(x_idx[1:], adj_idx[1:])
    perm = torch.tensor([4, 2, 0, 5, 1, 3])
    permuted = DenseGraph(g.x[:, perm], g.adj[:, perm][:, :, perm])
    torch.testing.assert_close(c(*g), c(*permuted), rtol=0, atol=1e-12)
    torch.testing.assert_close(c.score_dense(*g), c.score_dense(*permuted), rtol=0, atol=1e-12)


def test_capped_batch_feature_compares_graphs_within_blocks_of_consecutive_graphs():
    torch.manual_seed(0)
    full = Critic(CriticConfig(minibatch_kernels=4), VOCAB).double()
    capped = Critic(CriticConfig(minibatch_kernels=4, minibatch_others=1), VOCAB).double()
    capped.load_state_dict(full.state_dict())
    g = DenseGraph(*(t.double() for t in molecules()))
    h = full._embed_dense(*g)
    m = full._kernel_space(h)
    # by hand: 3 graphs, at most 1 batch-mate -> blocks {0, 1} and {2}
    pair = torch.exp(-(m[0] - m[1]).abs().sum(-1))
    expected = torch.stack([pair, pair, torch.zeros_like(pair)])
    torch.testing.assert_close(capped._with_batch_feature(h)[:, -4:], expected)
    # a cap at or above B - 1 is the full mean over batch-mates
    wide = Critic(CriticConfig(minibatch_kernels=4, minibatch_others=2), VOCAB).double()
    wide.load_state_dict(full.state_dict())
    torch.testing.assert_close(wide._with_batch_feature(h), full._with_batch_feature(h))
    x = g.x.clone().requires_grad_(True)
    grad = torch.autograd.grad(capped(x, g.adj)[0], x)[0]
    assert grad[1:].abs().sum() == 0  # batch-mates still enter as constants


def test_closed_walk_critic_is_permutation_invariant_and_sees_ring_closure():
    torch.manual_seed(0)
    c = Critic(CriticConfig(minibatch_distance=False, critic_walks=6), VOCAB).double()
    assert c.num_walk_features == 10 and c.convs[0].in_channels == VOCAB.num_atom_types + 10
    g = DenseGraph(*(t.double() for t in molecules()))
    perm = torch.tensor([4, 2, 0, 5, 1, 3])
    permuted = DenseGraph(g.x[:, perm], g.adj[:, perm][:, :, perm])
    torch.testing.assert_close(c(*g), c(*permuted), rtol=0, atol=1e-12)
    # six carbons as one 6-ring or as two 3-rings: every atom has two single bonds to carbons,
    # so a convolutional critic sees the same atoms, but closed walks see the ring sizes
    x = torch.zeros(2, 6, VOCAB.num_atom_types, dtype=torch.float64)
    x[..., 1] = 1.0
    adj = torch.zeros(2, 6, 6, VOCAB.num_bond_types, dtype=torch.float64)
    adj[..., 0] = 1.0
    single = torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    hexagon = [(i, (i + 1) % 6) for i in range(6)]
    triangles = [(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3)]
    for graph, pairs in enumerate([hexagon, triangles]):
        for i, j in pairs:
            adj[graph, i, j] = adj[graph, j, i] = single
    blind = critic()(x, adj)
    torch.testing.assert_close(blind[0], blind[1], rtol=0, atol=1e-12)
    seeing = c(x, adj)
    assert (seeing[0] - seeing[1]).abs() > 1e-6
