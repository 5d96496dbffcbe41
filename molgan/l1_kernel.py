r"""The L1 minibatch kernel's sums with hand-written first and second derivatives.

For projections ``m [B, K, D]`` (the graphs scored) and ``o [S, K, D]`` (the graphs they are
compared with), :func:`l1_kernel_sums` returns

.. math::  f_{bk} = \sum_s s_{bsk}, \qquad s_{bsk} = \exp(-\textstyle\sum_d |m_{bkd} - o_{skd}|).

Plain autograd builds and keeps several ``[B, S, K, D]`` tensors for this (the difference,
its absolute value, the sign in the backward, more in the gradient penalty's double backward),
and a critic step spends most of its time moving them through memory. Here every pass over
``[B, S, K, D]`` is done in blocks of rows small enough to stay in cache, and only
``s [B, S, K]`` is kept. With :math:`\sigma_{bskd} = \mathrm{sign}(m_{bkd} - o_{skd})` and a
cotangent ``g [B, K]``, the gradients are

.. math::  \partial m_{bkd} = -\sum_s W_{bsk}\,\sigma_{bskd}, \qquad
           \partial o_{skd} = \sum_b W_{bsk}\,\sigma_{bskd}, \qquad W_{bsk} = g_{bk} s_{bsk},

(the sign's own derivative is 0 almost everywhere, and 0 is also what autograd uses for
:math:`|x|` at 0). That backward is itself a function of ``(g, m, o)``; the gradient penalty
differentiates it once more. For cotangents ``v_m [B, K, D]``, ``v_o [S, K, D]`` let
:math:`u_{bsk} = \sum_d \sigma_{bskd} (v_{o,skd} - v_{m,bkd})`; then

.. math::  \partial g_{bk} = \sum_s s_{bsk} u_{bsk}, \qquad
           \partial m, \partial o \text{ as above with } W_{bsk} = g_{bk} s_{bsk} u_{bsk}.

Computed in fp32 (fp64 for fp64 inputs), also under autocast. ``tests/test_l1_kernel.py``
checks values, gradients and second derivatives against plain autograd
(``torch.autograd.gradgradcheck``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

#: Elements of ``[rows, S, K, D]`` per block: 2**18 fp32 values = 1 MiB, about a core's L2
#: cache (2**16 and 2**18 measured fastest at S = 128 and 512, scripts/profile_critic.py).
BLOCK_ELEMENTS = 2**18


def l1_kernel_sums(m: Tensor, others: Tensor) -> Tensor:
    r"""``[B, K]``: :math:`\sum_s \exp(-\lVert m_{bk} - o_{sk} \rVert_1)` for ``m [B, K, D]``,
    ``others [S, K, D]`` (in fp32, or fp64 for fp64 inputs; both inputs may require grad;
    twice differentiable). Inside ``torch.compile`` the plain definition is traced instead of
    the hand-written derivatives: the compiler fuses its passes without materializing
    ``[B, S, K, D]``, and the compiled critic loss differentiates it with ``torch.func``."""
    if m.dim() != 3 or others.dim() != 3 or m.shape[1:] != others.shape[1:]:
        raise ValueError(f"need m [B, K, D] and others [S, K, D], got {tuple(m.shape)} and "
                         f"{tuple(others.shape)}")
    dtype = torch.promote_types(torch.promote_types(m.dtype, others.dtype), torch.float32)
    with torch.autocast(m.device.type, enabled=False):
        if torch.compiler.is_compiling():  # the compiler fuses the definition's passes itself
            return l1_kernel_sums_autograd(m.to(dtype), others.to(dtype))
        return _L1KernelSums.apply(m.to(dtype), others.to(dtype))


def l1_kernel_sums_autograd(m: Tensor, others: Tensor) -> Tensor:
    """The same sums by their definition, differentiated by plain autograd (builds
    ``[B, S, K, D]``): the reference of the tests and of ``scripts/profile_critic.py``."""
    return torch.exp(-(m.unsqueeze(1) - others.unsqueeze(0)).abs().sum(-1)).sum(1)


def _row_blocks(rows: int, others: Tensor) -> list[slice]:
    """Row slices of ``m`` whose ``[rows, S, K, D]`` blocks have about BLOCK_ELEMENTS elements."""
    step = max(1, BLOCK_ELEMENTS // max(1, others.numel()))
    return [slice(start, start + step) for start in range(0, rows, step)]


def _block_signs(m_block: Tensor, others: Tensor) -> Tensor:
    """``[b, S, K, D]``: :math:`\\mathrm{sign}(m_{bkd} - o_{skd})` (a new tensor)."""
    return (m_block.unsqueeze(1) - others.unsqueeze(0)).sign_()


def _signed_sums(weight: Tensor, m: Tensor, others: Tensor) -> tuple[Tensor, Tensor]:
    r"""``(-\sum_s W_{bsk} \sigma_{bskd}, \sum_b W_{bsk} \sigma_{bskd})`` for ``W [B, S, K]``:
    shapes ``[B, K, D]`` and ``[S, K, D]``."""
    grad_m = torch.empty_like(m)
    grad_others = torch.zeros_like(others)
    for rows in _row_blocks(m.shape[0], others):
        weighted = _block_signs(m[rows], others).mul_(weight[rows].unsqueeze(-1))
        _reduce_block(weighted, rows, grad_m, grad_others)
    return grad_m, grad_others


def _reduce_block(weighted: Tensor, rows: slice, grad_m: Tensor, grad_others: Tensor) -> None:
    r"""Add one block's :math:`W \sigma` ``[b, S, K, D]`` to both gradients: minus its sum over
    the others into ``grad_m[rows]``, its sum over the block's rows onto ``grad_others``."""
    torch.neg(weighted.sum(1), out=grad_m[rows])
    grad_others += weighted.sum(0)


class _L1KernelSums(torch.autograd.Function):
    """``f = sum_s s``; saves ``m``, ``o`` and ``s [B, S, K]``."""

    @staticmethod
    def forward(ctx: Any, m: Tensor, others: Tensor) -> Tensor:
        similarity = m.new_empty(m.shape[0], others.shape[0], m.shape[1])
        for rows in _row_blocks(m.shape[0], others):
            distance = (m[rows].unsqueeze(1) - others.unsqueeze(0)).abs_().sum(-1)
            torch.exp(distance.neg_(), out=similarity[rows])
        ctx.save_for_backward(m, others, similarity)
        return similarity.sum(1)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor]:
        m, others, similarity = ctx.saved_tensors
        return _L1KernelSumsGrad.apply(grad, m, others, similarity)


class _L1KernelSumsGrad(torch.autograd.Function):
    """``(g, m, o) -> (dm, do)`` of :class:`_L1KernelSums` (``s`` passed in as a constant,
    its dependence on ``m`` and ``o`` written into the backward)."""

    @staticmethod
    def forward(ctx: Any, grad: Tensor, m: Tensor, others: Tensor,
                similarity: Tensor) -> tuple[Tensor, Tensor]:
        ctx.save_for_backward(grad, m, others, similarity)
        return _signed_sums(grad.unsqueeze(1) * similarity, m, others)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, v_m: Tensor | None,
                 v_others: Tensor | None) -> tuple[Tensor, Tensor, Tensor, None]:
        grad, m, others, similarity = ctx.saved_tensors
        v_m = torch.zeros_like(m) if v_m is None else v_m
        v_others = torch.zeros_like(others) if v_others is None else v_others
        grad_grad = torch.empty_like(grad)
        grad_m = torch.empty_like(m)
        grad_others = torch.zeros_like(others)
        for rows in _row_blocks(m.shape[0], others):  # one sign tensor per block, used twice
            signs = _block_signs(m[rows], others)
            difference = v_others.unsqueeze(0) - v_m[rows].unsqueeze(1)
            projected = difference.mul_(signs).sum(-1).mul_(similarity[rows])  # s u [b, S, K]
            torch.sum(projected, 1, out=grad_grad[rows])
            weighted = signs.mul_(projected.mul_(grad[rows].unsqueeze(1)).unsqueeze(-1))
            _reduce_block(weighted, rows, grad_m, grad_others)
        return grad_grad, grad_m, grad_others, None
