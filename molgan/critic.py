"""The graph critic: relational GCN -> gated aggregation -> MLP -> one unbounded score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from molgan.l1_kernel import l1_kernel_sums
from molgan.layers import GraphAggregation, RelationalGraphConv, random_walk_returns
from molgan.vocab import Vocab


#: Kernels of the minibatch features (CriticConfig.minibatch_kernel_metric).
KERNEL_METRICS = ("l1", "l2", "gaussian")
#: Roles of the graphs a bank critic compares with its banks (CriticConfig.minibatch_bank).
BANK_ROLES = ("real", "fake")


@dataclass
class CriticConfig:
    """Critic hyperparameters (``T`` and ``Y`` come from the vocabulary)."""

    critic_conv: tuple[int, ...] = (128, 64)
    """Widths of the relational graph convolutions."""
    critic_agg: int = 128
    """Width of the aggregated graph representation."""
    critic_mlp: tuple[int, ...] = (128, 64)
    """Widths of the MLP on the graph representation (tanh)."""
    critic_pool: str = "sum"
    """Node reduction of the gated aggregation: ``sum`` (MolGAN) or ``mean`` (divided by the
    soft number of atoms)."""
    walk_returns: int = 0
    """Ring-size features: each node's annotation is extended by the return probabilities of
    random walks of 2 .. ``walk_returns`` steps over the (soft) bonds
    (:func:`molgan.layers.random_walk_returns`), so the critic sees rings a two-layer
    convolution cannot (0 = none; 6 covers rings of up to six atoms)."""
    spectral_norm: bool = False
    """Spectral normalization (Miyato et al. 2018) of every linear map of the critic: each
    weight divided by its largest singular value (one power iteration per forward pass in
    training). The relational weights of all bond types are normalized as one stacked
    matrix. The gradient penalty stays on."""
    #: What runs saved before a field existed used (see checkpoint.build_config).
    ABSENT_IN_OLDER_RUNS: ClassVar[dict[str, Any]] = {"minibatch_distance": False,
                                                       "minibatch_kernels": 0,
                                                       "minibatch_kernel_metric": "l1",
                                                       "minibatch_reduce": "mean",
                                                       "minibatch_bank": 0,
                                                       "minibatch_nearest": 16,
                                                       "walk_returns": 0}

    pack: int = 1
    """PacGAN: the critic scores groups of this many graphs jointly (1 = one graph per score)."""
    minibatch_distance: bool = True
    """Append each graph's mean L1 distance to the other graphs of its batch (others detached)."""
    minibatch_kernels: int = 16
    """With minibatch_distance: 0 = one feature, the mean L1 distance of representations; K > 0
    = K learned kernels exp(-L1) on projections (Salimans et al. 2016), averaged over others."""
    minibatch_kernel_dim: int = 8
    """Projection size of each minibatch kernel."""
    minibatch_kernel_metric: str = "l1"
    r"""Kernel of the minibatch features: ``l1`` = :math:`\exp(-\lVert M_i - M_j \rVert_1)`
    (Salimans et al.); ``l2`` = :math:`\exp(-(\sqrt{\lVert M_i - M_j \rVert_2^2 + c} -
    \sqrt{c}))`, ``c = 0.01`` (an L2 distance smoothed at 0); ``gaussian`` =
    :math:`\exp(-\lVert M_i - M_j \rVert_2^2)`. ``l2`` and ``gaussian`` are computed with
    batched matmuls, ``l1`` (with ``minibatch_reduce='mean'``) by :mod:`molgan.l1_kernel`: no
    ``[B, B, kernels, kernel_dim]`` tensor is kept."""
    minibatch_reduce: str = "mean"
    """How each graph's comparisons with its batch-mates become its feature: ``mean`` over
    them, or ``max`` (with kernels: the similarity to its nearest batch-mate, 1 for a
    duplicate however large the batch)."""
    minibatch_others: int = 128
    """Batch-mates each graph is compared with at most: a larger batch is cut into near-equal
    blocks of consecutive graphs, so the feature's cost grows linearly with the batch size."""
    reference_size: int = 256
    """With minibatch_distance: real graphs kept in the critic, against which pipeline scores
    (score, score_dense) measure the distance instead of batch-mates."""
    minibatch_bank: int = 0
    """With minibatch kernels: representations of this many recent real and fake graphs kept
    in the critic (detached, ring buffers). Each scored graph gets ``kernels`` more features:
    per kernel, the summed similarity to its ``minibatch_nearest`` nearest bank entries of
    its role, scaled to the full bank: how many near-copies of it were seen recently, at a
    scale no batch reaches (0 = off)."""
    minibatch_nearest: int = 16
    """With minibatch_bank: bank entries each graph is compared with (its nearest by L2
    distance of the projections, one matmul; the kernel itself stays L1)."""


class Critic(nn.Module):
    r"""WGAN critic ``D(x, adj) -> [B]``: unbounded scores, no batch norm, no sigmoid.

    Each convolution sees the node annotations concatenated to the previous layer's output
    (as in MolGAN): :math:`h^{(l+1)} = \mathrm{RGCN}([h^{(l)}, x], A_{1:})`, where ``A_{1:}``
    drops the no-bond channel. Node weights :math:`m_i = 1 - x_{i0}` (the probability that node
    ``i`` is an atom) multiply every node's input and output, so padded nodes contribute nothing
    and relaxed graphs are weighted softly. The gated aggregation sums over nodes, so the score
    is invariant to node order and a graph's score does not depend on its batch-mates (which
    the per-sample gradient penalty requires).
    """

    #: Keys of this network's weights and config in a checkpoint bundle.
    checkpoint_keys: tuple[str, str] = ("critic", "critic_config")

    def __init__(self, config: CriticConfig, vocab: Vocab) -> None:
        super().__init__()
        self.config = config
        self.vocab = vocab
        t, relations = vocab.num_atom_types, vocab.num_bond_types - 1
        if config.walk_returns < 0 or config.walk_returns == 1:
            raise ValueError(f"walk_returns must be 0 or >= 2, got {config.walk_returns}")
        t += max(0, config.walk_returns - 1)  # node annotations: atom type and walk returns
        convs = []
        width = 0
        for out in config.critic_conv:
            convs.append(RelationalGraphConv(width + t, out, relations))
            width = out
        self.convs = nn.ModuleList(convs)
        self.aggregate = GraphAggregation(width + t, config.critic_agg, config.critic_pool)
        if config.pack < 1:
            raise ValueError(f"pack must be >= 1, got {config.pack}")
        mlp: list[nn.Module] = []
        width = (config.critic_agg + self.num_batch_features
                 + self._num_bank_features()) * config.pack
        for hidden in config.critic_mlp:
            mlp += [nn.Linear(width, hidden), nn.Tanh()]
            width = hidden
        mlp.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*mlp)
        if config.minibatch_kernel_metric not in KERNEL_METRICS:
            raise ValueError(f"minibatch_kernel_metric must be one of {KERNEL_METRICS}, "
                             f"got {config.minibatch_kernel_metric!r}")
        if config.minibatch_reduce not in ("mean", "max"):
            raise ValueError(f"minibatch_reduce must be 'mean' or 'max', "
                             f"got {config.minibatch_reduce!r}")
        if config.minibatch_reduce == "max" and config.minibatch_kernels == 0:
            raise ValueError("minibatch_reduce='max' needs minibatch_kernels > 0")
        if config.minibatch_distance and config.minibatch_kernels > 0:
            self.kernel_projection = nn.Linear(
                config.critic_agg, config.minibatch_kernels * config.minibatch_kernel_dim,
                bias=False)
        if config.minibatch_bank > 0:
            if not (config.minibatch_distance and config.minibatch_kernels > 0):
                raise ValueError("minibatch_bank needs minibatch_distance and minibatch_kernels")
            if config.pack != 1:
                raise ValueError("minibatch_bank needs pack=1")
            self.register_buffer("bank", torch.zeros(len(BANK_ROLES), config.minibatch_bank,
                                                     config.critic_agg))
            self.register_buffer("bank_seen", torch.zeros(len(BANK_ROLES), dtype=torch.long))
        if config.minibatch_distance:
            k, n = config.reference_size, vocab.max_atoms
            self.register_buffer("reference_x", torch.zeros(k, n, dtype=torch.uint8))
            self.register_buffer("reference_adj", torch.zeros(k, n, n, dtype=torch.uint8))
        if config.spectral_norm:
            for module in list(self.modules()):
                if isinstance(module, nn.Linear):
                    nn.utils.parametrizations.spectral_norm(module)

    @property
    def num_batch_features(self) -> int:
        """Features a minibatch-distance critic appends to each representation from the other
        graphs of its batch (0 without minibatch_distance): the size of ``feature_probe``."""
        if not self.config.minibatch_distance:
            return 0
        return max(1, self.config.minibatch_kernels)

    def _num_bank_features(self) -> int:
        return self.config.minibatch_kernels if self.config.minibatch_bank > 0 else 0

    def remember(self, role: str, h: Tensor) -> None:
        """Push representations ``h [B, critic_agg]`` (from :meth:`embed`, detached here) of
        ``role`` (``'real'`` or ``'fake'``) into its bank, overwriting the oldest entries."""
        size = self.config.minibatch_bank
        if size == 0:
            raise ValueError("this critic has no bank (minibatch_bank=0)")
        index = BANK_ROLES.index(role)
        h = h.detach().to(self.bank.dtype)[-size:]
        positions = (self.bank_seen[index] + torch.arange(h.shape[0], device=h.device)) % size
        self.bank[index, positions] = h
        self.bank_seen[index] += h.shape[0]

    def _bank_feature(self, m: Tensor, bank_h: Tensor) -> Tensor:
        r"""``[b, kernels]``: per kernel ``k``, :math:`\frac{S}{n} \sum_{j \in \mathrm{near}(i)}
        \exp(-\lVert M_{ik} - O_{jk} \rVert_1)` over the ``minibatch_nearest`` nearest (L2
        distance over all kernels' projections together, one matmul) of the
        ``n`` filled entries ``bank_h [n, critic_agg]`` (projected with the current
        projection, ``O = h T``) and ``S = minibatch_bank``. Only ``M_i`` is differentiated:
        the entries, their projections and the choice of the nearest are constants, so the
        feature stays per sample and costs no backward through the bank."""
        config = self.config
        if bank_h.shape[0] == 0:
            return m.new_zeros(m.shape[0], config.minibatch_kernels)
        dtype = torch.promote_types(m.dtype, torch.float32)
        with torch.autocast(m.device.type, enabled=False):
            m = m.to(dtype)
            with torch.no_grad():  # the entries, their projections and the choice: constants
                bank_m = self._kernel_space(bank_h.to(dtype))  # [n, K, D]
                flat, bank_flat = m.flatten(1), bank_m.flatten(1)
                # ||m - o||^2 over all kernels, up to the constant ||m||^2 of each row
                ranking = bank_flat.pow(2).sum(1) - 2 * flat @ bank_flat.T  # [b, n]
                k = min(config.minibatch_nearest, bank_h.shape[0])
                neighbours = bank_m[ranking.topk(k, dim=1, largest=False).indices]  # [b, k, K, D]
            distance = (m.unsqueeze(1) - neighbours).abs().sum(-1)  # [b, k, K]
            similarity = torch.exp(-distance).sum(1)  # [b, K]
            return similarity * (config.minibatch_bank / bank_h.shape[0])

    def _filled_bank(self, role: str) -> Tensor:
        index = BANK_ROLES.index(role)
        filled = int(min(int(self.bank_seen[index]), self.config.minibatch_bank))
        return self.bank[index, :filled]

    def _kernel_space(self, h: Tensor) -> Tensor:
        r"""What the batch feature compares: ``h [B, D]`` itself, or with kernels the
        projections :math:`M = h\,T` as ``[B, kernels, kernel_dim]``."""
        if self.config.minibatch_kernels == 0:
            return h
        return self.kernel_projection(h).view(
            h.shape[0], self.config.minibatch_kernels, self.config.minibatch_kernel_dim)

    def _similarities(self, m: Tensor, m_others: Tensor) -> Tensor:
        r"""``[B, S, F]``: each of ``m [B, ...]`` (from :meth:`_kernel_space`) compared with
        each of the ``S`` graphs of ``m_others [S, ...]``: the mean absolute difference of
        representations (``F = 1``), or per kernel :math:`\exp(-\lVert M_i - M_j \rVert_1)`
        or the ``l2`` / ``gaussian`` kernel of ``minibatch_kernel_metric`` (``F = kernels``)."""
        if self.config.minibatch_kernels == 0:
            return (m.unsqueeze(1) - m_others.unsqueeze(0)).abs().mean(-1, keepdim=True)
        if self.config.minibatch_kernel_metric != "l1":
            return _euclidean_kernels(m, m_others, self.config.minibatch_kernel_metric)
        return torch.exp(-(m.unsqueeze(1) - m_others.unsqueeze(0)).abs().sum(-1))

    def _compare_with_others(self, m: Tensor, m_others: Tensor, exclude_self: bool) -> Tensor:
        """``[B, F]``: :meth:`_similarities` reduced over the others
        (:meth:`_reduce_over_others`). The default L1 kernels with the mean take the fused
        path of :mod:`molgan.l1_kernel` (same values and derivatives, no ``[B, S, K, D]``
        tensor kept)."""
        config = self.config
        if (config.minibatch_kernels > 0 and config.minibatch_kernel_metric == "l1"
                and config.minibatch_reduce == "mean"):
            sums = l1_kernel_sums(m, m_others)
            if not exclude_self:
                return sums / m_others.shape[0]
            return (sums - 1.0) / (m_others.shape[0] - 1)
        return self._reduce_over_others(self._similarities(m, m_others), exclude_self)

    def _reduce_over_others(self, similarity: Tensor, exclude_self: bool) -> Tensor:
        """``[B, F]`` from ``similarity [B, S, F]``: the mean or max over the others. With
        ``exclude_self`` (batch-mates: graph ``i`` is other ``i``), each graph's comparison
        with its own detached copy, a constant (distance 0, kernel 1) with zero gradient, is
        left out: taken off the sum, or masked to 0 (below every kernel value) for the max."""
        b, others = similarity.shape[:2]
        if self.config.minibatch_reduce == "max":
            if exclude_self:
                itself = torch.eye(b, dtype=torch.bool, device=similarity.device).unsqueeze(-1)
                similarity = similarity.masked_fill(itself, 0.0)
            return similarity.amax(1)
        if not exclude_self:
            return similarity.mean(1)
        itself = 0.0 if self.config.minibatch_kernels == 0 else 1.0
        return (similarity.sum(1) - itself) / (others - 1)

    def set_reference(self, x_idx: Tensor, adj_idx: Tensor) -> None:
        """Store ``reference_size`` real graphs (index tensors ``[K, N]``, ``[K, N, N]``) as the
        reference set of a minibatch-distance critic's pipeline scores."""
        if not self.config.minibatch_distance:
            raise ValueError("only a minibatch-distance critic has a reference set")
        self.reference_x.copy_(x_idx)
        self.reference_adj.copy_(adj_idx)

    def _embed_dense(self, x: Tensor, adj: Tensor) -> Tensor:
        dtype = _autocast_dtype(x.device.type)
        if dtype is not None:  # keep activations in the autocast dtype between the matmuls
            x, adj = x.to(dtype), adj.to(dtype)
        node_weight = 1.0 - x[..., 0]
        weight = node_weight.unsqueeze(-1)
        bonds = adj[..., 1:]
        if self.config.walk_returns:
            x = torch.cat([x, random_walk_returns(bonds, self.config.walk_returns).to(x.dtype)],
                          dim=-1)
        h = x.new_zeros(x.shape[0], x.shape[1], 0)
        for conv in self.convs:
            h = conv(torch.cat([h, x], dim=-1) * weight, bonds, node_weight)
        return self.aggregate(torch.cat([h, x], dim=-1) * weight, node_weight)

    def forward(self, x: Tensor, adj: Tensor, groups: int = 1,
                roles: Sequence[str] | None = None,
                feature_probe: Tensor | None = None) -> Tensor:
        """Scores ``[B / pack]`` of graphs ``x [B, N, T]``, ``adj [B, N, N, Y]`` (one-hot or
        relaxed). With ``pack > 1`` (PacGAN), consecutive groups of ``pack`` graphs get one
        joint score: their representations are concatenated before the MLP. ``groups``: the
        batch is that many equal batches side by side (real and fake in one call): a
        minibatch feature compares each graph only with its own batch. ``roles`` (one of
        ``'real'``, ``'fake'`` per group; needed with ``minibatch_bank``): which bank each
        group is compared with. ``feature_probe [B, num_batch_features]`` (zeros) is added to
        the batch features, so that the gradient of the scores with respect to it is their
        gradient with respect to those features (see loss.scores_and_gradient_norms)."""
        if self.config.minibatch_bank > 0 and (roles is None or len(roles) != groups):
            raise ValueError(f"a critic with a bank needs one role per group, got {roles!r}")
        h = self._embed_dense(x, adj)
        if h.shape[0] % groups:
            raise ValueError(f"batch of {h.shape[0]} graphs cannot form {groups} groups")
        probes = (feature_probe.chunk(groups) if feature_probe is not None
                  else (None,) * groups)
        parts = [self._with_batch_feature(part, probe)
                 for part, probe in zip(h.chunk(groups), probes)]
        if self.config.minibatch_bank > 0:
            parts = [torch.cat([part, self._bank_feature(self._kernel_space(own),
                                                         self._filled_bank(role)).to(part.dtype)],
                               dim=1)
                     for part, own, role in zip(parts, h.chunk(groups), roles)]
        h = torch.cat(parts)
        pack = self.config.pack
        if h.shape[0] % pack:
            raise ValueError(f"batch of {h.shape[0]} graphs is not a multiple of pack={pack}")
        return self.mlp(h.reshape(h.shape[0] // pack, -1)).squeeze(-1)

    def score_dense(self, x: Tensor, adj: Tensor) -> Tensor:
        """One score per graph ``[B]`` that never depends on its batch-mates: a packed critic
        scores each graph as a pack of ``pack`` copies of itself, and a minibatch-distance
        critic measures each graph's distance to its stored reference set of real graphs
        (in training, a batch of real graphs plays that part)."""
        h = self._embed_dense(x, adj)
        if self.config.minibatch_distance:
            from molgan.graph import one_hot_graph

            reference = one_hot_graph(self.reference_x, self.reference_adj, x.shape[-1],
                                      adj.shape[-1], dtype=x.dtype)
            h_ref = self._embed_dense(*reference)
            m = self._kernel_space(h)
            feature = self._compare_with_others(m, self._kernel_space(h_ref), exclude_self=False)
            features = [h, feature.to(h.dtype)]
            if self.config.minibatch_bank > 0:  # the reference set plays the bank too
                features.append(self._bank_feature(m, h_ref).to(h.dtype))
            h = torch.cat(features, dim=1)
        return self.mlp(h.repeat(1, self.config.pack)).squeeze(-1)

    def _with_batch_feature(self, h: Tensor, probe: Tensor | None = None) -> Tensor:
        r"""With ``minibatch_distance``: append :math:`d_i = \frac{1}{B-1} \sum_{j \ne i}
        \overline{|h_i - \mathrm{sg}(h_j)|}` to each representation (with kernels, the mean
        of each kernel over the others, see :meth:`_similarities`, or their max with ``minibatch_reduce='max'``; beyond ``minibatch_others + 1``
        graphs, within near-equal blocks of consecutive graphs). A collapsed batch has
        :math:`d \approx 0`, which the critic can learn to penalize; the other graphs enter
        only as constants (stop-gradient), so the gradient penalty stays per sample. Training
        scores depend on the batch; :meth:`score_dense` uses a fixed reference set instead.
        ``probe [B, F]`` (or None) is added to the features (see :meth:`forward`)."""
        if not self.config.minibatch_distance:
            if probe is not None:
                raise ValueError("feature_probe needs a minibatch-distance critic")
            return h
        b = h.shape[0]
        m, m_others = self._kernel_space(h), self._kernel_space(h.detach())
        # blocks of at most minibatch_others + 1 consecutive graphs: cost linear in B
        blocks = -(-b // (self.config.minibatch_others + 1))
        feature = torch.cat([self._block_feature(part, part_others) for part, part_others
                             in zip(m.tensor_split(blocks), m_others.tensor_split(blocks))])
        if probe is not None:
            feature = feature + probe.to(feature.dtype)
        return torch.cat([h, feature.to(h.dtype)], dim=1)

    def _block_feature(self, m: Tensor, m_others: Tensor) -> Tensor:
        """``[b, F]``: each graph's comparison with the other graphs of its block."""
        if m.shape[0] < 2:
            return m.new_zeros(m.shape[0], self.num_batch_features)
        return self._compare_with_others(m, m_others, exclude_self=True)

    # ---- pipeline use ----------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device | None = None) -> Critic:
        """The network of a run dir, ``ckpt.pt`` or exported model, in eval mode."""
        from molgan.checkpoint import CheckpointError, build_config, load_checkpoint

        device = torch.device(device) if device is not None else torch.device("cpu")
        bundle = load_checkpoint(path, map_location=device)
        state_key, config_key = cls.checkpoint_keys
        if state_key not in bundle:
            raise CheckpointError(f"{path} holds no {cls.__name__} (trained without it?)")
        config = build_config(CriticConfig, bundle[config_key])
        network = cls(config, Vocab.from_dict(bundle["vocab"]))
        network.load_state_dict(bundle[state_key])
        return network.to(device).eval()

    @classmethod
    def pretrained(cls, name: str = "qm9", device: str | torch.device | None = None) -> Critic:
        """The critic shipped inside the package (``'qm9'``), trained by ``molgan train``."""
        from molgan.checkpoint import pretrained_path

        return cls.from_checkpoint(pretrained_path(name), device)

    def _dense_inputs(self, inputs: Any) -> tuple[Tensor, Tensor, list[str | None]]:
        from molgan.convert import mols_to_indices, pyg_to_dense
        from molgan.graph import one_hot_graph

        device = self.mlp[-1].weight.device
        if _is_pyg(inputs):
            x, adj, reasons = pyg_to_dense(inputs, self.vocab)
            return x.to(device), adj.to(device), reasons
        if isinstance(inputs, str):
            inputs = [inputs]
        x_idx, adj_idx, reasons = mols_to_indices(list(inputs), self.vocab)
        x, adj = one_hot_graph(x_idx.to(device), adj_idx.to(device), self.vocab.num_atom_types,
                               self.vocab.num_bond_types)
        return x, adj, reasons

    @torch.no_grad()
    def score(self, inputs: Sequence[Any] | Any, errors: str = "nan",
              return_reasons: bool = False) -> Tensor | tuple[Tensor, list[str | None]]:
        """Scores ``[B]`` of SMILES, RDKit molecules, or a PyG ``Batch`` / list of ``Data``.

        Args:
            inputs: what to score (see :mod:`molgan.convert` for the PyG convention).
            errors: ``'nan'`` gives NaN for molecules that cannot be represented in the
                vocabulary (unparsable, unknown atom, more than ``max_atoms``); ``'raise'``
                raises ``ValueError`` naming the first one.
            return_reasons: also return the reason per input (``None`` when scored).
        """
        x, adj, reasons = self._dense_inputs(inputs)
        scores = self._checked(self.score_dense(x, adj), reasons, errors)
        return (scores, reasons) if return_reasons else scores

    def embed(self, x: Any, adj: Tensor | None = None, errors: str = "nan") -> Tensor:
        """Graph representation ``[B, critic_agg]`` (the gated aggregation's output).

        ``embed(x, adj)`` takes dense tensors ``x [B, N, T]``, ``adj [B, N, N, Y]``;
        ``embed(inputs)`` takes what :meth:`score` takes (NaN rows for unrepresentable ones).
        """
        if adj is not None:
            return self._embed_dense(x, adj)
        with torch.no_grad():
            dense_x, dense_adj, reasons = self._dense_inputs(x)
            return self._checked(self._embed_dense(dense_x, dense_adj), reasons, errors)

    @staticmethod
    def _checked(values: Tensor, reasons: list[str | None], errors: str) -> Tensor:
        if errors not in ("nan", "raise"):
            raise ValueError(f"errors must be 'nan' or 'raise', got {errors!r}")
        bad = [i for i, r in enumerate(reasons) if r is not None]
        if bad and errors == "raise":
            raise ValueError(f"input {bad[0]} cannot be scored: {reasons[bad[0]]}")
        if bad:
            values = values.clone()
            values[bad] = float("nan")
        return values


#: ``c`` of the ``l2`` minibatch kernel :math:`\exp(-(\sqrt{d^2 + c} - \sqrt{c}))`.
L2_KERNEL_SMOOTHING = 0.01


def _euclidean_kernels(m: Tensor, m_others: Tensor, metric: str) -> Tensor:
    r"""``[B, S, K]``: :math:`k(\lVert m_{bk} - o_{sk} \rVert_2^2)` for ``m [B, K, D]`` and
    ``m_others [S, K, D]``, with ``k(d^2) = exp(-d^2)`` (``gaussian``) or
    :math:`\exp(-(\sqrt{d^2 + c} - \sqrt{c}))` (``l2``). One batched matmul over the kernels
    gives every squared distance, with augmented vectors :math:`[m, \lVert m \rVert^2, 1] \cdot
    [-2o, 1, \lVert o \rVert^2] = \lVert m - o \rVert^2`; no ``[B, S, K, D]`` tensor is built.
    Computed in fp32 even under autocast (the expansion cancels badly in bf16); rounding may
    leave a squared distance of equal points slightly below 0, where it is clamped."""
    with torch.autocast(m.device.type, enabled=False):
        squared = _squared_distances(m.float(), m_others.float())
        if metric == "gaussian":
            similarity = torch.exp(-squared)
        else:
            c = L2_KERNEL_SMOOTHING
            similarity = torch.exp(c**0.5 - torch.sqrt(squared + c))
        return similarity.permute(1, 2, 0)


def _squared_distances(m: Tensor, others: Tensor) -> Tensor:
    r"""``[K, B, S]``: :math:`\lVert m_{bk} - o_{sk} \rVert_2^2` for ``m [B, K, D]``,
    ``others [S, K, D]``, by one batched matmul of augmented vectors
    :math:`[m, \lVert m \rVert^2, 1] \cdot [-2o, 1, \lVert o \rVert^2]` (clamped at 0,
    where rounding may leave equal points slightly below)."""
    m, others = m.transpose(0, 1), others.transpose(0, 1)  # [K, B|S, D]
    ones_m, ones_o = m.new_ones(m.shape[:2] + (1,)), others.new_ones(others.shape[:2] + (1,))
    left = torch.cat([m, m.pow(2).sum(-1, keepdim=True), ones_m], dim=-1)
    right = torch.cat([-2 * others, ones_o, others.pow(2).sum(-1, keepdim=True)], dim=-1)
    return torch.bmm(left, right.transpose(1, 2)).clamp_min(0)


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The autocast dtype if autocast is on for ``device_type``, else ``None``."""
    try:
        if torch.is_autocast_enabled(device_type):
            return torch.get_autocast_dtype(device_type)
    except (TypeError, AttributeError):  # torch < 2.4: no per-device query
        return None
    return None


def _is_pyg(inputs: Any) -> bool:
    """A PyG Batch/Data or a list of Data (duck-typed: no torch_geometric import needed)."""
    first = inputs[0] if isinstance(inputs, (list, tuple)) and inputs else inputs
    return hasattr(first, "edge_index") and hasattr(first, "x")
