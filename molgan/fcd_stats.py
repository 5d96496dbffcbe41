r"""Fréchet ChemNet Distance (Preuer et al. 2018) with the ``fcd`` package, offline.

``fcd`` ships the ChemNet weights inside its wheel (``ChemNet_v0.13_pretrained.pt``); nothing is
downloaded. FCD is :math:`\lVert\mu_1-\mu_2\rVert^2 + \mathrm{Tr}(\Sigma_1+\Sigma_2-2(\Sigma_1\Sigma_2)^{1/2})`
over ChemNet's penultimate activations of canonical SMILES. Reference statistics are cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from molgan.cache import cached_arrays, smiles_digest


def chemnet_activations(smiles: Sequence[str], batch_size: int = 128) -> np.ndarray:
    """ChemNet's penultimate activations ``[n, 512]`` (float32) of ``smiles``, on CUDA when
    present.

    The same computation as ``fcd.get_predictions`` (its tokenizer, padding and model), batched
    here: ``fcd`` 1.2.2 stacks its batches with ``np.row_stack``, which numpy 2.5 removed.
    """
    import fcd
    import torch
    from fcd.utils import SmilesDataset
    from torch.utils.data import DataLoader

    if len(smiles) == 0:
        return np.zeros((0, 512), dtype=np.float32)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = fcd.load_ref_model().to(device).eval()
    batches = []
    with torch.no_grad():
        for batch in DataLoader(SmilesDataset(list(smiles)), batch_size=batch_size):
            out = model(batch.transpose(1, 2).float().to(device))
            batches.append(out.cpu().numpy().astype(np.float32))
    return np.concatenate(batches, axis=0)


def chemnet_statistics(smiles: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[512]`` and covariance ``[512, 512]`` of ChemNet activations."""
    activations = chemnet_activations(smiles)
    return activations.mean(0), np.cov(activations.T)


def cached_statistics(smiles: Sequence[str], cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """:func:`chemnet_statistics`, cached on disk by a hash of the SMILES list."""
    import fcd

    key = smiles_digest(smiles, f"fcd-{getattr(fcd, '__version__', '?')}")

    def compute() -> dict[str, np.ndarray]:
        mu, sigma = chemnet_statistics(smiles)
        return {"mu": mu, "sigma": sigma}

    stats = cached_arrays(Path(cache_dir) / f"fcd-stats-{key}.npz", compute)
    return stats["mu"], stats["sigma"]


def frechet_distance(stats_a: tuple[np.ndarray, np.ndarray],
                     stats_b: tuple[np.ndarray, np.ndarray]) -> float:
    """FCD between two ``(mu, sigma)`` pairs; NaN when either side has non-finite statistics
    (fewer than two molecules give a NaN covariance, on which the matrix square root never
    converges)."""
    import fcd

    if not all(np.isfinite(part).all() for part in (*stats_a, *stats_b)):
        return float("nan")

    return float(fcd.calculate_frechet_distance(mu1=stats_a[0], sigma1=stats_a[1],
                                                mu2=stats_b[0], sigma2=stats_b[1]))
