import pytest

from molgan.vocab import Vocab, atom_symbol, parse_atom_symbol


def test_index_zero_is_no_atom_and_sizes_count_it():
    vocab = Vocab.from_symbols(["C", "N", "O"], max_atoms=9)
    assert vocab.atom_symbols[0] == "*none"
    assert vocab.atom_index()[(6, 0)] == 1
    assert vocab.num_atom_types == 4
    assert vocab.num_bond_types == 4


def test_dict_round_trip_keeps_tokens_and_order():
    vocab = Vocab.from_symbols(["C", "O", "N+", "O-", "C-"], max_atoms=7)
    assert Vocab.from_dict(vocab.to_dict()) == vocab


@pytest.mark.parametrize("text,token", [("C", (6, 0)), ("N+", (7, 1)), ("O-", (8, -1)),
                                        ("Fe+2", (26, 2)), ("Cl", (17, 0))])
def test_symbols_parse_and_print_back(text, token):
    assert parse_atom_symbol(text) == token
    assert atom_symbol(token) == text


def test_learned_vocab_is_ordered_by_frequency_and_filters_rare_tokens():
    counts = {(6, 0): 10, (8, 0): 5, (7, 0): 5, (9, 0): 1}
    vocab = Vocab.from_counts(counts, max_atoms=5, min_count=2)
    assert vocab.atoms == ((6, 0), (7, 0), (8, 0))


def test_bad_tokens_and_duplicates_raise():
    with pytest.raises(ValueError):
        parse_atom_symbol("Xx")
    with pytest.raises(ValueError):
        Vocab(atoms=((6, 0), (6, 0)), max_atoms=3)
