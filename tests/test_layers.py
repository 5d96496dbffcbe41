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
