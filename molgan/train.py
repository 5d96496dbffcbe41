"""WGAN-GP training loop: ``n_critic`` critic steps, then one generator step.

A *step* is one generator update (with its ``n_critic`` critic updates before it). The loop is
deterministic for a given seed on CPU: batches come from a seeded permutation (a torch CPU
generator), noise (``z``, Gumbel, ``epsilon``, draws) from a seeded generator on the device,
and both states, with the global torch RNG, go into every checkpoint, so ``--resume``
continues exactly where the run stopped.

The parts: :class:`Trainer` holds the networks, optimizers, data and RNG state;
:meth:`Trainer.critic_step` and :meth:`Trainer.generator_step` are one update each;
:class:`molgan.diversity.DiversityRL` and :class:`molgan.property_rl.PropertyRL` are the
optional RL terms; :meth:`Trainer.fit` is the loop, which logs metrics by name
(:data:`LOGGED`) to ``metrics.jsonl``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from molgan.checkpoint import bundle_contents, load_checkpoint, save_checkpoint
from molgan.config import RunConfig, TrainConfig
from molgan.coverage import coverage_loss, nearest_latents
from molgan.critic import Critic
from molgan.dataset import MoleculeDataset
from molgan.device import resolve_device
from molgan.distributed import barrier, init_from_env, local_device
from molgan.files import write_text_atomic
from molgan.diversity import DiversityRL
from molgan.encoder import GraphEncoder, autoencoder_loss, reparameterize
from molgan.generator import Generator, relax, temper
from molgan.graph import DenseGraph, one_hot_graph
from molgan.loss import (CriticLoss, critic_loss, drawn_collisions, drawn_lone_atoms,
                         drawn_valence_excess, generator_loss, valence_excess)
from molgan.vocab import Vocab

__all__ = ["FitResult", "RunConfig", "TrainConfig", "Trainer", "TrainingDiverged"]

log = logging.getLogger(__name__)

#: Per-step quantities averaged over each logging interval, by name (metrics.jsonl keys).
LOGGED = ("loss_d", "wasserstein", "gp", "real_score", "feature_gp", "data_gp", "loss_g",
          "repeated", "drawn_valid", "motif_kl", "loss_r", "reward", "coverage", "collision",
          "autoencoder", "kl")


class TrainingDiverged(RuntimeError):
    """A loss or a weight became NaN or infinite."""


def reference_rows(n_train: int, size: int, seed: int) -> np.ndarray:
    """Training rows of a minibatch-distance critic's reference set: ``size`` rows drawn with
    ``numpy.random.default_rng(seed)``, sorted (with repeats only when ``n_train < size``)."""
    return np.sort(np.random.default_rng(seed).choice(n_train, size, replace=n_train < size))


#: Adam implementation: "foreach" (multi-tensor), "fused" (one kernel), or "loop" (per
#: parameter). All give the same updates to float tolerance (tested).
ADAM_DEFAULT = "foreach"


def make_adam(params: Any, lr: float, tc: TrainConfig, impl: str = ADAM_DEFAULT) -> torch.optim.Adam:
    """Adam with betas ``(beta1, beta2)`` from the config and the chosen implementation."""
    options = {"foreach": {"foreach": True}, "fused": {"fused": True},
               "loop": {"foreach": False}}
    if impl not in options:
        raise ValueError(f"unknown Adam implementation {impl!r}; choose from {sorted(options)}")
    betas = (tc.optim.beta1, tc.optim.beta2)
    return torch.optim.Adam(params, lr=lr, betas=betas, **options[impl])


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop saves at the next step boundary and returns."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signal = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class FitResult:
    """How a run ended: ``completed``, ``out_of_time`` (``max_seconds``) or ``interrupted``."""

    status: str
    step: int
    checkpoint: Path
    last_record: dict[str, Any]


class BatchSampler:
    """Epoch-wise shuffled batches of training indices, from a seeded CPU generator."""

    def __init__(self, size: int, batch_size: int, seed: int) -> None:
        self.size = size
        self.batch_size = min(batch_size, size)
        if self.batch_size < 1:
            raise ValueError(f"batch size {batch_size} cannot be filled from {size} training "
                             f"molecules")
        self.rng = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(size, generator=self.rng)
        self.position = 0

    def next(self) -> torch.Tensor:
        if self.position + self.batch_size > self.size:
            self.order = torch.randperm(self.size, generator=self.rng)
            self.position = 0
        batch = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return batch

    def state(self) -> dict[str, Any]:
        return {"rng": self.rng.get_state(), "order": self.order, "position": self.position}

    def load_state(self, state: dict[str, Any]) -> None:
        self.rng.set_state(state["rng"])
        self.order = state["order"]
        self.position = int(state["position"])


class Trainer:
    """Holds models, optimizers, data and RNG state of one run; :meth:`fit` runs the loop."""

    def __init__(self, config: RunConfig, data: MoleculeDataset, out_dir: str | Path,
                 split: dict[str, np.ndarray] | None = None, adam: str = ADAM_DEFAULT) -> None:
        tc = config.train
        self.config = config
        self.vocab: Vocab = data.vocab
        self.out_dir = Path(out_dir)
        self.dist = init_from_env(resolve_device(tc.run.device))
        self.device = local_device(resolve_device(tc.run.device), self.dist)
        torch.manual_seed(tc.run.seed)
        self.generator = Generator(config.generator, self.vocab).to(self.device)
        self.critic = Critic(config.critic, self.vocab).to(self.device)
        # the autoencoder term's encoder (molgan.encoder), trained with the generator
        self.encoder: GraphEncoder | None = None
        if tc.diversity.autoencoder > 0:
            self.encoder = GraphEncoder(
                self.vocab.max_atoms, self.vocab.num_atom_types, self.vocab.num_bond_types,
                tuple(reversed(config.generator.gen_hidden)), config.generator.z_dim,
            ).to(self.device)
        generator_parameters = list(self.generator.parameters()) + (
            list(self.encoder.parameters()) if self.encoder is not None else [])
        self.opt_g = make_adam(generator_parameters, tc.optim.generator_lr, tc, adam)
        self.opt_d = make_adam(self.critic.parameters(), tc.optim.critic_lr, tc, adam)
        # the moving average of the generator's weights (generator_ema), never trained
        self.generator_average: Generator | None = (
            copy.deepcopy(self.generator).requires_grad_(False) if tc.optim.generator_ema > 0
            else None)
        split = split if split is not None else data.split_indices(seed=tc.run.split_seed)
        train = data.subset(split["train"])
        if config.critic.minibatch_distance:
            chosen = reference_rows(len(train), config.critic.reference_size, tc.run.seed)
            self.critic.set_reference(torch.from_numpy(train.x_idx[chosen]),
                                      torch.from_numpy(train.adj_idx[chosen]))
        self.train_smiles = frozenset(train.smiles.tolist())
        self.all_smiles = frozenset(data.smiles.tolist())
        self.x_idx = torch.from_numpy(train.x_idx).to(self.device)
        self.adj_idx = torch.from_numpy(train.adj_idx).to(self.device)
        # every rank draws the same global batch and keeps its slice (see molgan.distributed)
        self.batches = BatchSampler(len(train), tc.run.batch_size * self.dist.world_size,
                                    tc.run.seed)
        self.local_batch = self.batches.batch_size // self.dist.world_size
        if self.local_batch * self.dist.world_size != self.batches.batch_size:
            raise ValueError(f"{len(train)} training molecules cannot fill "
                             f"{self.dist.world_size} batches of {tc.run.batch_size}")
        # what the steps call: the networks, wrapped by prepare_networks (DDP, compile)
        self.critic_ddp: torch.nn.Module = self.critic
        self.generator_ddp: torch.nn.Module = self.generator
        self.critic_frozen: torch.nn.Module = self.critic  # the generator step's scorer
        self.encoder_ddp: torch.nn.Module = (self.encoder if self.encoder is not None
                                             else torch.nn.Identity())
        self.noise = torch.Generator(device=self.device).manual_seed(tc.run.seed + 1)
        self._critic_loss: Callable[..., CriticLoss] = self._critic_objective
        self.critic_updates = 0  # critic updates so far (steepness_every counts them)
        self.max_valence: torch.Tensor | None = None
        if tc.penalties.valence_penalty > 0:
            from molgan.chem import max_valences

            self.max_valence = torch.tensor(max_valences(self.vocab), device=self.device,
                                            dtype=torch.float32)
        self.diversity = DiversityRL(tc.diversity, self.generator, self.vocab, self.noise,
                                     self._score_draws, self._motif_log_law(train))
        self.property_rl = self._property_rl(train)
        # the last latent coverage term, unweighted (0 while it is off)
        self.coverage_term = torch.zeros((), device=self.device)
        # the last collision penalty, unweighted (0 while it is off)
        self.collision_term = torch.zeros((), device=self.device)
        # the last autoencoder term's reconstruction loss and KL (0 while it is off)
        self.reconstruction_term = torch.zeros((), device=self.device)
        self.kl_term = torch.zeros((), device=self.device)
        self.step = 0
        self.elapsed_before = 0.0  # training seconds of earlier sessions of this run
        self.total_steps = self._total_steps(len(train))

    def _motif_log_law(self, train: MoleculeDataset) -> np.ndarray | None:
        """The training graphs' law of the ring-motif cell when the motif reward is on."""
        if not self.config.train.diversity.motifs_active:
            return None
        from molgan.motifs import data_log_law

        return data_log_law(train.x_idx, train.adj_idx, self.vocab,
                            seed=self.config.train.run.seed,
                            descriptor=self.config.train.diversity.motif_descriptor)

    def _property_rl(self, train: MoleculeDataset) -> Any:
        """MolGAN's property reward network and RL term when ``--reward`` is given, else None."""
        tc = self.config.train
        if not tc.property_rl.reward.strip():
            return None
        from molgan.property_rl import PropertyRL

        return PropertyRL(tc.property_rl, self.config.critic, self.vocab, train.smiles,
                          functools.partial(make_adam, lr=tc.optim.critic_lr, tc=tc),
                          self.device)

    def _total_steps(self, n_train: int) -> int:
        run = self.config.train.run
        if run.epochs is None:
            return run.steps
        batches = run.epochs * n_train / min(run.batch_size, n_train)
        return max(1, math.ceil(batches / self.config.train.optim.n_critic))

    # ---- batches -----------------------------------------------------------------------------
    def _local(self, tensor: torch.Tensor) -> torch.Tensor:
        """This rank's slice of a global-batch tensor (the whole tensor in one process)."""
        if not self.dist.enabled:
            return tensor
        per_rank = tensor.shape[0] // self.dist.world_size
        return tensor[self.dist.rank * per_rank : (self.dist.rank + 1) * per_rank]

    def _real_batch(self, index: torch.Tensor | None = None) -> DenseGraph:
        if index is None:
            index = self._local(self.batches.next())
        index = index.to(self.device)
        return one_hot_graph(self.x_idx[index], self.adj_idx[index], self.vocab.num_atom_types,
                             self.vocab.num_bond_types)

    def _latents(self) -> torch.Tensor:
        """This rank's slice of the global batch of latents."""
        return self._local(self.generator.sample_z(self.batches.batch_size, generator=self.noise))

    def _fake_batch(self, z: torch.Tensor, generator: torch.nn.Module) -> DenseGraph:
        return self._relax(generator(z))

    def _relax(self, logits: DenseGraph) -> DenseGraph:
        logits = DenseGraph(logits.x.float(), logits.adj.float())  # fp32 under bf16 autocast
        return relax(logits, self.config.train.sampling.relax, generator=self.noise)

    def _fakes_and_latent_terms(self) -> tuple[DenseGraph, torch.Tensor]:
        """This step's relaxed fakes ``[B]`` and the weighted sum of the latent terms (0 when
        both are off), all from one generator call: the latent coverage term
        (:mod:`molgan.coverage`) of a fresh real batch, its nearest latents appended to the
        batch's latents, and the autoencoder term (:mod:`molgan.encoder`) of another, its
        encoded latents appended after them. Records both terms' parts for the log."""
        diversity = self.config.train.diversity
        z = self._latents()
        total = torch.zeros((), device=self.device)
        if diversity.latent_coverage <= 0 and self.encoder is None:
            return self._fake_batch(z, self.generator_ddp), total
        latents, b = [z], z.shape[0]
        if diversity.latent_coverage > 0:
            covered = self._real_batch()
            pool = self._local(self.generator.sample_z(
                diversity.coverage_pool * self.batches.batch_size, generator=self.noise))
            latents.append(nearest_latents(self.generator, covered, pool,
                                           diversity.coverage_temperature,
                                           diversity.coverage_score))
        if self.encoder is not None:
            encoded = self._real_batch()
            mean, log_var = self.encoder_ddp(encoded.x, encoded.adj)
            latents.append(reparameterize(mean, log_var, generator=self.noise))
        logits = self.generator_ddp(torch.cat(latents))
        blocks = [DenseGraph(logits.x[i * b:(i + 1) * b], logits.adj[i * b:(i + 1) * b])
                  for i in range(len(latents))]
        if diversity.latent_coverage > 0:
            coverage = coverage_loss(blocks[1], covered, diversity.coverage_temperature,
                                     diversity.coverage_score)
            self.coverage_term = coverage.detach()
            total = total + diversity.latent_coverage * coverage
        if self.encoder is not None:
            term = autoencoder_loss(blocks[-1], encoded, mean, log_var)
            self.reconstruction_term = term.reconstruction.detach()
            self.kl_term = term.kl.detach()
            total = total + diversity.autoencoder * term.loss
        return self._relax(blocks[0]), total

    def _autocast(self) -> Any:
        """bfloat16 autocast of the forward computations when ``precision='bf16'``."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.config.train.run.precision == "bf16")

    @staticmethod
    def _fp32(network: torch.nn.Module) -> Callable[..., torch.Tensor]:
        """``network``'s scores as fp32 (bf16 under autocast), for losses and norms."""
        return lambda x, adj, *groups, **extra: network(x, adj, *groups, **extra).float()

    def _score_draws(self, x: torch.Tensor, adj: torch.Tensor, groups: int = 1) -> torch.Tensor:
        """The frozen critic's fp32 scores ``[B]`` of one-hot draws, without gradient, the
        batch taken as ``groups`` equal batches."""
        with torch.no_grad(), self._autocast():
            return self._fp32(self.critic_frozen)(x, adj, groups)

    # ---- one update each -------------------------------------------------------------------
    def _critic_objective(self, real: DenseGraph, fake: DenseGraph, epsilon: torch.Tensor,
                          steep: bool = True, functional_penalty: bool = False) -> CriticLoss:
        """:func:`molgan.loss.critic_loss` of this run's critic (the function that
        :meth:`prepare_networks` compiles whole with ``compile=True``). ``steep``: this update
        takes the steepness penalties, weighted ``steepness_every`` times (else without)."""
        penalties = self.config.train.penalties
        wrapped = self.critic_ddp is not self.critic
        lazy = penalties.steepness_every if steep else 0
        return critic_loss(self._fp32(self.critic_ddp), real, fake, penalties.lambda_gp,
                           epsilon=epsilon, grouped=self.config.critic.minibatch_distance,
                           feature_penalty=penalties.feature_penalty * lazy,
                           num_features=self.critic.num_batch_features,
                           data_penalty=penalties.data_penalty * lazy,
                           penalty_critic=self._fp32(self.critic),
                           steepness_critic=self._fp32(self.critic) if wrapped else None,
                           functional_penalty=functional_penalty)

    def critic_step(self) -> CriticLoss:
        """One critic update; returns its loss and parts, detached (penalties that are off
        are 0)."""
        real = self._real_batch()
        with torch.no_grad(), self._autocast():
            fake = self.diversity.critic_batch(self._fake_batch(self._latents(), self.generator))
        epsilon = self._local(torch.rand(self.batches.batch_size, generator=self.noise,
                                         device=self.device))
        steep = self.critic_updates % self.config.train.penalties.steepness_every == 0
        self.critic_updates += 1
        with self._autocast():
            parts = self._critic_loss(real, fake, epsilon, steep)
        self.opt_d.zero_grad(set_to_none=True)
        parts.loss.backward()
        self.opt_d.step()
        return parts._replace(loss=parts.loss.detach())

    def generator_step(self) -> torch.Tensor:
        """One generator update (critic parameters frozen); returns the detached loss:
        ``-E[D(fake)]``, with MolGAN's property RL term mixed in when set, plus the diversity
        RL term and the valence penalty."""
        tc = self.config.train
        self.critic.requires_grad_(False)
        try:
            with self._autocast():
                fake, latent_terms = self._fakes_and_latent_terms()
                loss = generator_loss(self._fp32(self.critic_frozen), fake) + latent_terms
            if self.property_rl is not None:
                index = self._local(self.batches.next())
                self.property_rl.update(self._real_batch(index),
                                        self.property_rl.train_smiles[index.numpy()].tolist(),
                                        fake, self._autocast)
                if self.property_rl.active(self.step):
                    loss = self.property_rl.generator_loss(loss, fake, self._autocast)
            loss = loss + self.diversity.generator_term(fake)
            loss = loss + self._graph_penalties(fake)
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_g.step()
            self._update_average()
        finally:
            self.critic.requires_grad_(True)
        return loss.detach()

    def _graph_penalties(self, fake: DenseGraph) -> torch.Tensor:
        """The weighted valence, lone-atom and collision penalties of relaxed ``fake`` (a
        scalar, part of the generator's loss). The penalties on a draw take the law at
        ``drawn_temperature`` (:func:`molgan.generator.temper`), tempered once per step."""
        penalties = self.config.train.penalties
        temperature = penalties.drawn_temperature

        @functools.cache
        def drawn_law() -> DenseGraph:
            """softmax(logits / T) at the drawn temperature, computed on first use."""
            return fake if temperature == 1.0 else temper(fake, temperature)

        total = torch.zeros((), device=fake.x.device)
        if self.max_valence is not None:
            excess = (drawn_valence_excess(drawn_law(), self.max_valence)
                      if penalties.valence_excess == "drawn"
                      else valence_excess(fake, self.max_valence))
            total = total + penalties.valence_penalty * excess
        if penalties.lone_atom_penalty > 0:
            total = total + penalties.lone_atom_penalty * drawn_lone_atoms(drawn_law())
        if penalties.collision_penalty > 0:
            collisions = drawn_collisions(drawn_law())
            self.collision_term = collisions.detach()
            total = total + penalties.collision_penalty * collisions
        return total

    @torch.no_grad()
    def _update_average(self) -> None:
        r"""One step of the weight average (``generator_ema``): :math:`\bar\theta \leftarrow
        \beta_t \bar\theta + (1 - \beta_t)\,\theta`, :math:`\beta_t = \min(\beta, (1 + t) /
        (10 + t))` after the update of step :math:`t` (0-based)."""
        if self.generator_average is None:
            return
        t = self.step
        decay = min(self.config.train.optim.generator_ema, (1 + t) / (10 + t))
        for average, live in zip(self.generator_average.parameters(),
                                 self.generator.parameters()):
            average.lerp_(live, 1 - decay)

    def sampling_generator(self) -> Generator:
        """What evaluations and ``molgan sample`` use: the weight average when
        ``generator_ema > 0``, else the generator itself."""
        return self.generator_average if self.generator_average is not None else self.generator

    def step_values(self, parts: CriticLoss, loss_g: torch.Tensor) -> dict[str, torch.Tensor]:
        """This step's :data:`LOGGED` quantities (the last critic update's parts)."""
        zero = torch.zeros((), device=self.device)
        loss_r, reward = self.property_rl.last if self.property_rl is not None else (zero, zero)
        return {"loss_d": parts.loss, "wasserstein": parts.wasserstein,
                "gp": parts.gradient_penalty, "real_score": parts.real_score,
                "feature_gp": parts.feature_penalty, "data_gp": parts.data_penalty,
                "loss_g": loss_g, "repeated": self.diversity.repeated,
                "drawn_valid": self.diversity.drawn_valid,
                "motif_kl": self.diversity.motif_divergence, "loss_r": loss_r, "reward": reward,
                "coverage": self.coverage_term, "collision": self.collision_term,
                "autoencoder": self.reconstruction_term, "kl": self.kl_term}

    # ---- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The checkpoint bundle: plain data and tensors only (``weights_only`` safe)."""
        rng: dict[str, Any] = {"torch": torch.get_rng_state(), "noise": self.noise.get_state(),
                               "batches": self.batches.state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        config = self.config.to_dict()
        return {
            "step": self.step,
            "vocab": self.vocab.to_dict(),
            "config": config,
            "generator_config": config["generator"],
            "critic_config": config["critic"],
            "generator": self.generator.state_dict(),
            "critic": self.critic.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng": rng,
            **(self.property_rl.state_dict() if self.property_rl is not None else {}),
            **({"generator_ema": self.generator_average.state_dict()}
               if self.generator_average is not None else {}),
            **self.diversity.state_dict(),
            **({"encoder": self.encoder.state_dict()} if self.encoder is not None else {}),
        }

    def load_state_dict(self, bundle: dict[str, Any]) -> None:
        if Vocab.from_dict(bundle["vocab"]) != self.vocab:
            raise ValueError("the checkpoint's vocabulary differs from this dataset's")
        self.generator.load_state_dict(bundle["generator"])
        if self.generator_average is not None:  # absent: the average starts from here
            self.generator_average.load_state_dict(bundle.get("generator_ema",
                                                              bundle["generator"]))
        self.critic.load_state_dict(bundle["critic"])
        if self.encoder is not None:
            if "encoder" not in bundle:
                raise ValueError("the checkpoint has no encoder; --autoencoder cannot be added "
                                 "when resuming")
            self.encoder.load_state_dict(bundle["encoder"])
        self.opt_g.load_state_dict(bundle["opt_g"])
        self.opt_d.load_state_dict(bundle["opt_d"])
        if self.property_rl is not None:
            self.property_rl.load_state_dict(bundle)
        self.diversity.load_state_dict(bundle)
        self.step = int(bundle["step"])
        self.critic_updates = self.step * self.config.train.optim.n_critic
        rng = bundle["rng"]
        torch.set_rng_state(rng["torch"].cpu())
        self.noise.set_state(rng["noise"].cpu() if self.device.type == "cpu" else rng["noise"])
        self.batches.load_state(rng["batches"])
        if self.device.type == "cuda" and "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"].cpu(), self.device)

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "ckpt.pt"

    def kept_checkpoint_path(self, step: int) -> Path:
        """Where ``keep_every`` keeps the checkpoint of ``step``: ``ckpt-STEP.pt`` (7 digits)."""
        return self.out_dir / f"ckpt-{step:07d}.pt"

    def save(self, keep: bool = False) -> None:
        """Write the checkpoint atomically (rank 0 only), and with ``keep`` a copy of it at
        :meth:`kept_checkpoint_path`; refuse to overwrite a good one with NaN weights."""
        for name, module in (("generator", self.generator), ("critic", self.critic),
                             ("generator average", self.generator_average)):
            if module is not None and not all(bool(torch.isfinite(p).all())
                                              for p in module.parameters()):
                raise TrainingDiverged(f"non-finite {name} weights at step {self.step}; "
                                       f"{self._last_good()}")
        if self.dist.is_main:
            state = self.state_dict()
            save_checkpoint(self.checkpoint_path, state)
            if keep:
                save_checkpoint(self.kept_checkpoint_path(self.step), state)

    def _last_good(self) -> str:
        if self.checkpoint_path.is_file():
            return f"last good checkpoint: {self.checkpoint_path}"
        return "no checkpoint was written before it"

    def resume(self) -> None:
        """Load ``ckpt.pt`` from the run dir and drop log records past its step."""
        bundle = load_checkpoint(self.checkpoint_path, map_location=self.device)
        with bundle_contents(self.checkpoint_path):
            self.load_state_dict(bundle)
        metrics = self.out_dir / "metrics.jsonl"
        if metrics.is_file():
            kept = []
            for number, line in enumerate(metrics.read_text().splitlines(), 1):
                try:
                    record = json.loads(line) if line.strip() else None
                except json.JSONDecodeError:  # a line torn by a kill: the rest is redone
                    log.info("%s: line %d is torn; dropped with what follows", metrics, number)
                    break
                if record is not None and record["step"] <= self.step:
                    kept.append(line)
            write_text_atomic(metrics, "".join(line + "\n" for line in kept))
            if kept:
                self.elapsed_before = float(json.loads(kept[-1])["seconds"])

    # ---- evaluation ------------------------------------------------------------------------
    def evaluate(self) -> dict[str, Any]:
        """Validity/uniqueness/novelty of ``eval_samples`` samples (fixed seed), decoded as
        ``molgan sample`` decodes them, from :meth:`sampling_generator`."""
        from molgan.metrics import basic_metrics
        from molgan.sample import Sampler

        tc = self.config.train
        generator = self.sampling_generator()
        drawn = tc.sampling.decode == "sample"
        sampler = Sampler(generator, self.vocab, self.device, decode=tc.sampling.decode,
                          temperature=tc.sampling.sample_temperature if drawn else 1.0)
        was_training = generator.training
        try:
            result = sampler.sample(tc.run.eval_samples, seed=tc.run.seed + 12345)
        finally:
            generator.train(was_training)
        metrics = basic_metrics(result.smiles, self.train_smiles, self.all_smiles,
                                canonical=result.smiles)
        return {k: metrics[k] for k in ("validity", "validity_connected", "uniqueness",
                                        "novelty")}

    # ---- the loop --------------------------------------------------------------------------
    def prepare_networks(self) -> None:
        """Wrap generator and critic for the steps (once, after any resume; :meth:`fit` calls
        it): DistributedDataParallel in a multi-process job, then ``torch.compile`` with
        ``compile=True``: the whole critic loss in one process, or the critic's scoring call
        under DDP (whose hooks stay eager; DDP does not support the penalty's
        ``autograd.grad``, so the penalties use the plain critic there)."""
        if self.critic_ddp is not self.critic:
            return
        if self.dist.enabled:
            if self.property_rl is not None:
                raise ValueError("--reward is not supported with several processes yet")
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.critic_ddp = DistributedDataParallel(self.critic, device_ids=ids)
            self.generator_ddp = DistributedDataParallel(self.generator, device_ids=ids)
            if self.encoder is not None:
                self.encoder_ddp = DistributedDataParallel(self.encoder, device_ids=ids)
        if self.config.train.run.compile:
            if not self.dist.enabled:
                self._critic_loss = torch.compile(
                    functools.partial(self._critic_objective, functional_penalty=True),
                    dynamic=False)
            else:
                self.critic_ddp = torch.compile(self.critic_ddp, dynamic=False)
            self.generator_ddp = torch.compile(self.generator_ddp, dynamic=False)
            self.critic_frozen = torch.compile(self.critic, dynamic=False)

    def _any_rank(self, *flags: bool) -> list[bool]:
        """Each flag true on any rank (all ranks must stop at the same step)."""
        if not self.dist.enabled:
            return list(flags)
        import torch.distributed as dist

        values = torch.tensor([float(f) for f in flags], device=self.device)
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return [bool(v) for v in values.tolist()]

    def _mean_over_ranks(self, sums: dict[str, torch.Tensor], count: int) -> dict[str, float]:
        """The interval means of the :data:`LOGGED` sums, averaged over ranks."""
        values = torch.stack([sums[name] for name in LOGGED]) / count
        if self.dist.enabled:
            import torch.distributed as dist

            dist.all_reduce(values)
            values /= self.dist.world_size
        return dict(zip(LOGGED, values.tolist()))

    def _record(self, means: dict[str, float], seconds: float,
                steps_per_s: float) -> dict[str, Any]:
        """One metrics.jsonl record from the interval means (only the terms that are on)."""
        tc = self.config.train
        record: dict[str, Any] = {"step": self.step}
        for name in ("loss_d", "loss_g", "wasserstein", "gp", "real_score"):
            record[name] = means[name]
        record.update(seconds=round(seconds, 3), steps_per_s=round(steps_per_s, 3))
        if tc.penalties.feature_penalty > 0:
            record["feature_gp"] = means["feature_gp"]
        if tc.penalties.data_penalty > 0:
            record["data_gp"] = means["data_gp"]
        if tc.diversity.diversity_rl > 0:
            record.update(repeated=round(means["repeated"], 4),
                          drawn_valid=round(means["drawn_valid"], 4),
                          rdkit_seconds=round(self.diversity.rdkit_seconds, 3))
            if self.diversity.motifs is not None:
                record["motif_kl"] = round(means["motif_kl"], 4)
        if tc.diversity.latent_coverage > 0:
            record["coverage"] = round(means["coverage"], 4)
        if self.encoder is not None:
            record.update(autoencoder=round(means["autoencoder"], 4), kl=round(means["kl"], 2))
        if tc.penalties.collision_penalty > 0:
            record["collision"] = round(means["collision"], 4)
        if self.property_rl is not None:
            record.update(loss_r=means["loss_r"], reward=means["reward"],
                          rl=self.property_rl.active(self.step - 1),
                          reward_rdkit_seconds=round(self.property_rl.rdkit_seconds, 3))
        return record

    def _write_config(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.out_dir / "config.json", json.dumps(
            {**self.config.to_dict(), "vocab": self.vocab.to_dict(),
             "world_size": self.dist.world_size}, indent=2) + "\n")

    def fit(self, on_step: Callable[[int, dict[str, Any]], None] | None = None) -> FitResult:
        """Train until ``total_steps``; write metrics.jsonl, checkpoints and the curves PNG.

        In a multi-process job every rank runs this loop; only rank 0 evaluates and writes.
        """
        from molgan.plots import plot_training_curves

        run = self.config.train.run
        main = self.dist.is_main
        self.prepare_networks()
        if main:
            self._write_config()
        metrics_path = self.out_dir / "metrics.jsonl"
        self.generator.train()
        self.critic.train()
        sums = {name: torch.zeros((), device=self.device) for name in LOGGED}
        count = 0
        record: dict[str, Any] = {}
        postfix: dict[str, Any] = {}
        status = "completed"
        start = last_time = time.perf_counter()
        metrics_cm = open(metrics_path, "a") if main else contextlib.nullcontext()
        with _StopFlag() as stop, metrics_cm as metrics_file:
            while self.step < self.total_steps:
                for _ in range(self.config.train.optim.n_critic):
                    parts = self.critic_step()
                loss_g = self.generator_step()
                self.step += 1
                for name, value in self.step_values(parts, loss_g).items():
                    sums[name] = sums[name] + value
                count += 1
                stopping, out_of_time = self._any_rank(
                    stop.signal is not None,
                    run.max_seconds is not None
                    and self.elapsed_before + time.perf_counter() - start >= run.max_seconds)
                last = self.step == self.total_steps or out_of_time
                if self.step % run.log_every == 0 or last or stopping:
                    means = self._mean_over_ranks(sums, count)
                    sums = {name: torch.zeros_like(value) for name, value in sums.items()}
                    count = 0
                    if not all(math.isfinite(v) for v in means.values()):
                        raise TrainingDiverged(
                            f"non-finite loss at step {self.step} (loss_d={means['loss_d']}, "
                            f"loss_g={means['loss_g']}); {self._last_good()}")
                    now = time.perf_counter()
                    record = self._record(means, self.elapsed_before + now - start,
                                          run.log_every / max(now - last_time, 1e-9))
                    last_time = now
                    if main and (self.step % run.eval_every == 0 or last):
                        record.update(self.evaluate())
                        postfix.update({k: record[k] for k in ("validity", "uniqueness")})
                    if main:
                        metrics_file.write(json.dumps(record) + "\n")
                        metrics_file.flush()
                    postfix.update({"loss_d": record["loss_d"], "loss_g": record["loss_g"],
                                    "W": record["wasserstein"]})
                keep = run.keep_every > 0 and self.step % run.keep_every == 0
                saved = self.step % run.ckpt_every == 0 or last or keep
                if saved:
                    self.save(keep)
                if on_step is not None:
                    on_step(self.step, postfix)
                if out_of_time:
                    status = "out_of_time"
                    break
                # a signal can also arrive while on_step runs
                (stopping,) = self._any_rank(stop.signal is not None)
                if stopping:
                    if not saved:
                        self.save()
                    status = "interrupted"
                    log.info("stopped by a signal at step %d; checkpoint saved", self.step)
                    break
        if main:
            plot_training_curves(metrics_path, self.out_dir / "training_curves.png")
        barrier(self.dist)
        return FitResult(status, self.step, self.checkpoint_path, record)
