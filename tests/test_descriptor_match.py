import numpy as np
import pytest
import torch

from molgan.chem import graph_to_indices, mol_from_smiles, mol_to_graph, single_molecules
from molgan.ring_match import (INVALID, SIGNATURES, RingMatch, signature_ids,
                               signature_of_ring_sizes)
from molgan.vocab import Vocab

VOCAB = Vocab.from_symbols(["C", "N", "O", "F"], max_atoms=9)


def encode(smiles: str) -> tuple[np.ndarray, np.ndarray]:
    return graph_to_indices(mol_to_graph(mol_from_smiles(smiles)), VOCAB)


def test_signature_counts_each_ring_size_up_to_two_in_base_three():
    assert SIGNATURES == 3**6
    assert signature_of_ring_sizes([]) == 0
    assert signature_of_ring_sizes([3]) == 1
    assert signature_of_ring_sizes([3, 3, 3]) == 2            # capped at 2
    assert signature_of_ring_sizes([5, 6]) == 1 * 9 + 1 * 27
    assert signature_of_ring_sizes([9]) == signature_of_ring_sizes([8]) == 3**5  # 8 or more


@pytest.mark.parametrize("smiles,sizes", [
    ("CCO", []), ("C1CC1", [3]), ("C1CCC1", [4]), ("c1ccccc1", [6]), ("C1CC2CC12", [3, 4]),
    ("c1ccc2[nH]ccc2c1", [5, 6]), ("C1CC2CCC1C2", [5, 5]),
])
def test_signature_ids_read_the_rings_of_the_decoded_molecule(smiles, sizes):
    x, adj = encode(smiles)
    assert signature_ids(x[None], adj[None], VOCAB).tolist() == [signature_of_ring_sizes(sizes)]


def test_signature_ids_are_invalid_exactly_where_single_molecules_is_false():
    rng = np.random.default_rng(0)
    m = 400
    x = (rng.integers(1, 4, (m, 9)) * (rng.random((m, 9)) < 0.8)).astype(np.uint8)
    upper = np.triu(rng.integers(1, 3, (m, 9, 9)) * (rng.random((m, 9, 9)) < 0.3), 1)
    upper[: m // 2] = np.minimum(upper[: m // 2], 1)  # single bonds only: more are valid
    adj = (upper + upper.transpose(0, 2, 1)).astype(np.uint8)
    ids = signature_ids(x, adj, VOCAB)
    single = single_molecules(x, adj, VOCAB)
    assert ((ids >= 0) == single).all()
    assert 10 < single.sum() < m - 10  # both kinds among the random graphs
    assert (ids[~single] == INVALID).all()


def test_rewards_are_log_density_ratios_clipped_and_zero_for_invalid_draws():
    match = RingMatch(np.array([0, 1, INVALID]), window=1000, clip=1.0, eps=1e-4)
    torch.testing.assert_close(match.p_data[:3], torch.tensor([0.5, 0.5, 0.0]))
    rewards = match.push_and_reward(np.array([0, 1, 1, 1, 2, INVALID]))
    p_gen = torch.tensor([1, 3, 1]) / 5
    expected = torch.log((match.p_data[:3] + 1e-4) / (p_gen + 1e-4))
    assert 1 > expected[0] > 0 > expected[1] > -1    # too rare: reward; too frequent: loss
    assert expected[2] < -1                           # never in the data: clipped
    torch.testing.assert_close(
        rewards, torch.stack([expected[0], expected[1], expected[1], expected[1],
                              torch.tensor(-1.0), torch.tensor(0.0)]))
    assert match.distance() == pytest.approx(0.5 * float((match.p_gen() - match.p_data)
                                                         .abs().sum()))


def test_rewards_vanish_when_the_draws_match_the_data_and_counts_decay():
    match = RingMatch(np.array([0, 1, 1, 2]), window=8)
    for _ in range(5):
        rewards = match.push_and_reward(np.array([0, 1, 1, 2]))
    torch.testing.assert_close(rewards, torch.zeros(4))
    assert match.distance() == pytest.approx(0.0, abs=1e-6)
    # each batch of 4 keeps 1 - 4/8 of the counts so far: the total tends to window = 8
    assert float(match.counts.sum()) == pytest.approx(8 * (1 - 0.5**5))
    restored = RingMatch(np.array([0, 1, 1, 2]), window=8)
    restored.load_state(match.state())
    torch.testing.assert_close(restored.p_gen(), match.p_gen())


def test_no_valid_training_molecule_is_a_clear_error():
    with pytest.raises(ValueError, match="no valid training molecule"):
        RingMatch(np.array([INVALID, INVALID]))
