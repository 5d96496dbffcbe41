"""``evaluate``: sample metrics against a reference dataset (novelty vs train, FCD vs test).

Reference (``--train qm9|moses|FILE``): the dataset is featurized (cached) and split exactly
as ``molgan train`` splits it (seeded 80/10/10, or a test-id file). Novelty compares against the
train split, ``novelty_molgan`` against the whole dataset, FCD and property distributions
against the test split. Reference statistics (FCD mean/covariance, property arrays) are cached.

``--train moses`` follows MOSES instead: novelty against its whole train split, FCD and
properties against its ``Test`` split, and the MOSES metrics (:mod:`molgan.moses_metrics`)
against ``Test`` and ``TestSF`` (the scaffold split).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from molgan.cache import cached_arrays, smiles_digest
from molgan.metrics import basic_metrics, canonicalize
from molgan.properties import PROPERTIES, internal_diversity, property_table
from molgan.sources import DataError, is_moses


@dataclass
class Reference:
    """Canonical SMILES of a dataset's splits, plus where to cache statistics.

    ``tests`` names the sets the MOSES metrics compare against (``{'Test': test}`` unless the
    source defines more, as MOSES does with ``TestSF``); ``moses`` says whether the source is
    MOSES, whose metrics are then always computed.
    """

    name: str
    train: frozenset[str]
    dataset: frozenset[str]
    test: list[str]
    cache_dir: Path
    tests: dict[str, list[str]] = field(default_factory=dict)
    moses: bool = False

    def test_sets(self) -> dict[str, list[str]]:
        """Reference sets of the MOSES metrics by name (``Test`` first)."""
        return {"Test": self.test, **self.tests}

    def property_arrays(self) -> dict[str, np.ndarray]:
        """Properties of the test molecules (cached)."""
        from molgan.chem import mol_from_smiles

        key = smiles_digest(self.test, "properties-v1")
        return cached_arrays(
            self.cache_dir / f"properties-{key}.npz",
            lambda: property_table([mol_from_smiles(s) for s in self.test]))

    def fcd_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """ChemNet statistics of the test molecules (cached)."""
        from molgan.fcd_stats import cached_statistics

        return cached_statistics(self.test, self.cache_dir)


def load_reference(source: str = "qm9", split_seed: int = 0, test_ids: str | None = None,
                   test_ids_offset: int = 0, whole: bool = False, smiles_column: str | None = None,
                   max_atoms: int | None = None, cache_dir: str | Path | None = None) -> Reference:
    """Build the :class:`Reference` of ``source`` (``whole``: no split, all of it is train and
    test). MOSES (``source='moses'``) brings its own splits; split options do not apply."""
    from molgan.dataset import default_cache_dir, load_dataset, read_split_file

    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if is_moses(source):
        if source.lower() != "moses" or whole or test_ids:
            raise DataError("--train moses brings MOSES's own train, Test and TestSF splits; "
                            "--whole and --test-ids do not apply")
        train = frozenset(load_dataset("moses", cache_dir=directory).smiles.tolist())
        test = load_dataset("moses:test", cache_dir=directory).smiles.tolist()
        scaffolds = load_dataset("moses:test_scaffolds", cache_dir=directory).smiles.tolist()
        return Reference(name="moses", train=train, dataset=train, test=test,
                         cache_dir=directory, tests={"TestSF": scaffolds}, moses=True)
    data = load_dataset(source, smiles_column=smiles_column, max_atoms=max_atoms,
                        cache_dir=directory)
    if whole:
        parts = {"train": np.arange(len(data)), "test": np.arange(len(data))}
    else:
        ids = read_split_file(test_ids, offset=test_ids_offset) if test_ids else None
        parts = data.split_indices(seed=split_seed, split_ids=ids)
        if len(parts["test"]) == 0:
            raise DataError(f"the test split of {source} is empty ({len(data)} molecules"
                            f"{', none of the test ids among them' if ids else ''}): pass "
                            "--whole to compare against all of it")
    return Reference(
        name=source,
        train=frozenset(data.smiles[parts["train"]].tolist()),
        dataset=frozenset(data.smiles.tolist()),
        test=data.smiles[parts["test"]].tolist(),
        cache_dir=directory,
    )


def read_samples(path: str | Path, smiles_column: str | None = None) -> list[str | None]:
    """Samples from ``.smi``/``.txt`` (an empty line is an invalid sample), ``.csv`` (empty cell
    = invalid) or ``.sdf`` (an unreadable record = invalid). Every row counts toward ``n``."""
    from molgan.sources import require_file

    path = Path(path)
    require_file(path)
    suffix = path.suffix.lower()
    if suffix in (".smi", ".txt", ".smiles"):
        from molgan.sources import read_text_lines

        rows = [r.split()[0] if r.split() else "" for r in read_text_lines(path)]
        if rows and rows[0].lower() in ("smiles", "smi"):
            rows = rows[1:]
    elif suffix == ".csv":
        from molgan.sources import read_csv_column

        rows = read_csv_column(path, smiles_column)
    elif suffix == ".sdf":
        from molgan.sources import read_sdf_smiles

        rows = ["" if r.startswith("<unreadable") else r for r in read_sdf_smiles(path)]
    else:
        raise DataError(f"unknown sample file type {suffix!r}: use .smi, .txt, .csv or .sdf")
    if not rows:
        raise DataError(f"no samples in {path}")
    return [r or None for r in rows]


def evaluate(samples: Sequence[str | None], reference: Reference, fcd: bool = True,
             properties: bool = True, diversity: bool = True,
             tables: dict[str, Any] | None = None,
             moses: bool | None = None) -> dict[str, Any]:
    """All metrics of ``samples`` (``None``/``''`` = invalid) against ``reference``.

    Returns a flat dict: ``n``, counts, ``validity``, ``validity_connected``, ``uniqueness``,
    ``novelty``, ``novelty_molgan`` (definitions in :mod:`molgan.metrics`), ``fcd`` (valid
    samples vs test split), ``internal_diversity``, and per property ``{p}_mean``,
    ``{p}_ref_mean`` and ``{p}_w1`` (1-D Wasserstein distance of the distributions), and
    for qed/logp/sa the fraction of valid samples (``{p}_reward_ge_half``) and of reference
    molecules (``ref_{p}_reward_ge_half``) at or above half the RL reward
    (:func:`molgan.reward.rewarded_fractions`).
    If ``tables`` is a dict, the property arrays are put in it (``samples``, ``reference``).
    With ``moses`` (default: whether the reference is MOSES), ``result['moses']`` holds the
    MOSES metrics (:func:`moses_results`).
    """
    timings: dict[str, float] = {}
    sample_statistics = None
    t0 = time.perf_counter()
    canonical, mols = canonicalize(samples)
    result: dict[str, Any] = basic_metrics(samples, reference.train, reference.dataset,
                                           canonical=canonical)
    timings["basic"] = time.perf_counter() - t0
    valid = [s for s in canonical if s]
    if diversity:
        t0 = time.perf_counter()
        result["internal_diversity"] = internal_diversity(mols)
        timings["internal_diversity"] = time.perf_counter() - t0
    if properties:
        from scipy.stats import wasserstein_distance

        t0 = time.perf_counter()
        ref = reference.property_arrays()
        table = property_table(mols) if mols else {p: np.zeros(0) for p in PROPERTIES}
        for name in PROPERTIES:
            has = table[name].size > 0
            result[f"{name}_mean"] = float(table[name].mean()) if has else float("nan")
            result[f"{name}_ref_mean"] = float(ref[name].mean())
            result[f"{name}_w1"] = (float(wasserstein_distance(table[name], ref[name]))
                                    if has else float("nan"))
        from molgan.reward import rewarded_fractions

        result.update(rewarded_fractions(table))
        result.update(rewarded_fractions(ref, prefix="ref_"))
        timings["properties"] = time.perf_counter() - t0
        if tables is not None:
            tables.update({"samples": table, "reference": ref})
    if fcd:
        from molgan.fcd_stats import chemnet_statistics, frechet_distance

        t0 = time.perf_counter()
        enough = len(valid) >= 2 and len(reference.test) >= 2  # a covariance needs two
        sample_statistics = chemnet_statistics(valid) if len(valid) >= 2 else None
        result["fcd"] = (frechet_distance(sample_statistics, reference.fcd_statistics())
                         if enough and sample_statistics is not None else float("nan"))
        if not enough:
            result["fcd_unavailable"] = (f"needs 2 valid samples and 2 test molecules, got "
                                         f"{len(valid)} and {len(reference.test)}")
        timings["fcd"] = time.perf_counter() - t0
    if moses if moses is not None else reference.moses:
        t0 = time.perf_counter()
        result["moses"] = moses_results(result, canonical, mols, reference,
                                         sample_statistics)
        timings["moses"] = time.perf_counter() - t0
    result["reference"] = {"name": reference.name, "n_train": len(reference.train),
                           "n_test": len(reference.test)}
    result["seconds"] = {k: round(v, 3) for k, v in timings.items()}
    return result


def moses_results(result: dict[str, Any], canonical: Sequence[str | None], mols: Sequence[Any],
                  reference: Reference,
                  sample_statistics: tuple[np.ndarray, np.ndarray] | None) -> dict[str, Any]:
    """The MOSES table (names as MOSES prints them) from ``result`` (validity, novelty, FCD vs
    Test, property distances) and :func:`molgan.moses_metrics.moses_metrics` (the rest);
    ``sample_statistics`` are the samples' ChemNet statistics (``None``: no FCD)."""
    from molgan.featurize import default_workers
    from molgan.moses_metrics import moses_metrics, reference_statistics
    from molgan.sources import package_folder

    valid = [s for s in canonical if s]
    sets = reference.test_sets()
    stats = {name: reference_statistics(smiles, reference.cache_dir)
             for name, smiles in sets.items()}
    table: dict[str, Any] = {"valid": result["validity"]}
    metrics = moses_metrics(valid, mols, stats, package_folder("moses"), default_workers())
    table.update({k: v for k, v in metrics.items() if k.startswith("unique")})
    table["novelty"] = result["novelty"]
    for name, smiles in sets.items():
        if "fcd" in result:
            if name == "Test":
                table["FCD/Test"] = result["fcd"]
            else:
                from molgan.fcd_stats import cached_statistics, frechet_distance

                table[f"FCD/{name}"] = (
                    frechet_distance(sample_statistics,
                                     cached_statistics(smiles, reference.cache_dir))
                    if sample_statistics is not None else float("nan"))
        for metric in ("SNN", "Frag", "Scaf"):
            table[f"{metric}/{name}"] = metrics[f"{metric}/{name}"]
    table.update({k: metrics[k] for k in ("IntDiv1", "IntDiv2")})
    if "Filters" in metrics:
        table["Filters"] = metrics["Filters"]
    else:
        table["Filters_unavailable"] = "needs the molsets wheel's filter files"
    for label, key in (("logP", "logp"), ("SA", "sa"), ("QED", "qed"), ("weight", "mol_weight")):
        if f"{key}_w1" in result:
            table[label] = result[f"{key}_w1"]
    return table


def format_table(result: dict[str, Any]) -> str:
    """The main figures as an aligned text table."""
    rows = [("samples (n)", f"{result['n']:,}"),
            ("validity", f"{result['validity']:.4f}"),
            ("validity_connected", f"{result['validity_connected']:.4f}"),
            (f"uniqueness (unique@{result['n']})", f"{result['uniqueness']:.4f}"),
            ("novelty (MOSES)", f"{result['novelty']:.4f}"),
            ("novelty_molgan", f"{result['novelty_molgan']:.4f}")]
    for key, label in (("fcd", "FCD vs test"), ("internal_diversity", "internal diversity")):
        if f"{key}_unavailable" in result:
            rows.append((label, f"unavailable ({result[f'{key}_unavailable']})"))
        elif key in result:
            rows.append((label, f"{result[key]:.4f}"))
    for name in PROPERTIES:
        if f"{name}_mean" in result:
            rows.append((f"{name} mean (ref)", f"{result[f'{name}_mean']:.3f} "
                         f"({result[f'{name}_ref_mean']:.3f}), W1 {result[f'{name}_w1']:.3f}"))
    for name, rule in (("qed", "QED >= 0.5"), ("logp", "logP >= 1.96"), ("sa", "SA <= 3.25")):
        if f"{name}_reward_ge_half" in result:
            rows.append((f"{rule} (ref)", f"{result[f'{name}_reward_ge_half']:.3f} "
                         f"({result[f'ref_{name}_reward_ge_half']:.3f})"))
    for key, value in result.get("moses", {}).items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        rows.append((f"MOSES {key}", shown))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)
