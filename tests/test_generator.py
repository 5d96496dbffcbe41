"""The generator, its relaxations and its draws (molgan.generator)."""

import pytest
import torch

from molgan.generator import Generator, GeneratorConfig, draw_graph, relax, temper
from molgan.graph import DenseGraph, argmax_graph
from tests.graphs import VOCAB


def generator(transformer: int = 0):
    torch.manual_seed(0)
    return Generator(GeneratorConfig(z_dim=8, gen_hidden=(16, 32), gen_transformer=transformer,
                                     gen_node_dim=16), VOCAB)


@pytest.mark.parametrize("transformer", [0, 2])
def test_generator_adjacency_is_symmetric_with_a_no_bond_diagonal(transformer):
    g = generator(transformer)
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


def test_atom_decoder_bonds_are_a_symmetric_function_of_both_atoms_in_context():
    """The transformer decoder: every parameter learns; a bond's logits are exactly symmetric
    before any symmetrization; permuting the atom slots' embeddings (after attention) permutes
    the bond logits alike; and attention makes a bond depend on the other atoms."""
    from molgan.generator import AtomDecoder

    torch.manual_seed(1)
    decoder = AtomDecoder(width=16, num_nodes=5, dim=16, layers=2, num_bond_types=4)
    h = torch.randn(3, 16)
    nodes, bonds = decoder(h)
    assert nodes.shape == (3, 5, 16) and bonds.shape == (3, 5, 5, 4)
    torch.testing.assert_close(bonds, bonds.transpose(1, 2), rtol=0, atol=0)
    order = torch.tensor([3, 0, 4, 1, 2])
    summed, product = decoder.pair_sum(nodes[:, order]), decoder.pair_product(nodes[:, order])
    permuted = decoder.to_bonds(torch.nn.functional.gelu(
        summed.unsqueeze(2) + summed.unsqueeze(1) + product.unsqueeze(2) * product.unsqueeze(1)))
    torch.testing.assert_close(permuted, bonds[:, order][:, :, order])
    # the bond (0, 1) depends on slot 4's embedding through attention
    slots = decoder.slots(h).view(3, 5, 16).detach().requires_grad_(True)
    x = slots + decoder.slot_embedding
    for block in decoder.blocks:
        x = block(x)
    s, p = decoder.pair_sum(decoder.norm(x)), decoder.pair_product(decoder.norm(x))
    bond = decoder.to_bonds(torch.nn.functional.gelu(s[:, 0] + s[:, 1] + p[:, 0] * p[:, 1]))
    (grad,) = torch.autograd.grad(bond.sum(), slots)
    assert grad[:, 4].abs().sum() > 0
    g = generator(2)
    logits = g(torch.randn(4, 8))
    (logits.x.sum() + logits.adj.masked_fill(logits.adj.abs() > 1e3, 0).pow(2).sum()).backward()
    for name, parameter in g.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    with pytest.raises(ValueError, match="multiple of the 4"):
        AtomDecoder(width=16, num_nodes=5, dim=18, layers=1, num_bond_types=4)


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


def _limits_by_walking(x_idx: torch.Tensor, adj_idx: torch.Tensor, max_valence: torch.Tensor,
                       no_isolated: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """bond_limits the slow way: walk the pairs in row-major order as the draw does."""
    b, n = x_idx.shape
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    last = {node: m for m, pair in enumerate(pairs) for node in pair}
    lowest = torch.zeros(b, len(pairs), dtype=torch.long)
    highest = torch.zeros(b, len(pairs), dtype=torch.long)
    for g in range(b):
        remaining = [int(max_valence[int(t)]) for t in x_idx[g]]
        lonely = [r > 0 for r in remaining]
        for m, (i, j) in enumerate(pairs):
            room = min(remaining[i], remaining[j])
            highest[g, m] = room
            if no_isolated and any(last[k] == m and lonely[k] for k in (i, j)) and room >= 1:
                lowest[g, m] = 1
            code = int(adj_idx[g, i, j])
            remaining[i] -= code
            remaining[j] -= code
            if code:
                lonely[i] = lonely[j] = False
    return lowest, highest


@pytest.mark.parametrize("n", [2, 3, 9, 14])
def test_bond_limits_equal_walking_the_draw_order(n: int) -> None:
    """The O(B N^2) limits equal the pair-by-pair walk, on graphs drawn within valences and
    on random ones (limits are defined for any graph: they can go negative)."""
    from molgan.chem import max_valences
    from molgan.generator import bond_limits

    max_valence = torch.tensor(max_valences(VOCAB))
    rng = torch.Generator().manual_seed(n)
    forced = False
    logits = DenseGraph(torch.randn(24, n, VOCAB.num_atom_types, generator=rng),
                        torch.randn(24, n, n, VOCAB.num_bond_types, generator=rng))
    for no_isolated in (False, True):
        drawn = draw_graph(logits, generator=rng, max_valence=max_valence,
                           no_isolated=no_isolated)
        random_adj = torch.randint(0, VOCAB.num_bond_types, (24, n, n), generator=rng)
        random_adj = torch.triu(random_adj, 1) + torch.triu(random_adj, 1).transpose(1, 2)
        for x_idx, adj_idx in (drawn, (drawn[0], random_adj.to(torch.uint8))):
            fast = bond_limits(x_idx, adj_idx, max_valence, no_isolated)
            slow = _limits_by_walking(x_idx, adj_idx, max_valence, no_isolated)
            assert torch.equal(fast[0], slow[0]) and torch.equal(fast[1], slow[1])
            forced |= bool(slow[0].any())
    assert forced or n == 2  # the case exercises the rule against isolated atoms
