"""
IBRL's critics: E Q-networks after the observation encoder they own, evaluated in one batched pass, and the
scoring of the two proposals (RL and IL actions) by them.
"""

from collections.abc import Iterator
from typing import Optional

import torch as th
from stable_baselines3.common.type_aliases import PyTorchObs
from torch import nn

from sb3_ibrl.networks.q_networks import Encoded, ObservationEncoder


class EnsembleCritic(nn.Module):
    """
    E Q-networks evaluated in one batched forward pass, after the observation encoder they own.

    :param encoder: the observation encoder (trained by the critic loss)
    :param head: the ensemble Q head (:class:`MLPQHead` or :class:`ViTQHead`)
    :param n_critics: ensemble size E
    :param owns_encoder: ``False`` for the target critics, which hold a reference to the online encoder
    """

    def __init__(self, encoder: ObservationEncoder, head: nn.Module, n_critics: int, owns_encoder: bool = True):
        super().__init__()
        if owns_encoder:
            self.encoder = encoder
        else:
            object.__setattr__(self, "encoder", encoder)
        self.head, self.n_critics = head, n_critics
        self.optimizer: th.optim.Optimizer

    def q_values(self, encoded: Encoded, actions: th.Tensor, members: Optional[th.Tensor] = None) -> th.Tensor:
        """
        :param encoded: encoded observations (``batch`` rows)
        :param actions: actions in ``[-1, 1]``, ``(batch, action_dim)`` or ``(K, batch, action_dim)`` (K candidates)
        :param members: indices of the critics to evaluate (all when ``None``)
        :return: Q-values ``(n_members, batch, 1)`` or ``(n_members, K, batch, 1)``
        """
        return self.head(encoded, actions, members)

    def forward(self, obs: PyTorchObs, actions: th.Tensor, members: Optional[th.Tensor] = None) -> th.Tensor:
        return self.q_values(self.encoder(obs), actions, members)  # (n_members, batch, 1)

    def target_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters that have target copies: the head's (there is no target encoder)."""
        return self.head.parameters()

    def set_training_mode(self, mode: bool) -> None:
        self.train(mode)


def q_values_of_two(
    critic: EnsembleCritic, encoded: Encoded, first: th.Tensor, second: th.Tensor, members: Optional[th.Tensor] = None
) -> tuple[th.Tensor, th.Tensor]:
    """
    Q-values of two candidate actions for the same observations, encoded once (both proposals use it).

    :param critic: the (online or target) critics
    :param encoded: encoded observations
    :param first: first candidate actions ``(batch, action_dim)`` (the RL action)
    :param second: second candidate actions ``(batch, action_dim)`` (the IL action)
    :param members: indices of the critics to evaluate (all when ``None``)
    :return: the Q-values of each candidate, ``(n_members, batch, 1)`` each
    """
    q_values = critic.q_values(encoded, th.stack([first, second]), members)  # (n_members, 2, batch, 1)
    return q_values[:, 0], q_values[:, 1]
