"""``scripts/training_draws.py``: draws from the training split, the anchor for uniqueness."""

from __future__ import annotations

import pytest

from tests.scripts import load_script


@pytest.fixture(scope="module")
def training_draws():
    return load_script("training_draws")


def test_draws_with_replacement_repeat_as_the_birthday_formula_says(training_draws) -> None:
    pool = [f"C{'C' * i}O" for i in range(2000)]
    drawn = training_draws.draw(pool, 2000, seed=0)
    assert set(drawn) <= set(pool)
    expected = 1 - (1 - 1 / 2000) ** 2000  # unique share of n draws from n molecules
    assert len(set(drawn)) / 2000 == pytest.approx(expected, abs=0.03)


def test_draws_depend_on_the_set_and_seed_not_the_order(training_draws) -> None:
    pool = ["CCO", "CCN", "c1ccccc1", "C#N", "CC=O"]
    first = training_draws.draw(pool, 20, seed=3)
    assert first == training_draws.draw(list(reversed(pool)), 20, seed=3)
    assert first != training_draws.draw(pool, 20, seed=4)


def test_draws_without_replacement_are_distinct_or_refused(training_draws) -> None:
    pool = ["CCO", "CCN", "C#N"]
    assert sorted(training_draws.draw(pool, 3, seed=0, replace=False)) == sorted(pool)
    with pytest.raises(ValueError, match="distinct"):
        training_draws.draw(pool, 4, seed=0, replace=False)
