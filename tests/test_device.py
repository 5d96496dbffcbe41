"""Device choice and what the device supports (molgan.device)."""

import logging

import pytest
import torch

from molgan.device import native_bf16, resolve_device


def test_auto_is_the_cpu_without_cuda_and_cuda_without_it_is_refused():
    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


@pytest.mark.parametrize("flags, native", [("fpu sse2 avx2 fma", False),
                                           ("avx2 avx512f avx512bw", False),
                                           ("avx2 avx512f avx512_bf16", True),
                                           ("avx2 amx_bf16 amx_tile", True)])
def test_bf16_counts_as_native_only_with_avx512_bf16_or_amx(flags, native):
    assert native_bf16(torch.device("cpu"), cpu_flags=flags) is native


def test_training_in_bf16_where_it_is_emulated_says_so(cache_dir, tmp_path, small_smi,
                                                       monkeypatch, caplog):
    import molgan.device
    from molgan.cli import main

    monkeypatch.setattr(molgan.device, "native_bf16", lambda device: False)
    with caplog.at_level(logging.WARNING, logger="molgan"):
        assert main(["train", "--recipe", "molgan", "--data", str(small_smi), "--steps", "1",
                     "--batch-size", "8", "--z-dim", "8", "--precision", "bf16",
                     "--out", str(tmp_path / "run"), "--cache-dir", str(cache_dir),
                     "--eval-samples", "10"]) == 0
    assert any("no native bf16" in record.getMessage() for record in caplog.records)
