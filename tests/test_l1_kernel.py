"""The fused L1 minibatch kernel against plain autograd: values, gradients, second derivatives."""

import pytest
import torch

from molgan import l1_kernel
from molgan.l1_kernel import l1_kernel_sums
from molgan.l1_kernel import l1_kernel_sums_autograd as autograd_sums


@pytest.fixture(params=[2**18, 7], ids=["one-block", "blocks-of-one-row"])
def block_elements(request, monkeypatch):
    monkeypatch.setattr(l1_kernel, "BLOCK_ELEMENTS", request.param)
    return request.param


def test_values_match_the_definition(block_elements):
    g = torch.Generator().manual_seed(0)
    m, others = torch.randn(5, 3, 4, generator=g), torch.randn(6, 3, 4, generator=g)
    assert torch.allclose(l1_kernel_sums(m, others), autograd_sums(m, others), rtol=1e-6)
    hand = sum(torch.exp(-(m[1, 2] - others[s, 2]).abs().sum()) for s in range(6))
    assert l1_kernel_sums(m, others)[1, 2].item() == pytest.approx(hand.item(), rel=1e-6)


def test_first_and_second_derivatives_pass_gradcheck(block_elements):
    g = torch.Generator().manual_seed(1)
    m = torch.randn(4, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    others = torch.randn(5, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    function = l1_kernel._L1KernelSums.apply
    assert torch.autograd.gradcheck(function, (m, others))
    assert torch.autograd.gradgradcheck(function, (m, others))


def test_self_comparison_through_a_shared_projection_matches_autograd_to_second_order():
    """The critic's use: ``others`` is the detached batch through the same projection, so each
    graph meets itself at distance 0 (sign 0) and the projection gets gradients both ways."""
    g = torch.Generator().manual_seed(2)
    h = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    projection = torch.randn(5, 2 * 3, generator=g, dtype=torch.float64, requires_grad=True)

    def penalty_gradients(sums_fn):
        m, others = (h @ projection).view(6, 2, 3), (h.detach() @ projection).view(6, 2, 3)
        score = (sums_fn(m, others) - 1.0).tanh().sum()
        grad_h, = torch.autograd.grad(score, h, create_graph=True)
        return torch.autograd.grad((grad_h.norm() - 1) ** 2, (h, projection))

    for fused, plain in zip(penalty_gradients(l1_kernel_sums), penalty_gradients(autograd_sums)):
        assert torch.allclose(fused, plain, rtol=1e-10, atol=1e-12)


def test_critic_loss_with_penalty_is_unchanged_by_the_fused_path(monkeypatch):
    from molgan.critic import Critic, CriticConfig
    from molgan.graph import DenseGraph
    from molgan.loss import critic_loss
    from molgan.vocab import Vocab

    vocab = Vocab.from_symbols(["C", "N", "O"], max_atoms=5)
    g = torch.Generator().manual_seed(3)

    def relaxed(b):
        x = torch.softmax(torch.randn(b, 5, 4, generator=g, dtype=torch.float64), -1)
        logits = torch.randn(b, 5, 5, 4, generator=g, dtype=torch.float64)
        return DenseGraph(x, torch.softmax(logits + logits.transpose(1, 2), -1))

    real, fake = relaxed(6), relaxed(6)
    torch.manual_seed(0)
    critic = Critic(CriticConfig(minibatch_kernels=4, reference_size=2), vocab).double()

    def loss_and_gradients():
        critic.zero_grad()
        parts = critic_loss(critic, real, fake, 10.0, generator=torch.Generator().manual_seed(4),
                            grouped=True)
        parts.loss.backward()
        return parts.loss.detach(), [p.grad.clone() for p in critic.parameters()]

    fused_loss, fused_grads = loss_and_gradients()
    monkeypatch.setattr("molgan.critic.l1_kernel_sums", autograd_sums)
    plain_loss, plain_grads = loss_and_gradients()
    assert fused_loss.item() == pytest.approx(plain_loss.item(), rel=1e-10)
    for fused, plain in zip(fused_grads, plain_grads):
        assert torch.allclose(fused, plain, rtol=1e-8, atol=1e-12)


def test_runs_in_fp32_under_bf16_autocast_and_rejects_bad_shapes():
    g = torch.Generator().manual_seed(5)
    m, others = torch.randn(4, 2, 3, generator=g), torch.randn(4, 2, 3, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        sums = l1_kernel_sums(m.bfloat16(), others.bfloat16())
    assert sums.dtype == torch.float32
    assert torch.allclose(sums, autograd_sums(m.bfloat16().float(), others.bfloat16().float()))
    with pytest.raises(ValueError, match=r"\[B, K, D\]"):
        l1_kernel_sums(m, others[:, :1])
