"""Write a synthetic SMILES file of larger molecules (up to --max-atoms heavy atoms) built from
drug-like fragments, for testing that nothing in the pipeline assumes QM9's size or elements.

    python scripts/make_synthetic.py -n 2000 --max-atoms 38 -o synthetic38.smi
"""

from __future__ import annotations

import argparse

from molgan.synthetic import synthetic_smiles

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--max-atoms", type=int, default=38)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args()
    smiles = synthetic_smiles(args.n, args.max_atoms, args.seed)
    with open(args.output, "w") as handle:
        handle.write("\n".join(smiles) + "\n")
    print(f"{len(smiles)} molecules -> {args.output}")


if __name__ == "__main__":
    main()
