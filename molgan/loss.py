r"""WGAN-GP losses (Gulrajani et al. 2017) on dense graphs.

Critic loss, minimized by the critic:

.. math::
    L_D = \mathbb{E}[D(\tilde G)] - \mathbb{E}[D(G)]
          + \lambda\, \mathbb{E}\big[(\lVert \nabla_{\hat G} D(\hat G) \rVert_2 - 1)^2\big]

with :math:`\hat G = \epsilon G + (1 - \epsilon) \tilde G`, one :math:`\epsilon \sim U[0, 1]`
per sample applied to **both** ``X`` and ``A``, and the norm taken per sample over the
gradients with respect to both inputs together. Generator loss: :math:`L_G = -\mathbb{E}[D(\tilde G)]`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from molgan.generator import bond_limits
from molgan.graph import DenseGraph

#: Forms of the valence excess in the generator loss: the excess of the expected valence
#: (:func:`valence_excess`) or the expected excess of a draw (:func:`drawn_valence_excess`).
VALENCE_EXCESS_FORMS = ("mean", "drawn")

CriticFn = Callable[..., Tensor]
"""``critic(x, adj)`` -> scores (``critic(x, adj, groups)`` for a grouped fused loss)."""


def interpolate(real: DenseGraph, fake: DenseGraph, epsilon: Tensor) -> DenseGraph:
    """``eps * real + (1 - eps) * fake`` for ``x`` and ``adj`` with one ``eps [B]`` per sample."""
    e_x = epsilon.view(-1, 1, 1)
    e_adj = epsilon.view(-1, 1, 1, 1)
    return DenseGraph(e_x * real.x + (1 - e_x) * fake.x,
                      e_adj * real.adj + (1 - e_adj) * fake.adj)


def gradient_norms(critic: CriticFn, graph: DenseGraph, functional: bool = False) -> Tensor:
    r"""Per-graph :math:`\lVert \nabla D \rVert_2` over both inputs, ``[B]``, differentiable.

    The input gradients come from ``torch.autograd.grad(..., create_graph=True)``, or with
    ``functional=True`` from ``torch.func.grad``: the same values, and the form that
    ``torch.compile`` can trace into one graph whose backward is then the penalty's double
    backward (it cannot compile ``autograd.grad``).
    """
    if functional:
        def total_score(x: Tensor, adj: Tensor) -> Tensor:
            return critic(x, adj).sum()

        grad_x, grad_adj = torch.func.grad(total_score, argnums=(0, 1))(graph.x.detach(),
                                                                        graph.adj.detach())
    else:
        x = graph.x.detach().requires_grad_(True)
        adj = graph.adj.detach().requires_grad_(True)
        scores = critic(x, adj)
        grad_x, grad_adj = torch.autograd.grad(scores.sum(), (x, adj), create_graph=True)
    b = graph.x.shape[0]
    squared = grad_x.reshape(b, -1).pow(2).sum(1) + grad_adj.reshape(b, -1).pow(2).sum(1)
    return torch.sqrt(squared + 1e-12)


def gradient_penalty(critic: CriticFn, real: DenseGraph, fake: DenseGraph,
                     generator: torch.Generator | None = None,
                     epsilon: Tensor | None = None, functional: bool = False) -> Tensor:
    r""":math:`\mathbb{E}[(\lVert \nabla_{\hat G} D(\hat G) \rVert_2 - 1)^2]`, a scalar.

    ``fake`` should be detached for the critic step. ``epsilon [B] ~ U[0, 1]`` is drawn with
    ``generator`` and shared by ``x`` and ``adj`` of each sample. A given ``epsilon [B]`` is
    used instead of drawing one. ``functional``: see :func:`gradient_norms`.
    """
    if epsilon is None:
        epsilon = torch.rand(real.x.shape[0], generator=generator, device=real.x.device,
                             dtype=real.x.dtype)
    norms = gradient_norms(critic, interpolate(real, fake, epsilon), functional)
    return (norms - 1.0).pow(2).mean()


class InputGradientNorms(NamedTuple):
    """Scores and, per score, the norms of their input gradients (see
    :func:`scores_and_gradient_norms`); a norm not asked for is None."""

    scores: Tensor
    graph: Tensor | None
    features: Tensor | None


def scores_and_gradient_norms(critic: CriticFn, x: Tensor, adj: Tensor, *groups: int,
                              graph: bool = False, num_features: int = 0,
                              functional: bool = False) -> InputGradientNorms:
    r"""Scores ``[B]`` of ``x [B, N, T]``, ``adj [B, N, N, Y]`` from one critic call and, per
    score, differentiable ``[B]``:

    - with ``graph``: :math:`\lVert \nabla_G D \rVert_2`, the gradient with respect to the
      graph itself (``x`` and ``adj`` together), as the gradient penalty takes it;
    - with ``num_features = F > 0``: :math:`\lVert \partial D / \partial f \rVert_2`, the
      gradient with respect to the ``F`` batch features ``f`` of its graphs
      (``Critic.num_batch_features``). The critic is called with ``feature_probe = 0 [B, F]``
      added to them, and the gradient taken with respect to the probe (a backward through
      the critic's output MLP only).

    ``functional``: with ``torch.func`` (the form ``torch.compile`` traces), as in
    :func:`gradient_norms`.
    """
    inputs = ([x.detach(), adj.detach()] if graph else [])
    if num_features:
        inputs.append(x.new_zeros(x.shape[0], num_features))

    def call(*args: Tensor) -> Tensor:
        graph_x, graph_adj = (args[0], args[1]) if graph else (x, adj)
        options = {"feature_probe": args[-1]} if num_features else {}
        return critic(graph_x, graph_adj, *groups, **options)

    if not inputs:
        return InputGradientNorms(call(), None, None)
    if functional:
        def total_score(*args: Tensor) -> tuple[Tensor, Tensor]:
            scores = call(*args)
            return scores.sum(), scores

        grads, scores = torch.func.grad(total_score, argnums=tuple(range(len(inputs))),
                                        has_aux=True)(*inputs)
    else:
        inputs = [t.requires_grad_(True) for t in inputs]
        scores = call(*inputs)
        grads = torch.autograd.grad(scores.sum(), inputs, create_graph=True)

    def norms(parts: Sequence[Tensor]) -> Tensor:
        squared = sum(part.reshape(scores.shape[0], -1).pow(2).sum(1) for part in parts)
        return torch.sqrt(squared + 1e-12)

    return InputGradientNorms(scores, norms(grads[:2]) if graph else None,
                              norms(grads[-1:]) if num_features else None)


def one_sided(norms: Sequence[Tensor]) -> Tensor:
    r""":math:`\mathbb{E}[\max(0, n - 1)^2]` over all given norms: 0 wherever a norm is at
    most 1, so it bounds steepness without pushing a flat critic to be steeper."""
    return (torch.cat(list(norms)) - 1.0).clamp(min=0).pow(2).mean()


class CriticLoss(NamedTuple):
    """The critic objective and its parts (all scalars)."""

    loss: Tensor
    """``E[D(fake)] - E[D(real)] + lambda * gp``: what the critic minimizes."""
    wasserstein: Tensor
    """``E[D(real)] - E[D(fake)]``: the critic's estimate of the Wasserstein distance."""
    gradient_penalty: Tensor
    """``E[(||grad||_2 - 1)^2]`` (before multiplying by lambda)."""
    real_score: Tensor
    """``E[D(real)]``: the level of the scores, which the loss leaves free."""
    feature_penalty: Tensor
    """``E[max(0, ||dD/df|| - 1)^2]`` over the real and fake scores (0 when not computed)."""
    data_penalty: Tensor
    """``E[max(0, ||grad_G D|| - 1)^2]`` over the real and fake scores (0 when not computed)."""


def critic_loss(critic: CriticFn, real: DenseGraph, fake: DenseGraph, lambda_gp: float = 10.0,
                generator: torch.Generator | None = None, epsilon: Tensor | None = None, *,
                grouped: bool = False, feature_penalty: float = 0.0, num_features: int = 0,
                data_penalty: float = 0.0, penalty_critic: CriticFn | None = None,
                steepness_critic: CriticFn | None = None,
                functional_penalty: bool = False) -> CriticLoss:
    r"""The WGAN-GP critic loss; ``fake`` is detached here.

    Real and fake graphs are scored in one critic call on the concatenated batch
    (``[2B, ...]``): fewer, larger ops and the same values, since every graph's score is
    independent of its batch-mates; a critic with a minibatch feature needs ``grouped=True``,
    and is then called as ``critic(x, adj, 2)`` (two groups: reals are compared with reals,
    fakes with fakes). The penalty keeps its own call: putting the interpolates in the same
    batch would make the double backward run over all ``3B`` graphs (1.5x the FLOPs).
    ``epsilon [B]`` (or drawn with ``generator``): see :func:`gradient_penalty`.
    ``penalty_critic`` (default ``critic``) computes the penalty: the same network, unwrapped,
    when ``critic`` is a DistributedDataParallel wrapper (DDP supports ``backward`` but not
    the ``autograd.grad`` of the penalty).

    ``feature_penalty`` (:math:`\mu`, with a critic of ``num_features`` batch features) adds
    :math:`\mu\,\mathbb{E}[\max(0, \lVert \partial D / \partial f \rVert_2 - 1)^2]` over
    the real and the fake scores themselves (:func:`scores_and_gradient_norms`): the
    gradient penalty, taken at interpolates, does not bound how steeply the critic scores
    the real and fake batches by their batch features. ``data_penalty`` (:math:`\nu`) adds
    :math:`\nu\,\mathbb{E}[\max(0, \lVert \nabla_G D \rVert_2 - 1)^2]` over the same
    scores, for the gradient with respect to the graphs: one-sided as the Lipschitz penalty of
    Petzka et al. 2018, and taken at the data themselves, where the gradient penalty never
    looks. Either costs one more (double) backward, over the real and fake graphs. Both come
    from ``critic``'s own scoring call, or, with ``steepness_critic`` (the plain network when
    ``critic`` is a wrapper that cannot take input gradients: DDP, or a compiled module), from
    a second call of that one on the same graphs.

    ``functional_penalty=True`` takes the input gradients with ``torch.func``, so that
    ``torch.compile`` can compile this whole function, penalties included (see
    :func:`gradient_norms`).
    """
    fake = DenseGraph(fake.x.detach(), fake.adj.detach())
    feature_norms: list[Tensor] = []
    data_norms: list[Tensor] = []

    steep_graph = data_penalty > 0
    steep_features = num_features if feature_penalty > 0 else 0

    def score(x: Tensor, adj: Tensor, *groups: int) -> Tensor:
        separate = steepness_critic is not None and (steep_graph or steep_features)
        result = scores_and_gradient_norms(
            steepness_critic if separate else critic, x, adj, *groups, graph=steep_graph,
            num_features=steep_features, functional=functional_penalty)
        if result.features is not None:
            feature_norms.append(result.features)
        if result.graph is not None:
            data_norms.append(result.graph)
        return critic(x, adj, *groups) if separate else result.scores

    both = (torch.cat([real.x, fake.x]), torch.cat([real.adj, fake.adj]))
    scores = score(*both, 2) if grouped else score(*both)
    s_real, s_fake = scores.split(real.x.shape[0])
    real_score = s_real.mean()
    wasserstein = real_score - s_fake.mean()
    penalty = gradient_penalty(penalty_critic or critic, real, fake, generator, epsilon,
                               functional_penalty)
    loss = -wasserstein + lambda_gp * penalty
    steep_at_features = one_sided(feature_norms) if feature_norms else penalty.new_zeros(())
    steep_at_data = one_sided(data_norms) if data_norms else penalty.new_zeros(())
    if feature_norms:
        loss = loss + feature_penalty * steep_at_features
    if data_norms:
        loss = loss + data_penalty * steep_at_data
    return CriticLoss(loss, wasserstein.detach(), penalty.detach(), real_score.detach(),
                      steep_at_features.detach(), steep_at_data.detach())


def generator_loss(critic: CriticFn, fake: DenseGraph) -> Tensor:
    """``-E[D(fake)]``: the generator makes its graphs score high."""
    return -critic(*fake).mean()


def graph_log_prob(fake: DenseGraph, x_idx: Tensor, adj_idx: Tensor,
                   eps: float = 1e-6, max_valence: Tensor | None = None,
                   no_isolated: bool = False) -> Tensor:
    r"""``[B]`` log-probabilities of the graphs ``x_idx [B, N]``, ``adj_idx [B, N, N]`` under
    the factorized categorical distributions ``fake`` (probabilities, ``x [B, N, T]``,
    ``adj [B, N, N, Y]``), each atom slot and each upper-triangle pair independent:

    .. math::
        \log p(G_b) = \sum_i \log p(X_{bi} = x_{bi}) + \sum_{i<j} \log p(A_{bij} = a_{bij}).

    With ``max_valence [T]``, under the valence-respecting draw of
    :func:`molgan.generator.draw_graph` instead: each pair's distribution is renormalized over
    the orders :math:`l_{bij} \le y \le r_{bij}` it could take
    (:func:`molgan.generator.bond_limits`),
    :math:`\log p(A_{bij} = a_{bij}) - \log \sum_{l_{bij} \le y \le r_{bij}} p(A_{bij} = y)`,
    the pairs drawn in row-major order and with ``no_isolated`` as ``draw_graph`` drew them.
    """
    n = fake.adj.shape[1]
    rows, cols = torch.triu_indices(n, n, offset=1, device=fake.adj.device)
    p_x = fake.x.gather(-1, x_idx.long().unsqueeze(-1)).squeeze(-1)
    pairs = fake.adj[:, rows, cols]  # [B, M, Y]
    p_adj = pairs.gather(-1, adj_idx[:, rows, cols].long().unsqueeze(-1)).squeeze(-1)
    log_p_adj = p_adj.float().clamp(min=eps).log()
    if max_valence is not None:
        lowest, highest = bond_limits(x_idx, adj_idx, max_valence, no_isolated)  # [B, M] each
        orders = torch.arange(pairs.shape[-1], device=pairs.device)
        allowed = (orders <= highest.unsqueeze(-1)) & (orders >= lowest.unsqueeze(-1))
        log_p_adj = log_p_adj - (pairs.float() * allowed).sum(-1).clamp(min=eps).log()
    return p_x.float().clamp(min=eps).log().sum(1) + log_p_adj.sum(1)


RL_CREDITS = ("within", "across")
"""Where the diversity RL term's credit goes (:func:`molgan.diversity.sibling_repeats`,
:func:`leave_one_out_advantages`): among the draws of each latent, or across the batch."""


def leave_one_out_advantages(rewards: Tensor, draws: int) -> Tensor:
    r"""Advantages ``[K B]`` of ``rewards [K B]``, ``K = draws`` blocks of ``B`` graphs where
    block ``k`` holds one draw from each of the same ``B`` distributions: each draw's baseline
    is the mean reward of the other ``K - 1`` draws of its distribution (REINFORCE
    leave-one-out, Kool et al. 2019),

    .. math::
        a_{kb} = r_{kb} - \frac{1}{K - 1} \sum_{j \ne k} r_{jb}
               = \frac{K}{K - 1} \big(r_{kb} - \bar r_{\cdot b}\big).

    The baseline does not depend on the draw it is subtracted from, so the policy gradient
    stays unbiased; it removes the part of the reward that the distribution (its latent)
    alone decides. ``draws = 1``: the batch mean as baseline, :math:`a_b = r_b - \bar r`."""
    if draws == 1:
        return rewards - rewards.mean()
    if draws < 1 or rewards.shape[0] % draws:
        raise ValueError(f"{rewards.shape[0]} rewards do not make {draws} blocks")
    blocks = rewards.view(draws, -1)
    return ((blocks - blocks.mean(0)) * (draws / (draws - 1))).reshape(-1)


def policy_gradient(fake: DenseGraph, x_idx: Tensor, adj_idx: Tensor, rewards: Tensor,
                    max_valence: Tensor | None = None, no_isolated: bool = False,
                    draws: int = 1, free: int = 0) -> Tensor:
    r"""REINFORCE surrogate for graphs ``x_idx``, ``adj_idx`` drawn from ``fake``, minimized
    by the generator: :math:`-\frac{1}{B}\sum_b a_b \log p(G_b)` (:func:`graph_log_prob`;
    ``rewards [B]`` are constants) with advantages :math:`a_b = r_b - \bar r`, the batch
    mean as baseline, or with ``draws = K > 1`` (``fake`` is then ``K`` copies of the same
    batch, one draw from each) the leave-one-out baseline of
    :func:`leave_one_out_advantages`. Its gradient is the policy gradient of the expected
    reward: it raises the probability of the drawn graphs that scored above their baseline
    and lowers the others'. ``max_valence``: the graphs were drawn within valences, with
    ``no_isolated`` (see :func:`graph_log_prob`), except the last ``free`` graphs, drawn
    without the constraint (plain categorical log-probabilities)."""
    advantage = leave_one_out_advantages(rewards, draws).detach()
    held = x_idx.shape[0] - free
    log_p = graph_log_prob(fake.rows(slice(held)), x_idx[:held],
                           adj_idx[:held], max_valence=max_valence, no_isolated=no_isolated)
    if free:
        log_p = torch.cat([log_p, graph_log_prob(fake.rows(slice(held, None)),
                                                 x_idx[held:], adj_idx[held:])])
    return -(advantage * log_p).mean()


def valence_excess(fake: DenseGraph, max_valence: Tensor) -> Tensor:
    r"""Expected bond order above each atom's allowed valence, summed over nodes, mean over
    graphs (a scalar, minimized by the generator; 0 for a valid one-hot graph).

    With relaxed :math:`p(A_{ij} = y)`, bond orders :math:`o_y = (0, 1, 2, 3)` and
    ``max_valence [T]`` (:func:`molgan.chem.max_valences`, 0 for "no atom"):

    .. math::
        \mathbb{E}[v_i] = \sum_j \sum_y p(A_{ij} = y)\, o_y, \qquad
        \bar v_i = \sum_t p(X_i = t)\, \mathrm{maxval}_t, \qquad
        L_{val} = \mathbb{E}_G \Big[\sum_i \max(0, \mathbb{E}[v_i] - \bar v_i)\Big].

    Bonds to "no atom" slots count in full (allowed valence 0). A training-time constraint
    inside the generator's objective; samples are never corrected afterwards.
    """
    orders = torch.arange(fake.adj.shape[-1], device=fake.adj.device, dtype=fake.adj.dtype)
    expected = (fake.adj * orders).sum(dim=(2, 3))  # [B, N]
    allowed = fake.x @ max_valence.to(fake.x.dtype)  # [B, N]
    return torch.relu(expected - allowed).sum(1).mean()


def neighbour_atoms(fake: DenseGraph) -> Tensor:
    r"""``[B, N, N]``: the probability :math:`1 - p(X_j = 0)` that slot j holds an atom, for
    every pair ``(i, j)`` with :math:`j \ne i`, and 0 on the diagonal: the factor by which a
    draw from the relaxed fakes' factorized law keeps pair ij's bond (the decoder drops the
    bonds of "no atom" slots, and no atom bonds to itself)."""
    n = fake.x.shape[1]
    present = 1 - fake.x[..., 0]  # [B, N]
    return present.unsqueeze(1) * (1 - torch.eye(n, device=present.device, dtype=present.dtype))


def drawn_valence_excess(fake: DenseGraph, max_valence: Tensor) -> Tensor:
    r"""Expected bond order above the allowed valence of a graph drawn from the relaxed fakes'
    factorized law, summed over the atoms, mean over graphs (a scalar, minimized by the
    generator; 0 for a valid one-hot graph).

    ``molgan sample --valence-draw false --temperature 1`` draws every node type and every
    pair's bond independently from ``fake.x [B, N, T]`` and ``fake.adj [B, N, N, Y]`` and drops
    the bonds of "no atom" slots (type 0). Atom i's drawn valence is then
    :math:`v_i = \sum_{j \ne i} [X_j \ne 0]\, o(A_{ij})` with bond orders
    :math:`o_y = y`, a sum of independent terms with

    .. math::
        P(o_{ij} = y) = (1 - p(X_j = 0))\, p(A_{ij} = y) \quad (y \ge 1),

    and the loss is, with :math:`a_t` = ``max_valence[t]``,

    .. math::
        L = \mathbb{E}_G \Big[\sum_i \sum_{t \ge 1} p(X_i = t)\,
            \mathbb{E}[\max(0, v_i - a_t)]\Big], \qquad
        \mathbb{E}[\max(0, v - a)] = \mathbb{E}[v] - a + \sum_{k < a} (a - k)\, P(v = k),

    exact under that law: :math:`P(v_i = k)` for :math:`k < \max_t a_t` comes from convolving
    the pairs' laws one neighbour at a time. Where every slot holds an atom, Jensen's inequality
    puts it above the excess of the expected valence (:func:`valence_excess`), which is 0 as
    soon as :math:`\mathbb{E}[v_i] \le a`, however often a draw breaks the valence.
    """
    n, y = fake.adj.shape[2], fake.adj.shape[3]
    present = 1 - fake.x[..., 0]  # [B, N]: slot j holds an atom
    others = neighbour_atoms(fake)  # [B, N, N]
    bonded = fake.adj[..., 1:] * others.unsqueeze(-1)  # [B, N, N, Y-1]: P(o_ij = y), y >= 1
    unbonded = 1 - bonded.sum(-1)  # [B, N, N]: P(o_ij = 0)
    limit = max(int(max_valence.max().item()), 1)
    pmf = torch.zeros(*present.shape, limit, device=present.device, dtype=present.dtype)
    pmf[..., 0] = 1  # P(v_i = k) for k < limit, before any neighbour
    for j in range(n):
        step = unbonded[:, :, j, None] * pmf
        for order in range(1, min(y, limit)):
            shifted = torch.nn.functional.pad(pmf[..., :limit - order], (order, 0))
            step = step + bonded[:, :, j, order - 1, None] * shifted
        pmf = step
    orders = torch.arange(1, y, device=present.device, dtype=present.dtype)
    mean = (bonded * orders).sum(dim=(2, 3))  # [B, N]: E[v_i]
    allowed = max_valence.to(present.dtype)  # [T]
    levels = torch.arange(limit, device=present.device, dtype=present.dtype)
    shortfall = torch.relu(allowed.unsqueeze(0) - levels.unsqueeze(1))  # [limit, T]
    excess = mean.unsqueeze(-1) - allowed + pmf @ shortfall  # [B, N, T]: E[max(0, v_i - a_t)]
    return (fake.x[..., 1:] * excess[..., 1:]).sum(dim=(1, 2)).mean()


def drawn_lone_atoms(fake: DenseGraph) -> Tensor:
    r"""Expected number of lone atoms (atoms bonded to no other atom) in a graph drawn from
    the relaxed fakes' factorized law, mean over graphs (a scalar, minimized by the generator;
    0 for a one-hot graph in which every atom has a bond).

    ``molgan sample --valence-draw false --temperature 1`` draws every node type and every
    pair's bond independently from ``fake.x [B, N, T]`` and ``fake.adj [B, N, N, Y]`` and drops
    the bonds of "no atom" slots (type 0). With :math:`a_i = 1 - p(X_i = 0)` and
    :math:`q_{ij} = 1 - p(A_{ij} = 0)`, slot i holds a lone atom with probability

    .. math::
        P(\mathrm{lone}_i) = a_i \prod_{j \ne i} (1 - a_j\, q_{ij}), \qquad
        L = \mathbb{E}_G \Big[\sum_i P(\mathrm{lone}_i)\Big],

    exact under that law: the pairs of slot i and the other slots' types are independent. A
    lone atom beside other atoms makes a molecule in pieces; the term is also 1 for a graph of
    a single atom, which QM9 holds three times in 131k. Unlike the retired
    ``isolation_penalty``, :math:`\sum_i a_i \max(0, 1 - \mathbb{E}[d_i])`, it does not
    vanish once an atom's expected degree reaches 1.

    The value is exact; its gradient does not flow through each lone atom's own presence
    :math:`a_i` (it does through :math:`a_j` and :math:`q_{ij}`), so the generator lowers the
    term by bonding an atom, not by dropping it: with the full gradient, weight 3 (beside
    the drawn valence excess) shrank the molecules to 3.4 heavy atoms on average within
    1,500 steps (docs/ablations.md).
    """
    present = 1 - fake.x[..., 0]  # [B, N]: a_i
    others = neighbour_atoms(fake)  # [B, N, N]: a_j off the diagonal
    unbonded = 1 - (1 - fake.adj[..., 0]) * others  # [B, N, N]: P(no bond from i to an atom j)
    return (present.detach() * unbonded.prod(dim=2)).sum(1).mean()


def pair_log_collisions(first: DenseGraph, second: DenseGraph) -> Tensor:
    r"""Log-probability that a draw from each graph's factorized law gives the same labelled
    graph, for every pair: ``[B1, B2]`` from ``first [B1]`` and ``second [B2]`` (laws over the
    same N slots; float32 whatever the autocast).

    .. math::
        \log c_{ij} = \sum_n \log \langle x_{i,n}, x'_{j,n} \rangle
                     + \sum_{n < m} \log \langle a_{i,nm}, a'_{j,nm} \rangle

    with every node type and every pair's bond drawn independently, as ``molgan sample
    --valence-draw false`` draws them. Bonds of empty slots count as drawn: the decoder drops
    them, which can only merge more graphs, so :math:`c_{ij}` is a lower bound on the chance
    that the two decoded graphs are equal (and on their canonical SMILES being equal).
    """
    n = first.x.shape[1]
    upper = torch.triu_indices(n, n, offset=1, device=first.x.device)
    tiny = torch.finfo(torch.float32).tiny
    atoms = torch.einsum("bnt,cnt->bcn", first.x.float(), second.x.float())
    bonds = torch.einsum("bmy,cmy->bcm", first.adj.float()[:, upper[0], upper[1]],
                         second.adj.float()[:, upper[0], upper[1]])
    return atoms.clamp_min(tiny).log().sum(-1) + bonds.clamp_min(tiny).log().sum(-1)


def drawn_collisions(fake: DenseGraph) -> Tensor:
    r"""Log of the probability that two graphs drawn from different fakes' factorized laws
    are the same labelled graph, over the batch's ordered pairs (a scalar, minimized by the
    generator; 0 for a batch of one graph, where there is no pair):

    .. math::
        C = \log \frac{1}{B(B - 1)} \sum_{i \ne j} c_{ij}

    with :math:`c_{ij}` from :func:`pair_log_collisions`. :math:`e^C` is an unbiased
    estimate, over the batch's independent latents, of the probability that two samples of
    ``molgan sample --valence-draw false`` are the same labelled graph: the duplicates that
    unique@10k counts (``scripts/duplicate_forecast.py`` predicts them from it). Its gradient
    is that of :math:`\log c_{ij}` weighted by each pair's share of the sum, so it pushes
    apart the laws of the pairs likeliest to collide. It can also fall by broadening every
    law (two broad laws rarely draw one graph), which spends validity as a warmer sampling
    temperature does.

    ``fake.x [B, N, T]``, ``fake.adj [B, N, N, Y]``: relaxed fakes (or their laws at a
    temperature, :func:`molgan.generator.temper`).
    """
    batch = fake.x.shape[0]
    if batch < 2:
        return fake.x.sum() * 0.0
    log_c = pair_log_collisions(fake, fake)
    eye = torch.eye(batch, dtype=torch.bool, device=log_c.device)
    pairs = log_c.masked_fill(eye, float("-inf")).flatten()
    return torch.logsumexp(pairs, 0) - math.log(batch * (batch - 1))


def combined_generator_loss(wgan: Tensor, predicted_reward: Tensor, lam: float) -> Tensor:
    r"""MolGAN's generator objective with RL, a scalar:

    .. math::
        L_G = \lambda L_{WGAN} + (1 - \lambda)\, \alpha L_{RL}, \qquad
        L_{RL} = -\mathbb{E}[R(\tilde G)], \qquad \alpha = |L_{WGAN}| / |L_{RL}|

    with :math:`\alpha` a constant (no gradient) that gives the RL term the WGAN term's
    magnitude. ``wgan`` is :func:`generator_loss`, ``predicted_reward [B]`` the reward
    network's output on the generated graphs. ``lam = 1``: WGAN only; ``lam = 0``: RL only.
    """
    rl = -predicted_reward.mean()
    alpha = wgan.detach().abs() / rl.detach().abs().clamp_min(1e-8)
    return lam * wgan + (1 - lam) * alpha * rl
