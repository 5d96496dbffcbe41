"""Small hand-made graphs shared by the model tests."""

import torch

from molgan.critic import Critic, CriticConfig
from molgan.graph import one_hot_graph
from molgan.vocab import Vocab

VOCAB = Vocab.from_symbols(["C", "N", "O", "F", "N+", "O-"], max_atoms=6)

#: Drug-like molecules of MOSES's elements and sizes.
DRUGS = [
    "CC(=O)Oc1ccccc1C(=O)O",  # aspirin
    "CC(=O)Nc1ccc(O)cc1",  # paracetamol
    "Cn1cnc2c1c(=O)n(C)c(=O)n2C",  # caffeine
    "CC(C)Cc1ccc(C(C)C(=O)O)cc1",  # ibuprofen
    "COc1ccc2cc(C(C)C(=O)O)ccc2c1",  # naproxen
    "CN1CCC[C@H]1c1cccnc1",  # nicotine
    "O=C(O)c1ccccc1O",  # salicylic acid
    "Clc1ccc(cc1)C(c1ccccc1)N1CCNCC1",
    "CCOC(=O)c1ccc(N)cc1",  # benzocaine
    "CC(C)NCC(O)COc1cccc2ccccc12",  # propranolol
    "Fc1ccc(cc1)C(=O)CCCN1CCC(O)CC1",
    "CS(=O)(=O)c1ccc(cc1)C1=CCOC1=O",
]


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
