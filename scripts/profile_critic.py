"""Time (and optionally profile) one critic step with gradient penalty on random relaxed graphs.

    python scripts/profile_critic.py --batch-size 128 512 --kernels none l1 --threads 1
    python scripts/profile_critic.py --batch-size 512 --kernels l1 --profile
    python scripts/profile_critic.py --batch-size 128 512 --kernels l1 l1-autograd --threads 1

A step is ``critic_loss`` (real and fake scored in one call, the penalty in another) plus
backward and an Adam update, as in training; graphs are random softmax outputs of QM9's shapes
(9 nodes, 9 atom types, 4 bond types), so no data is loaded. ``l1`` is the default critic
(fused L1 kernel, :mod:`molgan.l1_kernel`); ``l1-autograd`` the same critic with the kernel
differentiated by plain autograd (the version before the fused one). Prints the median of timed steps
after warm-up; ``--profile`` adds torch.profiler's table of the ops with the most self time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from unittest import mock

import torch

from molgan.critic import Critic, CriticConfig
from molgan.graph import DenseGraph
from molgan.l1_kernel import l1_kernel_sums_autograd
from molgan.loss import critic_loss
from molgan.vocab import Vocab


def random_relaxed_graphs(batch: int, vocab: Vocab, generator: torch.Generator) -> DenseGraph:
    """``x [B, N, T]`` and symmetric ``adj [B, N, N, Y]`` softmax outputs of random logits."""
    n, t, y = vocab.max_atoms, vocab.num_atom_types, vocab.num_bond_types
    x = torch.softmax(torch.randn(batch, n, t, generator=generator), -1)
    logits = torch.randn(batch, n, n, y, generator=generator)
    return DenseGraph(x, torch.softmax(logits + logits.transpose(1, 2), -1))


def time_critic_step(batch: int, kernels: str, steps: int, profile: bool) -> float:
    """Median seconds of one critic step; ``kernels``: none (plain critic), l1 (the default
    critic's minibatch kernels), or ``l1-autograd``."""
    if kernels == "l1-autograd":
        with mock.patch("molgan.critic.l1_kernel_sums", l1_kernel_sums_autograd):
            return time_critic_step(batch, "l1", steps, profile)
    torch.manual_seed(0)
    vocab = Vocab.from_symbols(["C", "O", "N", "F", "N+", "O-", "C-", "N-"], max_atoms=9)
    config = (CriticConfig(minibatch_distance=False) if kernels == "none"
              else CriticConfig())
    critic = Critic(config, vocab)
    optimizer = torch.optim.Adam(critic.parameters(), 1e-4, betas=(0.5, 0.9))
    noise = torch.Generator().manual_seed(0)
    real, fake = random_relaxed_graphs(batch, vocab, noise), random_relaxed_graphs(batch, vocab, noise)

    def step() -> None:
        parts = critic_loss(critic, real, fake, 10.0, generator=noise,
                            grouped=config.minibatch_distance)
        optimizer.zero_grad(set_to_none=True)
        parts.loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--kernels", nargs="+", default=["none", "l1"],
                        choices=("none", "l1", "l1-autograd"))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for batch in args.batch_size:
        for kernels in args.kernels:
            seconds = time_critic_step(batch, kernels, args.steps, args.profile)
            print(f"batch {batch:5d}  kernels {kernels:8s}  {seconds * 1e3:8.1f} ms/step  "
                  f"{batch / seconds:8.0f} graphs/s  ({torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
