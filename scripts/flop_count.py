"""FLOPs of any torch code, double backward included, with no molgan import (the benchmarks
also run it inside other projects' environments).

Counts matmul-like ops with torch's FLOP formulas (``flop_counter.flop_registry``) in a
dispatch mode; ``FlopCounterMode`` itself cannot run ``autograd.grad`` (gradient penalties).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def count_flops(run: Callable[[], Any]) -> int:
    """FLOPs of the matmul-like ops ``run()`` dispatches."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Counter(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            packet = func._overloadpacket
            if packet in flop_registry:
                Counter.total += flop_registry[packet](*args, **kwargs, out_val=out)
            return out

    with Counter():
        run()
    return Counter.total
