import numpy as np
import pytest
import torch

from molgan.chem import graph_to_indices, mol_from_smiles, mol_to_graph, single_molecules
from molgan.descriptor_match import (INVALID, DescriptorMatch, descriptor_columns,
                                     descriptor_values, parse_descriptors, ring_signature)
from molgan.vocab import Vocab

VOCAB = Vocab.from_symbols(["C", "N", "O", "F", "N+", "O-"], max_atoms=9)
ALL = parse_descriptors("rings,charges,atoms,elements,bonds")


def encode(smiles: str) -> tuple[np.ndarray, np.ndarray]:
    return graph_to_indices(mol_to_graph(mol_from_smiles(smiles)), VOCAB)


def test_ring_signature_counts_each_ring_size_up_to_two_in_base_three():
    assert ring_signature([]) == 0
    assert ring_signature([3]) == 1
    assert ring_signature([3, 3, 3]) == 2            # capped at 2
    assert ring_signature([5, 6]) == 1 * 9 + 1 * 27
    assert ring_signature([9]) == ring_signature([8]) == 3**5  # 8 or more


def test_columns_expand_elements_and_bad_names_are_errors():
    assert descriptor_columns(ALL, VOCAB) == [
        ("rings", 729), ("charges", 3), ("atoms", 10), ("element:C", 10), ("element:N", 10),
        ("element:O", 10), ("element:F", 10), ("single:chain", 10), ("double:chain", 10),
        ("triple:chain", 10), ("single:ring", 10), ("double:ring", 10), ("triple:ring", 10)]
    for bad in ("rings,rings", "ring", ""):
        with pytest.raises(ValueError, match="descriptors"):
            parse_descriptors(bad)


@pytest.mark.parametrize("smiles,sizes,charged,counts", [
    ("CCO", [], 0, (2, 0, 1, 0)), ("C1CC1", [3], 0, (3, 0, 0, 0)),
    ("C1CCC1", [4], 0, (4, 0, 0, 0)), ("c1ccccc1", [6], 0, (6, 0, 0, 0)),
    ("C1CC2CC12", [3, 4], 0, (5, 0, 0, 0)), ("c1ccc2[nH]ccc2c1", [5, 6], 0, (8, 1, 0, 0)),
    ("C1CC2CCC1C2", [5, 5], 0, (7, 0, 0, 0)), ("C[N+](C)(C)CC(=O)[O-]", [], 2, (5, 1, 2, 0)),
    ("FC(F)F", [], 0, (1, 0, 0, 3)),
])
def test_values_read_rings_from_rdkit_and_atom_counts_from_the_tokens(smiles, sizes, charged,
                                                                      counts):
    x, adj = encode(smiles)
    values = descriptor_values(x[None], adj[None], VOCAB, ALL)[0].tolist()
    assert values[:7] == [ring_signature(sizes), charged, sum(counts), *counts]
    only_charges = descriptor_values(x[None], adj[None], VOCAB, ("charges", "atoms"))
    assert only_charges[0].tolist() == [charged, sum(counts)]


@pytest.mark.parametrize("smiles,chain,ring", [
    ("CCO", (2, 0, 0), (0, 0, 0)), ("N#CC1CC1", (1, 0, 1), (3, 0, 0)),
    ("c1ccccc1", (0, 0, 0), (3, 3, 0)), ("C1=CC1", (0, 0, 0), (2, 1, 0)),
    ("CC1OC#CC1=O", (1, 1, 0), (4, 0, 1)), ("C1CC2CC12", (0, 0, 0), (6, 0, 0)),
])
def test_bond_values_count_each_order_in_chains_and_in_rings(smiles, chain, ring):
    x, adj = encode(smiles)
    names = ("bonds",)
    assert [c for c, _ in descriptor_columns(names, VOCAB)] == [
        "single:chain", "double:chain", "triple:chain", "single:ring", "double:ring",
        "triple:ring"]
    assert descriptor_values(x[None], adj[None], VOCAB, names)[0].tolist() == [*chain, *ring]


def test_values_are_invalid_exactly_where_single_molecules_is_false():
    rng = np.random.default_rng(0)
    m = 400
    x = (rng.integers(1, 4, (m, 9)) * (rng.random((m, 9)) < 0.8)).astype(np.uint8)
    upper = np.triu(rng.integers(1, 3, (m, 9, 9)) * (rng.random((m, 9, 9)) < 0.3), 1)
    upper[: m // 2] = np.minimum(upper[: m // 2], 1)  # single bonds only: more are valid
    adj = (upper + upper.transpose(0, 2, 1)).astype(np.uint8)
    values = descriptor_values(x, adj, VOCAB, ALL)
    single = single_molecules(x, adj, VOCAB)
    assert ((values[:, 0] >= 0) == single).all()
    assert 10 < single.sum() < m - 10  # both kinds among the random graphs
    assert (values[~single] == INVALID).all()


def test_rewards_sum_the_log_density_ratios_of_the_columns_then_clip():
    data = np.array([[0, 0], [1, 0], [INVALID, INVALID]])
    match = DescriptorMatch(data, [3, 2], window=1000, clip=1.0, eps=1e-4)
    torch.testing.assert_close(match.p_data, torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]))
    draws = np.array([[0, 0], [0, 0], [1, 0], [1, 0], [1, 0], [1, 1], [2, 0],
                      [INVALID, INVALID]])
    rewards = match.push_and_reward(draws)
    q0 = torch.tensor([2, 4, 1]) / 7
    q1 = torch.tensor([6, 1]) / 7
    log0 = torch.log((match.p_data[0, :3] + 1e-4) / (q0 + 1e-4))
    log1 = torch.log((match.p_data[1, :2] + 1e-4) / (q1 + 1e-4))
    assert 1 > log0[0] > 0 > log0[1] > -1    # too rare: reward; too frequent: loss
    expected = torch.stack([log0[0] + log1[0], log0[0] + log1[0], log0[1] + log1[0],
                            log0[1] + log1[0], log0[1] + log1[0], log0[1] + log1[1],
                            log0[2] + log1[0], torch.tensor(0.0)])
    torch.testing.assert_close(rewards, expected.clamp(-1, 1))
    assert rewards[5] == rewards[6] == -1    # a value never in the data: clipped
    torch.testing.assert_close(match.distances(), torch.stack([
        0.5 * (match.q_gen()[0] - match.p_data[0]).abs().sum(),
        0.5 * (match.q_gen()[1] - match.p_data[1]).abs().sum()]))


def test_rewards_vanish_when_the_draws_match_the_data_and_counts_decay():
    data = np.array([[0, 1], [1, 1], [1, 0], [2, 1]])
    match = DescriptorMatch(data, [3, 2], window=8)
    for _ in range(5):
        rewards = match.push_and_reward(data)
    torch.testing.assert_close(rewards, torch.zeros(4))
    torch.testing.assert_close(match.distances(), torch.zeros(2))
    # each batch of 4 keeps 1 - 4/8 of the counts so far: each column's total tends to 8
    torch.testing.assert_close(match.counts.sum(1), torch.full((2,), 8 * (1 - 0.5**5)))
    restored = DescriptorMatch(data, [3, 2], window=8)
    restored.load_state(match.state())
    torch.testing.assert_close(restored.q_gen(), match.q_gen())
    with pytest.raises(ValueError, match="do not fit"):
        DescriptorMatch(data[:, :1], [3], window=8).load_state(match.state())


def test_no_valid_training_molecule_is_a_clear_error():
    with pytest.raises(ValueError, match="no valid training molecule"):
        DescriptorMatch(np.array([[INVALID], [INVALID]]), [3])
