"""
The two ideas of IBRL (paper Sec. 4, Algorithm 1), each one short function.

- Actor proposal (Eq. 1, Alg. 1 line 9): when acting, execute whichever of the RL action and the
  IL action has the higher Q-value.
- Bootstrap proposal (Eq. 2, Alg. 1 line 15): in the TD target, bootstrap from whichever of the
  target actor's action and the IL action has the higher target Q-value.

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


def bootstrap_proposal(next_q_rl: th.Tensor, next_q_il: th.Tensor) -> th.Tensor:
    """
    Value to bootstrap from at the next state: the better of the two proposals (paper Eq. 2).

    :param next_q_rl: target Q-value of the target actor's (noisy) action, shape ``(batch, 1)``
    :param next_q_il: target Q-value of the IL action, shape ``(batch, 1)``
    :return: ``max(next_q_rl, next_q_il)``, shape ``(batch, 1)``
    """
    return th.maximum(next_q_rl, next_q_il)
