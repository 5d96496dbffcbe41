"""On a CUDA machine: training, sampling and scoring there agree with the CPU.

Marked ``gpu``: deselected by default (``pytest -m gpu`` runs them; ``scripts/gpu_check.py``
does on a lent GPU). Without CUDA each one skips.
"""

from __future__ import annotations

import pytest
import torch

from molgan.config import RunConfig, TrainConfig

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_auto_device_is_cuda():
    from molgan.device import resolve_device

    assert resolve_device("auto").type == "cuda"


def test_training_on_cuda_saves_a_checkpoint_that_loads_on_cpu(train_data, tmp_path):
    from molgan.checkpoint import load_checkpoint
    from molgan.train import Trainer

    config = RunConfig(TrainConfig.from_flat(dict(steps=6, batch_size=32, device="cuda",
                                                  eval_every=3, eval_samples=100,
                                                  ckpt_every=3, seed=0)))
    trainer = Trainer(config, train_data, tmp_path)
    assert trainer.device.type == "cuda"
    result = trainer.fit()
    assert result.step == 6
    bundle = load_checkpoint(tmp_path / "ckpt.pt", map_location="cpu")
    assert all(t.device.type == "cpu" for t in bundle["generator"].values())
    assert all(torch.isfinite(t).all() for t in bundle["critic"].values())


def test_sampling_on_cuda_is_seeded_and_valid():
    from molgan.checkpoint import pretrained_path
    from molgan.sample import Sampler

    sampler = Sampler.from_checkpoint(pretrained_path("qm9"), device="cuda")
    first = sampler.sample(500, seed=0).smiles
    assert first == sampler.sample(500, seed=0).smiles
    assert sum(1 for s in first if s) / len(first) > 0.95


def test_critic_scores_on_cuda_match_the_cpu():
    from molgan import Critic

    smiles = ["CCO", "c1ccccc1", "CC(=O)O", "N#CC1CO1", "C1CC1"]
    on_cpu = Critic.pretrained("qm9").score(smiles)
    on_gpu = Critic.pretrained("qm9", device="cuda").score(smiles)
    torch.testing.assert_close(torch.as_tensor(on_gpu).cpu().float(),
                               torch.as_tensor(on_cpu).float(), rtol=1e-4, atol=1e-4)
