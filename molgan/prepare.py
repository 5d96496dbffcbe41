"""``prepare``: featurize and cache a source, check the exact round trip, and report it."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from molgan.dataset import load_dataset
from molgan.files import atomic_output
from molgan.featurize import roundtrip_exact

ProgressBar = Callable[[int | None, str], Any]


def prepare(
    source: str = "qm9",
    smiles_column: str | None = None,
    max_atoms: int | None = None,
    atoms: Sequence[str] | None = None,
    min_atom_count: int = 1,
    cache_dir: str | None = None,
    workers: int | None = None,
    roundtrip: bool = True,
    progress_bar: ProgressBar | None = None,
) -> dict[str, Any]:
    """Featurize ``source`` (cached) and return the report.

    The report holds ``n_read``, ``n_kept``, ``skipped`` (reason -> count), ``atom_tokens``,
    ``bond_tokens``, ``max_atoms``, ``roundtrip_exact`` (fraction of kept molecules whose
    decoded canonical SMILES equals the canonical input SMILES), ``seconds`` and the cache files.
    """
    start = time.perf_counter()
    bar = None

    def progress(n: int) -> None:
        if bar is not None:
            bar.update(n)

    if progress_bar is not None:
        bar = progress_bar(None, "featurize")
    dataset = load_dataset(source, smiles_column=smiles_column, max_atoms=max_atoms, atoms=atoms,
                           min_atom_count=min_atom_count, cache_dir=cache_dir, workers=workers,
                           progress=progress)
    if bar is not None:
        bar.close()
    report = dict(dataset.report)
    if roundtrip:
        bar = progress_bar(len(dataset), "round trip") if progress_bar else None
        t0 = time.perf_counter()
        fraction, misses = roundtrip_exact(dataset.x_idx, dataset.adj_idx, list(dataset.smiles),
                                           dataset.vocab, workers=workers, progress=progress)
        if bar is not None:
            bar.close()
        report["roundtrip_exact"] = fraction
        report["roundtrip_mismatches"] = [str(dataset.smiles[i]) for i in misses[:20]]
        report["roundtrip_seconds"] = round(time.perf_counter() - t0, 3)
    report["seconds"] = round(time.perf_counter() - start, 3)
    return report


def copy_skipped(report: dict[str, Any], destination: str | Path) -> None:
    """Copy the cached skipped-rows CSV (``row,id,smiles,reason,detail``) to ``destination``."""
    with atomic_output(destination) as tmp:
        shutil.copyfile(report["cache_files"]["skipped"], tmp)


def format_report(report: dict[str, Any]) -> str:
    """A short human-readable summary of a prepare report."""
    lines = [
        f"source        {report['source']}",
        f"read / kept   {report['n_read']:,} / {report['n_kept']:,}",
        "skipped       " + (", ".join(f"{k} {v:,}" for k, v in report["skipped"].items())
                             or "none"),
        f"atom tokens   {' '.join(report['atom_tokens'])}",
        f"bond tokens   {' '.join(report['bond_tokens'][1:])}",
        f"max atoms     {report['max_atoms']}",
    ]
    if "roundtrip_exact" in report:
        lines.append(f"round trip    {report['roundtrip_exact']:.6f} exact")
    lines.append(f"time          {report['seconds']:.2f} s"
                 + (" (cache hit)" if report.get("cache_hit") else ""))
    return "\n".join(lines)
