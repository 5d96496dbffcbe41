r"""MolGAN's property reward: a reward network that learns RDKit rewards, and its RL term.

RDKit's rewards (QED, logP, SA, validity, uniqueness; :mod:`molgan.reward`) are not
differentiable, so a :class:`molgan.reward_net.RewardNet` learns them from real molecules and
argmax-decoded fakes, and the generator follows its gradient: :math:`L_G = \lambda L_{WGAN} +
(1 - \lambda)\,\alpha L_{RL}` (:func:`molgan.loss.combined_generator_loss`). Off unless
``--reward`` names a reward.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from molgan.config import PropertyConfig
from molgan.critic import CriticConfig
from molgan.graph import DenseGraph, argmax_graph
from molgan.reward_net import RewardNet
from molgan.vocab import Vocab

log = logging.getLogger(__name__)


class PropertyRL:
    """The reward function, its network and optimizer; :meth:`update` trains the network,
    :meth:`generator_loss` mixes its predictions into the generator's loss."""

    def __init__(self, config: PropertyConfig, critic_config: CriticConfig, vocab: Vocab,
                 train_smiles: np.ndarray, optimizer: Any, device: torch.device) -> None:
        from molgan.dataset import default_cache_dir
        from molgan.reward import RewardFunction, parse_rewards, property_rewards

        names = parse_rewards(config.reward)
        self.config = config
        self.vocab = vocab
        self.reward_fn = RewardFunction(names)
        self.train_smiles = train_smiles
        if any(n in ("qed", "logp", "sa") for n in names):
            log.info("reward properties of %d training molecules (cached after the first run)",
                     len(train_smiles))
            smiles = train_smiles.tolist()
            self.reward_fn.remember(smiles, property_rewards(smiles, default_cache_dir()))
        net_config = replace(critic_config, minibatch_distance=False)
        self.net = RewardNet(net_config, vocab).to(device)
        self.optimizer = optimizer(self.net.parameters())
        zero = torch.zeros((), device=device)
        self.last: tuple[Tensor, Tensor] = (zero, zero)  # loss_r, mean reward of the fakes
        self.rdkit_seconds = 0.0

    def active(self, step: int) -> bool:
        """Whether the generator update after ``step`` done steps uses the RL term."""
        return self.config.lambda_rl < 1 and step >= self.config.rl_warmup

    def update(self, real: DenseGraph, real_smiles: list[str], fake: DenseGraph,
               autocast: Any) -> None:
        """One reward-network update on a real batch and ``fake`` (relaxed, detached here):
        targets are the RDKit rewards of the real molecules and of the argmax-decoded fakes
        (0 when invalid), the loss their mean squared error. Records ``(loss, mean reward of
        the fakes)`` in :attr:`last`."""
        from molgan.chem import decode_smiles

        fake = DenseGraph(fake.x.detach(), fake.adj.detach())
        x_idx, adj_idx = argmax_graph(fake)
        start = time.perf_counter()
        fake_smiles = decode_smiles(x_idx.cpu().numpy(), adj_idx.cpu().numpy(), self.vocab)
        rewards = np.concatenate([self.reward_fn(real_smiles), self.reward_fn(fake_smiles)])
        self.rdkit_seconds += time.perf_counter() - start
        target = torch.as_tensor(rewards, dtype=torch.float32, device=real.x.device)
        with autocast():
            predicted = self.net(torch.cat([real.x, fake.x]),
                                 torch.cat([real.adj, fake.adj])).float()
        loss = torch.nn.functional.mse_loss(predicted, target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.last = (loss.detach(), target[len(real_smiles):].mean())

    def generator_loss(self, wgan: Tensor, fake: DenseGraph, autocast: Any) -> Tensor:
        """:func:`molgan.loss.combined_generator_loss` of the WGAN loss and the frozen
        network's predicted rewards of ``fake``."""
        from molgan.loss import combined_generator_loss

        self.net.requires_grad_(False)
        try:
            with autocast():
                predicted = self.net(*fake).float()
            return combined_generator_loss(wgan, predicted, self.config.lambda_rl)
        finally:
            self.net.requires_grad_(True)

    def state_dict(self) -> dict[str, Any]:
        return {"reward_config": asdict(self.net.config), "reward_net": self.net.state_dict(),
                "opt_r": self.optimizer.state_dict()}

    def load_state_dict(self, bundle: dict[str, Any]) -> None:
        if "reward_net" not in bundle:
            raise ValueError("the checkpoint has no reward network; --reward cannot be added "
                             "when resuming")
        self.net.load_state_dict(bundle["reward_net"])
        self.optimizer.load_state_dict(bundle["opt_r"])
