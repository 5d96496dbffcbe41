"""Pictures a person would rather look at than read: training curves, histograms, grids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from molgan.files import atomic_output


def plot_training_curves(metrics_path: str | Path, out_path: str | Path) -> Path | None:
    """Four panels from ``metrics.jsonl``: losses, Wasserstein estimate, gradient penalty, and
    validity / uniqueness / novelty of the periodic samples. Returns the PNG path (or ``None``
    when there is nothing to plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = Path(metrics_path).read_text().splitlines() if Path(metrics_path).is_file() else []
    records = [json.loads(line) for line in lines if line.strip()]
    if not records:
        return None
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), constrained_layout=True)
    steps = [r["step"] for r in records]

    def panel(ax, keys: tuple[str, ...], title: str, ylim: tuple[float, float] | None = None):
        plotted = False
        for key in keys:
            points = [(r["step"], r[key]) for r in records if key in r]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, label=key, marker="o" if len(points) < 30 else None, ms=3)
                plotted = True
        ax.set_title(title)
        ax.set_xlabel("generator step")
        ax.grid(alpha=0.3)
        if ylim:
            ax.set_ylim(*ylim)
        if plotted:
            ax.legend(loc="best", fontsize=8)

    panel(axes[0, 0], ("loss_d", "loss_g"), "losses")
    panel(axes[0, 1], ("wasserstein", "real_score"),
          "critic: E[D(real)] - E[D(fake)], and E[D(real)]")
    panel(axes[1, 0], ("gp",), "gradient penalty E[(||grad D|| - 1)^2]")
    panel(axes[1, 1], ("validity", "validity_connected", "uniqueness", "novelty"),
          "sample quality", ylim=(-0.02, 1.02))
    fig.suptitle(f"molgan training: {steps[-1]} steps, {records[-1]['seconds']:.0f} s")
    return _save_figure(fig, out_path)


def plot_property_histograms(samples: dict, reference: dict, out_path: str | Path,
                             title: str = "") -> Path:
    """One panel per property: density histograms of valid samples vs the reference set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from molgan.properties import PROPERTIES

    fig, axes = plt.subplots(2, 3, figsize=(13, 7), constrained_layout=True)
    for ax, name in zip(axes.flat, PROPERTIES):
        ref = np.asarray(reference[name])
        gen = np.asarray(samples[name])
        values = np.concatenate([ref, gen]) if gen.size else ref
        if name in ("atoms", "rings"):
            bins = np.arange(values.min() - 0.5, values.max() + 1.5)
        else:
            bins = np.linspace(values.min(), values.max(), 41)
        ax.hist(ref, bins=bins, density=True, alpha=0.5, label=f"reference (n={ref.size:,})")
        if gen.size:
            ax.hist(gen, bins=bins, density=True, histtype="step", lw=2,
                    label=f"samples (n={gen.size:,})")
        ax.set_title(name)
        ax.legend(fontsize=8)
    fig.suptitle(title or "property distributions: valid samples vs reference")
    return _save_figure(fig, out_path)


def draw_molecule_grid(smiles: list[str | None], out_path: str | Path, count: int = 48,
                       per_row: int = 8) -> Path:
    """A PNG grid of the first ``count`` valid molecules, each labelled with its SMILES."""
    from rdkit import Chem
    from rdkit.Chem import Draw

    mols, legends = [], []
    for s in smiles:
        if s:
            mol = Chem.MolFromSmiles(s)
            if mol is not None:
                mols.append(mol)
                legends.append(s if len(s) <= 28 else s[:25] + "...")
        if len(mols) == count:
            break
    if not mols:
        raise ValueError("no valid molecule to draw")
    image = Draw.MolsToGridImage(mols, molsPerRow=per_row, subImgSize=(220, 180),
                                 legends=legends)
    out_path = Path(out_path)
    with atomic_output(out_path) as tmp:
        image.save(str(tmp), format=(out_path.suffix[1:] or "png").upper())
    return out_path


def _save_figure(fig: Any, out_path: str | Path) -> Path:
    """Save a matplotlib figure all or nothing (format from the suffix, PNG by default)."""
    import matplotlib.pyplot as plt

    out_path = Path(out_path)
    with atomic_output(out_path) as tmp:
        fig.savefig(tmp, dpi=110, format=out_path.suffix[1:].lower() or "png")
    plt.close(fig)
    return out_path
