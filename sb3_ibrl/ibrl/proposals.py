"""
The two ideas of IBRL (paper Sec. 4, Algorithm 1), each one short function.

- Actor proposal (Eq. 1, Alg. 1 line 9): when acting, execute whichever of the RL action and the
  IL action has the higher Q-value.
- Bootstrap proposal (Eq. 2, Alg. 1 line 15): in the TD target, bootstrap from whichever of the
  target actor's action and the IL action has the higher target Q-value.

Both choices can be soft instead of greedy (the authors' release for state tasks, and PEX, Zhang et al., ICLR 2023):
sample the proposal from ``softmax(beta * Q)``.

Q-values are scored with the min over a random subset of 2 of the E critics (REDQ), see
:func:`min_over_random_subset`.
"""

from typing import Optional

import torch as th


def random_subset(n_critics: int, subset_size: int = 2, device: th.device | str = "cpu") -> Optional[th.Tensor]:
    """
    Indices of a random subset of the critics (REDQ), or ``None`` (all of them) when there are no more than ``subset_size``.

    :param n_critics: ensemble size E
    :param subset_size: how many critics to draw
    :param device: device of the indices
    :return: ``subset_size`` distinct indices, or ``None``
    """
    if n_critics <= subset_size:
        return None
    return th.randperm(n_critics, device=device)[:subset_size]


def min_over_random_subset(q_values: th.Tensor, subset_size: int = 2, deterministic: bool = False) -> th.Tensor:
    """
    Min over a random subset of the ensemble (one subset for the whole batch, as Alg. 1 lines 8 and 14).

    :param q_values: Q-values of every critic, shape ``(n_critics, ...)``
    :param subset_size: how many critics to draw (2 in the paper); all of them when ``n_critics`` is smaller
    :param deterministic: return the expectation over subsets instead of one draw: the mean, over every
        subset of ``subset_size`` critics, of the min (same as one draw when ``n_critics <= subset_size``)
    :return: the min over the drawn critics, shape ``(...)``
    """
    n_critics = q_values.shape[0]
    if n_critics <= subset_size:
        return q_values.min(dim=0).values
    if deterministic:
        subsets = th.combinations(th.arange(n_critics, device=q_values.device), subset_size)  # (n_subsets, subset_size)
        return q_values[subsets].min(dim=1).values.mean(dim=0)
    return q_values[random_subset(n_critics, subset_size, q_values.device)].min(dim=0).values


def actor_proposal(q_rl: th.Tensor, q_il: th.Tensor, beta: Optional[float] = None) -> th.Tensor:
    """
    Choose, row by row, between the RL and the IL action (paper Eq. 1).

    :param q_rl: Q-value of the RL action, shape ``(batch,)``
    :param q_il: Q-value of the IL action, shape ``(batch,)``
    :param beta: ``None`` for the greedy argmax (paper); otherwise sample from ``softmax(beta * [q_rl, q_il])``
        (the authors' release for state-based tasks, beta = 10)
    :return: boolean mask, shape ``(batch,)``: ``True`` where the IL action is taken (ties go to RL)
    """
    if beta is None:
        return q_il > q_rl
    probs = th.softmax(beta * th.stack([q_rl, q_il], dim=-1), dim=-1)  # (batch, 2)
    return th.multinomial(probs, num_samples=1).squeeze(-1) == 1


def confident_proposal(q_rl: th.Tensor, q_il: th.Tensor, confidence: float) -> th.Tensor:
    """
    The actor proposal that keeps the IL action unless the critics agree that the RL action is better: the RL
    action is taken only where the mean over the E critics of ``Q(s, a_RL) - Q(s, a_IL)`` exceeds ``confidence``
    times its standard deviation over the critics (a lower confidence bound on the RL action's advantage, scale-free).

    The greedy choice (Eq. 1) takes the RL action on any positive difference, however small; early in training the
    actor is trained to climb the very critics that score it, and the critics barely tell the two actions apart,
    so the hybrid flips between them and abandons a good IL policy (issue 14). Keeping the baseline policy wherever
    an improvement is not certain is the idea of safe policy improvement with baseline bootstrapping (SPIBB, Laroche
    et al., ICML 2019); the ensemble's spread as the uncertainty is that of SUNRISE (Lee et al., ICML 2021).

    :param q_rl: Q-values of the RL action by every critic, shape ``(n_critics, batch)``
    :param q_il: Q-values of the IL action by every critic, shape ``(n_critics, batch)``
    :param confidence: the number of standard deviations, ``k >= 0``; ``float("inf")``: the IL action everywhere
        (what the deployed hybrid does until it has matched its IL policy, with ``proposal_confidence=float("inf")``)
    :return: boolean mask, shape ``(batch,)``: ``True`` where the IL action is taken
    """
    if confidence == float("inf"):  # (inf * a zero spread would be NaN)
        return th.ones(q_rl.shape[1:], dtype=th.bool, device=q_rl.device)
    advantage = q_rl - q_il  # (n_critics, batch)
    spread = advantage.std(dim=0) if len(advantage) > 1 else th.zeros_like(advantage[0])  # (batch,)
    return ~(advantage.mean(dim=0) > confidence * spread)


def bootstrap_proposal(
    next_q_rl: th.Tensor, next_q_il: th.Tensor, beta: Optional[float] = None
) -> tuple[th.Tensor, th.Tensor]:
    """
    Value to bootstrap from at the next state: the better of the two proposals (paper Eq. 2).

    :param next_q_rl: target Q-value of the target actor's (noisy) action, shape ``(batch, 1)``
    :param next_q_il: target Q-value of the IL action, shape ``(batch, 1)``
    :param beta: ``None`` for the max (paper); otherwise the value of the proposal sampled from
        ``softmax(beta * [next_q_rl, next_q_il])`` (the authors' release for state-based tasks, beta = 10)
    :return: the value, shape ``(batch, 1)`` (``max(next_q_rl, next_q_il)`` when greedy), and the mask of rows
        that bootstrapped from the IL action, shape ``(batch,)``
    """
    use_il = actor_proposal(next_q_rl[:, 0], next_q_il[:, 0], beta)  # (batch,)
    return th.where(use_il[:, None], next_q_il, next_q_rl), use_il
