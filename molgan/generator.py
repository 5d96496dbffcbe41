"""Generator: latent ``z`` -> MLP (optionally per-atom embeddings refined by transformer layers)
-> logits of a dense molecular graph; relaxations for the critic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from molgan.graph import DenseGraph
from molgan.vocab import Vocab

Relaxation = Literal["softmax", "gumbel", "hard"]
RELAXATIONS: tuple[str, ...] = ("softmax", "gumbel", "hard")

#: Logit margin that pins the adjacency diagonal to "no bond" and, with the valence mask,
#: rules out forbidden bond orders (finite, so no NaN in gradients).
_MASKED_LOGIT = 1e4


@dataclass
class GeneratorConfig:
    """Generator hyperparameters (sizes ``N``, ``T``, ``Y`` come from the vocabulary)."""

    #: What runs saved before a field existed used (see checkpoint.build_config).
    ABSENT_IN_OLDER_RUNS: ClassVar[dict[str, Any]] = {"gen_valence_mask": False,
                                                       "valence_draw": False,
                                                       "draw_no_isolated": False}

    z_dim: int = 128
    """Latent size; ``z ~ N(0, I)`` (MolGAN: 32)."""
    gen_hidden: tuple[int, ...] = (128, 256, 512)
    """Widths of the MLP (tanh; MolGAN's)."""
    gen_transformer: int = 0
    """Transformer layers of the atom decoder; 0: the MLP's last layer maps to every logit
    directly (MolGAN's decoder). With ``L > 0`` the MLP's output becomes one embedding per atom
    slot (``[B, N, gen_node_dim]``), ``L`` pre-norm self-attention layers let the atoms
    coordinate, and each pair's bond logits come from a symmetric function of its two atoms'
    embeddings (:class:`AtomDecoder`). Still one forward pass."""
    gen_node_dim: int = 128
    """Width of the per-atom embeddings with ``gen_transformer > 0`` (4 attention heads)."""
    gen_valence_mask: bool = True
    """Mask bond orders above what either atom of the pair allows. By the argmax atom
    types of the same forward pass, such an order gets the logit ``-1e4``, so neither the
    critic nor the decoder ever sees it (no double bond to F, no bond to an empty slot). Per
    bond, not per atom: an atom's bonds may still add up past its valence."""
    valence_draw: bool = True
    """With decode=sample, draw bonds within every atom's valence. Atoms are drawn first;
    then the node pairs one at a time (row-major upper triangle), each from its categorical
    distribution renormalized over the bond orders that both atoms still have room for
    (:func:`draw_graph` with ``max_valence``). This is the model's sampling distribution in
    training (the RL term's draws and log-probabilities, the critic's draws) as at sampling;
    argmax decoding and the relaxed graphs the critic sees are unchanged."""
    draw_no_isolated: bool = True
    """With valence_draw, an atom still without a bond at its last pair must take one there.
    If both atoms have room, the pair's distribution is renormalized over orders >= 1; the
    log-probabilities follow the same rule (:func:`bond_limits`)."""


class Generator(nn.Module):
    """``z [B, Z]`` -> :class:`DenseGraph` of logits: ``x [B, N, T]``, ``adj [B, N, N, Y]``.

    The adjacency logits are symmetrized, ``(L + L^T) / 2``, and the diagonal is pinned to
    "no bond" (channel 0 logit 0, the others ``-1e4``), so every relaxation and the argmax give a
    symmetric adjacency without self-loops.
    """

    def __init__(self, config: GeneratorConfig, vocab: Vocab) -> None:
        super().__init__()
        self.config = config
        self.num_nodes = vocab.max_atoms
        self.num_atom_types = vocab.num_atom_types
        self.num_bond_types = vocab.num_bond_types
        layers: list[nn.Module] = []
        width = config.z_dim
        for hidden in config.gen_hidden:
            layers += [nn.Linear(width, hidden), nn.Tanh()]
            width = hidden
        self.mlp = nn.Sequential(*layers)
        n, t, y = self.num_nodes, self.num_atom_types, self.num_bond_types
        self.atoms: AtomDecoder | None = None
        if config.gen_transformer > 0:
            self.atoms = AtomDecoder(width, n, config.gen_node_dim, config.gen_transformer, y)
            self.to_x = nn.Linear(config.gen_node_dim, t)
        else:
            self.to_adj = nn.Linear(width, n * n * y)
            self.to_x = nn.Linear(width, n * t)
        diagonal = torch.zeros(n, n, y)
        diagonal[torch.arange(n), torch.arange(n), 1:] = -_MASKED_LOGIT
        self.register_buffer("diagonal_bias", diagonal, persistent=False)
        self.register_buffer("off_diagonal", (1 - torch.eye(n)).unsqueeze(-1), persistent=False)
        if config.gen_valence_mask or config.valence_draw:
            from molgan.chem import max_valences

            self.register_buffer("max_valence", torch.tensor(max_valences(vocab)),
                                 persistent=False)
            self.register_buffer("bond_orders", torch.arange(y), persistent=False)

    def forward(self, z: Tensor) -> DenseGraph:
        """``z [B, Z]`` -> logits ``DenseGraph(x [B, N, T], adj [B, N, N, Y])``."""
        h = self.mlp(z)
        b, n = z.shape[0], self.num_nodes
        if self.atoms is not None:
            nodes, adj = self.atoms(h)
            x = self.to_x(nodes)
        else:
            adj = self.to_adj(h).view(b, n, n, self.num_bond_types)
            adj = (adj + adj.transpose(1, 2)) * 0.5
            x = self.to_x(h).view(b, n, self.num_atom_types)
        adj = adj * self.off_diagonal + self.diagonal_bias
        if self.config.gen_valence_mask:
            adj = self._mask_bond_orders(x, adj)
        return DenseGraph(x, adj)

    def _mask_bond_orders(self, x: Tensor, adj: Tensor) -> Tensor:
        r"""Logits ``adj [B, N, N, Y]`` with bond order ``y`` set to ``-1e4`` wherever
        :math:`y > \min(\mathrm{maxval}_{t_i}, \mathrm{maxval}_{t_j})`, ``t = argmax x [B, N, T]``
        (``maxval`` 0 for "no atom"). The mask is a constant: no gradient flows through the
        argmax, and the masked logits get none. "No bond" (order 0) is never masked."""
        with torch.no_grad():
            cap = self.max_valence[x.argmax(-1)]  # [B, N]
            pair_cap = torch.minimum(cap.unsqueeze(2), cap.unsqueeze(1))  # [B, N, N]
            forbidden = self.bond_orders > pair_cap.unsqueeze(-1)  # [B, N, N, Y]
        return adj.masked_fill(forbidden, -_MASKED_LOGIT)

    @property
    def draw_valences(self) -> Tensor | None:
        """Maximum valence per atom token ``[T]`` for :func:`draw_graph` when the model's
        draws respect valences (GeneratorConfig.valence_draw), else None."""
        return self.max_valence if self.config.valence_draw else None

    def sample_z(self, batch_size: int, generator: torch.Generator | None = None,
                 device: torch.device | str | None = None) -> Tensor:
        """``z ~ N(0, I)`` of shape ``[batch_size, Z]``."""
        device = device if device is not None else self.to_x.weight.device
        return torch.randn(batch_size, self.config.z_dim, generator=generator, device=device)


class AtomDecoder(nn.Module):
    r"""The MLP's output ``h [B, W]`` -> atom embeddings ``[B, N, D]`` and bond logits
    ``[B, N, N, Y]`` (symmetric; the caller pins the diagonal).

    - atom slots: :math:`e_i = (W_e h)_i + p_i`, one ``D``-vector per slot ``i`` from one linear
      map of ``h`` plus a learned slot embedding ``p_i``;
    - ``layers`` pre-norm transformer layers (4 heads, feed-forward ``2D``, GELU, no dropout)
      over the ``N`` slots, then a layer norm;
    - bonds: :math:`\ell_{ij} = W_b\,\mathrm{GELU}(U e_i + U e_j + (V e_i) \odot (V e_j))`,
      symmetric in ``i, j`` by construction, so each bond is decided from both atoms' context
      rather than independently of the other bonds as in the MLP decoder.
    """

    def __init__(self, width: int, num_nodes: int, dim: int, layers: int,
                 num_bond_types: int) -> None:
        super().__init__()
        if dim % 4:
            raise ValueError(f"gen_node_dim must be a multiple of the 4 attention heads, "
                             f"got {dim}")
        self.num_nodes, self.dim = num_nodes, dim
        self.slots = nn.Linear(width, num_nodes * dim)
        self.slot_embedding = nn.Parameter(torch.randn(num_nodes, dim) * 0.02)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, 4, 2 * dim, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.pair_sum = nn.Linear(dim, dim)
        self.pair_product = nn.Linear(dim, dim, bias=False)
        self.to_bonds = nn.Linear(dim, num_bond_types)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """``h [B, W]`` -> ``(atoms [B, N, D], bond logits [B, N, N, Y])``."""
        nodes = self.slots(h).view(-1, self.num_nodes, self.dim) + self.slot_embedding
        for block in self.blocks:
            nodes = block(nodes)
        nodes = self.norm(nodes)
        summed = self.pair_sum(nodes)
        product = self.pair_product(nodes)
        pairs = (summed.unsqueeze(2) + summed.unsqueeze(1)
                 + product.unsqueeze(2) * product.unsqueeze(1))
        return nodes, self.to_bonds(nn.functional.gelu(pairs))


def _gumbel(shape: torch.Size, like: Tensor, generator: torch.Generator | None) -> Tensor:
    return _gumbel_of(torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype))


def _gumbel_of(uniform: Tensor) -> Tensor:
    r"""Gumbel(0, 1) noise :math:`-\log(-\log u)` from uniform draws ``u`` (clamped away from 0)."""
    exponential = (-torch.log(uniform.clamp_min(1e-10))).clamp_min(1e-10)
    return -torch.log(exponential)


def draw_graph(logits: DenseGraph, temperature: float = 1.0,
               generator: torch.Generator | None = None,
               max_valence: Tensor | None = None,
               no_isolated: bool = False) -> tuple[Tensor, Tensor]:
    r"""One categorical draw per node and per node pair from
    :math:`\mathrm{softmax}(\ell / T)`, by Gumbel-max: :math:`\arg\max_c (\ell_c / T + g_c)`.

    The one drawing routine of molgan: ``molgan sample`` draws its samples with it, and
    training draws with it the graphs of the diversity RL term and of the critic's batches
    (from the relaxed fakes' log-probabilities, :class:`molgan.diversity.DiversityRL`).

    Returns index tensors ``x_idx [B, N]``, ``adj_idx [B, N, N]`` (uint8, symmetric, zero
    diagonal). The uniform draws are taken from ``generator`` exactly as
    ``argmax_graph(relax(logits / T, "hard", generator=generator))`` takes them, so both give
    the same graphs (softmax keeps the argmax); this one skips the softmax and the one-hots and
    transforms only the upper triangle's noise.

    With ``max_valence [T]`` (per atom token, 0 for "no atom"), the pairs are drawn one at a
    time in row-major upper-triangle order, each by Gumbel-max over the bond orders
    :math:`y \le` the ``highest`` of :func:`bond_limits` (what both atoms have left of their
    valence after the pairs before): a draw from the categorical renormalized over those
    orders, with the same noise. "No bond" is always allowed (but see ``no_isolated``), so
    every draw respects every valence. With ``no_isolated`` an atom still without a bond at
    its last pair must take one there when both atoms have room
    (GeneratorConfig.draw_no_isolated; :func:`bond_limits`).
    """
    x, adj = logits
    uniform_x = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    uniform_adj = torch.rand(adj.shape, generator=generator, device=adj.device, dtype=adj.dtype)
    x_idx = (x / temperature + _gumbel_of(uniform_x)).argmax(-1).to(torch.uint8)
    n = adj.shape[1]
    rows, cols = torch.triu_indices(n, n, offset=1, device=adj.device)
    upper = adj[:, rows, cols] / temperature + _gumbel_of(uniform_adj[:, rows, cols])  # [B, M, Y]
    if max_valence is None:
        codes = upper.argmax(-1).to(torch.uint8)
    else:
        codes = _draw_within_valence(upper, max_valence[x_idx.long()], rows.tolist(),
                                     cols.tolist(), no_isolated)
    adj_idx = torch.zeros(adj.shape[:3], dtype=torch.uint8, device=adj.device)
    adj_idx[:, rows, cols] = codes
    adj_idx[:, cols, rows] = codes
    return x_idx, adj_idx


def _draw_within_valence(scores: Tensor, capacity: Tensor, rows: list[int],
                         cols: list[int], no_isolated: bool = False) -> Tensor:
    """Bond codes ``[B, M]`` (uint8): pair ``m = (rows[m], cols[m])`` takes the highest of its
    perturbed scores ``[B, M, Y]`` among the orders both atoms still have room for, given
    their valences ``capacity [B, N]`` and the pairs before it. ``no_isolated``: at an atom's
    last pair, an atom (capacity > 0) without a bond so far must take one if the pair has
    room (see :func:`bond_limits`)."""
    remaining = capacity.long().clone()  # [B, N]
    lonely = (capacity > 0).clone()  # atoms without a bond so far
    last = {node: m for m, pair in enumerate(zip(rows, cols)) for node in pair}
    orders = torch.arange(scores.shape[-1], device=scores.device)
    codes = torch.empty(scores.shape[:2], dtype=torch.long, device=scores.device)
    for m, (i, j) in enumerate(zip(rows, cols)):
        room = torch.minimum(remaining[:, i], remaining[:, j])  # [B]
        forbidden = orders > room[:, None]
        ending = [k for k in (i, j) if last[k] == m] if no_isolated else []
        if ending:  # the last pair of these atoms: a lonely one must take a bond here
            must = lonely[:, ending].any(1) & (room >= 1)
            forbidden = forbidden | ((orders == 0) & must[:, None])
        code = scores[:, m].masked_fill(forbidden, -torch.inf).argmax(-1)
        codes[:, m] = code
        remaining[:, i] -= code
        remaining[:, j] -= code
        if no_isolated:
            bonded = code > 0
            lonely[:, i] &= ~bonded
            lonely[:, j] &= ~bonded
    return codes.to(torch.uint8)


def bond_limits(x_idx: Tensor, adj_idx: Tensor, max_valence: Tensor,
                no_isolated: bool = False) -> tuple[Tensor, Tensor]:
    r"""``(lowest, highest)``, each ``[B, M]``: the bond orders pair ``m`` of the upper
    triangle (row-major numbering, ``M = N(N-1)/2``) could take when :func:`draw_graph` drew
    it with ``max_valence`` and ``no_isolated`` (row-major order):

    - ``highest``: the least of its two atoms' valences ``max_valence[x_idx]`` minus the
      orders of the pairs drawn before it that touch that atom;
    - ``lowest``: 1 where ``no_isolated`` forced a bond (the pair is the last of an atom
      without a bond so far, and ``highest >= 1``), else 0.

    A function of the graph alone, so the log-probability of a drawn graph
    can be taken afterwards (:func:`molgan.loss.graph_log_prob`).

    In row-major order the pairs before :math:`(i, j)` that touch atom :math:`i` are
    :math:`(k, i), k < i` and :math:`(i, l), i < l < j`; those that touch :math:`j` are
    :math:`(k, j), k < i`. With :math:`U` the upper triangle of bond orders, both sums are
    exclusive cumulative sums of :math:`U` down its columns and along its rows, so the
    limits cost :math:`O(B N^2)`. An atom's last pair is :math:`(i, N-1)` for :math:`i < N-1`
    and :math:`(N-2, N-1)` for atom :math:`N-1`."""
    b, n = x_idx.shape
    rows, cols = torch.triu_indices(n, n, offset=1, device=x_idx.device)
    capacity = max_valence[x_idx.long()].long()  # [B, N]
    upper = torch.triu(adj_idx.long(), diagonal=1)  # [B, N, N] orders of the pairs i < j
    used_first, used_second = _touching_before(upper, rows, cols)
    highest = torch.minimum(capacity[:, rows] - used_first, capacity[:, cols] - used_second)
    lowest = torch.zeros_like(highest)
    if no_isolated and n > 1:
        bonded_first, bonded_second = _touching_before((upper > 0).long(), rows, cols)
        lonely_first = (bonded_first == 0) & (capacity[:, rows] > 0) & (cols == n - 1)
        lonely_second = ((bonded_second == 0) & (capacity[:, cols] > 0)
                         & (rows == n - 2) & (cols == n - 1))
        lowest = ((lonely_first | lonely_second) & (highest >= 1)).long()
    return lowest, highest


def _touching_before(upper: Tensor, rows: Tensor, cols: Tensor) -> tuple[Tensor, Tensor]:
    """Two ``[B, M]``: the sums of ``upper [B, N, N]`` (zero on and below the diagonal) over
    the pairs before each pair ``(rows[m], cols[m])`` in row-major order that touch its first
    atom, and those that touch its second."""
    above = upper.cumsum(1) - upper  # above[b, i, j] = sum over k < i of upper[b, k, j]
    in_row = upper.cumsum(2) - upper  # in_row[b, i, j] = sum over l < j of upper[b, i, l]
    first = above.diagonal(dim1=1, dim2=2)[:, rows] + in_row[:, rows, cols]
    return first, above[:, rows, cols]


def temper(probs: DenseGraph, temperature: float) -> DenseGraph:
    r"""The tempered distributions :math:`\mathrm{softmax}(\log p / T)` of categorical ``probs``
    (every node and node pair; ``p`` clamped at 1e-9), differentiable, in float32: what
    :func:`draw_graph` draws from when given ``log p`` and the same temperature."""
    return DenseGraph(*(_softmax_channels(t.float().clamp(min=1e-9).log() / temperature)
                        for t in probs))


def relax(logits: DenseGraph, mode: Relaxation = "softmax", temperature: float = 1.0,
          generator: torch.Generator | None = None) -> DenseGraph:
    r"""Differentiable categorical relaxation of generator logits, for the critic.

    - ``softmax``: :math:`\mathrm{softmax}(\ell / \tau)`.
    - ``gumbel``: :math:`\mathrm{softmax}((\ell + g) / \tau)`, :math:`g \sim \mathrm{Gumbel}(0, 1)`.
    - ``hard``: straight-through Gumbel: the one-hot argmax of the Gumbel sample in the forward
      pass, the gradient of the ``gumbel`` relaxation in the backward pass.

    Gumbel noise on the adjacency is drawn for the upper triangle and mirrored, so the relaxed
    adjacency stays symmetric. Every output sums to 1 over its last axis.
    """
    if mode not in RELAXATIONS:
        raise ValueError(f"unknown relaxation {mode!r}; choose from {RELAXATIONS}")
    x, adj = logits
    if mode != "softmax":
        x = x + _gumbel(x.shape, x, generator)
        adj = adj + _mirror_channels(adj, generator)
    x_soft = _softmax_channels(x / temperature)
    adj_soft = _softmax_channels(adj / temperature)
    if mode != "hard":
        return DenseGraph(x_soft, adj_soft)
    return DenseGraph(_straight_through(x_soft), _straight_through(adj_soft))


def _softmax_channels(logits: Tensor) -> Tensor:
    """Softmax over the last (channel) axis, computed channel-first: PyTorch's CPU softmax over
    a short contiguous last axis (4 bond types) is about 20x slower than over an outer axis
    (measured: 3.5 ms vs 0.17 ms for ``[512, 9, 9, 4]``). Same values to float rounding."""
    return torch.softmax(logits.movedim(-1, 1), dim=1).movedim(1, -1)


def _mirror_channels(adj: Tensor, generator: torch.Generator | None) -> Tensor:
    """Gumbel noise ``[B, N, N, Y]``, symmetric in the node axes (upper triangle mirrored)."""
    noise = _gumbel(adj.shape, adj, generator)
    upper = torch.triu(noise.movedim(-1, 1), diagonal=1)
    return (upper + upper.transpose(2, 3)).movedim(1, -1)


def _straight_through(soft: Tensor) -> Tensor:
    hard = torch.nn.functional.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
    return hard - soft.detach() + soft
