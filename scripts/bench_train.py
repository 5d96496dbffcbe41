"""Training throughput: median over timed windows after warm-up.

One *iteration* is one critic or one generator update; a graph counts once per update it takes
part in, so a generator step with n_critic=5 at batch B processes 6*B graphs. Also reports FLOPs
per iteration (torch's FLOP formulas, double backward of the penalty included), peak memory,
and fp32 and bf16 matmul ceilings measured in the same run (the fraction is taken against the
ceiling of the precision trained in).

    python scripts/bench_train.py --recipe molgan default --batch-size 32 128 --threads 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import statistics
import sys
import time
from unittest import mock

import torch

from molgan.dataset import load_dataset
from molgan.l1_kernel import l1_kernel_sums_autograd
from molgan.options import parse_field
from molgan.recipes import load_recipe, recipe_names
from molgan.train import Trainer


def matmul_ceiling(device: torch.device, size: int = 2048, repeats: int = 10,
                   dtype: torch.dtype = torch.float32) -> float:
    """GFLOP/s of a large square matmul in ``dtype`` (the machine's practical peak)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 2 * size**3 / statistics.median(times) / 1e9


def flops_per_iteration(trainer: Trainer) -> float:
    """Mean FLOPs of one update (n_critic critic steps + 1 generator step, divided), counted
    by :func:`flop_count.count_flops` on the plain networks."""
    from flop_count import count_flops

    n_critic = trainer.config.train.optim.n_critic
    wrapped = (trainer.critic_ddp, trainer.generator_ddp, trainer.critic_frozen,
               trainer._critic_loss)
    # counted on the plain networks: a compiled one runs the same ops, not under this mode
    trainer.critic_ddp = trainer.critic_frozen = trainer.critic
    trainer.generator_ddp = trainer.generator
    trainer._critic_loss = trainer._critic_objective

    def update() -> None:
        for _ in range(n_critic):
            trainer.critic_step()
        trainer.generator_step()

    try:
        total = count_flops(update)
    finally:
        (trainer.critic_ddp, trainer.generator_ddp, trainer.critic_frozen,
         trainer._critic_loss) = wrapped
    return total / (n_critic + 1)


def bench(batch_size: int, device: str, windows: int, steps_per_window: int,
          cache_dir: str | None, adam: str = "foreach", data_source: str = "qm9",
          precision: str = "fp32", recipe: str = "default", compile_networks: bool = False,
          n_critic: int | None = None, overrides: dict | None = None) -> dict:
    data = load_dataset(data_source, cache_dir=cache_dir)
    settings = dict(batch_size=batch_size, device=device, precision=precision,
                    compile=compile_networks, **(overrides or {}))
    if n_critic is not None:
        settings["n_critic"] = n_critic
    config = load_recipe(recipe, **settings)
    trainer = Trainer(config, data, "/tmp/molgan-bench-unused", adam=adam)
    trainer.prepare_networks()
    compile_start = time.perf_counter()
    n_critic = config.train.optim.n_critic
    dev = trainer.device

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):  # warm-up
        for _ in range(n_critic):
            trainer.critic_step()
        trainer.generator_step()
    sync()
    warmup_s = time.perf_counter() - compile_start
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    window_times = []
    for _ in range(windows):
        t0 = time.perf_counter()
        for _ in range(steps_per_window):
            for _ in range(n_critic):
                trainer.critic_step()
            trainer.generator_step()
        sync()
        window_times.append(time.perf_counter() - t0)
    iterations = steps_per_window * (n_critic + 1)
    median = statistics.median(window_times)
    flops = flops_per_iteration(trainer)
    ceiling = matmul_ceiling(dev)
    # bf16 is emulated on CPUs without AVX512-BF16/AMX (minutes per matmul): only when asked
    ceiling_bf16 = matmul_ceiling(dev, dtype=torch.bfloat16) if precision == "bf16" else None
    achieved = flops * iterations / median / 1e9
    peak = (torch.cuda.max_memory_allocated() if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {
        "batch_size": batch_size,
        "data": data_source,
        "max_atoms": data.vocab.max_atoms,
        "atom_types": data.vocab.num_atom_types,
        "one_hot_batch_mb": round(batch_size * data.vocab.max_atoms
                                  * (data.vocab.max_atoms * data.vocab.num_bond_types
                                     + data.vocab.num_atom_types) * 4 / 2**20, 2),
        "adam": adam,
        "precision": precision,
        "recipe": recipe,
        "compile": compile_networks,
        "warmup_s": round(warmup_s, 2),
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda"
        else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "n_critic": n_critic,
        "iterations_per_s": round(iterations / median, 2),
        "graphs_per_s": round(iterations * batch_size / median, 1),
        "ms_per_iteration": round(1000 * median / iterations, 3),
        "window_s_all": [round(t, 4) for t in window_times],
        "gflop_per_iteration": round(flops / 1e9, 4),
        "achieved_gflop_s": round(achieved, 2),
        "matmul_ceiling_gflop_s": round(ceiling, 1),
        "matmul_ceiling_bf16_gflop_s": None if ceiling_bf16 is None else round(ceiling_bf16, 1),
        "fraction_of_ceiling": round(achieved / (ceiling if precision == "fp32"
                                                 else ceiling_bf16), 4),
        "peak_memory_mb": round(peak / 2**20, 1),
        "torch": torch.__version__,
    }


def parse_overrides(pairs: list[str]) -> dict:
    """``FIELD=VALUE`` pairs (``--set``) as config fields, each value parsed as the field's
    own flag parses it (``gen_hidden=256,512,1024``, ``compile=on``, ``diversity_rl=0``)."""
    overrides = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        name = name.replace("-", "_")
        overrides[name] = parse_field(name, text)
    return overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", default="qm9", help="qm9 or a SMILES file")
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--steps-per-window", type=int, default=5,
                        help="generator steps per timed window")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--json", default=None, help="append one JSON line per batch size")
    parser.add_argument("--adam", nargs="+", default=["foreach"],
                        choices=("foreach", "fused", "loop"),
                        help="Adam implementations to time (interleaved)")
    parser.add_argument("--recipe", nargs="+", default=["default"], choices=recipe_names(),
                        help="shipped recipes to time (molgan.recipes), interleaved")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="config fields set on top of each recipe (e.g. diversity_rl=0)")
    parser.add_argument("--n-critic", type=int, default=None,
                        help="critic updates per generator update (default: the recipe's)")
    parser.add_argument("--compile", nargs="+", default=["off"], choices=("off", "on"),
                        help="on: the run setting compile (the networks and the whole critic "
                             "loss, penalties included)")
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=("fp32", "bf16"),
                        help="precisions to time (bf16 = bfloat16 autocast of the matmuls)")
    parser.add_argument("--l1-kernel", nargs="+", default=["fused"], choices=("fused", "autograd"),
                        help="the L1 minibatch kernel: fused (molgan.l1_kernel) or "
                             "differentiated by plain autograd (before/after comparisons)")
    parser.add_argument("--flush-denormal", nargs="+", default=["off"], choices=("off", "on"),
                        help="torch.set_flush_denormal during the timed steps")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = parse_overrides(args.set)
    for batch_size in args.batch_size:
        for adam, precision, recipe, compiled, l1_kernel, denormal in [
                (a, p, r, c, k, d) for a in args.adam for p in args.precision
                for r in args.recipe for c in args.compile for k in args.l1_kernel
                for d in args.flush_denormal]:
            torch.set_flush_denormal(denormal == "on")
            with mock.patch("molgan.critic.l1_kernel_sums", l1_kernel_sums_autograd) \
                    if l1_kernel == "autograd" else contextlib.nullcontext():
                result = bench(batch_size, args.device, args.windows, args.steps_per_window,
                               args.cache_dir, adam, args.data, precision, recipe,
                               compiled == "on", args.n_critic, overrides)
            result["overrides"] = overrides
            result["l1_kernel"] = l1_kernel
            result["compile_mode"] = compiled
            result["flush_denormal"] = denormal == "on"
            line = json.dumps(result)
            print(line)
            sys.stdout.flush()
            if args.json:
                with open(args.json, "a") as handle:
                    handle.write(line + "\n")


if __name__ == "__main__":
    main()
