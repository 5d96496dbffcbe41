"""Ring motifs (molgan.motifs): the descriptor, the data's law, and the KL-lowering reward."""

import json
import math

import numpy as np
import pytest
import torch
from rdkit import Chem

from molgan import motifs
from molgan.checkpoint import CheckpointError
from molgan.chem import graph_to_indices, mol_to_graph
from molgan.motifs import CAPS, CLIP, NUM_CELLS, MotifBalance, motif_cell, motif_counts
from molgan.train import Trainer
from molgan.vocab import Vocab
from tests.test_train import config, train_straight_and_resumed


@pytest.mark.parametrize("smiles, counts", [
    ("CCO", (0, 0, 0, 0, 0)),
    ("c1ccccc1", (1, 0, 0, 1, 0)),
    ("c1ccoc1", (1, 0, 0, 1, 0)),
    ("C1=CC=CC1", (0, 0, 0, 1, 0)),  # cyclopentadiene: alternating, not aromatic
    ("C1CC1", (0, 1, 0, 1, 0)),
    ("C1CC12CC2", (0, 2, 0, 2, 1)),  # spiropentane
    ("C1CC2CC12", (0, 1, 1, 2, 0)),  # bicyclo[2.1.0]pentane: fused, not spiro
    ("C1CCC1", (0, 0, 1, 1, 0)),
    ("c1ccc2ccccc2c1", (2, 0, 0, 2, 0)),
])
def test_motif_counts_read_aromatic_and_small_rings_and_spiro_atoms(smiles, counts):
    assert motif_counts(Chem.MolFromSmiles(smiles)) == counts


def test_cells_are_the_capped_counts_in_mixed_radix_and_cover_the_range():
    assert NUM_CELLS == 3 * 3 * 3 * 5 * 2
    assert motif_cell(Chem.MolFromSmiles("CCO")) == 0
    # spiropentane: (0, 2, 0, 2, 1); every digit below its cap + 1
    digits = (0, 2, 0, 2, 1)
    expected = 0
    for digit, cap in zip(digits, CAPS):
        expected = expected * (cap + 1) + digit
    assert motif_cell(Chem.MolFromSmiles("C1CC12CC2")) == expected
    many = Chem.MolFromSmiles("C1CC12CC23CC34CC4")  # four 3-rings, capped at 2
    assert motif_counts(many)[1] == 4 and 0 <= motif_cell(many) < NUM_CELLS


@pytest.mark.parametrize("smiles, extra", [
    ("CCO", (0, 0)),
    ("c1ccccc1", (0, 0)),
    ("C1CC2CCC1C2", (2, 0)),  # norbornane: two bridgehead atoms, two 5-rings
    ("C1CC2CCC1CC2", (2, 0)),  # bicyclo[2.2.2]octane
    ("C1CCCCCC1", (0, 1)),  # cycloheptane
    ("C1CCCCCCC1", (0, 1)),  # cyclooctane
    ("c1ccc2ccccc2c1", (0, 0)),  # naphthalene: fused, not bridged
])
def test_the_bridges_descriptor_appends_bridgehead_atoms_and_rings_of_seven_or_more(smiles,
                                                                                 extra):
    mol = Chem.MolFromSmiles(smiles)
    assert motif_counts(mol, "bridges") == motif_counts(mol) + extra


def test_each_descriptor_has_its_own_cells_and_rejects_other_sizes():
    assert motifs.num_cells("rings") == NUM_CELLS
    assert motifs.num_cells("bridges") == NUM_CELLS * 3 * 2
    norbornane, cyclohexane = Chem.MolFromSmiles("C1CC2CCC1C2"), Chem.MolFromSmiles("C1CCCCC1")
    # the bridges cell is the rings cell followed by two more digits (radix 3, then 2)
    assert motif_cell(norbornane, "bridges") // 6 == motif_cell(norbornane)
    assert motif_cell(norbornane, "bridges") % 6 == 2 * 2  # bridgeheads 2, big rings 0
    assert motif_cell(cyclohexane, "bridges") % 6 == 0
    assert 0 <= motif_cell(Chem.MolFromSmiles("C1CCCCCCC1"), "bridges") < motifs.num_cells(
        "bridges")
    with pytest.raises(ValueError, match="motif descriptor must be one of"):
        motif_counts(cyclohexane, "cages")
    balance = MotifBalance(np.log(np.full(motifs.num_cells("bridges"),
                                          1 / motifs.num_cells("bridges"))))
    assert balance.rewards([0, motifs.num_cells("bridges") - 1, -1]).shape == (3,)
    with pytest.raises(ValueError, match="cells"):
        balance.load_state({"drawn": torch.zeros(NUM_CELLS, dtype=torch.float64)})
    with pytest.raises(ValueError, match="expected one descriptor's cells"):
        MotifBalance(np.zeros(7))


def test_graph_cells_match_the_molecules_and_flag_invalid_graphs():
    smiles = ["c1ccccc1", "C1CC1", "CCO"]
    vocab = Vocab.from_symbols(["C", "O"], max_atoms=6)
    rows = [graph_to_indices(mol_to_graph(Chem.MolFromSmiles(s)), vocab) for s in smiles]
    x_idx = np.stack([r[0] for r in rows])
    adj_idx = np.stack([r[1] for r in rows])
    disconnected = adj_idx.copy()
    disconnected[2] = 0  # three separate atoms
    x_idx = np.concatenate([x_idx, x_idx[2:]])
    adj_idx = np.concatenate([adj_idx, disconnected[2:]])
    valid, cells = motifs.graph_cells(x_idx, adj_idx, vocab)
    assert valid.tolist() == [True, True, True, False]
    assert cells.tolist() == [motif_cell(Chem.MolFromSmiles(s)) for s in smiles] + [-1]
    log_p = motifs.data_log_law(x_idx, adj_idx, vocab)
    counts = motifs.histogram(cells[:3]) + motifs.DATA_SMOOTHING
    np.testing.assert_allclose(log_p, np.log(counts / counts.sum()))
    with pytest.raises(ValueError, match="no training graph"):
        motifs.data_log_law(x_idx[3:], adj_idx[3:], vocab)
    _, bridge_cells = motifs.graph_cells(x_idx, adj_idx, vocab, "bridges")
    assert bridge_cells.tolist() == [motif_cell(Chem.MolFromSmiles(s), "bridges")
                                     for s in smiles] + [-1]
    bridge_log_p = motifs.data_log_law(x_idx, adj_idx, vocab, descriptor="bridges")
    assert bridge_log_p.shape == (motifs.num_cells("bridges"),)
    np.testing.assert_allclose(np.exp(bridge_log_p).sum(), 1.0)


def half_on_the_first_cell() -> np.ndarray:
    """A data law ``log p [NUM_CELLS]`` with half its mass on cell 0, the rest spread evenly."""
    log_p = np.full(NUM_CELLS, math.log(0.5 / (NUM_CELLS - 1)))
    log_p[0] = math.log(0.5)
    return log_p


def test_rewards_are_the_centered_clipped_log_ratio_before_the_batch_is_counted():
    log_p = half_on_the_first_cell()
    balance = MotifBalance(log_p)
    cells = np.array([0, 5, -1, 5])
    ratio = torch.tensor([log_p[0], log_p[5], log_p[5]]) - balance.log_q()[[0, 5, 5]].float()
    rewards = balance.rewards(cells)
    expected = ratio.clamp(-CLIP, CLIP) - ratio.clamp(-CLIP, CLIP).mean()
    torch.testing.assert_close(rewards[[0, 1, 3]], expected.float())
    assert rewards[2] == 0
    assert balance.drawn[0] == 1 and balance.drawn[5] == 2 and balance.drawn.sum() == 3
    decay = math.exp(-2 / motifs.HORIZON)
    balance.rewards(np.array([7, 7]))
    assert balance.drawn[5] == pytest.approx(2 * decay) and balance.drawn[7] == 2
    restored = MotifBalance(log_p)
    restored.load_state(balance.state())
    assert torch.equal(restored.drawn, balance.drawn)
    assert torch.equal(balance.rewards(np.array([-1, -1])), torch.zeros(2))
    with pytest.raises(ValueError, match="cells"):
        restored.load_state({"drawn": torch.zeros(5)})


def test_the_floor_gives_invalid_draws_the_lowest_valid_reward_of_their_batch():
    log_p = half_on_the_first_cell()
    plain, floored = MotifBalance(log_p), MotifBalance(log_p)
    cells = np.array([0, -1, 5, 9, -1])
    without, with_floor = plain.rewards(cells), floored.rewards(cells, floor=True)
    valid = torch.tensor([True, False, True, True, False])
    assert torch.equal(with_floor[valid], without[valid])
    assert torch.equal(without[~valid], torch.zeros(2))
    assert with_floor[0] > 0 and torch.all(with_floor[~valid] == with_floor[valid].min())
    assert torch.equal(plain.drawn, floored.drawn)
    assert torch.equal(floored.rewards(np.array([-1, -1]), floor=True), torch.zeros(2))


def test_a_floor_share_gives_invalid_draws_that_share_of_the_lowest_valid_reward():
    log_p = half_on_the_first_cell()
    full, half = MotifBalance(log_p), MotifBalance(log_p)
    cells = np.array([0, -1, 5, 9, -1])
    at_one, at_half = full.rewards(cells, floor=1.0), half.rewards(cells, floor=0.5)
    valid = torch.tensor([True, False, True, True, False])
    assert torch.equal(at_half[valid], at_one[valid])
    lowest = float(at_one[valid].min())
    assert lowest < 0
    torch.testing.assert_close(at_half[~valid], torch.full((2,), 0.5 * lowest))


def test_its_policy_gradient_moves_a_categorical_towards_the_data_law():
    """REINFORCE on softmax(theta) over the cells with the motif reward alone: the
    divergence KL(q || p) of the policy from a skewed data law falls at least fourfold."""
    rng = torch.Generator().manual_seed(0)
    p = torch.rand(NUM_CELLS, generator=rng).pow(4)
    p = p / p.sum()
    balance = MotifBalance(p.log().numpy())
    theta = torch.zeros(NUM_CELLS, requires_grad=True)
    optimizer = torch.optim.Adam([theta], lr=0.05)

    def divergence():
        q = theta.detach().softmax(0)
        return float((q * (q.log() - p.log())).sum())

    start = divergence()
    for _ in range(300):
        log_q = theta.log_softmax(0)
        cells = torch.multinomial(log_q.exp().detach(), 256, replacement=True, generator=rng)
        rewards = balance.rewards(cells.numpy())
        loss = -(rewards * log_q[cells]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert divergence() < start / 4


def test_training_with_the_motif_reward_logs_its_divergence_and_resumes_exactly(train_data,
                                                                              tmp_path):
    def run(steps):
        return config(steps, repeat_window=64, rl_draws=2, motif_reward=1.0, log_every=3)

    straight, resumed = train_straight_and_resumed(run, 6, train_data, tmp_path)
    assert torch.equal(straight.diversity.motifs.drawn, resumed.diversity.motifs.drawn)
    assert straight.diversity.motifs.drawn.sum() > 0
    logged = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl")
              .read_text().splitlines()]
    assert all(r["motif_kl"] > 0 for r in logged)
    bridges = Trainer(config(2, repeat_window=64, rl_draws=2, motif_reward=1.0,
                             motif_descriptor="bridges"), train_data, tmp_path / "bridges")
    bridges.fit()
    assert bridges.diversity.motifs.drawn.shape == (motifs.num_cells("bridges"),)
    assert bridges.diversity.motifs.drawn.sum() > 0
    # a run without the reward cannot be resumed with it
    Trainer(config(2, repeat_window=64, motif_reward=0.0), train_data, tmp_path / "plain").fit()
    with_reward = Trainer(config(4, repeat_window=64, motif_reward=1.0), train_data,
                          tmp_path / "plain")
    with pytest.raises(CheckpointError, match="no motif histogram"):
        with_reward.resume()
