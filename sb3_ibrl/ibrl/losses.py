"""
The updates of Algorithm 1 as pure functions: the TD target with the bootstrap proposal (line 15), the
critic loss (line 16) and the actor loss (line 19). They read encoded observations, so the encoder
runs once per batch.
"""

from typing import Optional, Union

import torch as th
from torch.nn import functional as F

from sb3_ibrl.ibrl.policies import EnsembleCritic, IBRLActor, q_values_of_two
from sb3_ibrl.ibrl.proposals import bootstrap_proposal, random_subset
from sb3_ibrl.networks.q_networks import Encoded


def td_target(
    next_encoded: Encoded,
    next_il_action: Optional[th.Tensor],
    rewards: th.Tensor,
    dones: th.Tensor,
    discounts: Union[th.Tensor, float],
    actor_target: IBRLActor,
    critic_target: EnsembleCritic,
    target_policy_noise: float,
    target_noise_clip: float,
    bootstrap_beta: Optional[float] = None,
) -> tuple[th.Tensor, th.Tensor]:
    """
    The TD target of Algorithm 1 line 15, with the bootstrap proposal when the IL action is given.

    :param next_encoded: the encoded next observations (online encoder: there is no target encoder)
    :param next_il_action: the IL policy's action for the next observations ``(batch, action_dim)``, or ``None``
        (plain TD3 target)
    :param rewards: n-step returns ``(batch, 1)``
    :param dones: 1 where the n-step transition ended by termination ``(batch, 1)``
    :param discounts: gamma ** (steps taken) ``(batch, 1)``, or gamma
    :param bootstrap_beta: ``None``: bootstrap from the max of the two proposals (paper); else from the one sampled
        from ``softmax(bootstrap_beta * Q)``
    :return: the target ``(batch, 1)`` and the mask of rows that bootstrapped from the IL action ``(batch,)``
    """
    with th.no_grad():
        rl_action = actor_target.act(next_encoded)  # (batch, action_dim)
        noise = (th.randn_like(rl_action) * target_policy_noise).clamp(-target_noise_clip, target_noise_clip)
        next_rl = (rl_action + noise).clamp(-1.0, 1.0)  # (batch, action_dim)
        # Only the 2 drawn critics are evaluated (REDQ): E = 5 costs no more than E = 2 here
        members = random_subset(critic_target.n_critics, 2, next_rl.device)
        if next_il_action is None:
            next_q = critic_target.q_values(next_encoded, next_rl, members).min(dim=0).values  # (batch, 1)
            used_il = th.zeros(len(next_q), dtype=th.bool, device=next_q.device)
        else:
            q_rl, q_il = q_values_of_two(critic_target, next_encoded, next_rl, next_il_action, members)  # (2, batch, 1) each
            next_q_rl, next_q_il = q_rl.min(dim=0).values, q_il.min(dim=0).values  # (batch, 1) each
            next_q, used_il = bootstrap_proposal(next_q_rl, next_q_il, bootstrap_beta)  # (batch, 1), (batch,)
        return rewards + (1.0 - dones) * discounts * next_q, used_il


def critic_loss(
    critic: EnsembleCritic, encoded: Encoded, actions: th.Tensor, target_q: th.Tensor
) -> tuple[th.Tensor, th.Tensor]:
    """
    Algorithm 1 line 16: sum over the E critics of the mean squared TD error (its gradients train the encoder too).

    :return: the loss and the current Q-values ``(n_critics, batch, 1)``
    """
    current_q = critic.q_values(encoded, actions)  # (n_critics, batch, 1)
    loss = F.mse_loss(current_q, target_q.expand_as(current_q), reduction="none").mean(dim=(1, 2)).sum()
    return loss, current_q


def actor_loss(actor: IBRLActor, critic: EnsembleCritic, encoded: Encoded, q_reduction: str = "min") -> th.Tensor:
    """
    Algorithm 1 line 19: maximize the min over all E critics of Q(s, pi(s)) (``q_reduction="mean"``: the mean).
    The encoded observations are detached: the actor loss trains neither the critics nor the encoder.
    """
    encoded = encoded.detach()
    critic.requires_grad_(False)  # gradients flow through the critics to the actions, not into their weights
    try:
        q_values = critic.q_values(encoded, actor.act(encoded))  # (n_critics, batch, 1)
    finally:
        critic.requires_grad_(True)
    q_values = q_values.min(dim=0).values if q_reduction == "min" else q_values.mean(dim=0)  # (batch, 1)
    return -q_values.mean()
