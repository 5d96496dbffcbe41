r"""The diversity RL term: draws from the generator, a memory of them, rewards, gradient.

Mode collapse, as unique@10k measures it, is the generator drawing the same few thousand
graphs over and over, which a critic that sees one batch at a time cannot notice.
:class:`DiversityRL` is everything the trainer needs to push back, in one object:

1. **Draws.** From each relaxed fake, ``rl_draws`` graphs are drawn as ``molgan sample``
   draws them (:func:`molgan.generator.draw_graph` at ``rl_temperature``, within valences;
   ``free_draws`` of them without the constraint, as ``--valence-draw false`` draws).
2. **Repeat memory.** A ring of the keys of the last ``repeat_window`` drawn graphs with a
   running count per key (:class:`RepeatMemory`): how often each new draw was made lately.
3. **Rewards.** :math:`r = v - \max(0, \log(c / \tau)) + \rho\, v\, z_D + \mu\, v\, m`:
   1 if RDKit reads the draw as one valid molecule, minus its repeat weight (REINVENT's
   diversity filter, Blaschke et al. 2020, as a reward), plus ``draw_realism`` times the
   critic's score standardized among the valid draws, plus ``motif_reward`` times the
   ring-motif reward (:class:`molgan.motifs.MotifBalance`, which lowers the divergence of the
   draws' ring motifs from the data's).
4. **Gradient.** REINFORCE with a leave-one-out baseline over the draws of each fake
   (:func:`molgan.loss.policy_gradient`). With ``rl_credit="across"`` the baseline is the
   batch's mean reward and a draw's repeats are counted without its own latent's other
   draws: credit for where a latent's law sits rather than for its breadth.

It also supplies the critic's batches with draws (``critic_draws``), so the critic learns
what the samples look like and its score of a draw means something. Samples are never
corrected afterwards. In a multi-process run each process remembers its own slice.

A key is an exact hash of the node-ordered graph (atom types and the upper triangle of the
bond types), not of the canonical SMILES: it costs one integer matmul and no RDKit. The
same molecule in two node orders gets two keys (under 1% apart in counts on 10,000 samples).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from molgan.config import DiversityConfig
from molgan.generator import Generator, draw_graph, temper
from molgan.graph import DenseGraph, one_hot_graph
from molgan.loss import policy_gradient
from molgan.motifs import MotifBalance, graph_cells
from molgan.vocab import Vocab

_PRIME = 2**31 - 1
_EMPTY = -1
"""Key of an unused ring slot (:func:`graph_keys` returns only non-negative keys)."""


def graph_keys(x_idx: Tensor, adj_idx: Tensor) -> Tensor:
    r"""One int64 key per graph, ``[B]``, from ``x_idx [B, N]`` and ``adj_idx [B, N, N]``.

    Two universal hashes of the codes :math:`c` (atom types, then the upper-triangle bond
    types), :math:`h_k = \sum_m c_m w_{k,m} \bmod p` with :math:`p = 2^{31} - 1` and fixed
    seeded weights :math:`w_{k,m} \in [1, p)` (the same in every process and after a resume),
    packed as :math:`k = h_1 p + h_2`. No intermediate overflows int64 for codes below 256
    and up to a million code positions. Equal graphs get equal keys; two different graphs
    collide with probability :math:`p^{-2} \approx 2^{-62}`.
    """
    n = x_idx.shape[1]
    rows, cols = torch.triu_indices(n, n, offset=1, device=adj_idx.device)
    codes = torch.cat([x_idx.long(), adj_idx[:, rows, cols].long()], dim=1)  # [B, M]
    seeded = torch.Generator().manual_seed(codes.shape[1])
    weights = torch.randint(1, _PRIME, (codes.shape[1], 2), generator=seeded).to(codes.device)
    h1, h2 = ((codes.unsqueeze(2) * weights) % _PRIME).sum(1).remainder(_PRIME).unbind(1)
    return h1 * _PRIME + h2


class RepeatMemory:
    """The keys of the last ``window`` generated graphs; counts how often a key occurs.

    A ring of keys with a running count per key (a dict): adding or counting a batch costs
    O(B), not O(B * window). The state, one int64 tensor ``[window]`` and a position, goes
    into checkpoints, so a resumed run counts exactly as an uninterrupted one.
    """

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be positive, got {window}")
        self._ring = [_EMPTY] * window
        self._counts: Counter[int] = Counter()
        self.position = 0

    @property
    def keys(self) -> Tensor:
        """The remembered keys, ``[window]`` int64 (``-1`` for an unused slot)."""
        return torch.tensor(self._ring, dtype=torch.int64)

    def push_and_count(self, keys: Tensor) -> Tensor:
        """Add ``keys [B]`` to the ring (the oldest go), then return ``[B]`` counts: how often
        each key occurs among the last ``window`` keys, itself and its batch-mates included
        (so every count is at least 1). A batch larger than the window keeps its last
        ``window`` keys."""
        window = len(self._ring)
        for key in keys[-window:].tolist():
            old = self._ring[self.position]
            if old != _EMPTY:
                self._counts[old] -= 1
                if self._counts[old] == 0:
                    del self._counts[old]
            self._ring[self.position] = key
            self._counts[key] += 1
            self.position = (self.position + 1) % window
        return self.count(keys)

    def count(self, keys: Tensor) -> Tensor:
        """``[B]`` counts of ``keys [B]`` among the remembered keys (nothing is added)."""
        return torch.tensor([self._counts.get(key, 0) for key in keys.tolist()],
                            dtype=torch.int64, device=keys.device)

    def state(self) -> dict[str, Any]:
        return {"keys": self.keys, "position": self.position}

    def load_state(self, state: dict[str, Any]) -> None:
        keys = state["keys"]
        if keys.shape[0] != len(self._ring):
            raise ValueError(f"the checkpoint's repeat memory holds {keys.shape[0]} keys, "
                             f"this run's window is {len(self._ring)}")
        self._ring = keys.tolist()
        self._counts = Counter(key for key in self._ring if key != _EMPTY)
        self.position = int(state["position"])


def repeat_weights(counts: Tensor, threshold: float) -> Tensor:
    r"""Per-graph penalty weights ``[B]``: :math:`w = \max(0, \log(c / \tau))` for counts
    :math:`c` and threshold :math:`\tau`. A graph seen at most :math:`\tau` times in the window
    costs nothing; beyond, the weight grows with the log of the excess, so one molecule made a
    thousand times does not drown out the rest of the batch."""
    return torch.log(counts.float() / threshold).clamp(min=0)


def sibling_repeats(keys: Tensor, draws: int) -> Tensor:
    r"""``[K B]``: for each of ``keys [K B]`` (``K = draws`` blocks of ``B``, block ``k``
    holding one draw from each of the same ``B`` latents), how many of the other ``K - 1``
    draws of its latent have the same key. Subtracted from a draw's repeat count, it leaves
    the repeats made by other latents only."""
    if draws < 1 or keys.shape[0] % draws:
        raise ValueError(f"{keys.shape[0]} keys do not make {draws} blocks")
    blocks = keys.view(draws, -1)
    return ((blocks.unsqueeze(0) == blocks.unsqueeze(1)).sum(0) - 1).reshape(-1)


def diversity_rewards(valid: Tensor, counts: Tensor, threshold: float) -> Tensor:
    r"""Rewards ``[B]`` for graphs with validity ``valid [B]`` (1 for one valid molecule, else
    0) seen ``counts [B]`` times in the repeat window: :math:`r = v - \max(0, \log(c /
    \tau))` (:func:`repeat_weights`); a graph repeated more than :math:`e\tau` times scores
    below an invalid one."""
    return valid - repeat_weights(counts, threshold)


def standardized_among(scores: Tensor, among: Tensor) -> Tensor:
    """``scores [B]`` standardized over the entries flagged by ``among [B]`` (bool): mean 0,
    standard deviation 1 there, 0 elsewhere (all 0 when fewer than two are flagged)."""
    if int(among.sum()) < 2:
        return torch.zeros_like(scores)
    chosen = scores[among]
    standardized = (scores - chosen.mean()) / chosen.std().clamp(min=1e-6)
    return torch.where(among, standardized, torch.zeros_like(standardized))


class DiversityRL:
    """The diversity RL term of one run (module docstring): draws, memory, rewards, loss.

    Args:
        config: the run's :class:`molgan.config.DiversityConfig`.
        generator: the trained generator (its valence draw settings are used).
        vocab: the run's vocabulary.
        noise: the trainer's seeded noise generator (draws are part of the run's stream).
        score_draws: ``(x, adj, groups) -> [B]`` fp32 scores of one-hot graphs by the frozen
            critic, without gradient, the batch taken as ``groups`` equal batches (used for
            the realism reward).
        motif_log_law: the data's ``log p`` of the motif cell
            (:func:`molgan.motifs.data_log_law`); required when ``motif_reward`` is on.
    """

    def __init__(self, config: DiversityConfig, generator: Generator, vocab: Vocab,
                 noise: torch.Generator,
                 score_draws: Callable[[Tensor, Tensor, int], Tensor],
                 motif_log_law: np.ndarray | None = None) -> None:
        self.config = config
        self.generator = generator
        self.vocab = vocab
        self.noise = noise
        self.score_draws = score_draws
        self.memory = RepeatMemory(config.repeat_window) if config.diversity_rl > 0 else None
        device = generator.to_x.weight.device
        self.motifs: MotifBalance | None = None
        if config.motifs_active:
            if motif_log_law is None:
                raise ValueError("motif_reward needs the data's law of the motif cell")
            self.motifs = MotifBalance(motif_log_law, device)
        self.repeated = torch.zeros((), device=device)  # share of the draws discounted
        self.drawn_valid = torch.zeros((), device=device)  # share of single valid draws
        self.motif_divergence = torch.zeros((), device=device)  # KL(draws || data), nats
        self.rdkit_seconds = 0.0  # RDKit checks of draws, this process

    def draw(self, fake: DenseGraph, free: int = 0) -> tuple[Tensor, Tensor]:
        """One graph ``(x_idx [B, N], adj_idx [B, N, N])`` drawn from each relaxed fake's
        categorical distributions at ``rl_temperature``, within valences as the model's
        samples are (Gumbel-max with the trainer's noise): what ``decode='sample'`` makes of
        the same logits. The last ``free`` graphs are drawn without the valence constraint,
        as ``--valence-draw false`` samples are."""
        with torch.no_grad():
            log_probs = DenseGraph(fake.x.float().clamp(min=1e-9).log(),
                                   fake.adj.float().clamp(min=1e-9).log())
            held = log_probs.x.shape[0] - free
            within = draw_graph(log_probs.rows(slice(held)),
                                self.config.rl_temperature, generator=self.noise,
                                max_valence=self.generator.draw_valences,
                                no_isolated=self.generator.config.draw_no_isolated)
            if free == 0:
                return within
            unconstrained = draw_graph(log_probs.rows(slice(held, None)),
                                       self.config.rl_temperature, generator=self.noise)
            return (torch.cat([within[0], unconstrained[0]]),
                    torch.cat([within[1], unconstrained[1]]))

    def critic_batch(self, fake: DenseGraph) -> DenseGraph:
        """``fake`` with its first ``critic_draws * B`` graphs replaced by the one-hot graphs
        drawn from them (:meth:`draw`); unchanged when critic_draws is 0."""
        k = int(self.config.critic_draws * fake.x.shape[0])
        if k == 0:
            return fake
        drawn = one_hot_graph(*self.draw(fake.rows(slice(k))),
                              fake.x.shape[-1], fake.adj.shape[-1], dtype=fake.x.dtype)
        return DenseGraph(torch.cat([drawn.x, fake.x[k:]]), torch.cat([drawn.adj, fake.adj[k:]]))

    def generator_term(self, fake: DenseGraph) -> Tensor:
        """``diversity_rl`` times the policy-gradient surrogate for relaxed ``fake [B]``:
        ``rl_draws`` draws from each fake (the batch repeated block by block), remembered and
        counted, rewarded and differentiated through their log-probabilities at
        ``rl_temperature``. 0 when the term is off."""
        config = self.config
        if self.memory is None:
            return torch.zeros((), device=fake.x.device)
        k = config.rl_draws
        rl_fake = (DenseGraph(fake.x.repeat(k, 1, 1), fake.adj.repeat(k, 1, 1, 1)) if k > 1
                   else fake)
        free = config.free_draws * fake.x.shape[0]
        drawn = self.draw(rl_fake, free)
        across = config.rl_credit == "across"
        with torch.no_grad():
            keys = graph_keys(*drawn)
            counts = self.memory.push_and_count(keys)
            if across:  # repeats made by other latents only
                counts = counts - sibling_repeats(keys, k)
            self.repeated = (repeat_weights(counts, config.repeat_threshold) > 0).float().mean()
        rewards = self.rewards(drawn, counts)
        if config.rl_temperature != 1.0:  # drawn from the tempered distributions
            rl_fake = temper(rl_fake, config.rl_temperature)
        return config.diversity_rl * policy_gradient(
            rl_fake, *drawn, rewards, self.generator.draw_valences,
            self.generator.config.draw_no_isolated, 1 if across else k, free)

    def rewards(self, drawn: tuple[Tensor, Tensor], counts: Tensor) -> Tensor:
        """``[B]`` rewards of ``drawn`` graphs with repeat-memory ``counts [B]`` (module
        docstring); also records the share of single valid draws."""
        from molgan.chem import single_molecules

        config = self.config
        with torch.no_grad():
            start = time.perf_counter()
            x_idx, adj_idx = drawn[0].cpu().numpy(), drawn[1].cpu().numpy()
            if self.motifs is None:
                flags = single_molecules(x_idx, adj_idx, self.vocab)
            else:
                flags, cells = graph_cells(x_idx, adj_idx, self.vocab, config.motif_descriptor)
            self.rdkit_seconds += time.perf_counter() - start
            valid = torch.as_tensor(flags, dtype=torch.float32, device=counts.device)
            self.drawn_valid = valid.mean()
            rewards = diversity_rewards(valid, counts, config.repeat_threshold)
            if config.draw_realism > 0:
                x, adj = one_hot_graph(*drawn, self.vocab.num_atom_types,
                                       self.vocab.num_bond_types)
                blocks = config.rl_draws if config.realism_blocks else 1
                realism = standardized_among(self.score_draws(x, adj, blocks), valid > 0)
                rewards = rewards + config.draw_realism * realism
            if self.motifs is not None:
                rewards = rewards + config.motif_reward * self.motifs.rewards(
                    cells, floor=config.motif_floor)
                self.motif_divergence = torch.tensor(self.motifs.divergence(),
                                                     device=counts.device)
        return rewards

    def state_dict(self) -> dict[str, Any]:
        """The repeat memory's and the motif histogram's state (empty when the term is off)."""
        state = {} if self.memory is None else {"repeats": self.memory.state()}
        if self.motifs is not None:
            state["motifs"] = self.motifs.state()
        return state

    def load_state_dict(self, bundle: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` from a checkpoint bundle (absent: the memory starts
        empty)."""
        if self.memory is not None and "repeats" in bundle:
            self.memory.load_state(bundle["repeats"])
        if self.motifs is not None:
            if "motifs" not in bundle:
                raise ValueError("the checkpoint has no motif histogram; --motif-reward cannot "
                                 "be added when resuming")
            self.motifs.load_state(bundle["motifs"])
