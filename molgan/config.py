"""Training configuration, split by concern; each part checks its own values.

A run is defined by a :class:`RunConfig`: the generator's and the critic's architecture
(:class:`molgan.generator.GeneratorConfig`, :class:`molgan.critic.CriticConfig`) and a
:class:`TrainConfig` made of six parts:

========================  ==========================================================
part                      what it sets
========================  ==========================================================
:class:`RunSettings`      data, budget, device, seeds, logging and checkpoints
:class:`OptimizerConfig`  Adam, learning rates, critic steps, the weight average
:class:`PenaltyConfig`    the gradient penalty and the other penalty terms
:class:`DiversityConfig`  the diversity RL term (draws, repeat memory, rewards)
:class:`PropertyConfig`   MolGAN's property reward network (off by default)
:class:`SamplingConfig`   relaxation for the critic and decoding of samples
========================  ==========================================================

Checkpoints and config files store the training part flat (``{"lr": ..., "steps": ...}``),
as the command line spells it (``--lr``, ``--steps``); :meth:`TrainConfig.to_flat` and
:meth:`TrainConfig.from_flat` convert. Named recipes (``molgan/recipes/*.toml``) are such
flat files; see :func:`molgan.recipes.load_recipe`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from molgan.coverage import SCORES
from molgan.critic import CriticConfig
from molgan.generator import RELAXATIONS, GeneratorConfig
from molgan.loss import RL_CREDITS, VALENCE_EXCESS_FORMS
from molgan.motifs import DESCRIPTORS as MOTIF_DESCRIPTORS
from molgan.sample import DECODINGS

PRECISIONS = ("fp32", "bf16")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass
class RunSettings:
    """Data, budget, device, seeds, logging and checkpoints."""

    data: str = "qm9"
    """'qm9' or a .smi/.csv/.sdf file."""
    smiles_column: str | None = None
    """SMILES column of a CSV data file."""
    max_atoms: int | None = None
    """Node slots N (none: the largest molecule of the data)."""
    atoms: tuple[str, ...] | None = None
    """Allowed atom tokens, comma-separated like ``C,O,N,F`` (none: every token in the data).
    Molecules with another token are skipped and counted, as by ``molgan prepare --atoms``."""
    steps: int = 2000
    """Generator updates (each after n_critic critic updates)."""
    epochs: float | None = None
    """If set, overrides steps: passes over the training split by the critic's real batches."""
    batch_size: int = 128
    """Graphs per critic and generator update."""
    max_seconds: float | None = None
    """Wall-clock training budget: stop (with a checkpoint) once this much time is spent."""
    device: str = "auto"
    """auto (CUDA when present), cpu or cuda."""
    precision: str = "fp32"
    """fp32, or bf16 autocast of both networks' matmuls (weights, optimizer state, losses
    and norms stay fp32). Pays only where bf16 is native (CPUs with AVX512-BF16/AMX, GPUs)."""
    compile: bool = False
    """torch.compile the networks and the whole critic loss; needs a C++ compiler on CPU."""
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
    keep_every: int = 0
    """Steps between kept copies of the checkpoint, ckpt-STEP.pt beside ckpt.pt (0: none):
    earlier points of a long run, to sample or evaluate later."""

    def __post_init__(self) -> None:
        _check(self.steps >= 1, f"steps must be at least 1, got {self.steps}")
        _check(self.epochs is None or self.epochs > 0,
               f"epochs must be positive, got {self.epochs}")
        _check(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")
        _check(self.max_seconds is None or self.max_seconds > 0,
               f"max_seconds must be positive, got {self.max_seconds}")
        _check(self.max_atoms is None or self.max_atoms >= 1,
               f"max_atoms must be at least 1, got {self.max_atoms}")
        if self.atoms is not None:
            from molgan.vocab import parse_atom_symbol

            for symbol in self.atoms:
                parse_atom_symbol(symbol)  # ValueError naming a token that is not an atom
        _check(self.precision in PRECISIONS,
               f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        _check(self.eval_samples >= 1, f"eval_samples must be at least 1, got {self.eval_samples}")
        for name in ("log_every", "eval_every", "ckpt_every"):
            _check(getattr(self, name) >= 1,
                   f"{name} must be at least 1 step, got {getattr(self, name)}")
        _check(self.keep_every >= 0, f"keep_every must be 0 (none) or a number of steps, "
                                     f"got {self.keep_every}")


@dataclass
class OptimizerConfig:
    """Adam (Gulrajani et al.'s betas), learning rates, critic steps and the weight average."""

    n_critic: int = 2
    """Critic updates per generator update (MolGAN and Gulrajani et al.: 5)."""
    lr: float = 3e-4
    """Adam learning rate of the critic, and of the generator when lr_g is none
    (Gulrajani et al. and MolGAN: 1e-4)."""
    lr_g: float | None = 5e-4
    """Generator learning rate (none: lr)."""
    beta1: float = 0.5
    """Adam beta1 (Gulrajani et al.)."""
    beta2: float = 0.9
    """Adam beta2 (Gulrajani et al.)."""
    generator_ema: float = 0.999
    r"""Decay of the moving average of the generator's weights (0 = off). The average is
    :math:`\beta` of of the generator's weights, :math:`\bar\theta
    \leftarrow \beta_t \bar\theta + (1 - \beta_t)\theta` after every generator update with
    :math:`\beta_t = \min(\beta, (1 + t) / (10 + t))` (Yazici et al. 2019). Training is
    unchanged; evaluations and ``molgan sample`` use the average (0 = off)."""

    def __post_init__(self) -> None:
        _check(self.n_critic >= 1, f"n_critic must be at least 1, got {self.n_critic}")
        for name in ("lr", "lr_g"):
            value = getattr(self, name)
            _check(value is None or value > 0, f"{name} must be positive, got {value}")
        for name in ("beta1", "beta2"):
            _check(0 <= getattr(self, name) < 1,
                   f"{name} must lie in [0, 1), got {getattr(self, name)}")
        _check(0 <= self.generator_ema < 1,
               f"generator_ema must lie in [0, 1), got {self.generator_ema}")

    @property
    def generator_lr(self) -> float:
        """The generator's learning rate: lr_g, or lr when it is None."""
        return self.lr_g or self.lr

    @property
    def critic_lr(self) -> float:
        """The critic's (and the property reward network's) learning rate."""
        return self.lr


@dataclass
class PenaltyConfig:
    r"""The WGAN-GP penalty and the other penalty terms.

    Critic: :math:`\lambda\,\mathbb{E}[(\lVert\nabla D(\hat G)\rVert_2 - 1)^2]` at
    interpolates, plus the one-sided steepness penalties at the real and fake graphs
    themselves (:func:`molgan.loss.critic_loss`). Generator: the valence excess
    (:func:`molgan.loss.valence_excess` or :func:`molgan.loss.drawn_valence_excess`, by
    ``valence_excess``) and the expected lone atoms of a draw
    (:func:`molgan.loss.drawn_lone_atoms`).
    """

    lambda_gp: float = 10.0
    """Gradient-penalty weight lambda (Gulrajani et al.: 10)."""
    feature_penalty: float = 10.0
    r"""Weight of the one-sided penalty on the scores' gradient by the batch features. It is
    :math:`\mu\,\mathbb{E}[\max(0, \lVert\partial D/\partial f\rVert_2 - 1)^2]` over the
    real and fake scores, ``f`` the critic's batch features (no effect without them)."""
    data_penalty: float = 10.0
    r"""Weight of the one-sided penalty on the scores' gradient at the data. It is
    :math:`\nu\,\mathbb{E}[\max(0, \lVert\nabla_G D\rVert_2 - 1)^2]` over the real and
    fake graphs themselves, where the gradient penalty never looks."""
    valence_penalty: float = 1.0
    """Weight of the expected valence excess in the generator loss (0 = off)."""
    valence_excess: str = "mean"
    """Form of that excess: ``mean``, the excess of each atom's expected valence
    (:func:`molgan.loss.valence_excess`); ``drawn``, the expected excess of an unconstrained
    draw at ``drawn_temperature``, exact under the factorized law
    (:func:`molgan.loss.drawn_valence_excess`)."""
    lone_atom_penalty: float = 0.0
    """Weight of the expected number of atoms bonded to no other atom in an unconstrained
    draw at ``drawn_temperature`` (:func:`molgan.loss.drawn_lone_atoms`) in the generator
    loss (0 = off)."""
    collision_penalty: float = 0.0
    """Weight of the log-probability that unconstrained draws at ``drawn_temperature`` from two
    of the batch's latents are the same labelled graph (:func:`molgan.loss.drawn_collisions`)
    in the generator loss (0 = off): the duplicates that unique@10k counts."""
    drawn_temperature: float = 1.0
    """Temperature T of the law that the penalties on a draw (``valence_excess = "drawn"``,
    ``lone_atom_penalty``, ``collision_penalty``) take: softmax(logits / T), the law that
    ``molgan sample --valence-draw false --temperature T`` draws from. 1: the network's own
    law."""
    steepness_every: int = 1
    r"""Take the steepness penalties (``feature_penalty``, ``data_penalty``) on every k-th
    critic update only, weighted k times there: lazy regularization (Karras et al. 2020,
    StyleGAN2), the same penalty in expectation for about 1/k of its cost (each is a double
    backward over the real and fake batch). 1: on every update."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and not isinstance(value, str):
                _check(value >= 0, f"{f.name} must be >= 0, got {value}")
        _check(self.steepness_every >= 1,
               f"steepness_every must be at least 1, got {self.steepness_every}")
        _check(self.drawn_temperature > 0,
               f"drawn_temperature must be positive, got {self.drawn_temperature}")
        _check(self.drawn_temperature == 1.0 or self.valence_excess == "drawn"
               or self.lone_atom_penalty > 0 or self.collision_penalty > 0,
               "drawn_temperature applies only to the penalties on a draw: set "
               "valence_excess to 'drawn', or lone_atom_penalty or collision_penalty above 0")
        _check(self.valence_excess in VALENCE_EXCESS_FORMS,
               f"valence_excess must be one of {VALENCE_EXCESS_FORMS}, "
               f"got {self.valence_excess!r}")


@dataclass
class DiversityConfig:
    r"""The diversity RL term (:class:`molgan.diversity.DiversityRL`).

    From each relaxed fake, ``rl_draws`` graphs are drawn as ``molgan sample`` draws them
    (at ``rl_temperature``, within valences); each earns
    :math:`r = v - \max(0, \log(c / \tau)) + \rho\, v\, z_D + \mu\, v\, m`: 1 if RDKit
    reads it as one valid molecule, minus its repeat weight (``c`` its count among the last
    ``repeat_window`` draws, :math:`\tau` = ``repeat_threshold``), plus ``draw_realism`` times
    the critic's standardized score among the valid draws, plus ``motif_reward`` times its
    ring-motif reward :math:`m` (:mod:`molgan.motifs`). The generator ascends its policy gradient
    with a leave-one-out baseline (or, with ``rl_credit="across"``, the batch's mean reward).
    ``critic_draws`` of each critic batch's fakes are such draws, so the critic learns what the
    samples look like.
    """

    diversity_rl: float = 1.0
    """Weight of the diversity RL term in the generator loss (0 = off)."""
    rl_draws: int = 4
    """Graphs drawn from each fake (leave-one-out baseline when above 1)."""
    rl_temperature: float = 1.6
    """Temperature of the draws: softmax(log p / T) of the relaxed fakes p."""
    free_draws: int = 0
    """Of the ``rl_draws`` graphs drawn from each fake, how many are drawn without the
    valence constraint (as ``--valence-draw false`` samples are), so that the reward for a
    valid molecule teaches the network valences itself; at most ``rl_draws``."""
    critic_draws: float = 0.25
    """Share of each critic batch's fakes replaced by a graph drawn from each (0 = off)."""
    draw_realism: float = 0.5
    """Weight of the critic's standardized score of valid draws in their reward (0 = off)."""
    motif_reward: float = 2.0
    """Weight of the ring-motif reward of valid draws (:mod:`molgan.motifs`): the log ratio of
    the data's to the recent draws' share of their cell of (aromatic rings, 3-rings, 4-rings,
    rings, spiro atoms); its policy gradient lowers KL(draws || data) of that cell (0 = off)."""
    motif_descriptor: str = "rings"
    """The ring-motif reward's cell (:data:`molgan.motifs.DESCRIPTORS`): ``rings``, the
    counts above; ``bridges``, those and the bridgehead atoms and rings of 7 or more atoms."""
    motif_floor: float = 0.2
    """Share of the batch's lowest ring-motif reward of a valid draw that a draw which is not
    one valid molecule earns: 0 gives it the valid draws' mean, 1 the lowest, so that no cell
    is worse than being invalid (a saved ``true`` reads as 1)."""
    realism_blocks: bool = False
    """Score the draws for their realism block by block (``rl_draws`` batches of ``B``, one
    draw of each fake: what a critic batch holds), instead of all ``rl_draws * B`` at once. A
    critic with batch features then compares each draw with ``B - 1`` others, as in its
    training, and its pairwise cost falls ``rl_draws``-fold."""
    repeat_window: int = 32768
    """Drawn graphs the repeat memory remembers."""
    repeat_threshold: float = 1.0
    """Times a graph may occur in the repeat window before its reward is discounted."""
    latent_coverage: float = 0.0
    """Weight of the latent coverage term (:mod:`molgan.coverage`): each real graph of a batch
    pulls the law of its likeliest latent, out of ``coverage_pool`` fresh latents per graph,
    toward itself (implicit maximum likelihood; 0 = off)."""
    rl_credit: str = "within"
    """Where the diversity RL term's credit goes. ``within``: each draw's baseline is the mean
    reward of the other draws of its own latent (leave-one-out) and its repeats are counted
    among all draws, its latent's other draws included, so the term rewards breadth within
    each latent's law. ``across``: each draw's baseline is the mean reward of all the batch's
    draws and its repeats are counted without its own latent's other draws, so the term
    rewards a latent whose law sits in an uncrowded, valid region, however sharp that law."""
    coverage_pool: int = 4
    """Fresh latents per real graph among which the latent coverage term picks the nearest."""
    coverage_temperature: float = 1.0
    """Temperature of the law the latent coverage term fits: softmax(logits / T), the law that
    ``molgan sample --valence-draw false --temperature T`` draws from."""
    coverage_score: str = "log"
    """What the latent coverage term scores a real graph by under a latent's law: ``log``, its
    log-likelihood per variable, or ``hits``, the expected share of its variables a draw gets
    right (a sharp law per latent)."""
    autoencoder: float = 0.0
    """Weight of the autoencoder term (:mod:`molgan.encoder`): an encoder maps each real graph of
    a batch to a latent and the generator's law there is pulled toward the graph, with a KL
    term that keeps those latents where sampling draws them (a variational autoencoder whose
    decoder is the generator; 0 = off)."""

    def __post_init__(self) -> None:
        _check(self.diversity_rl >= 0, f"diversity_rl must be >= 0, got {self.diversity_rl}")
        _check(self.autoencoder >= 0, f"autoencoder must be >= 0, got {self.autoencoder}")
        _check(self.rl_draws >= 1, f"rl_draws must be at least 1, got {self.rl_draws}")
        _check(0 <= self.free_draws <= self.rl_draws,
               f"free_draws must lie in [0, rl_draws = {self.rl_draws}], got {self.free_draws}")
        _check(self.rl_temperature > 0,
               f"rl_temperature must be positive, got {self.rl_temperature}")
        _check(0 <= self.critic_draws <= 1,
               f"critic_draws must lie in [0, 1], got {self.critic_draws}")
        _check(self.draw_realism >= 0, f"draw_realism must be >= 0, got {self.draw_realism}")
        _check(self.motif_reward >= 0, f"motif_reward must be >= 0, got {self.motif_reward}")
        _check(self.motif_descriptor in MOTIF_DESCRIPTORS,
               f"motif_descriptor must be one of {tuple(MOTIF_DESCRIPTORS)}, "
               f"got {self.motif_descriptor!r}")
        _check(0 <= self.motif_floor <= 1,
               f"motif_floor must be in [0, 1], got {self.motif_floor}")
        _check(self.repeat_window >= 1,
               f"repeat_window must be at least 1, got {self.repeat_window}")
        _check(self.repeat_threshold >= 1,
               f"repeat_threshold must be at least 1, got {self.repeat_threshold}")
        _check(self.rl_credit in RL_CREDITS,
               f"rl_credit must be one of {RL_CREDITS}, got {self.rl_credit!r}")
        _check(self.latent_coverage >= 0,
               f"latent_coverage must be >= 0, got {self.latent_coverage}")
        _check(self.coverage_pool >= 1,
               f"coverage_pool must be at least 1, got {self.coverage_pool}")
        _check(self.coverage_score in SCORES,
               f"coverage_score must be one of {SCORES}, got {self.coverage_score!r}")
        _check(self.coverage_temperature > 0,
               f"coverage_temperature must be positive, got {self.coverage_temperature}")

    @property
    def active(self) -> bool:
        """Whether draws are taken at all (for the RL term or for the critic)."""
        return self.diversity_rl > 0 or self.critic_draws > 0

    @property
    def motifs_active(self) -> bool:
        """Whether the ring-motif reward is on (it is part of the RL term's reward)."""
        return self.motif_reward > 0 and self.diversity_rl > 0


@dataclass
class PropertyConfig:
    """MolGAN's property reward: a reward network learns RDKit rewards, and the generator
    loss becomes ``lambda_rl * L_WGAN + (1 - lambda_rl) * L_RL``."""

    reward: str = ""
    """Comma-separated rewards (qed, logp, sa, validity, uniqueness); empty = none."""
    lambda_rl: float = 1.0
    """Weight of the WGAN term against the property RL term (1 = no RL; needs --reward)."""
    rl_warmup: int = 0
    """Generator steps of WGAN only before the property RL term starts."""

    def __post_init__(self) -> None:
        _check(0.0 <= self.lambda_rl <= 1.0, f"lambda_rl must be in [0, 1], got {self.lambda_rl}")
        _check(bool(self.reward.strip()) or self.lambda_rl == 1.0,
               "lambda_rl < 1 needs --reward (the RL term's reward)")
        _check(self.rl_warmup >= 0, f"rl_warmup must be >= 0, got {self.rl_warmup}")


@dataclass
class SamplingConfig:
    """How generated graphs reach the critic and how samples are decoded."""

    relax: str = "softmax"
    """Relaxation of generated graphs for the critic: softmax, gumbel or hard."""
    decode: str = "sample"
    """Decoding of samples: argmax, or sample (a categorical draw per node and pair); saved
    with the model as ``molgan sample``'s default."""
    sample_temperature: float = 2.1
    """With decode=sample: draws from softmax(logits / T)."""

    def __post_init__(self) -> None:
        _check(self.relax in RELAXATIONS,
               f"relax must be one of {RELAXATIONS}, got {self.relax!r}")
        _check(self.decode in DECODINGS,
               f"decode must be one of {DECODINGS}, got {self.decode!r}")
        _check(self.sample_temperature > 0,
               f"sample_temperature must be positive, got {self.sample_temperature}")


#: The parts of :class:`TrainConfig`, by attribute name, in the order ``--help`` shows them.
PARTS: dict[str, type] = {"run": RunSettings, "optim": OptimizerConfig,
                          "penalties": PenaltyConfig, "diversity": DiversityConfig,
                          "property_rl": PropertyConfig, "sampling": SamplingConfig}
#: Titles of the parts' flag groups in ``molgan train --help``.
PART_TITLES = {"run": "run and data", "optim": "optimization",
               "penalties": "WGAN-GP and penalties", "diversity": "diversity RL",
               "property_rl": "property reward (MolGAN's RL)", "sampling": "sampling",
               "generator": "generator architecture", "critic": "critic architecture"}


@dataclass
class TrainConfig:
    """Everything about training but the two architectures, in six parts (module doc)."""

    #: What runs saved before a field existed used (see checkpoint.build_config).
    ABSENT_IN_OLDER_RUNS: ClassVar[dict[str, Any]] = {"valence_penalty": 0.0,
                                                       "decode": "argmax",
                                                       "diversity_rl": 0.0,
                                                       "sample_temperature": 1.0,
                                                       "rl_temperature": 1.0,
                                                       "critic_draws": 0.0,
                                                       "draw_realism": 0.0,
                                                       "repeat_threshold": 4.0,
                                                       "rl_draws": 1,
                                                       "generator_ema": 0.0,
                                                       "feature_penalty": 0.0,
                                                       "data_penalty": 0.0,
                                                       "lr_g": None,
                                                       "motif_reward": 0.0,
                                                       "motif_floor": 0.0}

    run: RunSettings = field(default_factory=RunSettings)
    optim: OptimizerConfig = field(default_factory=OptimizerConfig)
    penalties: PenaltyConfig = field(default_factory=PenaltyConfig)
    diversity: DiversityConfig = field(default_factory=DiversityConfig)
    property_rl: PropertyConfig = field(default_factory=PropertyConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    def to_flat(self) -> dict[str, Any]:
        """All fields of all parts in one dict (the checkpoint and config-file form)."""
        flat: dict[str, Any] = {}
        for name in PARTS:
            flat.update(asdict(getattr(self, name)))
        return flat

    @classmethod
    def from_flat(cls, values: dict[str, Any] | None = None, saved: bool = False,
                  **more: Any) -> TrainConfig:
        """From flat fields (``values`` and keyword arguments); missing ones take their
        defaults, or with ``saved`` (a checkpoint's) the values of ABSENT_IN_OLDER_RUNS.
        Raises CheckpointError for unknown fields and retired levers not at their neutral
        value, ValueError for invalid values."""
        from molgan.checkpoint import CheckpointError, build_config
        from molgan.retired import RetiredLeverError, drop_retired

        values = {**(values or {}), **more}
        try:
            values = drop_retired(cls.__name__, values)
        except RetiredLeverError as exc:
            raise CheckpointError(str(exc)) from None
        if saved:
            values = {**cls.ABSENT_IN_OLDER_RUNS, **values}
        owner = {f.name: part for part, kind in PARTS.items() for f in fields(kind)}
        unknown = sorted(set(values) - set(owner))
        if unknown:
            raise CheckpointError(f"unknown TrainConfig fields {unknown}: written by a newer "
                                  f"molgan?")
        parts = {part: {k: v for k, v in values.items() if owner[k] == part} for part in PARTS}
        return cls(**{part: build_config(PARTS[part], parts[part], saved=False)
                      for part in PARTS})

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with flat fields changed (``config.replace(steps=10, lr=1e-4)``)."""
        return TrainConfig.from_flat({**self.to_flat(), **changes})


@dataclass
class RunConfig:
    """Everything that defines a run: the training config and both architectures."""

    train: TrainConfig = field(default_factory=TrainConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)

    def to_dict(self) -> dict[str, Any]:
        return {"train": self.train.to_flat(), "generator": asdict(self.generator),
                "critic": asdict(self.critic)}

    def to_flat(self) -> dict[str, Any]:
        """Every field of the run in one dict, as flags and recipe files name them."""
        return {**self.train.to_flat(), **asdict(self.generator), **asdict(self.critic)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], saved: bool = True) -> RunConfig:
        """From :meth:`to_dict` output (``saved``: a checkpoint's, see
        :func:`molgan.checkpoint.build_config`) or a user's config file (``saved=False``)."""
        from molgan.checkpoint import build_config

        return cls(TrainConfig.from_flat(data.get("train", {}), saved=saved),
                   build_config(GeneratorConfig, data.get("generator", {}), saved),
                   build_config(CriticConfig, data.get("critic", {}), saved))

    @classmethod
    def from_flat(cls, values: dict[str, Any]) -> RunConfig:
        """From one flat dict of fields of any section (a recipe, flags); others default."""
        from molgan.checkpoint import CheckpointError
        from molgan.retired import RETIRED

        sections: dict[str, dict[str, Any]] = {"train": {}, "generator": {}, "critic": {}}
        train_fields = {f.name for kind in PARTS.values() for f in fields(kind)}
        owners = {**{name: "train" for name in train_fields},
                  **{name: "train" for name in RETIRED["TrainConfig"]},
                  **{f.name: "generator" for f in fields(GeneratorConfig)},
                  **{name: "generator" for name in RETIRED["GeneratorConfig"]},
                  **{f.name: "critic" for f in fields(CriticConfig)},
                  **{name: "critic" for name in RETIRED["CriticConfig"]}}
        for key, value in values.items():
            if key not in owners:
                raise CheckpointError(f"unknown config field {key!r}")
            sections[owners[key]][key] = value
        return cls.from_dict(sections, saved=False)
