import math

import pytest
import torch

from molgan.graph import DenseGraph, one_hot_graph
from molgan.loss import (critic_loss, generator_loss, gradient_norms, gradient_penalty,
                         interpolate,
                         scores_and_gradient_norms)


def random_graphs(b=4, n=5, t=3, y=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return DenseGraph(torch.rand(b, n, t, generator=g), torch.rand(b, n, n, y, generator=g))


class LinearCritic(torch.nn.Module):
    """D(x, a) = <w_x, x> + <w_a, a>: its gradient is (w_x, w_a) everywhere."""

    def __init__(self, n=5, t=3, y=4):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.w_x = torch.nn.Parameter(torch.randn(n, t, generator=g) * 0.3)
        self.w_a = torch.nn.Parameter(torch.randn(n, n, y, generator=g) * 0.1)

    def forward(self, x, a):
        return (x * self.w_x).sum((1, 2)) + (a * self.w_a).sum((1, 2, 3))


@pytest.mark.parametrize("functional", [False, True])
def test_gradient_penalty_of_a_linear_critic_matches_the_hand_computed_value(functional):
    critic = LinearCritic()
    real, fake = random_graphs(seed=0), random_graphs(seed=1)
    norm = math.sqrt(critic.w_x.pow(2).sum().item() + critic.w_a.pow(2).sum().item())
    expected = (norm - 1.0) ** 2
    for seed in range(3):  # any epsilon gives the same value
        gp = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(seed),
                              functional=functional)
        assert gp.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("functional", [False, True])
def test_penalty_interpolates_x_and_adj_with_one_epsilon_per_sample(functional):
    """D = ||x||^2 + ||a||^2 has gradient norm 2 * sqrt(||x_hat||^2 + ||a_hat||^2)."""
    def critic(x, a):
        return x.pow(2).sum((1, 2)) + a.pow(2).sum((1, 2, 3))

    real, fake = random_graphs(seed=2), random_graphs(seed=3)
    gp = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(7),
                          functional=functional)
    epsilon = torch.rand(4, generator=torch.Generator().manual_seed(7))
    hat = interpolate(real, fake, epsilon)
    for i in range(4):  # interpolation is per sample and shared by x and adj
        e = epsilon[i]
        assert torch.allclose(hat.x[i], e * real.x[i] + (1 - e) * fake.x[i])
        assert torch.allclose(hat.adj[i], e * real.adj[i] + (1 - e) * fake.adj[i])
    norms = 2 * torch.sqrt(hat.x.pow(2).sum((1, 2)) + hat.adj.pow(2).sum((1, 2, 3)))
    assert gp.item() == pytest.approx((norms - 1).pow(2).mean().item(), rel=1e-5)


def test_loss_signs_reward_high_real_and_low_fake_scores():
    def critic(x, a):  # scores the mean of x: real graphs (ones) score higher
        return x.mean((1, 2)) + 0 * a.sum((1, 2, 3))

    real = DenseGraph(torch.ones(3, 2, 2), torch.zeros(3, 2, 2, 2))
    fake = DenseGraph(torch.zeros(3, 2, 2), torch.zeros(3, 2, 2, 2))
    parts = critic_loss(critic, real, fake, lambda_gp=0.0)
    assert parts.wasserstein.item() == pytest.approx(1.0)
    assert parts.loss.item() == pytest.approx(-1.0)
    assert generator_loss(critic, fake).item() == pytest.approx(0.0)
    assert generator_loss(critic, real).item() == pytest.approx(-1.0)


def test_critic_loss_does_not_backpropagate_into_the_fake_batch():
    critic = LinearCritic()
    fake_x = torch.rand(4, 5, 3, requires_grad=True)
    fake = DenseGraph(fake_x, torch.rand(4, 5, 5, 4))
    critic_loss(critic, random_graphs(), fake).loss.backward()
    assert fake_x.grad is None and critic.w_x.grad is not None


@pytest.mark.parametrize("batch_feature", [
    {"minibatch_distance": False}, {"minibatch_distance": True, "minibatch_kernels": 0},
    {"minibatch_distance": True, "minibatch_kernels": 4},
    {"minibatch_distance": True, "minibatch_kernels": 4, "minibatch_others": 3},
])
def test_one_call_for_real_and_fake_equals_two_calls_in_value_and_gradients(batch_feature):
    """critic_loss scores real and fake batches in one call (grouped for a batch feature);
    the objective and its gradients equal those of two separate calls."""
    from molgan.critic import Critic, CriticConfig
    from molgan.loss import gradient_penalty
    from molgan.vocab import Vocab

    torch.manual_seed(0)
    vocab = Vocab.from_symbols(["C", "N"], max_atoms=5)
    critic = Critic(CriticConfig(**batch_feature), vocab).double()
    real = DenseGraph(*(t.double() for t in random_graphs(b=6, n=5, t=3, y=4, seed=0)))
    fake = DenseGraph(*(t.double() for t in random_graphs(b=6, n=5, t=3, y=4, seed=1)))
    parts = critic_loss(critic, real, fake, 10.0, torch.Generator().manual_seed(3),
                        grouped=batch_feature["minibatch_distance"])
    parts.loss.backward()
    one_call = [p.grad.clone() for p in critic.parameters()]
    critic.zero_grad()
    wasserstein = critic(*real).mean() - critic(*fake).mean()
    penalty = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(3))
    (-wasserstein + 10.0 * penalty).backward()
    torch.testing.assert_close(parts.wasserstein, wasserstein.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(parts.gradient_penalty, penalty.detach(), rtol=1e-10, atol=1e-12)
    for a, p in zip(one_call, critic.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("functional", [False, True])
def test_feature_gradient_norms_by_hand_and_the_one_sided_term(functional):
    """D_i = 2 sum(x_i) + c_i sum_k (f_k + p_ik) with F = 3 features f = mean_j sum(x_j)
    of the detached batch: dD_i/dp_i = c_i (1, 1, 1), norm sqrt(3) |c_i|. The critic loss
    adds mu * mean over real and fake of max(0, norm - 1)^2, and with the data penalty nu *
    the same of the graph gradient's norm."""
    c = torch.tensor([0.1, 0.5, 1.0, 2.0])

    def critic(x, adj, feature_probe=None):
        f = x.detach().sum((1, 2)).mean().expand(x.shape[0], 3)
        if feature_probe is not None:
            f = f + feature_probe
        weights = c.repeat(x.shape[0] // len(c))  # real and fake batches scored together
        return 2 * x.sum((1, 2)) + 0 * adj.sum((1, 2, 3)) + weights * f.sum(1)

    graph = random_graphs(b=4, n=5, t=3, seed=4)
    scores, by_graph, norms = scores_and_gradient_norms(critic, graph.x, graph.adj,
                                                        num_features=3, functional=functional)
    assert by_graph is None
    torch.testing.assert_close(scores, critic(graph.x, graph.adj))
    torch.testing.assert_close(norms, math.sqrt(3) * c)
    real, fake = random_graphs(b=4, seed=6), random_graphs(b=4, seed=7)
    args = (critic, real, fake, 10.0, torch.Generator().manual_seed(0))
    plain = critic_loss(*args, functional_penalty=functional)
    mu = 5.0
    steep = critic_loss(*args, functional_penalty=functional,
                        feature_penalty=mu, num_features=3)
    expected = (math.sqrt(3) * c - 1).clamp(min=0).pow(2).mean()  # same for real and fake
    torch.testing.assert_close(steep.feature_penalty, expected)
    torch.testing.assert_close(steep.loss, plain.loss + mu * expected)
    assert plain.feature_penalty.item() == 0 and plain.data_penalty.item() == 0
    # the graph gradient: 2 per element of x, norm sqrt(4 N T) = sqrt(60) > 1 for every graph
    nu = 0.5
    both = critic_loss(*args, functional_penalty=functional,
                       feature_penalty=mu, num_features=3, data_penalty=nu)
    torch.testing.assert_close(both.data_penalty, torch.tensor((math.sqrt(60) - 1) ** 2))
    torch.testing.assert_close(both.loss, steep.loss + nu * (math.sqrt(60) - 1) ** 2)


def test_gradient_norms_of_the_real_critic_match_its_mlp_gradient_and_the_penalty_norms():
    """For the minibatch-kernel critic, from one call: the feature norms are the gradient of
    each score with respect to its batch features, taken independently through the critic's
    output MLP; the graph norms are those of the gradient penalty (gradient_norms)."""
    from molgan.critic import Critic, CriticConfig
    from molgan.vocab import Vocab

    torch.manual_seed(0)
    vocab = Vocab.from_symbols(["C", "N"], max_atoms=5)
    critic = Critic(CriticConfig(minibatch_kernels=4), vocab).double()
    graph = DenseGraph(*(t.double() for t in random_graphs(b=6, n=5, t=3, y=4, seed=5)))
    f = critic.num_batch_features
    assert f == 4
    scores, by_graph, norms = scores_and_gradient_norms(critic, graph.x, graph.adj,
                                                        graph=True, num_features=f)
    plain = gradient_norms(critic, graph)  # what the gradient penalty takes, per graph
    torch.testing.assert_close(by_graph, plain, rtol=1e-9, atol=1e-12)
    with torch.no_grad():
        features = critic._with_batch_feature(critic._embed_dense(*graph))
    features.requires_grad_(True)
    (grad,) = torch.autograd.grad(critic.mlp(features).sum(), features)
    by_mlp = grad[:, -f:].norm(dim=1)
    assert by_mlp.min() > 1e-4  # the features matter to the scores
    torch.testing.assert_close(norms, by_mlp, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(scores, critic(*graph), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="minibatch-distance"):
        scores_and_gradient_norms(Critic(CriticConfig(minibatch_distance=False), vocab),
                                  graph.x.float(), graph.adj.float(), num_features=1)


@pytest.mark.parametrize("batch_feature", [
    {"minibatch_distance": False},
    {"minibatch_distance": True, "minibatch_kernels": 0},
    {"minibatch_distance": True, "minibatch_kernels": 0, "feature_penalty": 10.0,
     "data_penalty": 10.0}])
def test_functional_penalty_equals_the_autograd_one_in_value_and_gradients(batch_feature):
    """torch.func input gradients (the form torch.compile traces) give the same critic loss
    and the same parameter gradients through the penalty's double backward; so does taking
    the steepness penalties from a second call (``steepness_critic``, as under DDP)."""
    from molgan.critic import Critic, CriticConfig
    from molgan.vocab import Vocab

    torch.manual_seed(0)
    batch_feature = dict(batch_feature)
    feature_penalty = batch_feature.pop("feature_penalty", 0.0)
    data_penalty = batch_feature.pop("data_penalty", 0.0)
    critic = Critic(CriticConfig(**batch_feature), Vocab.from_symbols(["C", "N"], max_atoms=5))
    critic = critic.double()
    if data_penalty:
        with torch.no_grad():  # a critic steep at the data: the steepness terms are active
            for p in critic.mlp.parameters():
                p.mul_(4)
            first = next(m for m in critic.mlp.modules() if isinstance(m, torch.nn.Linear))
            first.weight[:, -critic.num_batch_features:] *= 3
    real = DenseGraph(*(t.double() for t in random_graphs(b=6, n=5, t=3, y=4, seed=0)))
    fake = DenseGraph(*(t.double() for t in random_graphs(b=6, n=5, t=3, y=4, seed=1)))
    results = []
    for functional, separate in ((False, False), (True, False), (False, True)):
        critic.zero_grad()
        parts = critic_loss(critic, real, fake, 10.0, torch.Generator().manual_seed(3),
                            grouped=batch_feature["minibatch_distance"],
                            functional_penalty=functional, feature_penalty=feature_penalty,
                            num_features=critic.num_batch_features, data_penalty=data_penalty,
                            steepness_critic=critic if separate else None)
        parts.loss.backward()
        results.append((parts, [p.grad.clone() for p in critic.parameters()]))
    (autograd_parts, autograd_grads), *others = results
    assert autograd_parts.gradient_penalty.item() > 1e-3  # a penalty that matters
    if data_penalty:
        assert autograd_parts.data_penalty.item() > 0 and autograd_parts.feature_penalty > 0
    for (other_parts, other_grads), separate in zip(others, (False, True)):
        for a, b in zip(autograd_parts, other_parts):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        # two calls sum the objective's and the penalties' parameter gradients in another
        # order; the kernel features' backward cancels large terms, so the order shows at
        # ~1e-6 (one call's backward of A + B and of A, B apart differ as much; plain critic:
        # ~1e-13)
        tolerance = dict(rtol=1e-5, atol=1e-5) if separate else dict(rtol=1e-9, atol=1e-12)
        for a, b in zip(autograd_grads, other_grads):
            torch.testing.assert_close(a, b, **tolerance)


def test_valence_excess_counts_bond_order_above_the_allowed_valence_by_hand():
    from molgan.chem import max_valences
    from molgan.loss import valence_excess
    from molgan.vocab import Vocab

    vocab = Vocab.from_symbols(["C", "O"], 5)
    table = torch.tensor(max_valences(vocab), dtype=torch.float32)
    assert table.tolist() == [0, 4, 2]
    x_idx = torch.tensor([[1, 2, 2, 2, 0]])  # C, three O, one empty slot
    adj_idx = torch.zeros(1, 5, 5, dtype=torch.long)
    for j in (1, 2, 3):
        adj_idx[0, 0, j] = adj_idx[0, j, 0] = 2  # C=O three times: C carries 6 > 4
    adj_idx[0, 1, 4] = adj_idx[0, 4, 1] = 1  # a bond to the empty slot: 1 > 0 there, O 3 > 2
    graph = one_hot_graph(x_idx, adj_idx, 3, 4)
    assert valence_excess(graph, table).item() == pytest.approx(2 + 1 + 1)
    # soft graph: half a double bond on an O-O pair is within valence; a mixture over atom
    # types allows the expected valence
    x = torch.tensor([[[0.0, 0.5, 0.5], [0.0, 0.0, 1.0]]])
    adj = torch.zeros(1, 2, 2, 4)
    adj[..., 0] = 1.0
    adj[0, 0, 1] = adj[0, 1, 0] = torch.tensor([0.0, 0.0, 0.0, 1.0])  # triple bond
    # node 0 allowed 0.5*4 + 0.5*2 = 3 -> no excess; node 1 (O) allowed 2 -> excess 1
    assert valence_excess(DenseGraph(x, adj), table).item() == pytest.approx(1.0)


def _joint_draws(x: torch.Tensor, adj: torch.Tensor):
    """Every joint draw of one graph's factorized law ``x [N, T]``, ``adj [N, N, Y]``:
    ``(probability, atom types, bond orders [N, N])`` with the bonds of "no atom" slots
    dropped, as the decoder drops them."""
    import itertools

    n, t, y = x.shape[0], x.shape[1], adj.shape[-1]
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    for types in itertools.product(range(t), repeat=n):
        p_types = float(torch.prod(torch.stack([x[i, types[i]] for i in range(n)])))
        for orders in itertools.product(range(y), repeat=len(pairs)):
            p = p_types * float(torch.prod(torch.stack([adj[i, j, o] for (i, j), o
                                                        in zip(pairs, orders)])))
            bonds = [[0] * n for _ in range(n)]
            for (i, j), o in zip(pairs, orders):
                if types[i] and types[j]:
                    bonds[i][j] = bonds[j][i] = o
            yield p, types, bonds


def _enumerated_drawn_excess(x: torch.Tensor, adj: torch.Tensor, table: torch.Tensor) -> float:
    """E[sum of valence excess over the atoms] of one graph by listing every joint draw."""
    total = 0.0
    for p, types, bonds in _joint_draws(x, adj):
        total += p * sum(max(0.0, sum(bonds[i]) - float(table[types[i]]))
                         for i in range(len(types)) if types[i])
    return total


def test_drawn_valence_excess_equals_the_excess_averaged_over_every_joint_draw():
    from molgan.chem import max_valences
    from molgan.loss import drawn_valence_excess, valence_excess
    from molgan.vocab import Vocab

    vocab = Vocab.from_symbols(["C", "O"], 4)
    table = torch.tensor(max_valences(vocab), dtype=torch.float64)  # [0, 4, 2]
    torch.manual_seed(0)
    for _ in range(3):
        x = torch.softmax(torch.randn(1, 4, 3, dtype=torch.float64) * 2, -1)
        logits = torch.randn(1, 4, 4, 4, dtype=torch.float64) * 2
        adj = torch.softmax(logits + logits.transpose(1, 2), -1)
        adj[:, torch.arange(4), torch.arange(4)] = torch.tensor([1.0, 0, 0, 0], dtype=adj.dtype)
        expected = _enumerated_drawn_excess(x[0], adj[0], table)
        got = drawn_valence_excess(DenseGraph(x, adj), table).item()
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)
        # every slot an atom: Jensen's inequality puts the mean form below
        atoms = x.clone()
        atoms[..., 0] = 0
        atoms = atoms / atoms.sum(-1, keepdim=True)
        assert (drawn_valence_excess(DenseGraph(atoms, adj), table).item()
                >= valence_excess(DenseGraph(atoms, adj), table).item() - 1e-12)
    # a valid one-hot graph draws itself: no excess; the C=O=O chain breaks one valence
    x_idx = torch.tensor([[1, 2, 2, 0]])
    adj_idx = torch.zeros(1, 4, 4, dtype=torch.long)
    adj_idx[0, 0, 1] = adj_idx[0, 1, 0] = 2
    assert drawn_valence_excess(one_hot_graph(x_idx, adj_idx, 3, 4, torch.float64),
                                table).item() == pytest.approx(0.0, abs=1e-12)
    adj_idx[0, 1, 2] = adj_idx[0, 2, 1] = 2
    adj_idx[0, 2, 3] = adj_idx[0, 3, 2] = 3  # to the empty slot: dropped by the draw
    assert drawn_valence_excess(one_hot_graph(x_idx, adj_idx, 3, 4, torch.float64),
                                table).item() == pytest.approx(2.0)


def test_drawn_valence_excess_sees_a_valence_broken_by_chance_that_the_mean_form_misses():
    from molgan.loss import drawn_valence_excess, valence_excess

    table = torch.tensor([0.0, 1.0])  # one atom type of valence 1
    x = torch.tensor([[[0.0, 1.0]] * 3])
    adj = torch.zeros(1, 3, 3, 4)
    adj[..., 0] = 1.0
    half = torch.tensor([0.5, 0.5, 0.0, 0.0])  # each pair single-bonded with probability 1/2
    for i, j in ((0, 1), (0, 2), (1, 2)):
        adj[0, i, j] = adj[0, j, i] = half
    graph = DenseGraph(x, adj)
    # every atom's expected valence is 1 = allowed; a draw puts 2 on an atom with p = 1/4,
    # an excess of 1 there: 3 atoms * 1/4
    assert valence_excess(graph, table).item() == pytest.approx(0.0)
    assert drawn_valence_excess(graph, table).item() == pytest.approx(0.75)


def test_leave_one_out_advantages_subtract_the_mean_of_the_other_draws_of_each_fake():
    from molgan.loss import leave_one_out_advantages

    rewards = torch.tensor([1.0, 0.0, 2.0,    # block 0: one draw from each of 3 fakes
                            0.0, 0.0, -1.0,   # block 1
                            2.0, 3.0, 2.0])   # block 2
    expected = torch.empty(9)
    for k in range(3):
        for b in range(3):
            others = [rewards[j * 3 + b] for j in range(3) if j != k]
            expected[k * 3 + b] = rewards[k * 3 + b] - sum(others) / 2
    torch.testing.assert_close(leave_one_out_advantages(rewards, 3), expected)
    torch.testing.assert_close(leave_one_out_advantages(rewards, 1), rewards - rewards.mean())
    same = torch.tensor([5.0, -1.0, 5.0, -1.0])  # each fake's two draws scored alike
    assert not leave_one_out_advantages(same, 2).any()
    with pytest.raises(ValueError, match="blocks"):
        leave_one_out_advantages(rewards, 2)


def test_policy_gradient_raises_the_drawn_graphs_that_beat_the_batch_mean():
    from molgan.loss import graph_log_prob, policy_gradient

    logits = torch.zeros(2, 2, 2, requires_grad=True)
    adj = torch.zeros(2, 2, 2, 3)
    adj[:, 0, 1] = adj[:, 1, 0] = torch.tensor([0.5, 0.25, 0.25])
    drawn_x = torch.tensor([[1, 1], [1, 0]])
    drawn_adj = torch.tensor([[[0, 1], [1, 0]], [[0, 0], [0, 0]]])
    fake = DenseGraph(logits.softmax(-1), adj)
    log_p = graph_log_prob(fake, drawn_x, drawn_adj)
    expected = [2 * math.log(0.5) + math.log(0.25), 3 * math.log(0.5)]
    torch.testing.assert_close(log_p, torch.tensor(expected))
    rewards = torch.tensor([1.0, -1.0])  # advantages +1 and -1
    loss = policy_gradient(fake, drawn_x, drawn_adj, rewards)
    assert loss.item() == pytest.approx(-(log_p[0] - log_p[1]).item() / 2)
    loss.backward()
    assert bool((logits.grad[0, :, 1] < 0).all())  # graph 0's drawn atoms made likelier
    assert logits.grad[1, 0, 1] > 0 and logits.grad[1, 1, 0] > 0  # graph 1's made rarer
    assert policy_gradient(fake, drawn_x, drawn_adj, torch.ones(2)).item() == 0


def test_free_draws_in_the_policy_gradient_take_plain_log_probabilities():
    from molgan.loss import graph_log_prob, policy_gradient

    # two atom slots of token 1 whose valence is 1: a double bond is out of reach within
    # valences, so the constrained draw renormalizes over no bond and single
    fake = DenseGraph(torch.tensor([[[0.2, 0.8]] * 2] * 2),
                      torch.zeros(2, 2, 2, 3))
    fake.adj[:, 0, 1] = fake.adj[:, 1, 0] = torch.tensor([0.5, 0.3, 0.2])
    x_idx = torch.ones(2, 2, dtype=torch.long)
    adj_idx = torch.tensor([[[0, 1], [1, 0]]] * 2)
    valence = torch.tensor([0, 1])
    within = graph_log_prob(fake, x_idx, adj_idx, max_valence=valence)
    plain = graph_log_prob(fake, x_idx, adj_idx)
    torch.testing.assert_close(within - plain, torch.full((2,), -math.log(0.8)))
    rewards = torch.tensor([1.0, -1.0])
    mixed = policy_gradient(fake, x_idx, adj_idx, rewards, valence, free=1)
    assert mixed.item() == pytest.approx(-(within[0] - plain[1]).item() / 2)
    assert policy_gradient(fake, x_idx, adj_idx, rewards, valence, free=2).item() == \
        pytest.approx(policy_gradient(fake, x_idx, adj_idx, rewards).item())


def _enumerated_lone_atoms(x: torch.Tensor, adj: torch.Tensor) -> float:
    """E[number of atoms bonded to no other atom] of one graph by listing every joint draw."""
    total = 0.0
    for p, types, bonds in _joint_draws(x, adj):
        total += p * sum(1 for i in range(len(types)) if types[i] and not any(bonds[i]))
    return total


def test_drawn_lone_atoms_equals_the_count_averaged_over_every_joint_draw():
    from molgan.loss import drawn_lone_atoms

    torch.manual_seed(1)
    for _ in range(3):
        x = torch.softmax(torch.randn(1, 4, 3, dtype=torch.float64) * 2, -1)
        logits = torch.randn(1, 4, 4, 3, dtype=torch.float64) * 2
        adj = torch.softmax(logits + logits.transpose(1, 2), -1)
        # the diagonal is ignored whatever it holds
        adj[:, torch.arange(4), torch.arange(4)] = torch.tensor([0.0, 1.0, 0.0],
                                                                dtype=adj.dtype)
        got = drawn_lone_atoms(DenseGraph(x, adj)).item()
        assert got == pytest.approx(_enumerated_lone_atoms(x[0], adj[0]), rel=1e-9, abs=1e-12)


def test_drawn_lone_atoms_counts_one_hot_graphs_and_a_degree_of_one_expected_by_chance():
    from molgan.loss import drawn_lone_atoms

    # C-C, a lone O, an empty slot bonded to the O (dropped): one lone atom
    x_idx = torch.tensor([[1, 1, 2, 0]])
    adj_idx = torch.zeros(1, 4, 4, dtype=torch.long)
    adj_idx[0, 0, 1] = adj_idx[0, 1, 0] = 1
    adj_idx[0, 2, 3] = adj_idx[0, 3, 2] = 2
    graph = one_hot_graph(x_idx, adj_idx, 3, 4, torch.float64)
    assert drawn_lone_atoms(graph).item() == pytest.approx(1.0)
    adj_idx[0, 1, 2] = adj_idx[0, 2, 1] = 1  # C-C-O: none
    graph = one_hot_graph(x_idx, adj_idx, 3, 4, torch.float64)
    assert drawn_lone_atoms(graph).item() == pytest.approx(0.0, abs=1e-12)
    # three atoms, each pair bonded with probability 1/2: every expected degree is 1, yet an
    # atom is lone with probability 1/4
    x = torch.tensor([[[0.0, 1.0]] * 3])
    adj = torch.zeros(1, 3, 3, 4)
    adj[..., 0] = 1.0
    for i, j in ((0, 1), (0, 2), (1, 2)):
        adj[0, i, j] = adj[0, j, i] = torch.tensor([0.5, 0.5, 0.0, 0.0])
    assert drawn_lone_atoms(DenseGraph(x, adj)).item() == pytest.approx(0.75)


def test_drawn_lone_atoms_lowers_a_lone_atom_by_bonding_it_not_by_dropping_it():
    from molgan.loss import drawn_lone_atoms

    # two atoms, bonded with probability 1/2: each is lone with probability 1/2
    x = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]], requires_grad=True)
    adj = torch.zeros(1, 2, 2, 2)
    adj[..., 0] = 1.0
    adj[0, 0, 1] = adj[0, 1, 0] = torch.tensor([0.5, 0.5])
    adj.requires_grad_(True)
    loss = drawn_lone_atoms(DenseGraph(x, adj))
    assert loss.item() == pytest.approx(1.0)
    loss.backward()
    # d/da_j of a_i (1 - a_j q) = -a_i q = -0.5 through the neighbour only; d/dx_i0 = +0.5
    assert x.grad[0, :, 0].tolist() == pytest.approx([0.5, 0.5])
    assert x.grad[0, :, 1].abs().max().item() == 0.0
    # raising the bond's probability lowers the term: d/dq = -a_i a_j per atom, both atoms
    assert (adj.grad[0, 0, 1, 0] + adj.grad[0, 1, 0, 0]).item() == pytest.approx(2.0)


def _decoded_law(x: torch.Tensor, adj: torch.Tensor) -> dict:
    """The law of one fake's decoded graphs (empty slots' bonds dropped), by enumeration."""
    law: dict = {}
    for p, types, bonds in _joint_draws(x, adj):
        key = (tuple(types), tuple(map(tuple, bonds)))
        law[key] = law.get(key, 0.0) + p
    return law


def _random_fakes(batch: int, n: int, t: int, y: int, empty: bool) -> DenseGraph:
    x_logits = torch.randn(batch, n, t, dtype=torch.float64) * 1.5
    if not empty:
        x_logits[..., 0] = float("-inf")  # every slot holds an atom
    logits = torch.randn(batch, n, n, y, dtype=torch.float64) * 1.5
    adj = torch.softmax(logits + logits.transpose(1, 2), -1)
    return DenseGraph(torch.softmax(x_logits, -1), adj)


@pytest.mark.parametrize("empty", [False, True])
def test_drawn_collisions_is_the_log_chance_that_two_latents_draw_one_graph(empty):
    """Against enumeration of every joint draw: exact when every slot holds an atom; a lower
    bound when empty slots can drop bonds (which merges labelled graphs)."""
    from molgan.loss import drawn_collisions

    torch.manual_seed(3)
    fake = _random_fakes(3, 3, 3, 2, empty)
    laws = [_decoded_law(fake.x[b], fake.adj[b]) for b in range(3)]
    pairs = [sum(p * laws[j].get(g, 0.0) for g, p in laws[i].items())
             for i in range(3) for j in range(3) if i != j]
    enumerated = math.log(sum(pairs) / len(pairs))
    got = drawn_collisions(fake).item()
    if empty:
        assert got < enumerated - 1e-3
    else:
        assert got == pytest.approx(enumerated, rel=1e-6)  # computed in float32


def test_drawn_collisions_of_one_hot_graphs_counts_identical_pairs():
    from molgan.loss import drawn_collisions

    x_idx = torch.tensor([[1, 2, 0], [1, 2, 0], [2, 1, 0], [1, 2, 0]])
    adj_idx = torch.zeros(4, 3, 3, dtype=torch.long)
    adj_idx[:, 0, 1] = adj_idx[:, 1, 0] = 1
    graph = one_hot_graph(x_idx, adj_idx, 3, 2, torch.float64)
    # graphs 0, 1 and 3 are one labelled graph: 6 of the 12 ordered pairs collide
    assert drawn_collisions(graph).item() == pytest.approx(math.log(6 / 12))
    single = graph.rows(slice(0, 1))
    assert drawn_collisions(single).item() == 0.0


def test_drawn_collisions_pushes_apart_the_pair_likeliest_to_collide():
    """The gradient lowers the overlap of the two near-identical laws, not the distinct one."""
    from molgan.loss import drawn_collisions

    torch.manual_seed(0)
    x_logits = torch.randn(3, 3, 3) * 0.1
    x_logits[1] = x_logits[0] + 0.01
    x_logits[2] = torch.tensor([[5.0, -5, -5], [-5, 5, -5], [-5, -5, 5]])
    x_logits.requires_grad_(True)
    adj = torch.full((3, 3, 3, 2), 0.5)
    drawn_collisions(DenseGraph(torch.softmax(x_logits, -1), adj)).backward()
    grad = x_logits.grad.norm(dim=(1, 2))
    assert grad[0] > 10 * grad[2] and grad[1] > 10 * grad[2]
