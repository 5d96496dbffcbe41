"""Metric definitions on hand-written lists with exact expected values."""

import math

import pytest

from molgan.metrics import (
    basic_metrics,
    canonicalize,
    novelty,
    novelty_molgan,
    uniqueness,
    validity,
    validity_connected,
)

# 10 samples: 2 invalid (bad syntax, pentavalent carbon), 1 empty, CCO written twice differently,
# a two-fragment molecule, and training-set members.
SAMPLES = ["CCO", "OCC", "C1CC", "C(C)(C)(C)(C)C", None, "c1ccccc1", "C.CC", "CC#N", "N#CC",
           "O=C=O"]
TRAINING = {"CCO", "c1ccccc1"}
DATASET = {"CCO", "c1ccccc1", "O=C=O"}


def test_validity_counts_every_sample_and_repairs_nothing():
    assert validity(SAMPLES) == 7 / 10
    assert validity(["C(C)(C)(C)(C)C"]) == 0.0  # no valence correction


def test_validity_connected_excludes_fragments():
    assert validity_connected(SAMPLES) == 6 / 10


def test_uniqueness_is_over_canonical_valid_smiles():
    # valid: CCO, CCO, c1ccccc1, C.CC, CC#N, CC#N, O=C=O -> 5 distinct of 7
    assert uniqueness(SAMPLES) == 5 / 7


def test_novelty_moses_counts_distinct_molecules_not_in_training():
    # distinct valid: CCO, c1ccccc1, C.CC, CC#N, O=C=O; novel: C.CC, CC#N, O=C=O
    assert novelty(SAMPLES, TRAINING) == 3 / 5


def test_novelty_molgan_counts_valid_samples_with_repeats_not_in_dataset():
    # valid (7): CCO x2, benzene, C.CC, CC#N x2, O=C=O; not in dataset: C.CC, CC#N x2
    assert novelty_molgan(SAMPLES, DATASET) == 3 / 7


def test_basic_metrics_reports_counts_and_agrees_with_the_single_metrics():
    result = basic_metrics(SAMPLES, TRAINING, DATASET)
    assert (result["n"], result["n_valid"], result["n_unique"]) == (10, 7, 5)
    assert result["validity"] == validity(SAMPLES)
    assert result["uniqueness"] == uniqueness(SAMPLES)
    assert result["novelty"] == novelty(SAMPLES, TRAINING)
    assert result["novelty_molgan"] == novelty_molgan(SAMPLES, DATASET)


def test_no_valid_samples_gives_nan_not_a_crash():
    assert validity([None, ""]) == 0.0
    assert math.isnan(uniqueness([None, "xx"]))


def test_canonicalize_returns_one_entry_per_sample_and_the_valid_molecules():
    canonical, mols = canonicalize(["OCC", "bad", ""])
    assert canonical == ["CCO", None, None] and len(mols) == 1


def test_internal_diversity_and_properties_on_known_molecules():
    from rdkit import Chem

    from molgan.properties import internal_diversity, property_table

    same = [Chem.MolFromSmiles("CCO")] * 3
    assert internal_diversity(same) == pytest.approx(0.0)
    table = property_table([Chem.MolFromSmiles("c1ccccc1"), Chem.MolFromSmiles("CCO")])
    assert table["atoms"].tolist() == [6, 3] and table["rings"].tolist() == [1, 0]
    assert table["qed"][0] == pytest.approx(0.4426, abs=1e-3)  # benzene
    assert table["mol_weight"][1] == pytest.approx(46.069, abs=1e-2)
