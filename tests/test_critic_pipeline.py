"""The critic as a pipeline component: dense, PyG and SMILES entry points agree."""

import subprocess
import sys

import pytest
import torch

from molgan.convert import mols_to_indices, smiles_to_pyg
from molgan.critic import Critic, CriticConfig
from molgan.graph import one_hot_graph
from molgan.vocab import Vocab

VOCAB = Vocab.from_symbols(["C", "O", "N", "F", "N+", "O-", "C-", "N-"], max_atoms=9)
# charged, single-atom, aromatic, triple bond, ring
SMILES = ["C[N+](C)(C)C", "O", "c1ccncc1", "CC#N", "[NH3+]CC(=O)[O-]", "C1CC1O", "[C-]#[N+]C"]


@pytest.fixture(scope="module", params=["plain", "minibatch-kernels"])
def critic(request):
    torch.manual_seed(0)
    config = (CriticConfig(minibatch_distance=False) if request.param == "plain"
              else CriticConfig(reference_size=8))
    critic = Critic(config, VOCAB).eval()
    if config.minibatch_distance:  # a reference set of real graphs, as training stores
        x_idx, adj_idx, _ = mols_to_indices(["CCO", "c1ccccc1", "CC#N", "OC1CC1"] * 2, VOCAB)
        critic.set_reference(x_idx, adj_idx)
    return critic


def test_dense_pyg_and_smiles_entry_points_give_equal_scores(critic):
    x_idx, adj_idx, reasons = mols_to_indices(SMILES, VOCAB)
    assert reasons == [None] * len(SMILES)
    dense = critic.score_dense(*one_hot_graph(x_idx, adj_idx, VOCAB.num_atom_types,
                                              VOCAB.num_bond_types))
    from torch_geometric.data import Batch

    via_pyg = critic.score(Batch.from_data_list(smiles_to_pyg(SMILES, VOCAB)))
    via_list = critic.score(smiles_to_pyg(SMILES, VOCAB))
    via_smiles = critic.score(SMILES)
    from rdkit import Chem

    via_mols = critic.score([Chem.MolFromSmiles(s) for s in SMILES])
    for other in (via_pyg, via_list, via_smiles, via_mols):
        torch.testing.assert_close(other, dense.detach(), rtol=0, atol=1e-5)


def test_scores_do_not_depend_on_atom_order_or_batch_mates(critic):
    from rdkit import Chem

    base = critic.score(SMILES)
    for seed in range(3):
        shuffled = [Chem.MolToSmiles(Chem.MolFromSmiles(s), doRandom=True, canonical=False)
                    for s in SMILES]
        torch.testing.assert_close(critic.score(shuffled), base, rtol=0, atol=1e-5)
    alone = torch.stack([critic.score([s])[0] for s in SMILES])
    torch.testing.assert_close(alone, base, rtol=0, atol=1e-5)
    mixed = critic.score(SMILES[::-1] + ["CCO"] * 5)[: len(SMILES)].flip(0)
    torch.testing.assert_close(mixed, base, rtol=0, atol=1e-5)


def test_unrepresentable_molecules_get_nan_and_a_reason_or_raise(critic):
    inputs = ["CCO", "not smiles", "C[Si](C)(C)C", "C" * 12, None]
    scores, reasons = critic.score(inputs, return_reasons=True)
    assert torch.isfinite(scores[0]) and torch.isnan(scores[1:]).all()
    assert reasons[0] is None
    assert [r.split(":")[0] for r in reasons[1:]] == ["unparsable", "unknown_atom",
                                                     "too_many_atoms", "empty"]
    with pytest.raises(ValueError, match="unknown_atom"):
        critic.score(["CCO", "C[Si](C)(C)C"], errors="raise")


def test_oversized_pyg_graphs_are_flagged_not_truncated_silently(critic):
    from molgan.convert import pyg_to_dense

    big = smiles_to_pyg(["C" * 12], Vocab.from_symbols(["C"], max_atoms=12))[0]
    scores, reasons = critic.score([big] + smiles_to_pyg(["CCO"], VOCAB), return_reasons=True)
    assert torch.isnan(scores[0]) and reasons[0].startswith("too_many_atoms")
    torch.testing.assert_close(scores[1], critic.score(["CCO"])[0], rtol=0, atol=1e-5)
    x, adj, _ = pyg_to_dense(smiles_to_pyg(["CCO"], VOCAB), VOCAB)
    torch.testing.assert_close(x.sum(-1), torch.ones(1, 9))
    torch.testing.assert_close(adj.sum(-1), torch.ones(1, 9, 9))


def test_embed_gives_the_graph_representation(critic):
    emb = critic.embed(SMILES)
    assert emb.shape == (len(SMILES), CriticConfig().critic_agg)
    x_idx, adj_idx, _ = mols_to_indices(SMILES, VOCAB)
    dense = critic.embed(*one_hot_graph(x_idx, adj_idx, 9, 4))
    torch.testing.assert_close(emb, dense.detach(), rtol=0, atol=1e-5)
    assert torch.isnan(critic.embed(["C[Si](C)(C)C"])).all()


def test_importing_the_critic_stays_light():
    code = ("import molgan, sys; molgan.Critic; "
            "assert 'rdkit' not in sys.modules and 'torch_geometric' not in sys.modules "
            "and 'pandas' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
