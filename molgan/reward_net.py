"""MolGAN's reward network: the critic's architecture with a sigmoid output.

``R(x, adj) -> [B]`` in ``(0, 1)`` learns to predict the RDKit reward (:mod:`molgan.reward`) of
a graph, so the generator can follow its gradient (RDKit itself is not differentiable). It is
trained by ``molgan train --reward ...`` on real and generated graphs, saved in the checkpoint
next to the critic, and imported like it::

    from molgan.reward_net import RewardNet
    net = RewardNet.from_checkpoint("runs/qed")
    net.score(["CCO", "c1ccccc1O"])        # predicted rewards, NaN where not representable
"""

from __future__ import annotations

import torch
from torch import Tensor

from molgan.critic import Critic, CriticConfig
from molgan.vocab import Vocab


class RewardNet(Critic):
    """Critic body (relational GCN, gated aggregation, tanh MLP) -> sigmoid: one reward per
    graph. Always without batch features, so a graph's reward never depends on
    its batch-mates; :meth:`score`, :meth:`embed` and :meth:`from_checkpoint` work as for
    :class:`~molgan.critic.Critic`."""

    checkpoint_keys = ("reward_net", "reward_config")

    def __init__(self, config: CriticConfig, vocab: Vocab) -> None:
        if config.minibatch_distance:
            raise ValueError("the reward network scores single graphs (no batch feature)")
        super().__init__(config, vocab)

    def forward(self, x: Tensor, adj: Tensor, groups: int = 1) -> Tensor:
        """Predicted rewards ``[B]`` in ``(0, 1)`` of ``x [B, N, T]``, ``adj [B, N, N, Y]``."""
        return torch.sigmoid(super().forward(x, adj, groups))

    def score_dense(self, x: Tensor, adj: Tensor) -> Tensor:
        """Same as :meth:`forward` (one reward per graph)."""
        return self.forward(x, adj)

    @classmethod
    def pretrained(cls, name: str = "qm9", device: str | torch.device | None = None) -> Critic:
        raise NotImplementedError("no pretrained reward network is shipped; train one with "
                                  "`molgan train --reward ...` and use RewardNet.from_checkpoint")
