import sys

import numpy as np
import pytest

from molgan.chem import (
    SkipMolecule,
    canonical_smiles,
    decode_smiles,
    graph_to_indices,
    indices_to_mol,
    mol_from_smiles,
    mol_to_graph,
)
from molgan.vocab import Vocab

from .conftest import SMALL_SMILES

VOCAB = Vocab.from_symbols(["C", "N", "O", "F", "N+", "O-", "C-", "N-"], max_atoms=9)


def encode(smiles, vocab=VOCAB):
    return graph_to_indices(mol_to_graph(mol_from_smiles(smiles)), vocab)


@pytest.mark.parametrize("smiles", SMALL_SMILES)
def test_smiles_survive_the_round_trip_through_indices(smiles):
    x, adj = encode(smiles)
    assert x.dtype == np.uint8 and adj.dtype == np.uint8
    assert (adj == adj.T).all() and (np.diag(adj) == 0).all()
    mol = indices_to_mol(x, adj, VOCAB)
    assert canonical_smiles(mol) == canonical_smiles(mol_from_smiles(smiles))


def test_single_atom_molecules_exist_without_bonds():
    for smiles in ("C", "N", "O"):
        x, adj = encode(smiles)
        assert (x > 0).sum() == 1 and adj.sum() == 0
        assert canonical_smiles(indices_to_mol(x, adj, VOCAB)) == smiles


def test_aromatic_rings_are_stored_kekulized():
    x, adj = encode("c1ccccc1")
    orders = adj[np.triu_indices(9, 1)]
    assert sorted(orders[orders > 0].tolist()) == [1, 1, 1, 2, 2, 2]


def test_padding_is_dropped_and_bonds_to_padding_are_ignored():
    x = np.zeros(9, dtype=np.uint8)
    adj = np.zeros((9, 9), dtype=np.uint8)
    x[3] = x[5] = 1  # C at slots 3 and 5
    adj[3, 5] = adj[5, 3] = 1
    adj[3, 7] = adj[7, 3] = 2  # slot 7 is padding
    assert canonical_smiles(indices_to_mol(x, adj, VOCAB)) == "CC"


def test_invalid_graphs_decode_to_none_not_a_repaired_molecule():
    x = np.zeros(9, dtype=np.uint8)
    adj = np.zeros((9, 9), dtype=np.uint8)
    x[:6] = 1
    for j in range(1, 6):  # a carbon with five single bonds
        adj[0, j] = adj[j, 0] = 1
    assert indices_to_mol(x, adj, VOCAB) is None
    assert indices_to_mol(np.zeros(9, np.uint8), adj * 0, VOCAB) is None  # no atoms
    assert decode_smiles(np.stack([x, x]), np.stack([adj, adj]), VOCAB) == [None, None]


def test_a_batch_decodes_as_its_molecules_one_by_one():
    """indices_to_mols does the index work for the whole batch at once: each molecule's
    atoms and bonds (padding nodes and bonds to them dropped) must come out as alone."""
    rng = np.random.default_rng(0)
    x = (rng.integers(1, 5, (300, 9)) * (rng.random((300, 9)) < 0.8)).astype(np.uint8)
    upper = np.triu(rng.integers(0, 4, (300, 9, 9)) * (rng.random((300, 9, 9)) < 0.25), 1)
    adj = (upper + upper.transpose(0, 2, 1)).astype(np.uint8)
    x[:5] = 0  # molecules without atoms in the batch
    for smiles in ("CC(=O)N", "C#N", "OCC1CC1F"):  # known molecules between random graphs
        xi, ai = encode(smiles)
        x = np.concatenate([x, xi[None]])
        adj = np.concatenate([adj, ai[None]])
    one_by_one = [indices_to_mol(xi, ai, VOCAB) for xi, ai in zip(x, adj)]
    expected = [None if m is None else canonical_smiles(m) for m in one_by_one]
    assert decode_smiles(x, adj, VOCAB) == expected
    assert expected[-3:] == [canonical_smiles(mol_from_smiles(s))
                             for s in ("CC(=O)N", "C#N", "OCC1CC1F")]
    assert 0 < sum(s is not None for s in expected[:300]) < 295  # valid and invalid ones


def test_single_molecules_are_the_valid_decodings_without_a_dot():
    """The RL term's fast check (connectivity in numpy, RDKit only for connected graphs, no
    SMILES) agrees with decoding to SMILES, on random graphs and on known molecules."""
    from molgan.chem import connected_graphs, single_molecules

    rng = np.random.default_rng(2)
    x = (rng.integers(1, 4, (2000, 9)) * (rng.random((2000, 9)) < 0.7)).astype(np.uint8)
    upper = np.triu(rng.integers(1, 3, (2000, 9, 9)) * (rng.random((2000, 9, 9)) < 0.3), 1)
    adj = (upper + upper.transpose(0, 2, 1)).astype(np.uint8)
    known = ["CCO", "CC.O", "OCC1CC1F", "C.C", "N", "C#N"]
    x = np.concatenate([x, np.stack([encode(s)[0] for s in known]), np.zeros((1, 9), np.uint8)])
    adj = np.concatenate([adj, np.stack([encode(s)[1] for s in known]),
                          np.zeros((1, 9, 9), np.uint8)])
    expected = [s is not None and "." not in s for s in decode_smiles(x, adj, VOCAB)]
    assert single_molecules(x, adj, VOCAB).tolist() == expected
    assert expected[-7:] == [True, False, True, False, True, True, False]
    assert 20 < sum(expected[:2000]) < 1980  # both kinds among the random graphs
    assert connected_graphs(x, adj)[-7:].tolist() == [True, False, True, False, True, True,
                                                      False]


def test_decode_all_decodes_each_distinct_graph_once_and_keeps_the_row_order():
    from molgan.featurize import decode_all

    graphs = [encode(s) for s in ("CCO", "C#N", "CCO", "OCC1CC1F", "C#N", "CCO")]
    x = np.stack([g[0] for g in graphs])
    adj = np.stack([g[1] for g in graphs])
    x[4, 0] = 4  # F#N: invalid
    assert decode_all(x, adj, VOCAB, workers=1) == decode_smiles(x, adj, VOCAB)
    assert decode_all(x, adj, VOCAB, workers=1)[4] is None


def test_decode_all_in_forked_workers_equals_one_process(monkeypatch):
    """From FORK_MIN_ROWS distinct graphs on Linux, two workers are forked (no spawn start-up);
    the SMILES and their row order are those of one process."""
    import molgan.featurize as featurize

    rng = np.random.default_rng(5)
    m = featurize.FORK_MIN_ROWS + 500
    x = (rng.integers(1, 4, (m, 9)) * (rng.random((m, 9)) < 0.8)).astype(np.uint8)
    upper = np.triu(rng.integers(1, 3, (m, 9, 9)) * (rng.random((m, 9, 9)) < 0.25), 1)
    adj = (upper + upper.transpose(0, 2, 1)).astype(np.uint8)
    x, adj = np.concatenate([x, x[:100]]), np.concatenate([adj, adj[:100]])  # repeats too
    methods = []
    real_get_context = featurize.get_context
    monkeypatch.setattr(featurize, "get_context",
                        lambda method: methods.append(method) or real_get_context(method))
    together = featurize.decode_all(x, adj, VOCAB, workers=2)
    assert together == featurize.decode_all(x, adj, VOCAB, workers=1)
    assert together[-100:] == together[:100]
    assert 0 < sum(s is not None for s in together) < len(together)
    assert methods == (["fork"] if sys.platform == "linux" else [])


def _process_ids(chunk: list[int]) -> list[int]:
    """Map one chunk to the id of the process that maps it (module level: picklable)."""
    import os

    return [os.getpid()] * len(chunk)


@pytest.mark.skipif(sys.platform != "linux", reason="forked workers are Linux only")
@pytest.mark.parametrize("workers", [2, 3])
def test_forked_map_keeps_every_workers_th_chunk_in_this_process(monkeypatch, workers):
    """A forked pool has ``workers - 1`` processes; this process maps chunks 0, workers,
    2 * workers, ... itself, and the order of the results is the order of the chunks."""
    import os

    import molgan.featurize as featurize

    monkeypatch.setattr(featurize, "FORK_MIN_ROWS", 1)
    chunks = [[k] * 2 for k in range(2 * workers)]
    done = []
    pids = featurize.map_chunks(_process_ids, chunks, workers, None, [2] * len(chunks),
                                done=lambda k, part: done.append(k), fork=True)
    per_chunk = pids[::2]
    assert done == list(range(len(chunks)))
    assert [pid == os.getpid() for pid in per_chunk] == [k % workers == 0
                                                           for k in range(len(chunks))]
    assert 1 <= len(set(per_chunk) - {os.getpid()}) <= workers - 1


@pytest.mark.parametrize("smiles,reason", [
    ("", "empty"), ("C1CC", "unparsable"), ("[CH3]", "radical"), ("CCCCCCCCCC", "too_many_atoms"),
    ("C[Si](C)(C)C", "unknown_atom"),
])
def test_unrepresentable_molecules_raise_with_a_reason(smiles, reason):
    with pytest.raises(SkipMolecule) as info:
        encode(smiles)
    assert info.value.reason == reason


def test_element_only_tokens_would_lose_charges():
    x, _ = encode("C[N+](C)(C)C")
    assert sorted(VOCAB.atoms[i - 1] for i in x[x > 0]) == [(6, 0)] * 4 + [(7, 1)]
