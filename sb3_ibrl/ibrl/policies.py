"""
IBRL policies: a dropout + LayerNorm actor, a vectorized ensemble of E critics and, when an IL policy is
attached, hybrid acting (the actor proposal).

One observation encoder is owned by the critic: only the critic loss trains it. The actor, the target
actor and the target critics hold the same encoder (there is no target encoder); the actor reads its
features detached. ``MlpPolicy`` flattens vector observations; ``CnnPolicy`` (image) and
``MultiInputPolicy`` (image + proprio) use the ViT of the paper, or the DrQ ConvNet (``encoder="drq"``).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional, Union

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.td3.policies import TD3Policy
from torch import nn

from sb3_ibrl.common.spaces import is_unit_box
from sb3_ibrl.ibrl.critics import EnsembleCritic, q_values_of_two
from sb3_ibrl.ibrl.defaults import paper_default
from sb3_ibrl.ibrl.policy_files import SavedAlone
from sb3_ibrl.ibrl.proposals import actor_proposal, confident_proposal, min_over_random_subset
from sb3_ibrl.il.frozen import FrozenILPolicy
from sb3_ibrl.networks.mlp import dropout_mlp
from sb3_ibrl.networks.q_networks import (
    Encoded,
    MLPQHead,
    ObservationEncoder,
    PixelActorHead,
    ViTQHead,
    check_extractor_options,
)


class IBRLActor(BasePolicy):
    """
    The IBRL actor: encoder features (read detached) -> MLP with LayerNorm and dropout -> tanh (paper Sec. 4.1).

    :param observation_space: observation space
    :param action_space: action space
    :param encoder: the critic's observation encoder (shared, never trained by the actor)
    :param net_arch: hidden sizes
    :param activation_fn: activation function (vector observations)
    :param dropout: dropout probability (0.5 in the paper)
    :param layer_norm: whether to use LayerNorm
    :param trunk_dim: size of the trunk that reads image features (pixel observations)

    Saved alone (``actor.save(path)``, SB3's ``BasePolicy.save``), the actor keeps a copy of the encoder, so that
    ``IBRLActor.load(path)`` acts alone (with the RL actor: the IL policy is the policy's, not the actor's).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        encoder: ObservationEncoder,
        net_arch: list[int],
        activation_fn: type[nn.Module] = nn.ReLU,
        dropout: float = 0.5,
        layer_norm: bool = True,
        trunk_dim: int = 128,
    ):
        super().__init__(observation_space, action_space, squash_output=True)
        object.__setattr__(self, "encoder", encoder)  # a reference, not a submodule: the critic owns and saves it
        self.net_arch, self.activation_fn, self.dropout, self.layer_norm = net_arch, activation_fn, dropout, layer_norm
        self.trunk_dim = trunk_dim
        action_dim = get_action_dim(action_space)
        if not encoder.is_pixel:  # flat features (vectors, custom extractors)
            self.mu: nn.Module = dropout_mlp(encoder.flat_dim, action_dim, net_arch, activation_fn, dropout, layer_norm)
        else:
            self.mu = PixelActorHead(
                encoder.flat_dim, encoder.proprio_dim, action_dim, net_arch, trunk_dim, dropout, layer_norm
            )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return dict(
            observation_space=self.observation_space,
            action_space=self.action_space,
            encoder=self.encoder,  # pickled with its weights by SB3's save, as SB3's actors keep their extractor
            net_arch=self.net_arch,
            activation_fn=self.activation_fn,
            dropout=self.dropout,
            layer_norm=self.layer_norm,
            trunk_dim=self.trunk_dim,
        )

    def act(self, encoded: Encoded, detach: bool = True) -> th.Tensor:
        """
        Actions in ``[-1, 1]`` ``(batch, action_dim)`` from encoded observations.

        :param encoded: encoded observations
        :param detach: stop the gradients at the features (always, in IBRL; BC pretraining of Pt-Ft trains through)
        """
        if detach:
            encoded = encoded.detach()
        return self.mu(encoded) if self.encoder.is_pixel else self.mu(encoded.features)

    def forward(self, obs: PyTorchObs) -> th.Tensor:
        with th.no_grad():
            encoded = self.encoder(obs)
        return self.act(encoded)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self(observation)


class IBRLPolicy(SavedAlone, TD3Policy):
    """
    Policy for IBRL: a dropout actor, E ensemble critics after a shared observation encoder and, when an IL
    policy is attached, the hybrid action of the actor proposal in ``predict``. Every option is a plain value.

    :param observation_space: observation space
    :param action_space: action space
    :param lr_schedule: learning rate schedule
    :param net_arch: hidden sizes of the actor and critic MLPs (states, paper: 3 x 512, 3 x 1024 for Square;
        pixels: 2 x 1024 after the trunk / the pooled features), or ``dict(pi=[...], qf=[...])``
    :param activation_fn: activation function of the state networks
    :param encoder: ``"flatten"`` (vectors), ``"vit"`` (paper) or ``"drq"`` (DrQ ConvNet, "IBRL Basic")
    :param encoder_kwargs: options of the encoder, e.g. ``dict(stem="conv", depth=1)`` for the release's ViT
    :param q_hidden_dim: per-channel projection size of the ViT Q-network (paper: 1024)
    :param pooling: channel pooling of the ViT Q-network: ``"softmax"`` (paper) or ``"weights"`` (release)
    :param trunk_dim: size of the pixel actor's trunk (paper: 128)
    :param augmentation_pad: random-shift pad for image observations in critic updates (0 disables it)
    :param augment_actor: the actor update reads the augmented observations of the critic update (else un-augmented)
    :param optimizer_class: optimizer class
    :param optimizer_kwargs: optimizer keyword arguments, excluding the learning rate (default for Adam:
        ``dict(fused=True)``)
    :param n_critics: ensemble size E; ``None``: the paper's, 5 for states, 2 for images (or a Dict holding one)
    :param dropout: actor dropout probability
    :param layer_norm: LayerNorm in the actor and the state critics
    :param normalize_images: divide uint8 images by 255 before a custom features extractor (SB3's meaning); the
        built-in encoders scale images themselves
    :param features_extractor_class: SB3's way to bring an encoder: a ``BaseFeaturesExtractor`` subclass that
        replaces the built-in encoder (``encoder``); the critic loss trains it, the actor reads its flat features
        detached, and MLP heads (``net_arch``, default 3 x 512) follow
    :param features_extractor_kwargs: keyword arguments of ``features_extractor_class``
    :param share_features_extractor: must be ``True``: IBRL has one encoder, shared by the actor and the critics
        and trained by the critic loss only (TD3's ``False``, one extractor each, is not supported)

    ``policy.save(path)`` / ``IBRLPolicy.load(path)`` keep the IL policy and the acting options (see
    :mod:`sb3_ibrl.ibrl.policy_files`): the loaded policy predicts as this one.
    """

    actor: IBRLActor  # type: ignore[assignment]
    actor_target: IBRLActor  # type: ignore[assignment]
    critic: EnsembleCritic  # type: ignore[assignment]
    critic_target: EnsembleCritic  # type: ignore[assignment]
    default_encoder = "flatten"

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: Optional[Union[list[int], dict[str, list[int]]]] = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        encoder: Optional[str] = None,
        encoder_kwargs: Optional[dict[str, Any]] = None,
        q_hidden_dim: int = 1024,
        pooling: str = "softmax",
        trunk_dim: int = 128,
        augmentation_pad: int = 4,
        augment_actor: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: Optional[dict[str, Any]] = None,
        n_critics: Optional[int] = None,
        dropout: float = 0.5,
        layer_norm: bool = True,
        normalize_images: bool = True,
        features_extractor_class: Optional[type[BaseFeaturesExtractor]] = None,
        features_extractor_kwargs: Optional[dict[str, Any]] = None,
        share_features_extractor: bool = True,
    ):
        n_critics = paper_default("n_critics", observation_space) if n_critics is None else n_critics
        if n_critics < 2:
            raise ValueError(f"n_critics must be >= 2 (the proposals take the min over a random pair), got {n_critics}")
        check_extractor_options(
            encoder, encoder_kwargs, features_extractor_class, features_extractor_kwargs, share_features_extractor
        )
        custom = features_extractor_class is not None
        self.encoder_name = "custom" if custom else self.default_encoder if encoder is None else encoder
        self.encoder_kwargs = dict(encoder_kwargs or {})
        self.q_hidden_dim, self.pooling, self.trunk_dim = q_hidden_dim, pooling, trunk_dim
        self.augmentation_pad, self.augment_actor = augmentation_pad, augment_actor
        self.dropout, self.layer_norm, self.n_critics = dropout, layer_norm, n_critics
        if net_arch is None:
            net_arch = [512, 512, 512] if self.encoder_name in ("flatten", "custom") else [1024, 1024]
        if optimizer_kwargs is None and optimizer_class in (th.optim.Adam, th.optim.AdamW):
            optimizer_kwargs = dict(fused=True)  # one fused kernel per step: about 4x faster than the default on CPU
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch,
            activation_fn,
            features_extractor_class=features_extractor_class or FlattenExtractor,  # built in: the encoder
            features_extractor_kwargs=features_extractor_kwargs,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            n_critics=n_critics,
            share_features_extractor=True,
        )
        # Acting options, set by IBRL (not constructor parameters: they are algorithm settings)
        self.il_policy: Optional[FrozenILPolicy] = None
        self.act_with_il = True
        self.proposal_beta: Optional[float] = None
        self.proposal_confidence = 0.0
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
        if self.encoder_name != "custom":
            data.update(features_extractor_class=None, features_extractor_kwargs=None)
        data.update(
            encoder=None if self.encoder_name == "custom" else self.encoder_name,
            encoder_kwargs=self.encoder_kwargs,
            q_hidden_dim=self.q_hidden_dim,
            pooling=self.pooling,
            trunk_dim=self.trunk_dim,
            augmentation_pad=self.augmentation_pad,
            augment_actor=self.augment_actor,
            dropout=self.dropout,
            layer_norm=self.layer_norm,
        )
        return data

    def make_encoder(self) -> ObservationEncoder:
        if self.encoder_name == "custom":
            extractor, kwargs = self.features_extractor_class, self.features_extractor_kwargs
            return ObservationEncoder(self.observation_space, extractor, kwargs, self.augmentation_pad, self.normalize_images)
        return ObservationEncoder(self.observation_space, self.encoder_name, self.encoder_kwargs, self.augmentation_pad)

    def make_actor(self, encoder: ObservationEncoder) -> IBRLActor:  # type: ignore[override]
        return IBRLActor(
            self.observation_space,
            self.action_space,  # type: ignore[arg-type]
            encoder,
            self.actor_kwargs["net_arch"],
            self.activation_fn,
            self.dropout,
            self.layer_norm,
            self.trunk_dim,
        ).to(self.device)

    def make_critic(self, encoder: Optional[ObservationEncoder] = None) -> EnsembleCritic:  # type: ignore[override]
        owns_encoder = encoder is None
        encoder = self.make_encoder() if encoder is None else encoder
        action_dim = get_action_dim(self.action_space)
        net_arch = self.critic_kwargs["net_arch"]
        if encoder.kind == "vit":
            n_patches, embed_dim = encoder.features_shape
            head: nn.Module = ViTQHead(
                self.n_critics,
                n_patches,
                embed_dim,
                encoder.proprio_dim,
                action_dim,
                self.q_hidden_dim,
                net_arch,
                self.pooling,
            )
        else:
            head = MLPQHead(
                self.n_critics,
                encoder.flat_dim,
                encoder.proprio_dim,
                action_dim,
                net_arch,
                self.activation_fn,
                self.layer_norm,
            )
        return EnsembleCritic(encoder, head, self.n_critics, owns_encoder).to(self.device)

    def _build(self, lr_schedule: Schedule) -> None:
        # The critic owns the encoder and trains it; everything else reads the same encoder
        self.critic = self.make_critic()
        self.critic_target = self.make_critic(encoder=self.critic.encoder)
        self.critic_target.head.load_state_dict(self.critic.head.state_dict())
        self.actor = self.make_actor(self.critic.encoder)
        self.actor_target = self.make_actor(self.critic.encoder)
        self.actor_target.load_state_dict(self.actor.state_dict())
        self.critic.optimizer = self.optimizer_class(self.critic.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]
        self.actor.optimizer = self.optimizer_class(self.actor.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]
        self.actor_target.set_training_mode(False)
        self.critic_target.set_training_mode(False)

    def encode(self, observation: PyTorchObs) -> Encoded:
        """Encode observations with the (online) encoder."""
        return self.critic.encoder(observation)

    def augment(self, observation: PyTorchObs) -> PyTorchObs:
        """Random shift of image observations (identity for vectors or when ``augmentation_pad=0``)."""
        return self.critic.encoder.augment(observation)

    def propose(
        self,
        observation: PyTorchObs,
        rl_noise: Optional[th.Tensor] = None,
        beta: Optional[float] = None,
        deterministic: bool = False,
        il_action: Optional[th.Tensor] = None,
        confident: bool = False,
    ) -> tuple[th.Tensor, th.Tensor]:
        """
        The actor proposal: score the RL action (plus exploration noise) and the IL action with the min of
        2 random critics, and take the better one, row by row. The deterministic proposal (``predict(...,
        deterministic=True)``, evaluation) with ``proposal_confidence = k > 0`` takes the RL action only where its
        advantage over the IL action, by the E critics, is above k standard deviations
        (:func:`~sb3_ibrl.ibrl.proposals.confident_proposal`); collecting data keeps the paper's choice unless
        ``confident`` (the model's ``collect_confidently``).

        :param observation: observations, ``(batch, *obs_shape)``
        :param rl_noise: exploration noise added to the RL action, ``(batch, action_dim)``, or ``None``
        :param beta: ``None`` for the greedy choice, else the inverse temperature of the soft choice
        :param deterministic: score with the expectation of the random-pair min (mean over all pairs) instead
            of one random pair, so that the same observation always gets the same action
        :param il_action: the IL policy's actions for these observations when already computed (``[-1, 1]``)
        :param confident: apply ``proposal_confidence`` (when above 0) even when not ``deterministic``
        :return: actions in ``[-1, 1]`` ``(batch, action_dim)`` and the mask of rows that took the IL action ``(batch,)``
        """
        encoded = self.encode(observation)
        rl_action = self.actor.act(encoded)
        if rl_noise is not None:
            rl_action = (rl_action + rl_noise).clamp(-1.0, 1.0)
        if self.il_policy is None or not self.act_with_il:
            return rl_action, th.zeros(len(rl_action), dtype=th.bool, device=rl_action.device)
        il_action = self.il_policy(observation) if il_action is None else il_action  # (batch, action_dim)
        q_rl, q_il = self.score_proposals(encoded, rl_action, il_action)  # (n_critics, batch, 1) each
        if (deterministic or confident) and self.proposal_confidence > 0:  # the RL action only where the critics agree
            use_il = confident_proposal(q_rl[..., 0], q_il[..., 0], self.proposal_confidence)  # (batch,)
        else:  # one draw of the random pair for both candidates (they are scored by the same critics)
            q_values = min_over_random_subset(th.stack([q_rl, q_il], dim=1), deterministic=deterministic)  # (2, batch, 1)
            use_il = actor_proposal(q_values[0, :, 0], q_values[1, :, 0], beta)  # (batch,)
        return th.where(use_il[:, None], il_action, rl_action), use_il

    def score_proposals(self, encoded: Encoded, rl_action: th.Tensor, il_action: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """
        The Q-values of the two proposals by every critic that scores the actor proposal (``proposal_critic``).

        :param encoded: encoded observations
        :param rl_action: the RL actions ``(batch, action_dim)``
        :param il_action: the IL actions ``(batch, action_dim)``
        :return: the Q-values of the RL and of the IL actions, ``(n_critics, batch, 1)`` each
        """
        critic = self.critic if self.proposal_critic == "online" else self.critic_target
        return q_values_of_two(critic, encoded, rl_action, il_action)

    @contextmanager
    def deployed_with(self, confidence: float) -> Iterator[None]:
        """
        Deploy with another ``proposal_confidence`` inside the block (e.g. ``0``: the paper's greedy choice), then
        restore the one in effect.

        :param confidence: the ``proposal_confidence`` for the block
        """
        in_effect, self.proposal_confidence = self.proposal_confidence, confidence
        try:
            yield
        finally:
            self.proposal_confidence = in_effect

    def scale_action(self, action: np.ndarray) -> np.ndarray:
        """SB3's map from env units to ``[-1, 1]``; exactly the identity when the env's bounds are ``[-1, 1]``."""
        return np.array(action, copy=True) if is_unit_box(self.action_space) else super().scale_action(action)

    def unscale_action(self, scaled_action: np.ndarray) -> np.ndarray:
        """
        SB3's map from ``[-1, 1]`` to env units; exactly the identity when the env's bounds are ``[-1, 1]`` (an IL
        action then reaches the env bit for bit, as when the IL policy acts alone).
        """
        return np.array(scaled_action, copy=True) if is_unit_box(self.action_space) else super().unscale_action(scaled_action)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        # deterministic: greedy choice on the expected random-pair min; otherwise as while training
        if deterministic:
            return self.propose(observation, beta=None, deterministic=True)[0]
        return self.propose(observation, beta=self.proposal_beta)[0]

    def set_training_mode(self, mode: bool) -> None:
        super().set_training_mode(mode)
        if self.il_policy is not None:
            self.il_policy.train(False)


class IBRLCnnPolicy(IBRLPolicy):
    """:class:`IBRLPolicy` for image observations: the ViT encoder (``encoder="drq"`` for DrQ), E = 2 critics by default."""

    default_encoder = "vit"


MlpPolicy = IBRLPolicy
CnnPolicy = IBRLCnnPolicy
MultiInputPolicy = IBRLCnnPolicy
