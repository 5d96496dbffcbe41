"""Sampling: generator -> argmax or drawn graphs -> canonical SMILES, batched."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from molgan.files import atomic_output
from molgan.generator import Generator, GeneratorConfig, draw_graph
from molgan.graph import argmax_graph
from molgan.vocab import Vocab

#: ``argmax``: the most likely token per node and node pair (deterministic given z);
#: ``sample``: a categorical draw per node and pair (Gumbel-max, symmetric for bonds), from
#: ``softmax(logits / temperature)``.
DECODINGS = ("argmax", "sample")
#: File types :func:`write_samples` writes.
SAMPLE_SUFFIXES = (".smi", ".txt", ".smiles", ".csv", ".sdf")
#: Which generator weights :meth:`Sampler.from_checkpoint` loads.
WEIGHTS = ("average", "live")
#: Generator batch of :class:`Sampler` and of ``molgan sample`` (the same, so a seed gives the
#: same samples through both: latents and draws are taken batch by batch from one stream).
SAMPLE_BATCH = 4096


@dataclass
class SampleResult:
    """``n`` samples: index arrays and canonical SMILES (``None`` = invalid)."""

    x_idx: np.ndarray
    adj_idx: np.ndarray
    smiles: list[str | None]


class Sampler:
    """Draws molecules from a trained generator.

    ``sample(n, seed)`` returns exactly ``n`` results; ``generate(number_samples)`` is the
    GuacaMol ``DistributionMatchingGenerator`` protocol: exactly ``number_samples`` strings,
    ``''`` for invalid ones.
    """

    def __init__(self, generator: Generator, vocab: Vocab, device: str | torch.device = "cpu",
                 batch_size: int = SAMPLE_BATCH, seed: int = 0, decode: str = "argmax",
                 temperature: float = 1.0, valence_draw: bool | None = None) -> None:
        if decode not in DECODINGS:
            raise ValueError(f"decode must be one of {DECODINGS}, got {decode!r}")
        if not temperature > 0:
            raise ValueError(f"the temperature must be > 0, got {temperature}")
        if batch_size < 1:
            raise ValueError(f"the batch size must be at least 1, got {batch_size}")
        if temperature != 1.0 and decode != "sample":
            raise ValueError("a sampling temperature needs decode='sample' (argmax ignores it)")
        if valence_draw and decode != "sample":
            raise ValueError("valence_draw needs decode='sample' (argmax draws nothing)")
        self.decode = decode
        self.temperature = temperature
        self.generator = generator.to(device).eval()
        # draws within valences: the model's own setting (GeneratorConfig.valence_draw) or
        # valence_draw, which may switch it off to see what the network draws without it
        use = generator.config.valence_draw if valence_draw is None else valence_draw
        use = use and decode == "sample"
        self.max_valence: torch.Tensor | None = None
        if use:
            from molgan.chem import max_valences

            self.max_valence = torch.tensor(max_valences(vocab), device=device)
        self.vocab = vocab
        self.device = torch.device(device)
        self.batch_size = batch_size
        self._next_seed = seed

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device | None = None,
                        weights: str = "average", **kwargs: Any) -> Sampler:
        """Load the generator and vocabulary from a run dir or ``ckpt.pt``. ``decode`` and
        ``temperature`` (keyword arguments; None or absent) default to the model's own
        (``decode`` and ``sample_temperature`` of its training config). ``weights``: ``average``, the moving average of the generator's
        weights when the run kept one (``--generator-ema``; else the last weights), or
        ``live``, the last weights of training."""
        from molgan.checkpoint import (
            CheckpointError,
            build_config,
            bundle_contents,
            load_checkpoint,
        )
        from molgan.device import resolve_device
        from molgan.retired import RetiredLeverError, drop_retired

        if weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
        device = resolve_device("auto" if device is None else str(device))
        bundle = load_checkpoint(path, map_location=device)
        with bundle_contents(path):
            vocab = Vocab.from_dict(bundle["vocab"])
            config = build_config(GeneratorConfig, bundle["generator_config"])
            generator = Generator(config, vocab)
            key = ("generator_ema" if weights == "average" and "generator_ema" in bundle
                   else "generator")
            generator.load_state_dict(bundle[key])
            try:
                trained = drop_retired("TrainConfig", bundle.get("config", {}).get("train", {}))
            except RetiredLeverError as exc:
                raise CheckpointError(str(exc)) from None
        if kwargs.get("decode") is None:
            kwargs["decode"] = trained.get("decode", "argmax")
        if kwargs.get("temperature") is None:
            kwargs["temperature"] = (trained.get("sample_temperature", 1.0)
                                     if kwargs["decode"] == "sample" else 1.0)
        return cls(generator, vocab, device, **kwargs)

    @torch.no_grad()
    def sample_graphs(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Index arrays ``x_idx [n, N]``, ``adj_idx [n, N, N]`` (uint8): the argmax of the
        logits, or (``decode='sample'``) one categorical draw per node and node pair from
        ``softmax(logits / temperature)`` (Gumbel-max; bonds drawn once per pair). The
        latents and draws come batch by batch from one stream seeded with ``seed``, so the
        samples of a seed depend on ``batch_size`` too."""
        rng = torch.Generator(device=self.device).manual_seed(seed)
        xs, adjs = [], []
        for start in range(0, n, self.batch_size):
            size = min(self.batch_size, n - start)
            z = self.generator.sample_z(size, generator=rng, device=self.device)
            logits = self.generator(z)
            if self.decode == "sample":
                x_idx, adj_idx = draw_graph(logits, self.temperature, generator=rng,
                                            max_valence=self.max_valence,
                                            no_isolated=self.generator.config.draw_no_isolated)
            else:
                x_idx, adj_idx = argmax_graph(logits)
            xs.append(x_idx.cpu().numpy())
            adjs.append(adj_idx.cpu().numpy())
        n_nodes = self.vocab.max_atoms
        if not xs:
            return np.zeros((0, n_nodes), np.uint8), np.zeros((0, n_nodes, n_nodes), np.uint8)
        return np.concatenate(xs), np.concatenate(adjs)

    def sample(self, n: int, seed: int = 0, workers: int = 1,
               progress: Callable[[int], None] | None = None) -> SampleResult:
        """Exactly ``n`` samples with seed ``seed``; invalid ones have SMILES ``None``."""
        from molgan.featurize import decode_all

        was_training = self.generator.training
        self.generator.eval()
        try:
            x_idx, adj_idx = self.sample_graphs(n, seed)
        finally:
            self.generator.train(was_training)
        smiles = decode_all(x_idx, adj_idx, self.vocab, workers=workers, progress=progress)
        return SampleResult(x_idx, adj_idx, smiles)

    def generate(self, number_samples: int) -> list[str]:
        """GuacaMol protocol: ``number_samples`` SMILES, ``''`` for invalid; new seed per call."""
        seed = self._next_seed
        self._next_seed += 1
        return [s or "" for s in self.sample(number_samples, seed).smiles]


def write_samples(smiles: list[str | None], path: str | Path, valid_only: bool = False) -> int:
    """Write samples to ``.smi`` (an empty line for an invalid one), ``.csv`` (``index, smiles,
    valid``) or ``.sdf`` (an empty record for an invalid one), all or nothing (a temporary file
    renamed when complete). Returns the rows written."""
    import csv

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SAMPLE_SUFFIXES:
        raise ValueError(f"unknown sample file type {suffix!r}: use .smi, .csv or .sdf")
    rows = [(i, s) for i, s in enumerate(smiles) if s or not valid_only]
    with atomic_output(path) as tmp:
        if suffix in (".smi", ".txt", ".smiles"):
            tmp.write_text("".join((s or "") + "\n" for _, s in rows))
        elif suffix == ".csv":
            with open(tmp, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["index", "smiles", "valid"])
                writer.writerows((i, s or "", int(bool(s))) for i, s in rows)
        else:
            from rdkit import Chem

            writer = Chem.SDWriter(str(tmp))
            for i, s in rows:
                mol = Chem.MolFromSmiles(s) if s else Chem.Mol()
                mol.SetProp("_Name", f"sample {i}")
                mol.SetIntProp("valid", int(bool(s)))
                writer.write(mol)
            writer.close()
    return len(rows)
