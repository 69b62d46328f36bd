"""
What the critics think of the two proposals: the Q-values of the IL and the RL actions on given states (e.g. the
demos'), next to the discounted return that was actually obtained from them.

The hybrid keeps its IL policy only where the critics score the IL action higher. Early in training the RL actor is
trained to climb exactly those critics, so its action can be scored above a better IL action (issue 14); these
numbers show whether, and for how long, that happens.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch as th

from sb3_ibrl.data.episodes import Episode
from sb3_ibrl.ibrl.proposals import actor_proposal, min_over_random_subset


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """
    Discounted return to go of every step of one episode, ``G_t = r_t + gamma * G_{t+1}``, counting nothing after
    its last step (exact for an episode that ended by termination, a lower bound for a truncated one).

    :param rewards: rewards ``(T,)``
    :param gamma: discount factor
    :return: returns to go ``(T,)``
    """
    returns = np.zeros(len(rewards), dtype=np.float64)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = float(rewards[t]) + gamma * running
        returns[t] = running
    return returns


def proposal_values(model: Any, episodes: Sequence[Episode]) -> dict[str, float]:
    """
    Score the IL action and the RL actor's (deterministic) action on every state of ``episodes`` (not the final
    observations), with the critics the actor proposal uses and its deterministic scoring.

    :param model: an :class:`~sb3_ibrl.IBRL` model with an IL policy reading the same observations as the RL networks
    :param episodes: the episodes whose states are scored (e.g. the demonstrations)
    :return: ``q_il`` and ``q_rl`` (mean Q-values), ``il_wins`` (fraction of states where the greedy actor proposal
        keeps the IL action), ``q_rl_minus_il`` (mean difference) and ``return`` (mean discounted return to go of the
        episodes' own actions, at the model's gamma: what a correct Q of a policy as good as the demos would be near)
    """
    policy = model.policy
    if policy.il_policy is None:
        raise ValueError("proposal_values needs a model with an IL policy")
    if any(isinstance(ep.obs, dict) for ep in episodes):
        raise ValueError("proposal_values scores vector or image observations, not Dict ones")
    observations = np.concatenate([ep.obs[:-1] for ep in episodes])  # (n_states, *obs_shape)
    returns = np.concatenate([discounted_returns(ep.rews, model.gamma) for ep in episodes])
    training = policy.training
    policy.set_training_mode(False)
    try:
        obs_tensor, _ = policy.obs_to_tensor(observations)
        with th.no_grad():
            encoded = policy.encode(obs_tensor)
            rl_action = policy.actor.act(encoded)  # (n_states, action_dim)
            il_action = policy.il_policy(obs_tensor)  # (n_states, action_dim)
            q_rl, q_il = policy.score_proposals(encoded, rl_action, il_action)  # (n_critics, n_states, 1) each
            q_values = min_over_random_subset(th.stack([q_rl, q_il], dim=1), deterministic=True)  # (2, n_states, 1)
            il_wins = actor_proposal(q_values[0, :, 0], q_values[1, :, 0])  # (n_states,) the greedy choice
    finally:
        policy.set_training_mode(training)
    q_rl_mean, q_il_mean = q_values[0, :, 0].cpu().numpy(), q_values[1, :, 0].cpu().numpy()
    return {
        "q_il": float(q_il_mean.mean()),
        "q_rl": float(q_rl_mean.mean()),
        "q_rl_minus_il": float((q_rl_mean - q_il_mean).mean()),
        "il_wins": float(il_wins.float().mean()),
        "return": float(returns.mean()),
    }
