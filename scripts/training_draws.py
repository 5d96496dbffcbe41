r"""The data as a generator: molecules drawn from a data set's training split, to score with
``molgan evaluate`` as an anchor for a model's figures.

Drawn with replacement (the default), ``n`` draws from ``M`` training molecules are unique
about :math:`\frac{M}{n}\big(1 - (1 - 1/M)^n\big)` of the time (0.954 for 10,000 of QM9's
104,605): the unique@10k of a model that had learned the training set exactly. Their FCD
against the test split is the floor a model can reach by reproducing the training set.
``--no-replace`` draws distinct molecules.

    python scripts/training_draws.py -n 10000 --seed 0 -o training.smi
    molgan evaluate training.smi --train qm9
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np


def draw(molecules: Sequence[str], n: int, seed: int, replace: bool = True) -> list[str]:
    """``n`` of ``molecules`` (sorted first, so the draw depends on the set, not its order),
    chosen uniformly with ``seed``; with ``replace=False`` all distinct (ValueError when ``n``
    exceeds their number)."""
    pool = sorted(molecules)
    if not replace and n > len(pool):
        raise ValueError(f"cannot draw {n} distinct molecules from {len(pool)}")
    rows = np.random.default_rng(seed).choice(len(pool), size=n, replace=replace)
    return [pool[row] for row in rows]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10000, help="molecules to draw")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", default="qm9", help="data set, split as evaluate splits it")
    parser.add_argument("--no-replace", action="store_true", help="draw distinct molecules")
    parser.add_argument("-o", "--out", required=True, help="sample file to write (.smi, .csv or .sdf)")
    args = parser.parse_args(argv)

    from molgan.evaluate import load_reference
    from molgan.sample import write_samples

    train = load_reference(args.train).train
    drawn = draw(train, args.n, args.seed, replace=not args.no_replace)
    write_samples(list(drawn), args.out)
    print(f"{len(drawn)} of {len(train)} training molecules -> {args.out} "
          f"({len(set(drawn)) / len(drawn):.3f} unique)")


if __name__ == "__main__":
    main()
