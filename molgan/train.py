"""WGAN-GP training loop: ``n_critic`` critic steps, then one generator step.

A *step* is one generator update (with its ``n_critic`` critic updates before it). The loop is
deterministic for a given seed on CPU: batches come from a seeded permutation (a torch CPU
generator), noise (``z``, Gumbel, ``epsilon``) from a seeded generator on the device, and both
states, with the global torch RNG (dropout), go into every checkpoint, so ``--resume``
continues exactly where the run stopped.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from molgan.checkpoint import build_config, load_checkpoint, save_checkpoint
from molgan.critic import Critic, CriticConfig
from molgan.dataset import MoleculeDataset
from molgan.descriptor_match import (DescriptorMatch, descriptor_columns, descriptor_values,
                                     parse_descriptors)
from molgan.distributed import barrier, init_from_env, local_device
from molgan.generator import (RELAXATIONS, Generator, GeneratorConfig, draw_graph, relax,
                              temper)
from molgan.graph import DenseGraph, argmax_graph, one_hot_graph, smooth_graph
from molgan.loss import (CriticLoss, combined_generator_loss, critic_loss, generator_loss,
                         diversity_sensitive_loss, isolated_atoms, mode_seeking_loss,
                         policy_gradient, repeat_penalty, valence_excess)
from molgan.repeats import (
    DIVERSITY_REWARDS,
    RepeatMemory,
    diversity_rewards,
    graph_keys,
    repeat_weights,
)
from molgan.reward_net import RewardNet
from molgan.sample import DECODINGS
from molgan.vocab import Vocab

log = logging.getLogger(__name__)

#: What the repeat memory remembers of each fake (TrainConfig.repeat_memory).
REPEAT_MEMORIES = ("argmax", "drawn")
PRECISIONS = ("fp32", "bf16")
LR_DECAYS = ("none", "linear")
MATCH_MOLECULES = 20_000
"""Training molecules whose descriptors give the descriptor-matching reward's frequencies."""


@dataclass
class TrainConfig:
    """Training hyperparameters; the CLI's ``train`` flags are generated from these fields."""

    #: What runs saved before a field existed used (see checkpoint.build_config).
    ABSENT_IN_OLDER_RUNS: ClassVar[dict[str, Any]] = {"valence_penalty": 0.0,
                                                       "decode": "argmax",
                                                       "diversity_rl": 0.0,
                                                       "sample_temperature": 1.0,
                                                       "rl_temperature": 1.0,
                                                       "compile_loss": False,
                                                       "critic_draws": 0.0,
                                                       "draw_realism": 0.0,
                                                       "repeat_threshold": 4.0,
                                                       "rl_draws": 1,
                                                       "realism_valid_only": False,
                                                       "repeat_memory": "argmax",
                                                       "generator_ema": 0.0,
                                                       "critic_drift": 0.0,
                                                       "lr_decay": "none",
                                                       "feature_penalty": 0.0,
                                                       "data_penalty": 0.0,
                                                       "lr_g": None}

    data: str = "qm9"
    """'qm9' or a .smi/.csv/.sdf file."""
    steps: int = 2000
    """Generator updates (each after n_critic critic updates)."""
    epochs: float | None = None
    """If set, overrides steps: passes over the training split by the critic's real batches."""
    batch_size: int = 128
    """Graphs per critic and generator update."""
    n_critic: int = 2
    """Critic updates per generator update (MolGAN and Gulrajani et al.: 5; 2 is the default
    recipe since issue 6: with minibatch kernels it gives better samples per training second,
    docs/benchmarks.md)."""
    lambda_gp: float = 10.0
    """Gradient-penalty weight lambda."""
    feature_penalty: float = 10.0
    r"""Weight :math:`\mu` of a one-sided penalty
    :math:`\mu\,\mathbb{E}[\max(0, \lVert \partial D / \partial f \rVert_2 - 1)^2]` on
    the gradient of each real and fake graph's score with respect to its batch features
    :math:`f` (a minibatch-distance critic; no effect on a critic without batch features;
    loss.critic_loss). The gradient penalty, taken at interpolates, leaves the critic free
    to be steep at the real and fake batches themselves, where unstable runs' critics were
    measured 10-870 times steeper (docs/benchmarks.md, stop 25). 0 = off; 10 (with
    data_penalty 10) is the default recipe since stop 26."""
    data_penalty: float = 10.0
    r"""Weight :math:`\nu` of a one-sided penalty
    :math:`\nu\,\mathbb{E}[\max(0, \lVert \nabla_G D \rVert_2 - 1)^2]` on the gradient of
    each real and fake graph's score with respect to the graph itself (loss.critic_loss):
    the gradient penalty looks only at interpolates, and critics were measured steep at the
    real one-hot graphs (docs/benchmarks.md, stop 25). One more double backward per critic
    step, over the real and fake batches. 0 = off; 10 is the default since stop 26."""
    critic_drift: float = 0.0
    r"""Weight :math:`\epsilon` of a drift penalty :math:`\epsilon\,\mathbb{E}[D(x)^2]` on the
    critic's scores of real graphs (Karras et al. 2018 use 0.001): it keeps the scores near
    zero, which the WGAN-GP loss alone leaves free (0 = off)."""
    lr: float = 3e-4
    """Adam learning rate of the critic (unless lr_d is set), and of the generator when lr_g
    is None. Gulrajani et al. use 1e-4; 3e-4 is the default recipe since stop 13 (better
    samples per training second, docs/benchmarks.md)."""
    lr_g: float | None = 5e-4
    """Generator learning rate (None: lr). 5e-4 is the default recipe since stop 27: two
    hour-long seeds stayed stable and reached FCD 1.08 / 1.18 against 1.27 / 1.50 with the
    generator at lr, where 5e-4 for both networks blew up on one seed (docs/benchmarks.md)."""
    lr_d: float | None = None
    """Critic learning rate (default: lr)."""
    lr_decay: str = "none"
    r"""none, or linear: both learning rates fall linearly to 0 over the run,
    :math:`\eta_t = \eta\,(1 - t / T)` at generator step :math:`t` of :math:`T` (steps, or
    the steps that epochs gives; Gulrajani et al. decay this way on CIFAR-10). With a
    max_seconds budget, set steps to about what the budget allows."""
    beta1: float = 0.5
    """Adam beta1 (Gulrajani et al.)."""
    beta2: float = 0.9
    """Adam beta2 (Gulrajani et al.)."""
    relax: str = "softmax"
    """Relaxation of generated graphs for the critic: softmax, gumbel or hard."""
    temperature: float = 1.0
    """Softmax / Gumbel-softmax temperature (the first, with temperature_end)."""
    temperature_end: float | None = None
    """With a value: the temperature goes geometrically from ``temperature`` to this one over
    ``temperature_steps`` generator steps, then stays (None = constant)."""
    temperature_steps: int = 1000
    """Generator steps of the temperature schedule (with temperature_end)."""
    decode: str = "sample"
    """How samples are decoded: argmax of the logits, or sample (categorical draw, Gumbel-max;
    the default since stop 16: the diversity RL term trains exactly these draws).
    Saved with the model (``molgan sample`` decodes the same way unless told otherwise)."""
    sample_temperature: float = 2.0
    """With decode=sample: draws come from softmax(logits / sample_temperature), in the
    evaluations during training and, by default, in ``molgan sample``. 2.0 since stop 21 (1.6,
    matching rl_temperature, from stop 17): with the draws judged by the critic
    (critic_draws, draw_realism), sampling warmer than the RL term trains buys uniqueness at
    almost no cost in FCD (unique@10k 0.900 -> 0.958, FCD 2.04 -> 2.09 at 600 s over three
    seeds, docs/benchmarks.md, "Stop 21")."""
    mode_seeking: float = 0.0
    """Weight of the mode-seeking term (Mao et al. 2019) in the generator loss; 0 = off."""
    diversity_sensitive: float = 0.0
    """Weight of the bounded diversity-sensitive term (Yang et al. 2019,
    loss.diversity_sensitive_loss) in the generator loss; 0 = off."""
    diversity_tau: float = 0.5
    """Bound tau of the diversity-sensitive term: pairs whose graph distance per unit of latent
    distance exceeds it are not pushed further apart."""
    repeat_penalty: float = 0.0
    """Weight of the repeat penalty (loss.repeat_penalty): the generator's confidence in the
    graphs it made more than repeat_threshold times among its last repeat_window samples
    (molgan.repeats); 0 = off."""
    repeat_critic: float = 0.0
    """Weight of the repeat memory in the critic's objective: each fake's score counts
    ``1 + repeat_critic * w`` times (w = repeats.repeat_weights of its count; normalized to mean
    1 over the batch), so the critic learns to score low where the generator repeats itself
    and the generator's gradient, from the critic, leads away from there (0 = off)."""
    diversity_rl: float = 1.0
    """Weight of the policy-gradient diversity term (loss.policy_gradient): one graph is drawn
    from each fake's categorical distributions and rewarded 1 if RDKit reads it as one valid
    molecule, minus its repeat weight (repeats.repeat_weights of its count among the last
    repeat_window remembered graphs, see repeat_memory); the generator raises the
    probability of the drawn graphs that beat the batch mean. REINVENT's diversity filter as
    a reward (0 = off; 1 is the default recipe since stop 16, docs/benchmarks.md)."""
    rl_draws: int = 4
    """Graphs the RL term draws from each fake. 1: one draw each, the batch mean as the
    baseline. K > 1: K draws each (K times the RDKit checks and draw scores), each draw's
    baseline the mean reward of the other K - 1 draws of its fake (leave-one-out,
    loss.leave_one_out_advantages), a lower-variance estimate of the same policy gradient.
    With repeat_memory 'drawn' the memory remembers all K draws of each fake. 4 is the
    default recipe since stop 23 (with draw_realism 0.5, realism_valid_only and
    repeat_memory 'drawn'; docs/benchmarks.md, "Stop 23")."""
    rl_temperature: float = 1.6
    """Temperature of the RL term's draws: graphs are drawn from, and their log-probabilities
    taken under, ``softmax(log p / rl_temperature)`` of the relaxed fakes ``p`` (on-policy for
    that distribution), so the term trains the draws of ``molgan sample --temperature``
    rl_temperature. 1 = the relaxed fakes themselves (stop 16); 1.6 is the default recipe
    since stop 17 (docs/benchmarks.md): the critic keeps the sharp relaxed fakes realistic
    while the RL term makes the flatter draws single valid, unrepeated molecules. Sampling
    matched it until stop 21; sample_temperature is warmer since."""
    atom_temperature: float | None = None
    """With decode=sample: atoms are drawn at this temperature instead (in the RL term and at
    sampling), bonds at rl_temperature / sample_temperature (None = the same for both)."""
    critic_draws: float = 0.25
    """Share of the fakes in each critic batch replaced by the one-hot graph drawn from each
    (drawn as the RL term draws: at rl_temperature, atoms at atom_temperature; what
    decode=sample outputs). The critic then learns what the sampled molecules look like, not
    only the relaxed fakes, so that draw_realism can reward the draws it finds real (0 = off;
    0.25 with draw_realism 0.25 is the default recipe since stop 21, docs/benchmarks.md)."""
    draw_realism: float = 0.5
    r"""Weight of the critic's score of each drawn graph in the RL term's reward, standardized
    over the batch: :math:`r_b = v_b - w_b + \rho\,(D(g_b) - \bar D) / \sigma_D`, so
    the draws the critic finds more like QM9 are made more likely (use with critic_draws;
    0 = off; a part of the RL term's reward, so it has no effect with diversity_rl 0; 0.25
    in stop 21, 0.5 since stop 23, with rl_draws 4). See realism_valid_only."""
    realism_valid_only: bool = True
    r"""With draw_realism: True (the default since stop 23) rewards the realism of valid
    draws only, standardized among them, :math:`r_b = v_b - w_b + \rho\,v_b\,(D(g_b) - \bar
    D_v) / \sigma_{D,v}` (the mean reward of a valid draw stays 1, an invalid draw earns no
    realism); False: every draw, standardized over the batch. With rl_draws 4, draw_realism
    0.5 and repeat_memory 'drawn', True kept the default's connected validity where False
    lost 0.04 of it (docs/benchmarks.md, "Stop 23"); without valence_draw it was no better
    ("Stop 19")."""
    descriptor_match: float = 0.0
    r"""Weight of the descriptor-matching reward in the RL term (molgan.descriptor_match):
    each valid drawn molecule earns :math:`\operatorname{clip}(\sum_d \log((p_d(v_d) +
    \epsilon) / (q_d(v_d) + \epsilon)), -1, 1)`, with :math:`p_d` the training set's and
    :math:`q_d` the recent draws' frequencies of its value :math:`v_d` of each descriptor of
    match_descriptors, so the draws' marginals are pulled towards the training set's; below
    1, a valid draw still earns more than an invalid one (0 = off; a part of the RL term's
    reward, so it needs diversity_rl > 0)."""
    match_descriptors: str = "rings,charges,atoms,elements"
    """Comma-separated descriptors of descriptor_match (molgan.descriptor_match.DESCRIPTORS):
    rings (the counts of rings of each size 3 to 8+), charges (charged atoms), atoms (heavy
    atoms), elements (the atoms of each element), bonds (the bonds of each order in chains
    and in rings)."""
    diversity_reward: str = "penalty"
    """How the RL term's reward discounts a graph drawn ``c`` times in the repeat window, for
    threshold ``tau``: ``penalty``, ``r = valid - max(0, log(c / tau))`` (a graph repeated
    often enough scores below an invalid one), or ``share``, ``r = valid * min(1, tau / c)``
    (fitness sharing: the ``c`` copies share ``tau`` rewards, so a valid graph, however
    repeated, never scores below an invalid one)."""
    repeat_start: int = 0
    """Generator steps before the repeat penalty and the diversity RL term apply (the memory
    fills from step 0)."""
    repeat_window: int = 32768
    """Generated graphs the repeat memory remembers (about 256 generator steps at batch 128)."""
    repeat_threshold: float = 1.0
    """Times a graph may occur in the repeat window before it is penalized (1 since stop 21,
    4 before: under draw_realism, 1 keeps the draws more varied, docs/benchmarks.md)."""
    repeat_memory: str = "drawn"
    """What the repeat memory remembers of each fake: its argmax graph, or (drawn, the
    default since stop 23) the graphs the RL term draws from it, which are what
    decode=sample outputs (with argmax, draws that repeat one another went unpenalized and
    one seed of three collapsed, docs/benchmarks.md, "Stop 22")."""
    valence_penalty: float = 1.0
    """Weight of the expected-valence excess (loss.valence_excess) in the generator loss."""
    isolation_penalty: float = 0.0
    """Weight of the expected number of isolated atoms (loss.isolated_atoms) in the
    generator loss."""
    real_smoothing: float = 0.0
    """Label smoothing of the real graphs the critic sees, ``(1 - e) one_hot + e / C``
    (graph.smooth_graph): the critic cannot tell real from fake by confidence alone, so the
    generator need not saturate its logits (0 = off)."""
    reward: str = ""
    """Comma-separated RL rewards (qed, logp, sa, validity, uniqueness; see molgan.reward),
    learned by a reward network; empty = none."""
    lambda_rl: float = 1.0
    """Generator loss lambda * L_WGAN + (1 - lambda) * L_RL (1 = no RL; needs --reward)."""
    rl_warmup: int = 0
    """Generator steps of WGAN only before the RL term starts (the reward net trains from 0)."""
    generator_ema: float = 0.999
    r"""Decay :math:`\beta` of an exponential moving average of the generator's weights,
    :math:`\bar\theta \leftarrow \beta_t \bar\theta + (1 - \beta_t)\,\theta` after every
    generator update, with :math:`\beta_t = \min(\beta, (1 + t) / (10 + t))` at step
    :math:`t` so the average forgets its random start (Yazici et al. 2019, "The Unusual
    Effectiveness of Averaging in GAN Training"). Training is unchanged; the evaluations
    during training and ``molgan sample`` use the average (``--weights live`` for the last
    weights). 0 = off; 0.999 is the default since stop 23: in 600-s runs the average gave
    FCD 0.02-0.13 lower and unique@10k 0.005 higher than the last weights of the same run,
    connected validity 0.01 lower (docs/benchmarks.md, "Stop 23")."""
    precision: str = "fp32"
    """fp32, or bf16: matmuls of both networks in bfloat16 autocast (weights, optimizer
    state, losses and the penalty's norms stay fp32); about 2-5x faster matmuls on CPUs with
    AVX512-BF16/AMX and on GPUs."""
    compile: bool = False
    """torch.compile the generator and the critic (see compile_loss); a one-time compile of
    20-40 s on 2 CPU cores, then faster steps (docs/benchmarks.md). Needs a C++ compiler on
    CPU."""
    compile_loss: bool = True
    """With compile: compile the whole critic loss, gradient penalty included (its input
    gradients taken with torch.func, so the compiled graph's backward is the penalty's double
    backward; one process, no minibatch bank). False: compile only the critic's scoring call
    and run the penalty eagerly (before stop 18). Measured on 2 cores: a median 1.2x over
    eager (0.85-1.9x in 17 paired runs at batch 32-512, docs/benchmarks.md)."""
    device: str = "auto"
    """auto (CUDA when present), cpu or cuda."""
    seed: int = 0
    """Seed of initialization, batches and noise."""
    split_seed: int = 0
    """Seed of the train/valid/test split (80/10/10)."""
    log_every: int = 25
    """Steps between metrics.jsonl records."""
    eval_every: int = 250
    """Steps between sample evaluations (validity, uniqueness, novelty)."""
    eval_samples: int = 1000
    """Samples per evaluation."""
    ckpt_every: int = 250
    """Steps between checkpoints (one is always written at the end)."""
    max_seconds: float | None = None
    """Wall-clock training budget: stop (with a checkpoint) once this much time is spent."""
    max_atoms: int | None = None
    """Node slots N (default: from the data)."""
    atoms: tuple[str, ...] | None = None
    """Allowed atom tokens, e.g. ``C,O,N,F`` (default: every token in the data); molecules
    with another token are skipped and counted, as by ``molgan prepare --atoms``."""
    smiles_column: str | None = None
    """SMILES column of a CSV data file."""

    @property
    def generator_lr(self) -> float:
        """The generator's base learning rate: lr_g, or lr when it is None."""
        return self.lr_g or self.lr

    @property
    def critic_lr(self) -> float:
        """The critic's (and reward network's) base learning rate: lr_d, or lr when None."""
        return self.lr_d or self.lr


@dataclass
class RunConfig:
    """Everything that defines a run: model and training configs."""

    train: TrainConfig = field(default_factory=TrainConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)

    def to_dict(self) -> dict[str, Any]:
        return {"train": asdict(self.train), "generator": asdict(self.generator),
                "critic": asdict(self.critic)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], saved: bool = True) -> RunConfig:
        """From :meth:`to_dict` output (``saved``: a checkpoint's, see
        :func:`molgan.checkpoint.build_config`) or a user's config file (``saved=False``)."""
        return cls(build_config(TrainConfig, data.get("train", {}), saved),
                   build_config(GeneratorConfig, data.get("generator", {}), saved),
                   build_config(CriticConfig, data.get("critic", {}), saved))


def reference_rows(n_train: int, size: int, seed: int) -> np.ndarray:
    """Training rows of a minibatch-distance critic's reference set: ``size`` rows drawn with
    ``numpy.random.default_rng(seed)``, sorted (with repeats only when ``n_train < size``)."""
    return np.sort(np.random.default_rng(seed).choice(n_train, size, replace=n_train < size))


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without CUDA is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but CUDA is not available")
    return torch.device(device)


#: Adam implementation: "foreach" (multi-tensor), "fused" (one kernel), or "loop" (per
#: parameter). All give the same updates to float tolerance (tested); see docs/benchmarks.md.
ADAM_DEFAULT = "foreach"


def make_adam(params: Any, lr: float, tc: TrainConfig, impl: str = ADAM_DEFAULT) -> torch.optim.Adam:
    """Adam with betas ``(beta1, beta2)`` from the config and the chosen implementation."""
    options = {"foreach": {"foreach": True}, "fused": {"fused": True},
               "loop": {"foreach": False}}
    if impl not in options:
        raise ValueError(f"unknown Adam implementation {impl!r}; choose from {sorted(options)}")
    return torch.optim.Adam(params, lr=lr, betas=(tc.beta1, tc.beta2), **options[impl])


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

    def __init__(self, size: int, batch_size: int, seed: int, multiple: int = 1) -> None:
        self.size = size
        self.batch_size = min(batch_size, size - size % multiple)
        if self.batch_size < 1:
            raise ValueError(f"{size} training molecules cannot fill a batch of {multiple}")
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
        if tc.relax not in RELAXATIONS:
            raise ValueError(f"relax must be one of {RELAXATIONS}, got {tc.relax!r}")
        if tc.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {tc.precision!r}")
        if tc.decode not in DECODINGS:
            raise ValueError(f"decode must be one of {DECODINGS}, got {tc.decode!r}")
        if tc.lr_decay not in LR_DECAYS:
            raise ValueError(f"lr_decay must be one of {LR_DECAYS}, got {tc.lr_decay!r}")
        for name in ("log_every", "eval_every", "ckpt_every"):
            if getattr(tc, name) < 1:
                raise ValueError(f"{name} must be at least 1 step, got {getattr(tc, name)}")
        for name in ("feature_penalty", "data_penalty"):
            if getattr(tc, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(tc, name)}")
        self.config = config
        self.vocab: Vocab = data.vocab
        self.out_dir = Path(out_dir)
        self.dist = init_from_env(resolve_device(tc.device))
        self.device = local_device(resolve_device(tc.device), self.dist)
        torch.manual_seed(tc.seed)
        self.generator = Generator(config.generator, self.vocab).to(self.device)
        self.critic = Critic(config.critic, self.vocab).to(self.device)
        self.opt_g = make_adam(self.generator.parameters(), tc.generator_lr, tc, adam)
        self.opt_d = make_adam(self.critic.parameters(), tc.critic_lr, tc, adam)
        if not 0 <= tc.generator_ema < 1:
            raise ValueError(f"generator_ema must lie in [0, 1), got {tc.generator_ema}")
        # the moving average of the generator's weights (generator_ema), never trained
        self.generator_average: Generator | None = (
            copy.deepcopy(self.generator).requires_grad_(False) if tc.generator_ema > 0
            else None)
        optional = [t for t in (tc.temperature_end, tc.atom_temperature) if t is not None]
        if min(tc.temperature, tc.sample_temperature, tc.rl_temperature, *optional) <= 0:
            raise ValueError(f"temperatures must be positive, got {tc.temperature}, "
                             f"{tc.temperature_end}, {tc.sample_temperature}, "
                             f"{tc.rl_temperature} and {tc.atom_temperature}")
        if tc.batch_size % config.critic.pack:
            raise ValueError(f"batch_size {tc.batch_size} is not a multiple of pack "
                             f"{config.critic.pack}")
        split = split if split is not None else data.split_indices(seed=tc.split_seed)
        train = data.subset(split["train"])
        if config.critic.minibatch_distance:
            chosen = reference_rows(len(train), config.critic.reference_size, tc.seed)
            self.critic.set_reference(torch.from_numpy(train.x_idx[chosen]),
                                      torch.from_numpy(train.adj_idx[chosen]))
        self.train_smiles = frozenset(train.smiles.tolist())
        self.all_smiles = frozenset(data.smiles.tolist())
        self.x_idx = torch.from_numpy(train.x_idx).to(self.device)
        self.adj_idx = torch.from_numpy(train.adj_idx).to(self.device)
        # every rank draws the same global batch and keeps its slice (see molgan.distributed)
        self.batches = BatchSampler(len(train), tc.batch_size * self.dist.world_size, tc.seed,
                                    config.critic.pack)
        self.local_batch = self.batches.batch_size // self.dist.world_size
        if self.local_batch * self.dist.world_size != self.batches.batch_size:
            raise ValueError(f"{len(train)} training molecules cannot fill "
                             f"{self.dist.world_size} batches of {tc.batch_size}")
        # what the steps call: the networks, wrapped by prepare_networks (DDP, compile)
        self.critic_ddp: torch.nn.Module = self.critic
        self.generator_ddp: torch.nn.Module = self.generator
        self.critic_frozen: torch.nn.Module = self.critic  # the generator step's scorer
        self.noise = torch.Generator(device=self.device).manual_seed(tc.seed + 1)
        self.fused_loss = True  # one critic call for real and fake (see loss.critic_loss)
        self._critic_loss: Callable[..., CriticLoss] = self._critic_objective
        self.max_valence: torch.Tensor | None = None
        if tc.valence_penalty > 0:
            from molgan.chem import max_valences

            self.max_valence = torch.tensor(max_valences(self.vocab), device=self.device,
                                            dtype=torch.float32)
        self._init_reward(config, train)
        if tc.repeat_critic > 0 and config.critic.pack > 1:
            raise ValueError("repeat_critic does not support pack > 1")
        if tc.repeat_memory not in REPEAT_MEMORIES:
            raise ValueError(f"repeat_memory must be one of {REPEAT_MEMORIES}, "
                             f"got {tc.repeat_memory!r}")
        if tc.diversity_reward not in DIVERSITY_REWARDS:
            raise ValueError(f"diversity_reward must be one of {DIVERSITY_REWARDS}, "
                             f"got {tc.diversity_reward!r}")
        if not 0 <= tc.critic_draws <= 1 or tc.draw_realism < 0:
            raise ValueError(f"critic_draws must lie in [0, 1] and draw_realism be at least 0, "
                             f"got {tc.critic_draws} and {tc.draw_realism}")
        if tc.rl_draws < 1:
            raise ValueError(f"rl_draws must be at least 1, got {tc.rl_draws}")
        if tc.diversity_tau <= 0 or tc.repeat_threshold < 1:
            raise ValueError(f"diversity_tau must be positive and repeat_threshold at least 1, "
                             f"got {tc.diversity_tau} and {tc.repeat_threshold}")
        self.descriptor_match = self._init_descriptor_match(train)
        self.repeats = (RepeatMemory(tc.repeat_window)
                        if max(tc.repeat_penalty, tc.repeat_critic, tc.diversity_rl) > 0
                        else None)
        self.last_repeated = torch.zeros((), device=self.device)  # share of the batch penalized
        self.last_drawn_valid = torch.zeros((), device=self.device)  # see _diversity_rl_term
        self.step = 0
        self.elapsed_before = 0.0  # training seconds of earlier sessions of this run
        self.total_steps = self._total_steps(len(train))

    def _init_reward(self, config: RunConfig, train: MoleculeDataset) -> None:
        """Reward function, reward network and its optimizer when ``--reward`` is given."""
        from molgan.reward import parse_rewards

        tc = config.train
        names = parse_rewards(tc.reward)
        if not 0.0 <= tc.lambda_rl <= 1.0:
            raise ValueError(f"lambda_rl must be in [0, 1], got {tc.lambda_rl}")
        if not names and tc.lambda_rl != 1.0:
            raise ValueError("lambda_rl < 1 needs --reward (the RL term's reward)")
        zero = torch.zeros((), device=self.device)
        self.last_reward: tuple[torch.Tensor, torch.Tensor] = (zero, zero)  # loss_r, reward
        self.rdkit_seconds = 0.0  # decoding and RDKit rewards, this session
        self.reward_fn = None
        self.reward_net: RewardNet | None = None
        self.opt_r: torch.optim.Optimizer | None = None
        if not names:
            return
        from molgan.dataset import default_cache_dir
        from molgan.reward import RewardFunction, property_rewards

        self.reward_fn = RewardFunction(names)
        self.train_smiles_list = train.smiles
        if any(n in ("qed", "logp", "sa") for n in names):
            log.info("reward properties of %d training molecules (cached after the first run)",
                     len(train))
            smiles = train.smiles.tolist()
            self.reward_fn.remember(smiles, property_rewards(smiles, default_cache_dir()))
        reward_config = replace(config.critic, pack=1, minibatch_distance=False)
        self.reward_net = RewardNet(reward_config, self.vocab).to(self.device)
        self.opt_r = make_adam(self.reward_net.parameters(), tc.critic_lr, tc)

    def _init_descriptor_match(self, train: MoleculeDataset) -> DescriptorMatch | None:
        """The descriptor-matching reward's data frequencies, from up to
        ``MATCH_MOLECULES`` training molecules (TrainConfig.descriptor_match; None when off)."""
        tc = self.config.train
        if tc.descriptor_match == 0:
            return None
        if tc.descriptor_match < 0 or tc.diversity_rl <= 0:
            raise ValueError(f"descriptor_match must be at least 0 and needs diversity_rl > 0 "
                             f"(it is a part of the RL term's reward), got descriptor_match "
                             f"{tc.descriptor_match} and diversity_rl {tc.diversity_rl}")
        self.match_names = parse_descriptors(tc.match_descriptors)
        self.match_columns = descriptor_columns(self.match_names, self.vocab)
        rows = reference_rows(len(train), MATCH_MOLECULES, tc.seed)
        values = descriptor_values(train.x_idx[rows], train.adj_idx[rows], self.vocab,
                                   self.match_names)
        log.info("descriptors %s of %d training molecules", tc.match_descriptors, len(rows))
        return DescriptorMatch(values, [size for _, size in self.match_columns])

    def _total_steps(self, n_train: int) -> int:
        tc = self.config.train
        if tc.epochs is None:
            return tc.steps
        batches = tc.epochs * n_train / min(tc.batch_size, n_train)
        return max(1, math.ceil(batches / tc.n_critic))

    # ---- one update each -------------------------------------------------------------------
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
        graph = one_hot_graph(self.x_idx[index], self.adj_idx[index], self.vocab.num_atom_types,
                              self.vocab.num_bond_types)
        return smooth_graph(graph, self.config.train.real_smoothing)

    def _latents(self) -> torch.Tensor:
        """This rank's slice of the global batch of latents."""
        return self._local(self.generator.sample_z(self.batches.batch_size, generator=self.noise))

    def _fake_batch(self, z: torch.Tensor, generator: torch.nn.Module) -> DenseGraph:
        tc = self.config.train
        logits = generator(z)
        logits = DenseGraph(logits.x.float(), logits.adj.float())  # fp32 under bf16 autocast
        return relax(logits, tc.relax, self.temperature(), generator=self.noise)

    def learning_rate_factor(self, step: int | None = None) -> float:
        """The factor of both base learning rates for the updates after ``step`` done
        generator steps (default: now): 1, or ``1 - step / total_steps`` with lr_decay
        linear."""
        step = self.step if step is None else step
        if self.config.train.lr_decay == "none":
            return 1.0
        return max(0.0, 1.0 - step / self.total_steps)

    def _set_learning_rates(self) -> None:
        """Set both optimizers' learning rates for the next generator step's updates (nothing
        to do without lr_decay: the optimizers keep the rates they were built with)."""
        tc = self.config.train
        if tc.lr_decay == "none":
            return
        factor = self.learning_rate_factor()
        for optimizer, base in ((self.opt_g, tc.generator_lr), (self.opt_d, tc.critic_lr)):
            for group in optimizer.param_groups:
                group["lr"] = base * factor

    def temperature(self, step: int | None = None) -> float:
        r"""Relaxation temperature after ``step`` generator steps (default: now):
        :math:`\tau_0 (\tau_1 / \tau_0)^{\min(1, s / S)}` with ``tau_0 = temperature``,
        ``tau_1 = temperature_end``, ``S = temperature_steps``; ``tau_0`` without an end."""
        tc = self.config.train
        if tc.temperature_end is None:
            return tc.temperature
        step = self.step if step is None else step
        progress = min(1.0, step / max(tc.temperature_steps, 1))
        return tc.temperature * (tc.temperature_end / tc.temperature) ** progress

    def _autocast(self) -> Any:
        """bfloat16 autocast of the forward computations when ``precision='bf16'``."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.config.train.precision == "bf16")

    def _fp32_scores(self, network: torch.nn.Module,
                     roles: tuple[str, ...] = ()) -> Callable[..., torch.Tensor]:
        """``network``'s scores as fp32 (bf16 under autocast), for losses and norms;
        ``roles`` of the groups scored (``'real'``/``'fake'``) for a critic with a bank."""
        options = {"roles": roles} if self.config.critic.minibatch_bank > 0 else {}
        return lambda x, adj, *groups, **extra: network(x, adj, *groups, **options,
                                                        **extra).float()

    def _remember(self, real: DenseGraph, fake: DenseGraph) -> None:
        """Push this critic step's real and fake representations into the critic's banks
        (after its update; one forward pass without gradients)."""
        if self.config.critic.minibatch_bank == 0:
            return
        with torch.no_grad(), self._autocast():
            self.critic.remember("real", self.critic.embed(real.x, real.adj))
            self.critic.remember("fake", self.critic.embed(fake.x, fake.adj))

    def _critic_objective(self, real: DenseGraph, fake: DenseGraph, epsilon: torch.Tensor,
                          fake_weights: torch.Tensor | None,
                          functional_penalty: bool = False) -> CriticLoss:
        """:func:`molgan.loss.critic_loss` of this run's critic (the function that
        :meth:`prepare_networks` compiles whole with ``compile=True``)."""
        return critic_loss(self._fp32_scores(self.critic_ddp, ("real", "fake")), real, fake,
                           self.config.train.lambda_gp, fused=self.fused_loss,
                           pack=self.config.critic.pack, epsilon=epsilon,
                           penalty_critic=self._fp32_scores(self.critic, ("fake",)),
                           grouped=self.config.critic.minibatch_distance,
                           fake_weights=fake_weights, functional_penalty=functional_penalty,
                           drift=self.config.train.critic_drift,
                           feature_penalty=self.config.train.feature_penalty,
                           num_features=self.critic.num_batch_features,
                           data_penalty=self.config.train.data_penalty,
                           steepness_critic=(None if self.critic_ddp is self.critic else
                                             self._fp32_scores(self.critic, ("real", "fake"))))

    def critic_step(self) -> CriticLoss:
        """One critic update; returns its loss and parts, detached (penalties that are off
        are 0)."""
        real = self._real_batch()
        with torch.no_grad(), self._autocast():
            fake = self._with_draws(self._fake_batch(self._latents(), self.generator))
        pack = self.config.critic.pack
        epsilon = self._local(torch.rand(self.batches.batch_size // pack, generator=self.noise,
                                         device=self.device).repeat_interleave(pack))
        with self._autocast():
            parts = self._critic_loss(real, fake, epsilon, self._repeat_critic_weights(fake))
        self.opt_d.zero_grad(set_to_none=True)
        parts.loss.backward()
        self.opt_d.step()
        self._remember(real, fake)
        return parts._replace(loss=parts.loss.detach())

    def _with_draws(self, fake: DenseGraph) -> DenseGraph:
        """``fake`` with its first ``critic_draws * B`` graphs (rounded down to whole packs)
        replaced by the one-hot graphs drawn from them (:meth:`_draw`); unchanged when off."""
        pack = self.config.critic.pack
        k = int(self.config.train.critic_draws * fake.x.shape[0]) // pack * pack
        if k == 0:
            return fake
        drawn = one_hot_graph(*self._draw(DenseGraph(fake.x[:k], fake.adj[:k])),
                              fake.x.shape[-1], fake.adj.shape[-1], dtype=fake.x.dtype)
        return DenseGraph(torch.cat([drawn.x, fake.x[k:]]), torch.cat([drawn.adj, fake.adj[k:]]))

    def _draw_scores(self, drawn: tuple[torch.Tensor, torch.Tensor],
                     among: torch.Tensor | None = None) -> torch.Tensor:
        """The frozen critic's scores ``[B]`` of the one-hot ``drawn`` graphs, standardized
        over the batch, or over the graphs flagged by ``among [B]`` (bool; 0 elsewhere): mean
        0, standard deviation 1 (all 0 when they are all equal or fewer than two)."""
        x, adj = one_hot_graph(*drawn, self.vocab.num_atom_types, self.vocab.num_bond_types)
        with torch.no_grad(), self._autocast():
            scores = self._fp32_scores(self.critic_frozen, ("fake",))(x, adj)
        scores = scores.repeat_interleave(self.config.critic.pack)
        among = torch.ones_like(scores, dtype=torch.bool) if among is None else among
        if int(among.sum()) < 2:
            return torch.zeros_like(scores)
        chosen = scores[among]
        standardized = (scores - chosen.mean()) / chosen.std().clamp(min=1e-6)
        return torch.where(among, standardized, torch.zeros_like(standardized))

    def _draw(self, fake: DenseGraph) -> tuple[torch.Tensor, torch.Tensor]:
        """One graph ``(x_idx [B, N], adj_idx [B, N, N])`` drawn from each relaxed fake's
        categorical distributions (Gumbel-max on its log-probabilities, with the trainer's
        noise generator): what ``decode='sample'`` makes of the same logits."""
        with torch.no_grad():
            log_probs = DenseGraph(fake.x.float().clamp(min=1e-9).log(),
                                   fake.adj.float().clamp(min=1e-9).log())
            return draw_graph(log_probs, self.config.train.rl_temperature, generator=self.noise,
                              atom_temperature=self.config.train.atom_temperature,
                              max_valence=self.generator.draw_valences,
                              pair_order=self._pair_order(fake),
                              no_isolated=self.generator.config.draw_no_isolated)

    def _pair_order(self, fake: DenseGraph) -> torch.Tensor | None:
        """The valence draw's node-pair order ``[B, M]`` for relaxed ``fake``, from its
        adjacency log-probabilities (Generator.draw_pair_order), the same for the draw and
        for its log-probability; None (nothing computed) for the row-major order."""
        if self.generator.config.valence_draw_order == "row":
            return None
        with torch.no_grad():
            return self.generator.draw_pair_order(fake.adj.float().clamp(min=1e-9).log())

    def _diversity_rl_term(self, fake: DenseGraph, drawn: tuple[torch.Tensor, torch.Tensor],
                           counts: torch.Tensor) -> torch.Tensor:
        """The policy-gradient diversity term (TrainConfig.diversity_rl) for relaxed ``fake``
        and the graphs ``drawn`` from it (:meth:`_draw`), whose repeat-memory ``counts [B]``
        are given: reward 1 for one valid molecule, discounted for repeats as
        TrainConfig.diversity_reward says; returns loss.policy_gradient."""
        from molgan.chem import single_molecules

        x_idx, adj_idx = drawn
        tc = self.config.train
        with torch.no_grad():
            t0 = time.perf_counter()
            x_np, adj_np = x_idx.cpu().numpy(), adj_idx.cpu().numpy()
            if self.descriptor_match is not None:  # the same RDKit pass gives both
                values = descriptor_values(x_np, adj_np, self.vocab, self.match_names)
                flags = values[:, 0] >= 0
                match_rewards = self.descriptor_match.push_and_reward(values).to(self.device)
            else:
                flags = single_molecules(x_np, adj_np, self.vocab)
            self.rdkit_seconds += time.perf_counter() - t0
            one_molecule = torch.as_tensor(flags, dtype=torch.float32, device=self.device)
            self.last_drawn_valid = one_molecule.mean()
            rewards = diversity_rewards(one_molecule, counts, tc.repeat_threshold,
                                        tc.diversity_reward)
            if self.descriptor_match is not None:
                rewards = rewards + tc.descriptor_match * match_rewards
        if tc.draw_realism > 0:
            among = one_molecule > 0 if tc.realism_valid_only else None
            rewards = rewards + tc.draw_realism * self._draw_scores(drawn, among)
        order = self._pair_order(fake)  # as _draw
        temperature, atom_temperature = tc.rl_temperature, tc.atom_temperature
        if temperature != 1.0 or atom_temperature not in (None, 1.0):  # drawn from (see _draw)
            fake = temper(fake, temperature, atom_temperature)
        return policy_gradient(fake, x_idx, adj_idx, rewards, self.generator.draw_valences,
                               order, self.generator.config.draw_no_isolated, tc.rl_draws)

    def _repeat_terms(self, fake: DenseGraph) -> torch.Tensor:
        """The generator-loss terms of the repeat memory for relaxed ``fake`` (0 when off).

        The memory remembers the argmax graphs, or (``repeat_memory='drawn'``) the graphs
        the RL term draws and rewards (rl_draws per fake).
        """
        tc = self.config.train
        assert self.repeats is not None
        remember_drawn = tc.repeat_memory == "drawn"
        # the RL term draws rl_draws graphs from each fake: the batch repeated, block by block
        k = tc.rl_draws if tc.diversity_rl > 0 else 1
        rl_fake = (DenseGraph(fake.x.repeat(k, 1, 1), fake.adj.repeat(k, 1, 1, 1)) if k > 1
                   else fake)
        drawn = self._draw(rl_fake) if tc.diversity_rl > 0 or remember_drawn else None
        with torch.no_grad():
            output = drawn if remember_drawn else argmax_graph(fake)
            counts = self.repeats.push_and_count(graph_keys(*output))
            weights = repeat_weights(counts, tc.repeat_threshold)
            self.last_repeated = (weights > 0).float().mean()
        terms = torch.zeros((), device=self.device)
        if self.step < tc.repeat_start:
            return terms
        if tc.repeat_penalty > 0:
            remembered = rl_fake if remember_drawn else fake  # what ``output`` came from
            terms = terms + tc.repeat_penalty * repeat_penalty(remembered, weights,
                                                               graph=output)
        if tc.diversity_rl > 0:
            assert drawn is not None  # drawn above whenever the RL term is on
            drawn_counts = (counts if remember_drawn
                            else self.repeats.count(graph_keys(*drawn)))
            terms = terms + tc.diversity_rl * self._diversity_rl_term(rl_fake, drawn,
                                                                      drawn_counts)
        return terms

    def _repeat_critic_weights(self, fake: DenseGraph) -> torch.Tensor | None:
        """Per-fake weights ``[B]`` of the critic objective from the repeat memory (see
        TrainConfig.repeat_critic), mean 1; None when off."""
        tc = self.config.train
        if self.repeats is None or tc.repeat_critic == 0:
            return None
        with torch.no_grad():
            counts = self.repeats.count(graph_keys(*argmax_graph(fake)))
            weights = 1 + tc.repeat_critic * repeat_weights(counts, tc.repeat_threshold)
            return weights / weights.mean()

    def reward_step(self, fake: DenseGraph) -> tuple[torch.Tensor, torch.Tensor]:
        """One reward-network update on a real batch and ``fake`` (relaxed, detached here).

        Targets are RDKit rewards of the real molecules and of the argmax-decoded fakes (0 when
        invalid); the loss is the mean squared error over both. Returns detached
        ``(loss, mean RDKit reward of the fakes)``.
        """
        from molgan.chem import decode_smiles

        assert self.reward_fn is not None and self.reward_net is not None
        assert self.opt_r is not None
        index = self._local(self.batches.next())
        real = self._real_batch(index)
        fake = DenseGraph(fake.x.detach(), fake.adj.detach())
        x_idx, adj_idx = argmax_graph(fake)
        t0 = time.perf_counter()
        fake_smiles = decode_smiles(x_idx.cpu().numpy(), adj_idx.cpu().numpy(), self.vocab)
        real_smiles = self.train_smiles_list[index.cpu().numpy()].tolist()
        rewards = np.concatenate([self.reward_fn(real_smiles), self.reward_fn(fake_smiles)])
        self.rdkit_seconds += time.perf_counter() - t0
        target = torch.as_tensor(rewards, dtype=torch.float32, device=self.device)
        with self._autocast():
            predicted = self.reward_net(torch.cat([real.x, fake.x]),
                                        torch.cat([real.adj, fake.adj])).float()
        loss = torch.nn.functional.mse_loss(predicted, target)
        self.opt_r.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_r.step()
        return loss.detach(), target[len(real_smiles):].mean()

    def rl_active(self, step: int | None = None) -> bool:
        """Whether the generator update after ``step`` done steps (default: now) uses the RL
        term: a reward is set, lambda < 1 and the warm-up is over."""
        tc = self.config.train
        step = self.step if step is None else step
        return self.reward_net is not None and tc.lambda_rl < 1 and step >= tc.rl_warmup

    def generator_step(self) -> torch.Tensor:
        """One generator update (critic parameters frozen); returns the detached loss.

        With a reward: first a :meth:`reward_step` on this batch, then (after the warm-up) the
        combined WGAN + RL objective of :func:`molgan.loss.combined_generator_loss`.
        """
        self.critic.requires_grad_(False)
        try:
            z = self._latents()
            with self._autocast():
                fake = self._fake_batch(z, self.generator_ddp)
                loss = generator_loss(self._fp32_scores(self.critic_frozen, ("fake",)), fake)
            if self.reward_net is not None:
                self.last_reward = self.reward_step(fake)
                self.reward_net.requires_grad_(False)  # frozen for the RL term
            if self.rl_active():
                assert self.reward_net is not None
                with self._autocast():
                    predicted = self.reward_net(*fake).float()
                loss = combined_generator_loss(loss, predicted, self.config.train.lambda_rl)
            tc = self.config.train
            if tc.mode_seeking > 0:
                loss = loss + tc.mode_seeking * mode_seeking_loss(fake, z)
            if tc.diversity_sensitive > 0:
                loss = loss + tc.diversity_sensitive * diversity_sensitive_loss(
                    fake, z, tc.diversity_tau)
            if self.repeats is not None:
                loss = loss + self._repeat_terms(fake)
            if self.max_valence is not None:
                loss = loss + self.config.train.valence_penalty * valence_excess(
                    fake, self.max_valence)
            if self.config.train.isolation_penalty > 0:
                loss = loss + self.config.train.isolation_penalty * isolated_atoms(fake)
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_g.step()
            self._update_average()
        finally:
            self.critic.requires_grad_(True)
            if self.reward_net is not None:
                self.reward_net.requires_grad_(True)
        return loss.detach()

    @torch.no_grad()
    def _update_average(self) -> None:
        r"""One step of the weight average (``generator_ema``): :math:`\bar\theta \leftarrow
        \beta_t \bar\theta + (1 - \beta_t)\,\theta`, :math:`\beta_t = \min(\beta, (1 + t) /
        (10 + t))` after the update of step :math:`t` (0-based)."""
        if self.generator_average is None:
            return
        t = self.step
        decay = min(self.config.train.generator_ema, (1 + t) / (10 + t))
        for average, live in zip(self.generator_average.parameters(),
                                 self.generator.parameters()):
            average.lerp_(live, 1 - decay)

    def sampling_generator(self) -> Generator:
        """What evaluations and ``molgan sample`` use: the weight average when
        ``generator_ema > 0``, else the generator itself."""
        return self.generator_average if self.generator_average is not None else self.generator

    # ---- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The checkpoint bundle: plain data and tensors only (``weights_only`` safe)."""
        rng: dict[str, Any] = {"torch": torch.get_rng_state(), "noise": self.noise.get_state(),
                               "batches": self.batches.state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "step": self.step,
            "vocab": self.vocab.to_dict(),
            "config": self.config.to_dict(),
            "generator_config": asdict(self.config.generator),
            "critic_config": asdict(self.config.critic),
            "generator": self.generator.state_dict(),
            "critic": self.critic.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng": rng,
            **self._reward_state(),
            **({"generator_ema": self.generator_average.state_dict()}
               if self.generator_average is not None else {}),
            **({"repeats": self.repeats.state()} if self.repeats is not None else {}),
            **({"descriptor_match": self.descriptor_match.state()}
               if self.descriptor_match is not None else {}),
        }

    def _reward_state(self) -> dict[str, Any]:
        if self.reward_net is None or self.opt_r is None:
            return {}
        return {"reward_config": asdict(self.reward_net.config),
                "reward_net": self.reward_net.state_dict(), "opt_r": self.opt_r.state_dict()}

    def load_state_dict(self, bundle: dict[str, Any]) -> None:
        if Vocab.from_dict(bundle["vocab"]) != self.vocab:
            raise ValueError("the checkpoint's vocabulary differs from this dataset's")
        self.generator.load_state_dict(bundle["generator"])
        if self.generator_average is not None:  # absent: the average starts from here
            self.generator_average.load_state_dict(bundle.get("generator_ema",
                                                              bundle["generator"]))
        self.critic.load_state_dict(bundle["critic"])
        self.opt_g.load_state_dict(bundle["opt_g"])
        self.opt_d.load_state_dict(bundle["opt_d"])
        if self.reward_net is not None and self.opt_r is not None:
            if "reward_net" not in bundle:
                raise ValueError("the checkpoint has no reward network; --reward cannot be "
                                 "added when resuming")
            self.reward_net.load_state_dict(bundle["reward_net"])
            self.opt_r.load_state_dict(bundle["opt_r"])
        if self.repeats is not None and "repeats" in bundle:
            self.repeats.load_state(bundle["repeats"])  # absent: the memory starts empty
        if self.descriptor_match is not None and "descriptor_match" in bundle:
            self.descriptor_match.load_state(bundle["descriptor_match"])  # absent: from 0
        self.step = int(bundle["step"])
        rng = bundle["rng"]
        torch.set_rng_state(rng["torch"].cpu())
        self.noise.set_state(rng["noise"].cpu() if self.device.type == "cpu" else rng["noise"])
        self.batches.load_state(rng["batches"])
        if self.device.type == "cuda" and "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"].cpu(), self.device)

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "ckpt.pt"

    def save(self) -> None:
        """Write the checkpoint atomically (rank 0 only); refuse to overwrite a good one with
        NaN weights."""
        for name, module in (("generator", self.generator), ("critic", self.critic),
                             ("generator average", self.generator_average)):
            if module is None:
                continue
            if not all(bool(torch.isfinite(p).all()) for p in module.parameters()):
                raise TrainingDiverged(
                    f"non-finite {name} weights at step {self.step}; last good checkpoint: "
                    f"{self.checkpoint_path}")
        if self.dist.is_main:
            save_checkpoint(self.checkpoint_path, self.state_dict())

    def resume(self) -> None:
        """Load ``ckpt.pt`` from the run dir and drop log records past its step."""
        self.load_state_dict(load_checkpoint(self.checkpoint_path, map_location=self.device))
        metrics = self.out_dir / "metrics.jsonl"
        if metrics.is_file():
            kept = [line for line in metrics.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= self.step]
            metrics.write_text("".join(line + "\n" for line in kept))
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
        sampler = Sampler(generator, self.vocab, self.device, decode=tc.decode,
                          temperature=tc.sample_temperature if tc.decode == "sample" else 1.0,
                          atom_temperature=tc.atom_temperature if tc.decode == "sample" else None)
        was_training = generator.training
        try:
            result = sampler.sample(tc.eval_samples, seed=tc.seed + 12345)
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
        ``compile=True``: the whole critic loss (:meth:`_compiles_whole_critic_loss`), or the
        critic's scoring call with the penalty on the plain critic (DDP does not support the
        penalty's ``autograd.grad``, compile not that double backward)."""
        if self.critic_ddp is not self.critic:
            return
        if self.dist.enabled:
            if self.reward_net is not None:
                raise ValueError("--reward is not supported with several processes yet")
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.critic_ddp = DistributedDataParallel(self.critic, device_ids=ids)
            self.generator_ddp = DistributedDataParallel(self.generator, device_ids=ids)
        if self.config.train.compile:
            if self._compiles_whole_critic_loss():
                self._critic_loss = torch.compile(
                    functools.partial(self._critic_objective, functional_penalty=True),
                    dynamic=False)
            else:
                self.critic_ddp = torch.compile(self.critic_ddp, dynamic=False)
            self.generator_ddp = torch.compile(self.generator_ddp, dynamic=False)
            self.critic_frozen = torch.compile(self.critic, dynamic=False)

    def _compiles_whole_critic_loss(self) -> bool:
        """Whether ``compile=True`` compiles the critic loss whole, penalty included
        (``compile_loss``; one process and no minibatch bank: DDP's hooks and the bank's
        in-place updates stay eager), or only the critic's scoring call."""
        return (self.config.train.compile_loss and not self.dist.enabled
                and self.config.critic.minibatch_bank == 0)

    def _any_rank(self, *flags: bool) -> list[bool]:
        """Each flag true on any rank (all ranks must stop at the same step)."""
        if not self.dist.enabled:
            return list(flags)
        import torch.distributed as dist

        values = torch.tensor([float(f) for f in flags], device=self.device)
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return [bool(v) for v in values.tolist()]

    def _mean_over_ranks(self, values: torch.Tensor) -> list[float]:
        if self.dist.enabled:
            import torch.distributed as dist

            values = values.clone()
            dist.all_reduce(values)
            values /= self.dist.world_size
        return values.tolist()

    def fit(self, on_step: Callable[[int, dict[str, Any]], None] | None = None) -> FitResult:
        """Train until ``total_steps``; write metrics.jsonl, checkpoints and the curves PNG.

        In a multi-process job every rank runs this loop; only rank 0 evaluates and writes.
        """
        import contextlib

        from molgan.plots import plot_training_curves

        tc = self.config.train
        main = self.dist.is_main
        self.prepare_networks()
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.json").write_text(json.dumps(
                {**self.config.to_dict(), "vocab": self.vocab.to_dict(),
                 "world_size": self.dist.world_size}, indent=2) + "\n")
        metrics_path = self.out_dir / "metrics.jsonl"
        self.generator.train()
        self.critic.train()
        # loss_d, wasserstein, gp, loss_g, loss_r, reward, repeated, drawn_valid, real score,
        # feature penalty, data penalty
        sums = torch.zeros(11, device=self.device)
        count = 0
        record: dict[str, Any] = {}
        postfix: dict[str, Any] = {}
        status = "completed"
        start = time.perf_counter()
        last_time = start
        metrics_cm = open(metrics_path, "a") if main else contextlib.nullcontext()
        with _StopFlag() as stop, metrics_cm as metrics_file:
            while self.step < self.total_steps:
                self._set_learning_rates()
                for _ in range(tc.n_critic):
                    parts = self.critic_step()
                loss_g = self.generator_step()
                self.step += 1
                sums += torch.stack([parts.loss, parts.wasserstein, parts.gradient_penalty,
                                     loss_g, *self.last_reward, self.last_repeated,
                                     self.last_drawn_valid, parts.real_score,
                                     parts.feature_penalty, parts.data_penalty])
                count += 1
                stopping, out_of_time = self._any_rank(
                    stop.signal is not None,
                    tc.max_seconds is not None
                    and self.elapsed_before + time.perf_counter() - start >= tc.max_seconds)
                last = self.step == self.total_steps or out_of_time
                if self.step % tc.log_every == 0 or last or stopping:
                    means = self._mean_over_ranks(sums / count)
                    sums.zero_()
                    count = 0
                    if not all(math.isfinite(v) for v in means):
                        raise TrainingDiverged(
                            f"non-finite loss at step {self.step} (loss_d={means[0]}, "
                            f"loss_g={means[3]}); last good checkpoint: {self.checkpoint_path}")
                    now = time.perf_counter()
                    record = {"step": self.step, "loss_d": means[0], "loss_g": means[3],
                              "wasserstein": means[1], "gp": means[2],
                              "real_score": means[8],
                              "seconds": round(self.elapsed_before + now - start, 3),
                              "steps_per_s": round(tc.log_every / max(now - last_time, 1e-9), 3)}
                    if tc.feature_penalty > 0:
                        record["feature_gp"] = means[9]
                    if tc.data_penalty > 0:
                        record["data_gp"] = means[10]
                    if tc.temperature_end is not None:
                        record["temperature"] = round(self.temperature(), 6)
                    if self.repeats is not None:
                        record["repeated"] = round(means[6], 4)
                    if tc.diversity_rl > 0:
                        record.update(drawn_valid=round(means[7], 4),
                                      rdkit_seconds=round(self.rdkit_seconds, 3))
                    if self.descriptor_match is not None:  # now, not a mean over steps
                        record["match_distance"] = {
                            name: round(float(d), 4) for (name, _), d in
                            zip(self.match_columns, self.descriptor_match.distances())}
                    if self.reward_net is not None:
                        record.update(loss_r=means[4], reward=means[5],
                                      rl=self.rl_active(self.step - 1),
                                      rdkit_seconds=round(self.rdkit_seconds, 3))
                    last_time = now
                    if main and (self.step % tc.eval_every == 0 or last):
                        record.update(self.evaluate())
                        postfix.update({k: record[k] for k in ("validity", "uniqueness")})
                    if main:
                        metrics_file.write(json.dumps(record) + "\n")
                        metrics_file.flush()
                    postfix.update({"loss_d": record["loss_d"], "loss_g": record["loss_g"],
                                    "W": record["wasserstein"]})
                saved = self.step % tc.ckpt_every == 0 or last
                if saved:
                    self.save()
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
