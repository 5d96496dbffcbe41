import pytest
import torch

from molgan.critic import Critic, CriticConfig
from molgan.generator import Generator, GeneratorConfig, draw_graph, relax, temper
from molgan.graph import DenseGraph, argmax_graph, one_hot_graph
from molgan.layers import GraphAggregation, RelationalGraphConv
from molgan.vocab import Vocab

VOCAB = Vocab.from_symbols(["C", "N", "O", "F", "N+", "O-"], max_atoms=6)


def molecules():
    """Three small graphs as indices (C-C=O, N#C-C-O, single O), padded to 6 nodes."""
    x = torch.zeros(3, 6, dtype=torch.uint8)
    adj = torch.zeros(3, 6, 6, dtype=torch.uint8)
    x[0, :3] = torch.tensor([1, 1, 3])
    adj[0, 0, 1] = adj[0, 1, 0] = 1
    adj[0, 1, 2] = adj[0, 2, 1] = 2
    x[1, :4] = torch.tensor([2, 1, 1, 3])
    adj[1, 0, 1] = adj[1, 1, 0] = 3
    adj[1, 1, 2] = adj[1, 2, 1] = 1
    adj[1, 2, 3] = adj[1, 3, 2] = 1
    x[2, 0] = 3
    return one_hot_graph(x, adj, VOCAB.num_atom_types, VOCAB.num_bond_types)


def critic():
    """A critic without batch features: each forward score depends on its graph alone."""
    torch.manual_seed(0)
    return Critic(CriticConfig(minibatch_distance=False), VOCAB).double()


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


@pytest.mark.parametrize("in_channels,out_channels", [(9, 128), (137, 64)])
def test_relational_conv_equals_a_loop_over_bond_types_in_both_matmul_orders(in_channels,
                                                                          out_channels):
    torch.manual_seed(0)
    conv = RelationalGraphConv(in_channels, out_channels, num_relations=3).double()
    h = torch.randn(5, 9, in_channels, dtype=torch.float64)
    adj = torch.softmax(torch.randn(5, 9, 9, 3, dtype=torch.float64), -1)
    node_weight = torch.rand(5, 9, dtype=torch.float64)
    weights = conv.relation.weight.view(3, out_channels, in_channels)
    expected = conv.root(h)
    for r in range(3):  # sum_j A_ijr Theta_r h_j, one bond type at a time
        expected = expected + adj[..., r] @ (h @ weights[r].T)
    expected = torch.tanh(expected) * node_weight.unsqueeze(-1)
    torch.testing.assert_close(conv(h, adj, node_weight), expected, rtol=1e-12, atol=1e-12)


def test_layers_zero_padded_nodes_and_have_readable_reprs():
    conv = RelationalGraphConv(4, 8, num_relations=3)
    h = torch.rand(2, 5, 4)
    weight = torch.tensor([[1.0, 1, 0, 0, 0], [1.0, 1, 1, 1, 0]])
    out = conv(h, torch.rand(2, 5, 5, 3), weight)
    assert out.shape == (2, 5, 8) and out[0, 2:].abs().sum() == 0
    assert repr(conv) == "RelationalGraphConv(4, 8, num_relations=3)"
    assert GraphAggregation(8, 16)(out, weight).shape == (2, 16)


def generator():
    torch.manual_seed(0)
    return Generator(GeneratorConfig(z_dim=8, gen_hidden=(16, 32)), VOCAB)


def test_generator_adjacency_is_symmetric_with_a_no_bond_diagonal():
    g = generator()
    logits = g(torch.randn(5, 8))
    assert logits.x.shape == (5, 6, VOCAB.num_atom_types)
    assert logits.adj.shape == (5, 6, 6, VOCAB.num_bond_types)
    torch.testing.assert_close(logits.adj, logits.adj.transpose(1, 2))
    for mode in ("softmax", "gumbel", "hard"):
        soft = relax(logits, mode, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(soft.adj, soft.adj.transpose(1, 2))
        diagonal = soft.adj[:, torch.arange(6), torch.arange(6)]
        assert (diagonal[..., 0] == 1).all() and (diagonal[..., 1:] == 0).all()
    x_idx, adj_idx = argmax_graph(logits)
    assert (adj_idx == adj_idx.transpose(1, 2)).all()
    assert (adj_idx[:, torch.arange(6), torch.arange(6)] == 0).all()


def test_relaxations_sum_to_one_and_hard_is_one_hot():
    logits = generator()(torch.randn(5, 8))
    for mode in ("softmax", "gumbel", "hard"):
        soft = relax(logits, mode, temperature=0.7, generator=torch.Generator().manual_seed(1))
        for t in soft:
            torch.testing.assert_close(t.sum(-1), torch.ones(t.shape[:-1]))
    hard = relax(logits, "hard", generator=torch.Generator().manual_seed(1))
    assert set(hard.x.detach().unique().tolist()) <= {0.0, 1.0}


def test_straight_through_passes_gradients_to_the_generator():
    g = generator()
    hard = relax(g(torch.randn(5, 8)), "hard", generator=torch.Generator().manual_seed(2))
    weights = torch.randn_like(hard.x)
    (hard.x * weights).sum().add(hard.adj.pow(2).sum()).backward()
    assert g.to_x.weight.grad is not None and g.to_x.weight.grad.abs().sum() > 0
    assert g.to_adj.weight.grad.abs().sum() > 0


def test_gumbel_noise_changes_samples_but_not_softmax():
    logits = generator()(torch.randn(5, 8))
    a = relax(logits, "gumbel", generator=torch.Generator().manual_seed(0))
    b = relax(logits, "gumbel", generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(a.x, b.x)
    torch.testing.assert_close(relax(logits, "softmax").x, torch.softmax(logits.x, -1))


def test_draw_graph_is_the_argmax_of_the_hard_relaxation_with_the_same_noise():
    """draw_graph (Gumbel-max on the upper triangle only) gives exactly the graphs of the
    straight-through relaxation of logits / T with the same generator stream."""
    with torch.no_grad():
        logits = generator()(torch.randn(256, 8))
    for temperature in (1.0, 0.5, 2.0):
        tempered = DenseGraph(logits.x / temperature, logits.adj / temperature)
        expected = argmax_graph(relax(tempered, "hard",
                                      generator=torch.Generator().manual_seed(3)))
        drawn = draw_graph(logits, temperature, generator=torch.Generator().manual_seed(3))
        for got, want in zip(drawn, expected):
            assert got.dtype == torch.uint8
            assert torch.equal(got, want)
    x_idx, adj_idx = draw_graph(logits, generator=torch.Generator().manual_seed(4))
    assert torch.equal(adj_idx, adj_idx.transpose(1, 2))
    assert (adj_idx[:, torch.arange(6), torch.arange(6)] == 0).all()
    assert not torch.equal(x_idx, argmax_graph(logits)[0])  # a draw, not the argmax


def test_temper_is_the_softmax_of_log_probabilities_over_t():
    with torch.no_grad():
        probs = relax(generator()(torch.randn(64, 8)), "softmax")
    same = temper(probs, 1.0)
    torch.testing.assert_close(same.x, probs.x)
    torch.testing.assert_close(same.adj, probs.adj)
    flat = temper(probs, 2.0)
    torch.testing.assert_close(flat.adj, torch.softmax(probs.adj.clamp(min=1e-9).log() / 2, -1))
    torch.testing.assert_close(flat.x.sum(-1), torch.ones(flat.x.shape[:-1]))
    assert flat.x.max(-1).values.mean() < probs.x.max(-1).values.mean()  # flatter


def test_sampled_decoding_is_symmetric_and_varies_for_the_same_latent():
    from molgan.sample import Sampler

    torch.manual_seed(0)
    sampler = Sampler(generator(), VOCAB, decode="sample")
    x_a, adj_a = sampler.sample_graphs(64, seed=0)
    x_b, adj_b = sampler.sample_graphs(64, seed=0)
    assert (x_a == x_b).all() and (adj_a == adj_b).all()  # seeded
    assert (adj_a == adj_a.transpose(0, 2, 1)).all()
    assert (adj_a[:, range(6), range(6)] == 0).all()
    argmax = Sampler(sampler.generator, VOCAB, decode="argmax")
    x_c, _ = argmax.sample_graphs(64, seed=0)  # same latents, argmax decoding
    assert (x_a != x_c).any()


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


def test_valence_mask_forbids_bond_orders_above_either_atoms_valence():
    from molgan.chem import max_valences

    torch.manual_seed(0)
    config = GeneratorConfig(z_dim=8, gen_hidden=(16, 32), gen_valence_mask=True)
    masked = Generator(config, VOCAB)
    plain = Generator(GeneratorConfig(z_dim=8, gen_hidden=(16, 32), gen_valence_mask=False),
                      VOCAB)
    plain.load_state_dict(masked.state_dict())  # the mask adds no weights
    with torch.no_grad():  # bias the bond logits towards triple bonds everywhere
        masked.to_adj.bias.view(-1, VOCAB.num_bond_types)[:, 3] += 5.0
        plain.to_adj.bias.copy_(masked.to_adj.bias)
    z = torch.randn(64, 8)
    x_idx, adj_idx = argmax_graph(masked(z))
    cap = torch.tensor(max_valences(VOCAB))[x_idx.long()]
    assert (adj_idx <= torch.minimum(cap[:, :, None], cap[:, None, :])).all()
    assert (adj_idx[x_idx == 0].sum() == 0)  # no bond to an empty slot
    _, plain_adj = argmax_graph(plain(z))
    assert (plain_adj == 3).any()  # without the mask the same weights make triple bonds
    assert (adj_idx == 3).any()  # between atoms that allow them (C, N), the mask keeps them
    logits = masked(z)
    logits.adj[logits.adj <= -1e3].sum().backward()
    assert masked.to_adj.weight.grad.abs().sum() == 0  # masked logits carry no gradient


def test_sampling_temperature_goes_from_argmax_to_spread_draws():
    from molgan.sample import Sampler

    torch.manual_seed(0)  # plain draws: a cold draw within valences is not the argmax
    net = Generator(GeneratorConfig(z_dim=8, gen_hidden=(16, 32), valence_draw=False), VOCAB)
    argmax_x, argmax_adj = Sampler(net, VOCAB).sample_graphs(64, seed=0)
    cold_x, cold_adj = Sampler(net, VOCAB, decode="sample",
                               temperature=1e-4).sample_graphs(64, seed=0)
    assert (cold_x == argmax_x).all() and (cold_adj == argmax_adj).all()

    def changed(temperature):
        x, _ = Sampler(net, VOCAB, decode="sample",
                       temperature=temperature).sample_graphs(64, seed=0)
        return (x != argmax_x).mean()

    assert changed(0.5) < changed(1.0) < changed(4.0)
    with pytest.raises(ValueError, match="decode='sample'"):
        Sampler(net, VOCAB, temperature=0.5)
    with pytest.raises(ValueError, match="> 0"):
        Sampler(net, VOCAB, decode="sample", temperature=0.0)


def valence_of(x_idx, adj_idx):
    """Sum of bond orders per atom ``[B, N]`` over bonds between atoms (padding ignored)."""
    exists = x_idx > 0
    return (adj_idx.long() * exists[:, None, :]).sum(-1) * exists


@pytest.mark.parametrize("no_isolated", [False, True])
def test_valence_draw_respects_valences_and_its_log_prob_is_the_draws_frequency(no_isolated):
    """Atoms fixed (F, C, F, C); bond logits that favour high orders. Drawn within valences
    (pairs in row-major order; with or without the rule against isolated atoms), no atom exceeds its valence, and the empirical frequency of
    every graph matches exp(graph_log_prob(..., max_valence, no_isolated)) within
    4 standard errors; the plain draw of the same logits breaks valences (so the first check
    can fail)."""
    from molgan.chem import max_valences
    from molgan.generator import bond_limits
    from molgan.loss import graph_log_prob

    torch.manual_seed(0)
    tokens = torch.tensor([4, 1, 4, 1])  # F, C, F, C
    x_logits = torch.full((4, VOCAB.num_atom_types), -30.0)
    x_logits[torch.arange(4), tokens] = 30.0
    adj_logits = torch.randn(4, 4, VOCAB.num_bond_types) + torch.tensor([0.0, 0.5, 1.0, 1.5])
    adj_logits = (adj_logits + adj_logits.transpose(0, 1)) / 2
    n = 40_000
    probs = DenseGraph(torch.softmax(x_logits, -1).expand(n, -1, -1),
                       torch.softmax(adj_logits, -1).expand(n, -1, -1, -1))
    log_probs = DenseGraph(probs.x.log(), probs.adj.log())
    max_valence = torch.tensor(max_valences(VOCAB))
    rng = torch.Generator().manual_seed(1)
    x_idx, adj_idx = draw_graph(log_probs, generator=rng, max_valence=max_valence,
                                no_isolated=no_isolated)
    assert torch.equal(adj_idx, adj_idx.transpose(1, 2))
    assert (valence_of(x_idx, adj_idx) <= max_valence[x_idx.long()]).all()
    keys, inverse, counts = torch.unique(adj_idx.reshape(n, -1), dim=0, return_inverse=True,
                                         return_counts=True)
    first = torch.zeros(len(keys), dtype=torch.long).scatter_(0, inverse, torch.arange(n))
    expected = graph_log_prob(DenseGraph(probs.x[first], probs.adj[first]), x_idx[first],
                              adj_idx[first], max_valence=max_valence,
                              no_isolated=no_isolated).exp()
    if no_isolated:  # the rule forced some pairs, so the case tests it
        assert bond_limits(x_idx[first], adj_idx[first], max_valence, True)[0].any()
    observed = counts / n
    assert len(keys) >= 10
    assert (observed - expected).abs().max() <= 4 * (expected * (1 - expected) / n).sqrt().max()
    assert expected.sum() > 0.99  # the graphs drawn carry (nearly) all the probability
    plain_x, plain_adj = draw_graph(log_probs, generator=rng)
    assert (valence_of(plain_x, plain_adj) > max_valence[plain_x.long()]).any()


def test_no_isolated_draw_leaves_no_atom_without_a_bond_when_there_is_room():
    """Six carbons, bond logits that favour "no bond": the plain valence draw leaves many
    atoms isolated; with no_isolated, an atom is isolated only where its last pair had no
    room (its partner was full), and the forced pairs are bonded."""
    from molgan.chem import max_valences
    from molgan.generator import bond_limits

    torch.manual_seed(0)
    b, n, y = 512, VOCAB.max_atoms, VOCAB.num_bond_types
    x = torch.full((b, n, VOCAB.num_atom_types), -30.0)
    x[..., 1] = 30.0  # C everywhere
    adj = torch.randn(b, n, n, y) - torch.tensor([0.0, 3.0, 4.0, 5.0])
    adj = (adj + adj.transpose(1, 2)) / 2
    logits = DenseGraph(x, adj)
    cap = torch.tensor(max_valences(VOCAB))

    def isolated(graph):
        return ((graph[1] > 0).sum(-1) == 0).sum().item()

    plain = draw_graph(logits, generator=torch.Generator().manual_seed(1), max_valence=cap)
    guarded = draw_graph(logits, generator=torch.Generator().manual_seed(1), max_valence=cap,
                         no_isolated=True)
    assert isolated(plain) > b and isolated(guarded) < isolated(plain) / 3
    lowest, highest = bond_limits(*guarded, cap, no_isolated=True)
    assert lowest.max() == 1 and (lowest <= highest).all()
    rows, cols = torch.triu_indices(n, n, offset=1)
    assert (guarded[1][:, rows, cols][lowest == 1] > 0).all()  # forced pairs are bonded
    assert not bond_limits(*guarded, cap)[0].any()
    # without the valence draw the rule has no effect: the pairs are drawn independently
    Generator(GeneratorConfig(valence_draw=False, draw_no_isolated=True), VOCAB)
    assert torch.equal(draw_graph(logits, 1.0, generator=torch.Generator().manual_seed(4),
                                  no_isolated=True)[1],
                       draw_graph(logits, 1.0, generator=torch.Generator().manual_seed(4))[1])
    m = rows.numel()
    order_ = torch.arange(m).expand(b, -1)
    position = torch.empty_like(order_).scatter_(1, order_, torch.arange(m).expand(b, -1))
    for graph, atom in ((guarded[1] > 0).sum(-1) == 0).nonzero().tolist():
        touching = ((rows == atom) | (cols == atom)).nonzero().squeeze(1)
        last_pair = touching[position[graph, touching].argmax()]
        assert highest[graph, last_pair] == 0  # no room there: nothing could be forced


def test_sampler_draws_within_valences_when_the_model_does():
    from molgan.chem import max_valences
    from molgan.sample import Sampler

    torch.manual_seed(0)
    config = GeneratorConfig(z_dim=8, gen_hidden=(16, 32), valence_draw=True)
    net = Generator(config, VOCAB)
    with torch.no_grad():  # many bonds of high order: a plain draw breaks valences
        net.to_adj.bias.view(-1, VOCAB.num_bond_types)[:, 1:] += 2.0
    cap = torch.tensor(max_valences(VOCAB))
    x, adj = (torch.from_numpy(a) for a in
              Sampler(net, VOCAB, decode="sample").sample_graphs(256, seed=0))
    assert (valence_of(x, adj) <= cap[x.long()]).all()
    x, adj = (torch.from_numpy(a) for a in
              Sampler(net, VOCAB, decode="sample", valence_draw=False).sample_graphs(256, 0))
    assert (valence_of(x, adj) > cap[x.long()]).any()
    with pytest.raises(ValueError, match="valence_draw"):
        Sampler(net, VOCAB, valence_draw=True)  # argmax draws nothing
