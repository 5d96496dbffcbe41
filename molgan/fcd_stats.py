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
                     stats_b: tuple[np.ndarray, np.ndarray], eps: float = 1e-6) -> float:
    r"""FCD between two ``(mu, sigma)`` pairs:
    :math:`\lVert\mu_a-\mu_b\rVert^2 + \mathrm{Tr}(\Sigma_a+\Sigma_b-2(\Sigma_a\Sigma_b)^{1/2})`.

    The matrix square root is ``scipy.linalg.sqrtm``; when the product is near singular (a
    non-finite root, or one with an imaginary diagonal) both covariances get ``eps`` added to
    their diagonals first, and a negligible imaginary part left by rounding is dropped: the
    recipe of the ``fcd`` package, written here because its own function passes ``sqrtm`` an
    argument that current scipy no longer accepts. NaN when either side has non-finite
    statistics (fewer than two molecules give a NaN covariance, on which the matrix square root
    never converges).

    Raises:
        ValueError: the square root keeps an imaginary diagonal larger than 1e-3.
    """
    from scipy import linalg

    if not all(np.isfinite(part).all() for part in (*stats_a, *stats_b)):
        return float("nan")
    mu_a, sigma_a = np.atleast_1d(stats_a[0]), np.atleast_2d(stats_a[1])
    mu_b, sigma_b = np.atleast_1d(stats_b[0]), np.atleast_2d(stats_b[1])
    if mu_a.shape != mu_b.shape or sigma_a.shape != sigma_b.shape:
        raise ValueError(f"statistics of different sizes: {mu_a.shape} and {mu_b.shape}")

    def real_diagonal(root: np.ndarray) -> bool:
        return bool(np.allclose(np.diagonal(root).imag, 0, atol=1e-3))

    root = linalg.sqrtm(sigma_a @ sigma_b)
    if not np.isfinite(root).all() or not real_diagonal(root):
        offset = np.eye(sigma_a.shape[0]) * eps
        root = linalg.sqrtm((sigma_a + offset) @ (sigma_b + offset))
    if np.iscomplexobj(root):
        if not real_diagonal(root):
            raise ValueError(f"imaginary component {np.max(np.abs(root.imag)):.3g} in the "
                             "square root of the covariance product")
        root = root.real
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2 * np.trace(root))
