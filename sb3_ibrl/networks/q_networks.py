"""
What the IBRL actor and critics read: an observation encoder (flatten for states; ViT or DrQ ConvNet for
images, plus an optional proprio vector), the critic heads (an MLP, or the ViT Q-network of Fig. 2 of the
paper) and the pixel actor head. All critic heads are ensembles of E members evaluated in batched matmuls.
"""

from typing import Any, NamedTuple, Optional, Union

import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first, preprocess_obs
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import PyTorchObs
from torch import nn

from sb3_ibrl.common.spaces import split_image_space
from sb3_ibrl.networks.augmentation import random_shift
from sb3_ibrl.networks.encoders import DrQEncoder, ViTEncoder
from sb3_ibrl.networks.mlp import Dropout, EnsembleLayerNorm, EnsembleLinear, dropout_mlp, ensemble_mlp

ENCODERS = ("flatten", "vit", "drq")
POOLINGS = ("softmax", "weights")


class Encoded(NamedTuple):
    """
    Encoded observations: ``features`` is ``(batch, features_dim)`` (flatten, DrQ) or ``(batch, n_patches,
    embed_dim)`` (ViT tokens); ``proprio`` is ``(batch, proprio_dim)`` or ``None``.
    """

    features: th.Tensor
    proprio: Optional[th.Tensor]

    def detach(self) -> "Encoded":
        return Encoded(self.features.detach(), None if self.proprio is None else self.proprio.detach())


class ObservationEncoder(nn.Module):
    """
    Observations -> :class:`Encoded`. ``"flatten"`` for vectors; ``"vit"`` / ``"drq"`` for an image Box
    (``CnnPolicy``) or a Dict of one image and proprio vectors (``MultiInputPolicy``). Images must be
    channel-first (SB3 transposes channel-last image envs for the algorithm); they are read as 0..255.
    A :class:`~stable_baselines3.common.torch_layers.BaseFeaturesExtractor` subclass (SB3's
    ``features_extractor_class``) reads the whole observation, preprocessed as SB3 does, into flat features.

    :param observation_space: observation space
    :param encoder: ``"flatten"``, ``"vit"``, ``"drq"``, or a ``BaseFeaturesExtractor`` subclass (kind ``"custom"``)
    :param encoder_kwargs: keyword arguments of :class:`ViTEncoder` / :class:`DrQEncoder` / the extractor class
    :param augmentation_pad: pad of the random-shift augmentation of :meth:`augment` (0 disables it)
    :param normalize_images: divide uint8 images by 255 before a custom extractor (SB3's meaning); the built-in
        encoders scale images themselves and ignore it
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        encoder: Union[str, type[BaseFeaturesExtractor]] = "flatten",
        encoder_kwargs: Optional[dict[str, Any]] = None,
        augmentation_pad: int = 4,
        normalize_images: bool = True,
    ):
        super().__init__()
        custom = isinstance(encoder, type)
        if custom and not issubclass(encoder, BaseFeaturesExtractor):  # type: ignore[arg-type]
            raise TypeError(f"A custom encoder must subclass SB3's BaseFeaturesExtractor, got {encoder}")
        if not custom and encoder not in ENCODERS:
            raise ValueError(f"Unknown encoder={encoder!r}: expected one of {ENCODERS}")
        self.observation_space, self.augmentation_pad = observation_space, augmentation_pad
        self.kind = "custom" if custom else encoder
        self.normalize_images = normalize_images
        self.image_key: Optional[str] = None
        self.proprio_keys: list[str] = []
        encoder_kwargs = dict(encoder_kwargs or {})
        if custom:
            self.net: Optional[nn.Module] = encoder(observation_space, **encoder_kwargs)  # type: ignore[operator]
            self.features_shape: tuple[int, ...] = (int(self.net.features_dim),)  # type: ignore[union-attr]
            self.proprio_dim = 0
            return
        if encoder == "flatten":
            if isinstance(observation_space, spaces.Dict) or is_image_space(observation_space):
                raise ValueError(
                    "The flatten encoder (MlpPolicy) needs a vector observation; use CnnPolicy or MultiInputPolicy"
                )
            self.net = None
            self.features_shape = (int(th.tensor(observation_space.shape).prod()),)
            self.proprio_dim = 0
            return
        if isinstance(observation_space, spaces.Dict):
            try:
                self.image_key, self.proprio_keys = split_image_space(observation_space)
            except ValueError as error:
                hint = "other Dict observations need an extractor, e.g. features_extractor_class=CombinedExtractor (SB3's)"
                raise ValueError(f"{error}. The built-in {encoder} encoder reads one image and vectors; {hint}") from error
            image_space = observation_space.spaces[self.image_key]
        elif is_image_space(observation_space):
            image_space = observation_space
        else:
            raise ValueError(f"The {encoder} encoder needs uint8 images (a Box of shape (C, H, W)), got {observation_space}")
        channels, height, width = image_space.shape  # type: ignore[misc]
        if not channels < height == width:
            raise ValueError(f"Images must be square and channel-first (C, H, W), got shape {image_space.shape}")
        self.proprio_dim = sum(int(observation_space.spaces[key].shape[0]) for key in self.proprio_keys)  # type: ignore[union-attr]
        if encoder == "vit":
            self.net = ViTEncoder(channels, image_size=height, **encoder_kwargs)
            self.features_shape = (self.net.n_patches, self.net.embed_dim)
        else:
            self.net = DrQEncoder(channels, **{"image_size": height, **encoder_kwargs})  # resized to 84 (release)
            self.features_shape = (self.net.feature_dim,)

    @property
    def flat_dim(self) -> int:
        """Size of the flattened features."""
        return int(th.tensor(self.features_shape).prod())

    @property
    def is_pixel(self) -> bool:
        """Whether the features are those of a built-in image encoder (pixel heads), not flat features for MLP heads."""
        return self.kind in ("vit", "drq")

    def augment(self, obs: PyTorchObs) -> PyTorchObs:
        """Random shift of the (channel-first) images (DrQ); vector observations are returned as they are."""
        if self.net is None or self.augmentation_pad == 0:
            return obs
        if self.kind == "custom":  # every channel-first image the extractor reads
            if not isinstance(self.observation_space, spaces.Dict):
                return random_shift(obs, self.augmentation_pad) if _is_chw_image(self.observation_space) else obs  # type: ignore[arg-type]
            shift = [key for key, space in self.observation_space.spaces.items() if _is_chw_image(space)]
            return {**obs, **{key: random_shift(obs[key], self.augmentation_pad) for key in shift}}  # type: ignore[index]
        # The layout the encoder's convolutions read: no copy in between
        channels_last = bool(getattr(self.net, "channels_last", False))
        if self.image_key is None:
            return random_shift(obs, self.augmentation_pad, channels_last)  # type: ignore[arg-type]
        return {**obs, self.image_key: random_shift(obs[self.image_key], self.augmentation_pad, channels_last)}  # type: ignore[index]

    def forward(self, obs: PyTorchObs) -> Encoded:
        if self.kind == "custom":
            features = self.net(preprocess_obs(obs, self.observation_space, self.normalize_images))  # type: ignore[misc, arg-type]
            if features.ndim != 2 or features.shape[1] != self.features_shape[0]:
                raise ValueError(
                    f"The features extractor {type(self.net).__name__} returned features of shape {tuple(features.shape)}; "
                    f"IBRL's heads need flat features (batch, features_dim={self.features_shape[0]})"
                )
            return Encoded(features, None)
        if self.net is None:
            features = preprocess_obs(obs, self.observation_space, normalize_images=False)  # type: ignore[arg-type]
            return Encoded(features.flatten(1).float(), None)  # type: ignore[union-attr]
        if self.image_key is None:
            return Encoded(self.net(obs), None)
        proprio = th.cat([obs[key].float().flatten(1) for key in self.proprio_keys], dim=1)  # type: ignore[index]
        return Encoded(self.net(obs[self.image_key]), proprio)  # type: ignore[index]


def check_extractor_options(
    encoder: Optional[str],
    encoder_kwargs: Optional[dict[str, Any]],
    features_extractor_class: Optional[type],
    features_extractor_kwargs: Optional[dict[str, Any]],
    share_features_extractor: bool = True,
) -> None:
    """
    Fail clearly on the encoder options of a policy that cannot apply: the built-in encoder's mixed with SB3's custom
    extractor's, or an extractor per network (IBRL has one, shared).

    :param encoder: the built-in encoder's name (``None``: the policy's default)
    :param encoder_kwargs: the built-in encoder's options
    :param features_extractor_class: SB3's custom extractor class, or ``None``
    :param features_extractor_kwargs: its options
    :param share_features_extractor: SB3's option, which must be ``True``
    """
    if not share_features_extractor:
        raise ValueError(
            "share_features_extractor=False is not supported: IBRL has one observation encoder, owned and trained by the "
            "critic loss, whose features the actor reads detached (the actor loss never trains it; in TD3 with True, the "
            "actor loss trains it). Leave share_features_extractor out (True)."
        )
    if features_extractor_class is None:
        if features_extractor_kwargs:
            raise ValueError(
                "features_extractor_kwargs needs features_extractor_class (a custom extractor); "
                "the built-in encoders take encoder_kwargs"
            )
        return
    if not (isinstance(features_extractor_class, type) and issubclass(features_extractor_class, BaseFeaturesExtractor)):
        raise TypeError(
            f"features_extractor_class must subclass SB3's BaseFeaturesExtractor, got {features_extractor_class!r}"
        )
    if encoder is not None or encoder_kwargs:
        raise ValueError(
            f"features_extractor_class={features_extractor_class.__name__} replaces the built-in encoder: pass either it "
            "(with features_extractor_kwargs) or encoder / encoder_kwargs, not both"
        )


def _is_chw_image(space: spaces.Space) -> bool:
    return is_image_space(space) and is_image_space_channels_first(space)  # type: ignore[arg-type]


def _candidate_rows(encoded: Encoded, actions: th.Tensor) -> tuple[th.Tensor, Optional[th.Tensor], th.Tensor, tuple[int, ...]]:
    """Repeat the encoded observations for each candidate action: actions ``(batch, A)`` or ``(K, batch, A)``."""
    lead = actions.shape[:-1]  # (batch,) or (K, batch)
    n_candidates = 1 if actions.ndim == 2 else actions.shape[0]

    def repeat(x: Optional[th.Tensor]) -> Optional[th.Tensor]:
        return x if x is None or n_candidates == 1 else x.repeat(n_candidates, *([1] * (x.ndim - 1)))

    return repeat(encoded.features), repeat(encoded.proprio), actions.reshape(-1, actions.shape[-1]), lead  # type: ignore[return-value]


class MLPQHead(nn.Module):
    """
    E critics ``[features, proprio, action] -> [Linear -> LayerNorm -> activation] x L -> 1`` (state tasks, DrQ).

    :param n_critics: ensemble size E
    :param features_dim: size of the (flat) features
    :param proprio_dim: size of the proprio vector (0 without)
    :param action_dim: action size
    :param net_arch: hidden sizes
    :param activation_fn: activation
    :param layer_norm: LayerNorm after every hidden layer
    """

    def __init__(
        self,
        n_critics: int,
        features_dim: int,
        proprio_dim: int,
        action_dim: int,
        net_arch: list[int],
        activation_fn: type[nn.Module] = nn.ReLU,
        layer_norm: bool = True,
    ):
        super().__init__()
        self.q_networks = ensemble_mlp(
            n_critics, features_dim + proprio_dim + action_dim, 1, net_arch, activation_fn, layer_norm
        )

    def forward(self, encoded: Encoded, actions: th.Tensor, members: Optional[th.Tensor] = None) -> th.Tensor:
        features, proprio, actions_flat, lead = _candidate_rows(encoded, actions)
        inputs = th.cat([features.flatten(1), *([] if proprio is None else [proprio]), actions_flat], dim=1)  # (rows, in)
        n_members = self.q_networks[0].n_members if members is None else len(members)
        q_values = self.q_networks(inputs.expand(n_members, *inputs.shape), members)  # (n_members, rows, 1)
        return q_values.reshape(n_members, *lead, 1)  # (n_members, [K,] batch, 1)


class ViTQHead(nn.Module):
    """
    The ViT Q-network of the paper (Fig. 2), E members batched: transpose the patch tokens to channels
    ``(batch, embed_dim, n_patches)``, append the action (and proprio) to every channel, project each channel
    to ``hidden_dim`` with LayerNorm and ReLU, pool over channels, append proprio and action again, then an MLP.

    :param n_critics: ensemble size E
    :param n_patches: number of patch tokens
    :param embed_dim: token size (the number of channels pooled over)
    :param proprio_dim: size of the proprio vector (0 without)
    :param action_dim: action size
    :param hidden_dim: size of the per-channel projection (paper: 1024)
    :param net_arch: hidden sizes of the MLP after pooling (paper: [1024, 1024])
    :param pooling: ``"softmax"`` (paper: weights from a separate linear projection of each channel, softmax over
        channels) or ``"weights"`` (authors' release: a learned ``(embed_dim, hidden_dim)`` weight, multiplied and summed)
    """

    def __init__(
        self,
        n_critics: int,
        n_patches: int,
        embed_dim: int,
        proprio_dim: int,
        action_dim: int,
        hidden_dim: int = 1024,
        net_arch: Optional[list[int]] = None,
        pooling: str = "softmax",
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"Unknown pooling={pooling!r}: expected one of {POOLINGS}")
        self.pooling = pooling
        channel_dim = n_patches + proprio_dim + action_dim
        self.projection = EnsembleLinear(n_critics, channel_dim, hidden_dim)
        self.projection_norm = EnsembleLayerNorm(n_critics, hidden_dim)
        if pooling == "softmax":
            # The appended proprio and action are the same in every channel: they would add the same logit to all
            # channels, which the softmax cancels, so the scores read the tokens alone
            self.pool_logits = EnsembleLinear(n_critics, n_patches, 1)
        else:
            bound = embed_dim**-0.5
            self.pool_weights = nn.Parameter(th.empty(n_critics, embed_dim, hidden_dim).uniform_(-bound, bound))
        self.q_networks = ensemble_mlp(n_critics, hidden_dim + proprio_dim + action_dim, 1, net_arch or [1024, 1024])

    def _split(self, layer: EnsembleLinear, n_patches: int, members: Optional[th.Tensor]) -> tuple[th.Tensor, ...]:
        """A per-channel linear layer as its token part and its (proprio, action) part, which is the same for all channels."""
        weight, bias = (layer.weight, layer.bias) if members is None else (layer.weight[members], layer.bias[members])
        return weight[:, :n_patches], weight[:, n_patches:], bias  # (k, N, out), (k, P + A, out), (k, 1, out)

    def _inputs(self, encoded: Encoded, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Token rows ``(batch * D, N)`` and the appended part of every candidate ``(K * batch, P + A)``."""
        tokens, proprio = encoded.features, encoded.proprio  # (batch, N, D), (batch, P)
        batch, n_patches, _ = tokens.shape
        candidates = actions.reshape(-1, batch, actions.shape[-1])  # (K, batch, A)
        if proprio is not None:
            candidates = th.cat([proprio.expand(len(candidates), *proprio.shape), candidates], dim=2)  # (K, batch, P + A)
        return tokens.transpose(1, 2).reshape(-1, n_patches), candidates.reshape(-1, candidates.shape[-1])

    def _per_channel(self, layer: EnsembleLinear, token_rows: th.Tensor, extra: th.Tensor, batch: int, members) -> th.Tensor:
        """
        ``layer([tokens of channel d, proprio, action])`` for every channel d and candidate, computing the token part once
        for all candidates (the same as appending the action to every channel and projecting).

        :return: ``(k, K, batch, D, out)``
        """
        w_tokens, w_extra, bias = self._split(layer, token_rows.shape[1], members)
        k = len(w_tokens)
        per_token = th.matmul(token_rows.expand(k, *token_rows.shape), w_tokens)  # (k, batch * D, out)
        per_candidate = th.baddbmm(bias, extra.expand(k, *extra.shape), w_extra)  # (k, K * batch, out)
        out = per_token.shape[-1]
        return per_token.reshape(k, 1, batch, -1, out) + per_candidate.reshape(k, -1, batch, 1, out)

    def pooling_weights(self, encoded: Encoded, members: Optional[th.Tensor] = None) -> th.Tensor:
        """
        Softmax pooling weights of the channels (``pooling="softmax"``), one score per channel from its tokens.

        :return: weights that sum to one over channels, ``(k, batch, D, 1)``
        """
        tokens = encoded.features  # (batch, N, D)
        batch, n_patches, embed_dim = tokens.shape
        token_rows = tokens.transpose(1, 2).reshape(-1, n_patches)  # (batch * D, N)
        k = self.pool_logits.n_members if members is None else len(members)
        logits = self.pool_logits(token_rows.expand(k, *token_rows.shape), members)  # (k, batch * D, 1)
        return th.softmax(logits.reshape(k, batch, embed_dim, 1), dim=2)

    def forward(self, encoded: Encoded, actions: th.Tensor, members: Optional[th.Tensor] = None) -> th.Tensor:
        batch = len(encoded.features)
        token_rows, extra = self._inputs(encoded, actions)  # (batch * D, N), (K * batch, P + A)
        hidden = self._per_channel(self.projection, token_rows, extra, batch, members)  # (k, K, batch, D, H)
        k, n_candidates, _, _, hidden_dim = hidden.shape
        hidden = self.projection_norm(hidden.reshape(k, -1, hidden_dim), members).relu().reshape(hidden.shape)
        if self.pooling == "softmax":
            pooled = (hidden * self.pooling_weights(encoded, members)[:, None]).sum(dim=3)  # (k, K, batch, H)
        else:
            weights = self.pool_weights if members is None else self.pool_weights[members]  # (k, D, H)
            pooled = (hidden * weights[:, None, None]).sum(dim=3)  # (k, K, batch, H)
        extra = extra.reshape(n_candidates, batch, -1).expand(k, -1, -1, -1)  # (k, K, batch, P + A)
        head_input = th.cat([pooled, extra], dim=3).reshape(k, n_candidates * batch, -1)  # (k, K * batch, H + P + A)
        q_values = self.q_networks(head_input, members)  # (k, K * batch, 1)
        return q_values.reshape(k, *actions.shape[:-1], 1)  # (k, [K,] batch, 1)


class PixelActorHead(nn.Module):
    """
    The pixel actor of the release: flat features -> Linear(trunk_dim) -> LayerNorm -> Dropout -> ReLU -> concat
    proprio -> [Linear -> LayerNorm -> Dropout -> ReLU] x L -> action -> Tanh.

    :param features_dim: size of the flat features
    :param proprio_dim: size of the proprio vector (0 without)
    :param action_dim: action size
    :param net_arch: hidden sizes after the trunk (paper: [1024, 1024])
    :param trunk_dim: size of the trunk (paper: 128)
    :param dropout: dropout probability
    :param layer_norm: LayerNorm after every hidden layer
    """

    def __init__(
        self,
        features_dim: int,
        proprio_dim: int,
        action_dim: int,
        net_arch: list[int],
        trunk_dim: int = 128,
        dropout: float = 0.5,
        layer_norm: bool = True,
    ):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Linear(features_dim, trunk_dim),
            *([nn.LayerNorm(trunk_dim)] if layer_norm else []),
            *([Dropout(dropout)] if dropout > 0 else []),
            nn.ReLU(),
        )
        self.head = dropout_mlp(trunk_dim + proprio_dim, action_dim, net_arch, dropout=dropout, layer_norm=layer_norm)

    def forward(self, encoded: Encoded) -> th.Tensor:
        x = self.trunk(encoded.features.flatten(1))  # (batch, trunk_dim)
        if encoded.proprio is not None:
            x = th.cat([x, encoded.proprio], dim=1)  # (batch, trunk_dim + proprio_dim)
        return self.head(x)  # (batch, action_dim)
