"""scripts/invalid_draws.py: each graph in the first class it meets, over-valence atoms
described by token and bond orders."""

from __future__ import annotations

import numpy as np

from molgan.vocab import Vocab
from tests.scripts import load_script

VOCAB = Vocab(atoms=((6, 0), (8, 0), (7, 0), (9, 0)), max_atoms=6)
C, O, N, F = 1, 2, 3, 4


def graph(atoms: list[int], bonds: dict[tuple[int, int], int]) -> tuple[np.ndarray, np.ndarray]:
    x = np.zeros(6, np.uint8)
    x[:len(atoms)] = atoms
    adj = np.zeros((6, 6), np.uint8)
    for (i, j), order in bonds.items():
        adj[i, j] = adj[j, i] = order
    return x, adj


def batch(*graphs: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return np.stack([g[0] for g in graphs]), np.stack([g[1] for g in graphs])


def test_each_graph_falls_in_the_first_class_it_meets():
    script = load_script("invalid_draws")
    x, adj = batch(
        graph([], {}),                                                   # no atoms
        graph([C, C, C, C, C, C], {(0, k): 1 for k in range(1, 6)}),     # C with 5 bonds
        graph([C, O, O], {(0, 1): 2, (0, 2): 2, (1, 2): 1}),             # O with 3: over
        graph([C, C, O], {(0, 1): 1}),                                   # valid, two pieces
        graph([C, C, O], {(0, 1): 1, (1, 2): 2}),                        # CC=O
        graph([N, N, N], {(0, 1): 2, (1, 2): 2, (0, 2): 2}),             # over: N with 4
    )
    report = script.classify(x, adj, VOCAB)
    assert report["classes"] == ["no_atoms", "over_valence", "over_valence", "disconnected",
                                 "molecule", "over_valence"]
    assert report["counts"] == {"no_atoms": 1, "over_valence": 3, "unsanitizable": 0,
                                "disconnected": 1, "molecule": 1}
    # C:1x5 (one atom), both O of C(=O)(=O) with O-O (3 each) and C with 4 (not over),
    # and all three N of the triangle of double bonds
    assert report["over_atoms"] == {"N": 3, "O": 2, "C": 1}
    assert report["over_patterns"] == {"N:2,2": 3, "O:1,2": 2, "C:1,1,1,1,1": 1}
    assert report["over_atoms_per_graph"] == {1: 1, 2: 1, 3: 1}


def test_bonds_to_empty_slots_and_the_diagonal_do_not_count():
    script = load_script("invalid_draws")
    x, adj = batch(graph([C, O], {(0, 1): 2, (0, 3): 3}))
    adj[0, 0, 0] = 3
    assert script.bond_order_sums(x, adj).tolist() == [[2, 2, 0, 0, 0, 0]]
    assert script.classify(x, adj, VOCAB)["classes"] == ["molecule"]


def test_an_ion_is_held_to_the_valence_of_its_isoelectronic_element():
    script = load_script("invalid_draws")
    vocab = Vocab(atoms=((6, 0), (7, 0), (7, 1), (9, 0)), max_atoms=6)
    ammonium = graph([3, 1, 1, 1, 1], {(0, k): 1 for k in range(1, 5)})   # [N+](C)(C)(C)C
    neutral = graph([2, 1, 1, 1, 1], {(0, k): 1 for k in range(1, 5)})    # N with 4 bonds
    x, adj = batch(ammonium, neutral, graph([1, 4], {(0, 1): 2}))         # and C=F
    report = script.classify(x, adj, vocab)
    assert report["classes"] == ["molecule", "over_valence", "over_valence"]
    assert report["over_patterns"] == {"N:1,1,1,1": 1, "F:2": 1}


def test_the_script_reports_the_shipped_models_unconstrained_draws(tmp_path, monkeypatch):
    import json
    import sys
    from pathlib import Path

    script = load_script("invalid_draws")
    model = Path(__file__).resolve().parents[1] / "molgan" / "pretrained" / "qm9.pt"
    out = tmp_path / "why.json"
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts"))
    monkeypatch.setattr(sys, "argv", ["invalid_draws.py", str(model), "-n", "64",
                                      "--temperature", "2.15", "--json", str(out)])
    script.main()
    report = json.loads(out.read_text())
    assert sum(report["counts"].values()) == 64
    assert report["valence_draw"] is False and report["temperature"] == 2.15
    assert sum(report["over_patterns"].values()) == sum(report["over_atoms"].values())
    assert report["counts"]["over_valence"] == sum(report["over_atoms_per_graph"].values())
