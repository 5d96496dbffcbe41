r"""Why a model's draws are not molecules: each graph sorted into one class, and the atoms
over their valence counted by token and by the bond orders they carry.

    python scripts/invalid_draws.py RUN_OR_CKPT --valence-draw false --temperature 2.15 --json why.json
    python scripts/invalid_draws.py molgan/pretrained/qm9.pt --valence-draw false --temperature 1.0

The graphs are ``molgan sample``'s for the same model, decoding, temperature, ``-n`` and
``--seed`` (the same latents and draws). Each graph falls in the first class it meets:

- ``no_atoms``: every slot is empty;
- ``over_valence``: some atom's bond orders add up past its largest valence
  (:func:`molgan.chem.max_valences`: C 4, N 3, O 2, F 1; an ion as its isoelectronic neutral
  element), which no implicit hydrogen count can mend;
- ``unsanitizable``: within every valence, but RDKit cannot sanitize it (aromaticity or
  kekulization of the drawn bonds, charges);
- ``disconnected``: a valid graph of two or more molecules;
- ``molecule``: one valid molecule (``molgan evaluate``'s "connected").

Validity as ``molgan evaluate`` counts it is the share of ``disconnected`` and
``molecule``; connected validity the share of ``molecule``. For every atom over its valence the report counts its token and the sorted bond
orders it carries (``C:1,1,1,2`` is a carbon with three single bonds and one double bond,
order 5 against 4), and per ``over_valence`` graph how many atoms are over.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

import numpy as np

from molgan.chem import connected_graphs, max_valences, sanitized_mols
from molgan.vocab import Vocab, atom_symbol

CLASSES = ("no_atoms", "over_valence", "unsanitizable", "disconnected", "molecule")
"""The classes a graph can fall in, in the order they are tested (module docstring)."""


def bond_order_sums(x_idx: np.ndarray, adj_idx: np.ndarray) -> np.ndarray:
    """``[B, N]`` sum of bond orders each atom carries (bond code = order: 1, 2, 3), counting
    only bonds between existing atoms (``x_idx > 0``), as decoding does; 0 on empty slots."""
    exists = np.asarray(x_idx) > 0
    adj = np.asarray(adj_idx).astype(np.int64)
    adj = adj * (exists[:, :, None] & exists[:, None, :])
    adj = adj * (1 - np.eye(adj.shape[1], dtype=np.int64))
    return adj.sum(axis=2)


def classify(x_idx: np.ndarray, adj_idx: np.ndarray, vocab: Vocab) -> dict[str, Any]:
    """Sort graphs ``x_idx [B, N]``, ``adj_idx [B, N, N]`` (tokens of ``vocab``, bond codes
    0-3) into :data:`CLASSES` and describe the atoms over their valence.

    Returns ``{"n", "counts": {class: int}, "classes": [class per graph], "over_atoms":
    {token: int}, "over_patterns": {"C:1,1,1,2": int}, "over_atoms_per_graph": {k: int}}``.
    """
    x_idx = np.asarray(x_idx)
    adj_idx = np.asarray(adj_idx)
    capacity = np.asarray(max_valences(vocab))[x_idx]                        # [B, N]
    orders = bond_order_sums(x_idx, adj_idx)                                 # [B, N]
    over = (orders > capacity) & (x_idx > 0)                                 # [B, N]
    empty = ~(x_idx > 0).any(axis=1)
    over_graph = over.any(axis=1) & ~empty
    rest = np.flatnonzero(~empty & ~over_graph)
    valid = np.zeros(len(x_idx), dtype=bool)
    for row, mol in zip(rest.tolist(), sanitized_mols(x_idx[rest], adj_idx[rest], vocab)):
        valid[row] = mol is not None
    connected = connected_graphs(x_idx, adj_idx)
    classes = np.full(len(x_idx), "molecule", dtype=object)
    classes[valid & ~connected] = "disconnected"
    classes[~valid] = "unsanitizable"
    classes[over_graph] = "over_valence"
    classes[empty] = "no_atoms"
    atoms: Counter[str] = Counter()
    patterns: Counter[str] = Counter()
    for b, n in zip(*np.nonzero(over)):
        symbol = atom_symbol(vocab.atoms[int(x_idx[b, n]) - 1])
        atoms[symbol] += 1
        bonds = sorted(int(adj_idx[b, n, m]) for m in range(x_idx.shape[1])
                       if m != n and x_idx[b, m] > 0 and adj_idx[b, n, m] > 0)
        patterns[f"{symbol}:{','.join(map(str, bonds))}"] += 1
    per_graph = Counter(int(k) for k in over.sum(axis=1)[over_graph])
    return {"n": int(len(x_idx)),
            "counts": {c: int((classes == c).sum()) for c in CLASSES},
            "classes": classes.tolist(),
            "over_atoms": dict(atoms.most_common()),
            "over_patterns": dict(patterns.most_common()),
            "over_atoms_per_graph": {k: per_graph[k] for k in sorted(per_graph)}}


def main() -> None:
    from sampling_variants import add_model_arguments  # scripts/ is on sys.path when run

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_arguments(parser, counted="graphs", valence_draw="false")
    parser.add_argument("--decode", choices=("sample", "argmax"), default="sample")
    parser.add_argument("--top", type=int, default=12, help="patterns printed")
    parser.add_argument("--json", default=None, help="write the report here")
    args = parser.parse_args()
    from molgan.sample import Sampler

    sampler = Sampler.from_checkpoint(
        args.run, decode=args.decode, temperature=args.temperature,
        valence_draw=args.valence_draw == "true" if args.decode == "sample" else None)
    x_idx, adj_idx = sampler.sample_graphs(args.n, args.seed)
    report = classify(x_idx, adj_idx, sampler.vocab)
    report.pop("classes")
    report.update(model=args.run, seed=args.seed, decode=args.decode,
                  temperature=sampler.temperature,
                  valence_draw=sampler.max_valence is not None)
    counts = report["counts"]
    print(f"{args.n} graphs of {args.run}, {args.decode}"
          + (f" at T {sampler.temperature}, valence draw {report['valence_draw']}"
             if args.decode == "sample" else ""))
    for name in CLASSES:
        print(f"  {name:14s} {counts[name]:6d}  {counts[name] / args.n:.4f}")
    over_atoms = sum(report["over_atoms"].values())
    print(f"atoms over their valence: {over_atoms}, by token "
          + ", ".join(f"{k} {v}" for k, v in report["over_atoms"].items()))
    print("per over-valence graph: " + ", ".join(
        f"{k} atom(s) {v}" for k, v in report["over_atoms_per_graph"].items()))
    print("commonest (token: bond orders):")
    for pattern, count in list(report["over_patterns"].items())[:args.top]:
        print(f"  {pattern:16s} {count:6d}  {count / max(over_atoms, 1):.3f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=1)


if __name__ == "__main__":
    main()
