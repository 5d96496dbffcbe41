"""Pictures a person would rather look at than read: training curves, histograms, grids."""

from __future__ import annotations

import json
from pathlib import Path


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
    panel(axes[0, 1], ("wasserstein",), "Wasserstein estimate E[D(real)] - E[D(fake)]")
    panel(axes[1, 0], ("gp",), "gradient penalty E[(||grad D|| - 1)^2]")
    panel(axes[1, 1], ("validity", "validity_connected", "uniqueness", "novelty"),
          "sample quality", ylim=(-0.02, 1.02))
    fig.suptitle(f"molgan training: {steps[-1]} steps, {records[-1]['seconds']:.0f} s")
    out_path = Path(out_path)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path
