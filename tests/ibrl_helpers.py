"""Small IBRL models and stand-in networks shared by the tests."""

import torch as th
from torch import nn

from sb3_ibrl import IBRL
from sb3_ibrl.networks.q_networks import Encoded

SMALL = dict(net_arch=[32, 32])


def small_ibrl(env="Pendulum-v1", **kwargs) -> IBRL:
    params = dict(policy_kwargs=SMALL, learning_starts=50, batch_size=32, gradient_steps=2, policy_delay=2, seed=0)
    params.update(kwargs)
    return IBRL("MlpPolicy", env, **params)


class FlattenEncoder(nn.Module):
    def forward(self, obs: th.Tensor) -> Encoded:
        return Encoded(obs.float(), None)

    def augment(self, obs: th.Tensor) -> th.Tensor:
        return obs
