"""Relational convolution and gated aggregation (molgan.layers)."""

import pytest
import torch

from molgan.layers import GraphAggregation, RelationalGraphConv


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


def _ring_or_chain(bond_orders, closed):
    """``[1, n, n, 3]`` one-hot bonds of a chain of ``len(bond_orders) (+1)`` atoms, closed
    into a ring when ``closed`` (orders 1-3 index the single/double/triple channels)."""
    n = len(bond_orders) if closed else len(bond_orders) + 1
    bonds = torch.zeros(1, n, n, 3, dtype=torch.float64)
    for i, order in enumerate(bond_orders):
        j = (i + 1) % n
        bonds[0, i, j, order - 1] = bonds[0, j, i, order - 1] = 1.0
    return bonds


def test_closed_walks_count_rings_and_tell_kekule_rings_from_chains():
    from molgan.layers import closed_walk_features

    kekule = _ring_or_chain([1, 2, 1, 2, 1, 2], closed=True)  # benzene
    saturated = _ring_or_chain([1] * 6, closed=True)  # cyclohexane
    chain = _ring_or_chain([2, 1, 2, 1, 2], closed=False)  # hexatriene
    features = {name: closed_walk_features(b, torch.ones(1, b.shape[1], dtype=torch.float64),
                                           longest=6)[0]
                for name, b in [("kekule", kekule), ("saturated", saturated), ("chain", chain)]}
    assert features["kekule"].shape == (6, 10)
    # closed walks of length k in a 6-cycle from any atom: (1/6) sum_j (2 cos(2 pi j / 6))^k
    # = 2, 0, 6, 0, 22 for k = 2..6, each step weighted 1/2
    cycle = torch.tensor([2.0, 0, 6, 0, 22], dtype=torch.float64) / 2.0 ** torch.arange(2, 7)
    for name in ("kekule", "saturated"):
        torch.testing.assert_close(features[name][:, 0::2], cycle.expand(6, 5))
    torch.testing.assert_close(features["saturated"][:, 1::2], cycle.expand(6, 5))
    # with three double bonds the signed cycle is unbalanced: (1/6) sum_j (2 cos((2j+1) pi /
    # 6))^k = 2, 0, 6, 0, 18; only the length-6 walk around the ring changes sign (2 walks)
    signed = torch.tensor([2.0, 0, 6, 0, 18], dtype=torch.float64) / 2.0 ** torch.arange(2, 7)
    torch.testing.assert_close(features["kekule"][:, 1::2], signed.expand(6, 5))
    # on a chain every closed walk crosses each bond an even number of times
    torch.testing.assert_close(features["chain"][:, 0::2], features["chain"][:, 1::2])
    assert features["chain"][:, 2].abs().max() == 0  # no triangle, no odd walk


def test_closed_walks_ignore_bonds_to_padding():
    from molgan.layers import closed_walk_features

    bonds = _ring_or_chain([1, 2, 1, 2, 1, 2], closed=True)
    padded = torch.zeros(1, 8, 8, 3, dtype=torch.float64)
    padded[:, :6, :6] = bonds
    padded[0, 0, 7, 0] = padded[0, 7, 0, 0] = 0.7  # a soft bond to a padded node
    weight = torch.tensor([[1.0] * 6 + [0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(
        closed_walk_features(padded, weight, 6)[:, :6],
        closed_walk_features(bonds, torch.ones(1, 6, dtype=torch.float64), 6))
    with pytest.raises(ValueError, match="at least 2"):
        closed_walk_features(bonds, torch.ones(1, 6, dtype=torch.float64), 1)
