"""
Network building blocks of IBRL: a vectorized ensemble MLP (all E critics in one batched matmul
per layer, no Python loop over modules) and the actor MLP with LayerNorm and dropout.
"""

import math

import torch as th
from torch import nn
from torch.nn import functional as F


class EnsembleLinear(nn.Module):
    """
    ``n_members`` independent linear layers evaluated in one ``baddbmm``.

    :param n_members: ensemble size E
    :param in_features: input size
    :param out_features: output size
    """

    def __init__(self, n_members: int, in_features: int, out_features: int):
        super().__init__()
        self.n_members, self.in_features, self.out_features = n_members, in_features, out_features
        self.weight = nn.Parameter(th.empty(n_members, in_features, out_features))
        self.bias = nn.Parameter(th.empty(n_members, 1, out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Same distribution as ``nn.Linear``'s default, drawn independently for every member
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: th.Tensor) -> th.Tensor:
        # (E, batch, in) -> (E, batch, out)
        return th.baddbmm(self.bias, x, self.weight)

    def extra_repr(self) -> str:
        return f"n_members={self.n_members}, in_features={self.in_features}, out_features={self.out_features}"


class EnsembleLayerNorm(nn.Module):
    """
    LayerNorm with separate affine parameters for every ensemble member.

    :param n_members: ensemble size E
    :param features: normalized size
    """

    def __init__(self, n_members: int, features: int):
        super().__init__()
        self.features = features
        self.weight = nn.Parameter(th.ones(n_members, 1, features))
        self.bias = nn.Parameter(th.zeros(n_members, 1, features))

    def forward(self, x: th.Tensor) -> th.Tensor:
        # (E, batch, features) -> (E, batch, features)
        return F.layer_norm(x, (self.features,)) * self.weight + self.bias


def ensemble_mlp(
    n_members: int,
    input_dim: int,
    output_dim: int,
    net_arch: list[int],
    activation_fn: type[nn.Module] = nn.ReLU,
    layer_norm: bool = True,
) -> nn.Sequential:
    """
    E independent MLPs ``[Linear -> LayerNorm -> activation] x len(net_arch) -> Linear`` as one module
    mapping ``(E, batch, input_dim)`` to ``(E, batch, output_dim)``.

    :param n_members: ensemble size E
    :param input_dim: input size
    :param output_dim: output size
    :param net_arch: hidden sizes
    :param activation_fn: activation
    :param layer_norm: whether to put a LayerNorm after every hidden linear layer
    :return: the ensemble
    """
    layers: list[nn.Module] = []
    last_dim = input_dim
    for hidden_dim in net_arch:
        layers.append(EnsembleLinear(n_members, last_dim, hidden_dim))
        if layer_norm:
            layers.append(EnsembleLayerNorm(n_members, hidden_dim))
        layers.append(activation_fn())
        last_dim = hidden_dim
    layers.append(EnsembleLinear(n_members, last_dim, output_dim))
    return nn.Sequential(*layers)


def dropout_mlp(
    input_dim: int,
    output_dim: int,
    net_arch: list[int],
    activation_fn: type[nn.Module] = nn.ReLU,
    dropout: float = 0.5,
    layer_norm: bool = True,
    squash_output: bool = True,
) -> nn.Sequential:
    """
    The IBRL actor MLP: ``[Linear -> LayerNorm -> Dropout -> activation] x len(net_arch) -> Linear -> Tanh``.

    :param input_dim: input size
    :param output_dim: output size (the action dimension)
    :param net_arch: hidden sizes
    :param activation_fn: activation
    :param dropout: dropout probability after every hidden layer (0 disables it)
    :param layer_norm: whether to put a LayerNorm after every hidden linear layer
    :param squash_output: whether to end with a Tanh
    :return: the MLP
    """
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    layers: list[nn.Module] = []
    last_dim = input_dim
    for hidden_dim in net_arch:
        layers.append(nn.Linear(last_dim, hidden_dim))
        if layer_norm:
            layers.append(nn.LayerNorm(hidden_dim))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(activation_fn())
        last_dim = hidden_dim
    layers.append(nn.Linear(last_dim, output_dim))
    if squash_output:
        layers.append(nn.Tanh())
    return nn.Sequential(*layers)
