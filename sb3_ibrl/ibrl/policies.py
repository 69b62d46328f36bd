"""
IBRL policies: TD3's policy with a dropout + LayerNorm actor, a vectorized ensemble of E critics
(LayerNorm), and hybrid acting (the actor proposal) when a frozen IL policy is attached.
"""

from typing import Any, Optional, Union

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BaseModel
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.td3.policies import Actor, TD3Policy
from torch import nn

from sb3_ibrl.common.il import FrozenILPolicy
from sb3_ibrl.common.networks import dropout_mlp, ensemble_mlp
from sb3_ibrl.ibrl.proposals import actor_proposal, min_over_random_subset


class IBRLActor(Actor):
    """
    TD3 actor with LayerNorm and dropout in every hidden layer (paper Sec. 4.1).

    :param observation_space: observation space
    :param action_space: action space
    :param net_arch: hidden sizes
    :param features_extractor: features extractor
    :param features_dim: number of features
    :param activation_fn: activation function
    :param normalize_images: whether to divide images by 255
    :param dropout: dropout probability (0.5 in the paper)
    :param layer_norm: whether to use LayerNorm
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: nn.Module,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        dropout: float = 0.5,
        layer_norm: bool = True,
    ):
        super().__init__(
            observation_space, action_space, net_arch, features_extractor, features_dim, activation_fn, normalize_images
        )
        self.dropout, self.layer_norm = dropout, layer_norm
        self.mu = dropout_mlp(features_dim, get_action_dim(action_space), net_arch, activation_fn, dropout, layer_norm)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(dropout=self.dropout, layer_norm=self.layer_norm)
        return data


class EnsembleCritic(BaseModel):
    """
    E Q-networks evaluated in one batched forward pass.

    :param observation_space: observation space
    :param action_space: action space
    :param net_arch: hidden sizes of every Q-network
    :param features_extractor: features extractor
    :param features_dim: number of features
    :param activation_fn: activation function
    :param normalize_images: whether to divide images by 255
    :param n_critics: ensemble size E (paper: 5 for states, 2 for pixels)
    :param share_features_extractor: whether the features extractor is shared with the actor
    :param layer_norm: whether to use LayerNorm
    """

    features_extractor: BaseFeaturesExtractor

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        n_critics: int = 5,
        share_features_extractor: bool = False,
        layer_norm: bool = True,
    ):
        super().__init__(
            observation_space, action_space, features_extractor=features_extractor, normalize_images=normalize_images
        )
        if n_critics < 1:
            raise ValueError(f"n_critics must be >= 1, got {n_critics}")
        self.n_critics = n_critics
        self.share_features_extractor = share_features_extractor
        self.q_networks = ensemble_mlp(
            n_critics, features_dim + get_action_dim(action_space), 1, net_arch, activation_fn, layer_norm
        )

    def forward(self, obs: th.Tensor, actions: th.Tensor, members: Optional[th.Tensor] = None) -> th.Tensor:
        """
        :param obs: observations, ``(batch, *obs_shape)``
        :param actions: actions in ``[-1, 1]``, ``(batch, action_dim)``
        :param members: indices of the critics to evaluate (all when ``None``)
        :return: Q-values of every (selected) critic, ``(n_critics or len(members), batch, 1)``
        """
        with th.set_grad_enabled(not self.share_features_extractor and th.is_grad_enabled()):
            features = self.extract_features(obs, self.features_extractor)
        qvalue_input = th.cat([features, actions], dim=1)  # (batch, features + action)
        n_members = self.n_critics if members is None else len(members)
        return self.q_networks(qvalue_input.expand(n_members, *qvalue_input.shape), members)  # (n_members, batch, 1)


def q_values_of_two(
    critic: EnsembleCritic, obs: th.Tensor, first: th.Tensor, second: th.Tensor, members: Optional[th.Tensor] = None
) -> tuple[th.Tensor, th.Tensor]:
    """
    Q-values of two candidate actions for the same observations, in one critic pass (both proposals use it).

    :param critic: the (online or target) critics
    :param obs: observations ``(batch, *obs_shape)``
    :param first: first candidate actions ``(batch, action_dim)`` (the RL action)
    :param second: second candidate actions ``(batch, action_dim)`` (the IL action)
    :param members: indices of the critics to evaluate (all when ``None``)
    :return: the Q-values of each candidate, ``(n_members, batch, 1)`` each
    """
    batch = len(first)
    q_values = critic(th.cat([obs, obs], dim=0), th.cat([first, second], dim=0), members)  # (n_members, 2 * batch, 1)
    return q_values[:, :batch], q_values[:, batch:]


class IBRLPolicy(TD3Policy):
    """
    Policy for IBRL: a dropout actor, E ensemble critics and, when an IL policy is attached, the
    hybrid action of the actor proposal in ``predict``.

    :param observation_space: observation space
    :param action_space: action space
    :param lr_schedule: learning rate schedule
    :param net_arch: hidden sizes (paper, state tasks: 3 x 512; 3 x 1024 for Square)
    :param activation_fn: activation function
    :param features_extractor_class: features extractor class
    :param features_extractor_kwargs: its keyword arguments
    :param normalize_images: whether to divide images by 255
    :param optimizer_class: optimizer class
    :param optimizer_kwargs: optimizer keyword arguments, excluding the learning rate (default for Adam:
        ``dict(fused=True)``)
    :param n_critics: ensemble size E
    :param share_features_extractor: share the features extractor between actor and critics
    :param dropout: actor dropout probability
    :param layer_norm: LayerNorm in actor and critics
    """

    actor: IBRLActor
    actor_target: IBRLActor
    critic: EnsembleCritic  # type: ignore[assignment]
    critic_target: EnsembleCritic  # type: ignore[assignment]

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: Optional[Union[list[int], dict[str, list[int]]]] = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: Optional[dict[str, Any]] = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: Optional[dict[str, Any]] = None,
        n_critics: int = 5,
        share_features_extractor: bool = False,
        dropout: float = 0.5,
        layer_norm: bool = True,
    ):
        # Read by make_actor / make_critic, which TD3Policy.__init__ calls
        self.dropout, self.layer_norm = dropout, layer_norm
        if optimizer_kwargs is None and optimizer_class in (th.optim.Adam, th.optim.AdamW):
            optimizer_kwargs = dict(fused=True)  # one fused kernel per step: about 4x faster than the default on CPU
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            [512, 512, 512] if net_arch is None else net_arch,
            activation_fn,
            features_extractor_class,
            features_extractor_kwargs,
            normalize_images,
            optimizer_class,
            optimizer_kwargs,
            n_critics,
            share_features_extractor,
        )
        # Acting options, set by IBRL (not constructor parameters: they are algorithm settings)
        self.il_policy: Optional[FrozenILPolicy] = None
        self.act_with_il = True
        self.proposal_beta: Optional[float] = None
        self.proposal_critic = "online"

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "il_policy":
            # Kept out of the module tree: the frozen IL policy is not a parameter of the RL policy,
            # so it is in no optimizer and not in the policy's state_dict (IBRL saves it separately).
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(dropout=self.dropout, layer_norm=self.layer_norm)
        return data

    def make_actor(self, features_extractor: Optional[BaseFeaturesExtractor] = None) -> IBRLActor:
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return IBRLActor(**actor_kwargs, dropout=self.dropout, layer_norm=self.layer_norm).to(self.device)

    def make_critic(self, features_extractor: Optional[BaseFeaturesExtractor] = None) -> EnsembleCritic:  # type: ignore[override]
        critic_kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        return EnsembleCritic(**critic_kwargs, layer_norm=self.layer_norm).to(self.device)

    def propose(
        self,
        observation: PyTorchObs,
        rl_noise: Optional[th.Tensor] = None,
        beta: Optional[float] = None,
        deterministic: bool = False,
    ) -> tuple[th.Tensor, th.Tensor]:
        """
        The actor proposal: score the RL action (plus exploration noise) and the IL action with the min of
        2 random critics, and take the better one, row by row.

        :param observation: observations, ``(batch, *obs_shape)``
        :param rl_noise: exploration noise added to the RL action, ``(batch, action_dim)``, or ``None``
        :param beta: ``None`` for the greedy choice, else the inverse temperature of the soft choice
        :param deterministic: score with the expectation of the random-pair min (mean over all pairs) instead
            of one random pair, so that the same observation always gets the same action
        :return: actions in ``[-1, 1]`` ``(batch, action_dim)`` and the mask of rows that took the IL action ``(batch,)``
        """
        rl_action = self.actor(observation)
        if rl_noise is not None:
            rl_action = (rl_action + rl_noise).clamp(-1.0, 1.0)
        if self.il_policy is None or not self.act_with_il:
            return rl_action, th.zeros(len(rl_action), dtype=th.bool, device=rl_action.device)
        il_action = self.il_policy(observation)  # (batch, action_dim)
        critic = self.critic if self.proposal_critic == "online" else self.critic_target
        q_rl, q_il = q_values_of_two(critic, observation, rl_action, il_action)  # type: ignore[arg-type]  # (n_critics, batch, 1)
        # One draw of the random pair for both candidates (they are scored by the same critics)
        q_values = min_over_random_subset(th.stack([q_rl, q_il], dim=1), deterministic=deterministic)  # (2, batch, 1)
        use_il = actor_proposal(q_values[0, :, 0], q_values[1, :, 0], beta)  # (batch,)
        return th.where(use_il[:, None], il_action, rl_action), use_il

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        # deterministic: greedy choice on the expected random-pair min; otherwise as while training
        if deterministic:
            return self.propose(observation, beta=None, deterministic=True)[0]
        return self.propose(observation, beta=self.proposal_beta)[0]

    def set_training_mode(self, mode: bool) -> None:
        super().set_training_mode(mode)
        if self.il_policy is not None:
            self.il_policy.train(False)


MlpPolicy = IBRLPolicy
