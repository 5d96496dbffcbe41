"""Where the time of one training step goes: a tree of wall-time shares per component.

    python scripts/profile_step.py --recipe default --batch-size 32 128 512 --threads 1

Builds the trainer of a recipe on QM9 (cached), warms up, then times ``--steps`` steps (each
``n_critic`` critic updates and one generator update) with every component wrapped in a
timer: the generator's forward pass, the draws, the critic's loss with its penalties, the
backward passes, the optimizer steps, the RDKit checks, the repeat memory, the policy
gradient and the weight average. Times are inclusive (a component's children are part of
it); ``(rest)`` is what the named children do not cover. Prints one tree per batch size.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch

import molgan.chem
import molgan.diversity
import molgan.train
from molgan.dataset import load_dataset
from molgan.recipes import load_recipe, recipe_names
from molgan.train import Trainer
from bench_train import parse_overrides  # scripts/ is on sys.path when run as a script


class Timers:
    """Inclusive wall times by call path (``critic step/draw``), summed over calls."""

    def __init__(self, sync: Callable[[], None]) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.stack: list[str] = []
        self.sync = sync

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            path = "/".join([*self.stack, name])
            self.stack.append(name)
            self.sync()
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.sync()
                self.seconds[path] += time.perf_counter() - start
                self.calls[path] += 1
                self.stack.pop()
        return timed

    def report(self, steps: int) -> list[str]:
        total = sum(v for k, v in self.seconds.items() if "/" not in k)
        lines = [f"{'component':<58} {'ms/step':>9} {'share':>7}"]

        def children(prefix: str) -> list[str]:
            depth = prefix.count("/") + 1 if prefix else 0
            return sorted((k for k in self.seconds if k.count("/") == depth
                           and (not prefix or k.startswith(prefix + "/"))),
                          key=lambda k: -self.seconds[k])

        def emit(path: str) -> None:
            depth = path.count("/")
            name = path.rsplit("/", 1)[-1]
            value = self.seconds[path]
            lines.append(f"{'  ' * depth + name:<58} {1000 * value / steps:>9.2f} "
                         f"{value / total:>7.1%}")
            kids = children(path)
            for kid in kids:
                emit(kid)
            if kids:
                rest = value - sum(self.seconds[k] for k in kids)
                lines.append(f"{'  ' * (depth + 1) + '(rest)':<58} {1000 * rest / steps:>9.2f} "
                             f"{rest / total:>7.1%}")

        for top in children(""):
            emit(top)
        lines.append(f"{'total':<58} {1000 * total / steps:>9.2f} {1:>7.1%}")
        return lines


MODULE_FUNCTIONS = [
    (molgan.diversity, "graph_keys", "graph keys"),
    (molgan.diversity, "policy_gradient", "policy gradient (log-probs)"),
    (molgan.chem, "single_molecules", "RDKit: one valid molecule?"),
    (molgan.train, "generator_loss", "critic forward (generator loss)"),
    (molgan.train, "valence_excess", "valence penalty"),
    (torch.Tensor, "backward", "backward"),
]


def instrument(trainer: Trainer, timers: Timers) -> Callable[[], None]:
    """Wrap the components of a training step (on the instances, and on the modules they are
    looked up from at call time); returns the function that unwraps the modules."""
    wrap = timers.wrap
    trainer.critic_step = wrap("critic step", trainer.critic_step)
    trainer.generator_step = wrap("generator step", trainer.generator_step)
    trainer._fake_batch = wrap("generator forward + relax", trainer._fake_batch)
    trainer._real_batch = wrap("real batch (one-hot)", trainer._real_batch)
    trainer._critic_loss = wrap("critic loss + penalties (fwd, double bwd)", trainer._critic_loss)
    trainer._update_average = wrap("weight average", trainer._update_average)
    for name, optimizer in (("critic Adam step", trainer.opt_d),
                            ("generator Adam step", trainer.opt_g)):
        optimizer.step = wrap(name, optimizer.step)
    div = trainer.diversity
    div.draw = wrap("draw within valences", div.draw)
    div.generator_term = wrap("diversity RL term", div.generator_term)
    div.rewards = wrap("rewards", div.rewards)
    div.score_draws = wrap("critic scores of draws (realism)", div.score_draws)
    if div.memory is not None:
        div.memory.push_and_count = wrap("repeat memory", div.memory.push_and_count)
    originals = [(owner, attribute, getattr(owner, attribute))
                 for owner, attribute, _ in MODULE_FUNCTIONS]
    for owner, attribute, name in MODULE_FUNCTIONS:
        setattr(owner, attribute, wrap(name, getattr(owner, attribute)))

    def restore() -> None:
        for owner, attribute, original in originals:
            setattr(owner, attribute, original)
    return restore


def profile(recipe: str, batch_size: int, steps: int, device: str,
            overrides: dict[str, Any], data_source: str = "qm9") -> list[str]:
    data = load_dataset(data_source)
    config = load_recipe(recipe, batch_size=batch_size, device=device, **overrides)
    trainer = Trainer(config, data, "/tmp/molgan-profile-unused")
    trainer.prepare_networks()
    n_critic = config.train.optim.n_critic

    def sync() -> None:
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()

    def step() -> None:
        for _ in range(n_critic):
            trainer.critic_step()
        trainer.generator_step()
        trainer.step += 1

    for _ in range(5):
        step()
    timers = Timers(sync)
    restore = instrument(trainer, timers)
    start = time.perf_counter()
    try:
        for _ in range(steps):
            step()
    finally:
        restore()
    seconds = time.perf_counter() - start
    header = (f"recipe {recipe}{''.join(f', {k}={v}' for k, v in overrides.items())}, batch {batch_size}, {steps} steps of {n_critic} critic + 1 "
              f"generator updates, {torch.get_num_threads()} thread(s), {trainer.device}: "
              f"{1000 * seconds / steps:.1f} ms/step, "
              f"{steps * (n_critic + 1) * batch_size / seconds:,.0f} graphs/s")
    return [header, *timers.report(steps)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="default", choices=recipe_names())
    parser.add_argument("--batch-size", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", default="qm9", help="qm9, moses or a SMILES file")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="config fields set on top of the recipe")
    args = parser.parse_args()
    overrides = parse_overrides(args.set)
    if args.threads:
        torch.set_num_threads(args.threads)
    for batch_size in args.batch_size:
        print("\n".join(profile(args.recipe, batch_size, args.steps, args.device, overrides,
                                 args.data))
              + "\n")


if __name__ == "__main__":
    main()
