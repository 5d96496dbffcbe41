"""The graph critic: relational GCN -> gated aggregation -> MLP -> one unbounded score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from molgan.l1_kernel import l1_kernel_sums
from molgan.layers import GraphAggregation, RelationalGraphConv, closed_walk_features
from molgan.vocab import Vocab


@dataclass
class CriticConfig:
    """Critic hyperparameters (``T`` and ``Y`` come from the vocabulary)."""

    critic_conv: tuple[int, ...] = (128, 64)
    """Widths of the relational graph convolutions."""
    critic_agg: int = 128
    """Width of the aggregated graph representation."""
    critic_mlp: tuple[int, ...] = (128, 64)
    """Widths of the MLP on the graph representation (tanh)."""
    critic_walks: int = 0
    """Longest closed walk whose weight each node's annotations carry (0 = none; 6 covers
    rings of 3 to 6 atoms). Closed walks by length, over any bond and with a sign per multiple
    bond, let the critic see ring sizes and alternating (Kekule) rings, which its
    convolutions cannot (layers.closed_walk_features)."""
    #: What runs saved before a field existed used (see checkpoint.build_config).
    ABSENT_IN_OLDER_RUNS: ClassVar[dict[str, Any]] = {"minibatch_distance": False,
                                                       "minibatch_kernels": 0}

    minibatch_distance: bool = True
    """Append each graph's mean L1 distance to the other graphs of its batch (others detached)."""
    minibatch_kernels: int = 16
    """Learned minibatch kernels exp(-L1) on projections (Salimans et al. 2016), averaged over
    the others. With minibatch_distance; 0 = one feature, the mean L1 distance."""
    minibatch_kernel_dim: int = 8
    """Projection size of each minibatch kernel."""
    minibatch_others: int = 128
    """Batch-mates each graph is compared with at most. A larger batch is cut into near-equal
    blocks of consecutive graphs, so the feature's cost grows linearly with the batch size."""
    reference_size: int = 256
    """Real graphs kept in a minibatch-distance critic for pipeline scores. Pipeline scores
    (score, score_dense) measure the distance to them instead of to batch-mates."""


class Critic(nn.Module):
    r"""WGAN critic ``D(x, adj) -> [B]``: unbounded scores, no batch norm, no sigmoid.

    Each convolution sees the node annotations concatenated to the previous layer's output
    (as in MolGAN): :math:`h^{(l+1)} = \mathrm{RGCN}([h^{(l)}, x], A_{1:})`, where ``A_{1:}``
    drops the no-bond channel. Node weights :math:`m_i = 1 - x_{i0}` (the probability that node
    ``i`` is an atom) multiply every node's input and output, so padded nodes contribute nothing
    and relaxed graphs are weighted softly. The gated aggregation sums over nodes, so the score
    is invariant to node order and a graph's score does not depend on its batch-mates (which
    the per-sample gradient penalty requires). With ``critic_walks = L``, ``x`` is extended by
    each node's closed-walk features of lengths 2..L (:func:`molgan.layers.closed_walk_features`),
    functions of the soft adjacency, so the gradient penalty sees them too.
    """

    #: Keys of this network's weights and config in a checkpoint bundle.
    checkpoint_keys: tuple[str, str] = ("critic", "critic_config")

    def __init__(self, config: CriticConfig, vocab: Vocab) -> None:
        super().__init__()
        self.config = config
        self.vocab = vocab
        t, relations = vocab.num_atom_types, vocab.num_bond_types - 1
        t += self.num_walk_features
        convs = []
        width = 0
        for out in config.critic_conv:
            convs.append(RelationalGraphConv(width + t, out, relations))
            width = out
        self.convs = nn.ModuleList(convs)
        self.aggregate = GraphAggregation(width + t, config.critic_agg)
        mlp: list[nn.Module] = []
        width = config.critic_agg + self.num_batch_features
        for hidden in config.critic_mlp:
            mlp += [nn.Linear(width, hidden), nn.Tanh()]
            width = hidden
        mlp.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*mlp)
        if config.minibatch_distance and config.minibatch_kernels > 0:
            self.kernel_projection = nn.Linear(
                config.critic_agg, config.minibatch_kernels * config.minibatch_kernel_dim,
                bias=False)
        if config.minibatch_distance:
            k, n = config.reference_size, vocab.max_atoms
            self.register_buffer("reference_x", torch.zeros(k, n, dtype=torch.uint8))
            self.register_buffer("reference_adj", torch.zeros(k, n, n, dtype=torch.uint8))
    @property
    def num_walk_features(self) -> int:
        """Closed-walk features appended to each node's annotations (0 without critic_walks)."""
        return 2 * (self.config.critic_walks - 1) if self.config.critic_walks else 0

    @property
    def num_batch_features(self) -> int:
        """Features a minibatch-distance critic appends to each representation from the other
        graphs of its batch (0 without minibatch_distance): the size of ``feature_probe``."""
        if not self.config.minibatch_distance:
            return 0
        return max(1, self.config.minibatch_kernels)

    def _kernel_space(self, h: Tensor) -> Tensor:
        r"""What the batch feature compares: ``h [B, D]`` itself, or with kernels the
        projections :math:`M = h\,T` as ``[B, kernels, kernel_dim]``."""
        if self.config.minibatch_kernels == 0:
            return h
        return self.kernel_projection(h).view(
            h.shape[0], self.config.minibatch_kernels, self.config.minibatch_kernel_dim)

    def _compare_with_others(self, m: Tensor, m_others: Tensor, exclude_self: bool) -> Tensor:
        r"""``[B, F]``: each of ``m [B, ...]`` (from :meth:`_kernel_space`) compared with each
        of the ``S`` graphs of ``m_others [S, ...]`` and averaged over them: the mean absolute
        difference of representations (``F = 1``), or per kernel :math:`\exp(-\lVert M_i -
        M_j \rVert_1)` (``F = kernels``, by :mod:`molgan.l1_kernel`: no ``[B, S, K, D]``
        tensor is kept). With ``exclude_self`` (batch-mates: graph ``i`` is other ``i``), each
        graph's comparison with its own detached copy, a constant (distance 0, kernel 1) with
        zero gradient, is left out of the mean."""
        others = m_others.shape[0]
        if self.config.minibatch_kernels > 0:
            sums = l1_kernel_sums(m, m_others)
            return (sums - 1.0) / (others - 1) if exclude_self else sums / others
        distance = (m.unsqueeze(1) - m_others.unsqueeze(0)).abs().mean(-1, keepdim=True)
        return distance.sum(1) / (others - 1) if exclude_self else distance.mean(1)

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
        if self.config.critic_walks:
            x = torch.cat([x, closed_walk_features(bonds, node_weight,
                                                       self.config.critic_walks)], dim=-1)
        h = x.new_zeros(x.shape[0], x.shape[1], 0)
        for conv in self.convs:
            h = conv(torch.cat([h, x], dim=-1) * weight, bonds, node_weight)
        return self.aggregate(torch.cat([h, x], dim=-1) * weight, node_weight)

    def forward(self, x: Tensor, adj: Tensor, groups: int = 1,
                feature_probe: Tensor | None = None) -> Tensor:
        """Scores ``[B]`` of graphs ``x [B, N, T]``, ``adj [B, N, N, Y]`` (one-hot or
        relaxed). ``groups``: the batch is that many equal batches side by side (real and
        fake in one call): a minibatch feature compares each graph only with its own batch.
        ``feature_probe [B, num_batch_features]`` (zeros) is added to the batch features, so
        that the gradient of the scores with respect to it is their gradient with respect to
        those features (see loss.scores_and_gradient_norms)."""
        h = self._embed_dense(x, adj)
        if h.shape[0] % groups:
            raise ValueError(f"batch of {h.shape[0]} graphs cannot form {groups} groups")
        probes = (feature_probe.chunk(groups) if feature_probe is not None
                  else (None,) * groups)
        h = torch.cat([self._with_batch_feature(part, probe)
                       for part, probe in zip(h.chunk(groups), probes)])
        return self.mlp(h).squeeze(-1)

    def score_dense(self, x: Tensor, adj: Tensor) -> Tensor:
        """One score per graph ``[B]`` that never depends on its batch-mates: a
        minibatch-distance critic measures each graph's distance to its stored reference set
        of real graphs (in training, a batch of real graphs plays that part)."""
        h = self._embed_dense(x, adj)
        if self.config.minibatch_distance:
            from molgan.graph import one_hot_graph

            reference = one_hot_graph(self.reference_x, self.reference_adj, x.shape[-1],
                                      adj.shape[-1], dtype=x.dtype)
            h_ref = self._embed_dense(*reference)
            feature = self._compare_with_others(self._kernel_space(h),
                                                self._kernel_space(h_ref), exclude_self=False)
            h = torch.cat([h, feature.to(h.dtype)], dim=1)
        return self.mlp(h).squeeze(-1)

    def _with_batch_feature(self, h: Tensor, probe: Tensor | None = None) -> Tensor:
        r"""With ``minibatch_distance``: append :math:`d_i = \frac{1}{B-1} \sum_{j \ne i}
        \overline{|h_i - \mathrm{sg}(h_j)|}` to each representation (with kernels, the mean
        of each kernel over the others, see :meth:`_compare_with_others`; beyond
        ``minibatch_others + 1``
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
        from molgan.checkpoint import (
            CheckpointError,
            build_config,
            bundle_contents,
            load_checkpoint,
        )

        device = torch.device(device) if device is not None else torch.device("cpu")
        bundle = load_checkpoint(path, map_location=device)
        state_key, config_key = cls.checkpoint_keys
        if state_key not in bundle:
            raise CheckpointError(f"{path} holds no {cls.__name__} (trained without it?)")
        with bundle_contents(path):
            config = build_config(CriticConfig, bundle[config_key])
            network = cls(config, Vocab.from_dict(bundle["vocab"]))
            network.load_state_dict(bundle[state_key])
        return network.to(device).eval()

    @classmethod
    def pretrained(cls, name: str = "qm9", device: str | torch.device | None = None) -> Critic:
        """The critic shipped inside the package (``'qm9'`` or ``'moses'``), trained by
        ``molgan train``."""
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
        if x.shape[0] == 0:  # nothing to score
            empty = x.new_zeros(0)
            return (empty, reasons) if return_reasons else empty
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
