"""Which torch device a run or a sampler uses."""

from __future__ import annotations

import torch


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without CUDA is an error.

    Raises:
        ValueError: an unknown device name, or CUDA asked for where there is none.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device} was asked for, but CUDA is not available")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use auto, cpu or cuda") from None


def native_bf16(device: torch.device, cpu_flags: str | None = None) -> bool:
    """Whether bfloat16 matmuls run natively on ``device``: a CUDA device that supports
    them, or a CPU whose flags (``/proc/cpuinfo``, or ``cpu_flags`` given) include
    ``avx512_bf16`` or ``amx_bf16``. Elsewhere torch emulates bf16 on the CPU, several times
    slower than fp32 (0.2x of fp32 on an AVX2-only CPU in docs/benchmarks.md)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    if cpu_flags is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as info:
                cpu_flags = info.read()
        except OSError:
            return False
    words = set(cpu_flags.split())
    return bool(words & {"avx512_bf16", "amx_bf16"})
