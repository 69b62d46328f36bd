"""
The ResNet-18 image encoder of the IBRL paper's BC policy, as an SB3 features extractor.

Differences from the ImageNet ResNet-18, following the paper and the authors' release:

- every BatchNorm is replaced by a GroupNorm with one group per channel (``num_groups == num_channels``),
  so the network has no batch statistics (BC batches of a few demos are highly correlated);
- the stem is a 4x4 convolution with stride 2 (no padding) followed by a 3x3 max-pool with stride 2,
  instead of the 7x7 convolution, which suits small (e.g. 96x96) images.

The trunk is followed by a global average pool, then ``Linear(512) -> LayerNorm -> ReLU``. With Dict
observations every image key gets its own trunk and head, and the other keys (e.g. ``"proprio"``) are
flattened and concatenated after the image features, as the release does for Square.
"""

from typing import Optional

import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


def group_norm(channels: int) -> nn.GroupNorm:
    """
    GroupNorm with one group per channel, the normalization layer of the paper's ResNet-18.

    :param channels: number of channels
    :return: the layer
    """
    return nn.GroupNorm(num_groups=channels, num_channels=channels)


class BasicBlock(nn.Module):
    """
    ResNet basic block: two 3x3 convolutions with GroupNorm and a residual connection (a strided 1x1
    convolution + GroupNorm on the shortcut when the shape changes).

    :param in_channels: input channels
    :param out_channels: output channels
    :param stride: stride of the first convolution (2 halves the resolution)
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.norm1 = group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.norm2 = group_norm(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False), group_norm(out_channels)
            )
        self.relu = nn.ReLU()

    def forward(self, x: th.Tensor) -> th.Tensor:
        # (batch, in, H, W) -> (batch, out, H / stride, W / stride)
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """
    ResNet-18 trunk with GroupNorm and the small-image stem (4x4 conv, stride 2, then 3x3 max-pool, stride 2).

    :param in_channels: image channels C
    :param width: channels of the first stage (64 in ResNet-18); the stages have ``width * (1, 2, 4, 8)`` channels
    :param max_pool: keep the stem's max-pool (the paper's stem); ``False`` doubles the resolution of every stage
    """

    def __init__(self, in_channels: int, width: int = 64, max_pool: bool = True):
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be a positive number of channels, got {width}")
        stem: list[nn.Module] = [
            nn.Conv2d(in_channels, width, kernel_size=4, stride=2, padding=0, bias=False),
            group_norm(width),
            nn.ReLU(),
        ]
        if max_pool:
            stem.append(nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        self.stem = nn.Sequential(*stem)
        stages, channels = [], width
        for stage, stride in enumerate((1, 2, 2, 2)):
            out_channels = width * 2**stage
            stages.append(nn.Sequential(BasicBlock(channels, out_channels, stride), BasicBlock(out_channels, out_channels)))
            channels = out_channels
        self.stages = nn.Sequential(*stages)
        self.out_channels = channels
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def output_size(size: int, max_pool: bool = True) -> int:
        """
        Side of the last stage's feature map for an input side ``size``.

        :param size: input height or width
        :param max_pool: whether the stem has its max-pool
        :return: the output side (0 when the input is smaller than the stem's kernel)
        """
        if size < 4:
            return 0
        size = (size - 4) // 2 + 1  # stem conv, kernel 4, stride 2
        for _ in range(4 if max_pool else 3):  # max-pool (kernel 3, stride 2, pad 1), then stages 2-4 (stride 2)
            size = (size - 1) // 2 + 1
        return size

    def forward(self, images: th.Tensor) -> th.Tensor:
        # (batch, C, H, W) -> (batch, 8 * width, ~H / 32, ~W / 32) (~H / 16 without the max-pool)
        return self.stages(self.stem(images))


class ResNet18Encoder(nn.Module):
    """
    ResNet-18 trunk -> global average pool -> ``Linear(features_dim) -> LayerNorm -> ReLU``.

    Inputs are images scaled to [0, 1] (as SB3 preprocesses uint8 images); they are centred to [-0.5, 0.5].

    :param in_channels: image channels C
    :param width: base channels of the trunk
    :param features_dim: size of the output features (512 in the paper)
    :param max_pool: keep the stem's max-pool (see :class:`ResNet18`)
    """

    def __init__(self, in_channels: int, width: int = 64, features_dim: int = 512, max_pool: bool = True):
        super().__init__()
        self.trunk = ResNet18(in_channels, width, max_pool)
        self.head = nn.Sequential(nn.Linear(self.trunk.out_channels, features_dim), nn.LayerNorm(features_dim), nn.ReLU())

    def forward(self, images: th.Tensor) -> th.Tensor:
        # (batch, C, H, W) in [0, 1] -> (batch, features_dim)
        x = self.trunk(images.float() - 0.5)  # (batch, 8 * width, h, w)
        return self.head(x.mean(dim=(2, 3)))  # global average pool -> (batch, features_dim)


def _stem_max_pool(name: str, space: spaces.Box, max_pool: Optional[bool]) -> bool:
    """
    Check a channel-first ``(C, H, W)`` image space and decide whether the stem keeps its max-pool.

    One group per channel makes a GroupNorm on a 1x1 map output a constant: the last stage must see at least
    2x2. With ``max_pool=None`` the max-pool is kept (the paper's stem) unless the images are too small for it
    (below 36x36, e.g. 32x32); images too small even without it are refused.
    """
    channels, height, width = space.shape  # type: ignore[misc]
    if channels > min(height, width):
        raise ValueError(
            f"The ResNet-18 encoder needs channel-first images (C, H, W); {name} has shape {space.shape}, which looks "
            "channel-last: transpose it (e.g. with SB3's VecTransposeImage, or a gymnasium observation wrapper)"
        )
    side = min(height, width)
    if max_pool is None:
        max_pool = ResNet18.output_size(side, max_pool=True) >= 2
    if ResNet18.output_size(side, max_pool) < 2:
        hint = " (or keep stem_max_pool=None)" if max_pool else ""
        raise ValueError(
            f"{name} images of shape {space.shape} are too small for the ResNet-18: its last stage would see a 1x1 map, "
            f"which a GroupNorm with one group per channel turns into a constant; use images of at least 20x20{hint}"
        )
    return max_pool


class ResNet18Extractor(BaseFeaturesExtractor):
    """
    SB3 features extractor with the paper's BC image encoder (see :class:`ResNet18Encoder`).

    For a Box image space (uint8, channel-first ``(C, H, W)``), the features are the encoder's output.
    For a Dict space, each image key (uint8, 3-D) gets its own encoder; the other keys are flattened and
    concatenated after the image features (``features_dim = n_images * image_features_dim + other dims``,
    e.g. 512 + 9 for one camera and a 9-dim proprio vector).

    :param observation_space: the observation space (Box image, or Dict with at least one image key)
    :param width: base channels of the ResNet-18 trunk (64 in the paper; small values make a tiny net for tests)
    :param image_features_dim: size of each image's features (512 in the paper)
    :param stem_max_pool: keep the stem's max-pool; ``None`` (default) keeps it unless the images are too small for
        it (below 36x36: e.g. 32x32 images are encoded without it, 48x48 and 96x96 with it)
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        width: int = 64,
        image_features_dim: int = 512,
        stem_max_pool: Optional[bool] = None,
    ):
        if isinstance(observation_space, spaces.Dict):
            items: list[tuple[Optional[str], spaces.Space]] = list(observation_space.spaces.items())
        else:
            items = [(None, observation_space)]
        image_keys = [key for key, space in items if is_image_space(space)]
        if not image_keys:
            raise ValueError(
                f"The ResNet-18 extractor needs image observations (uint8 Box of shape (C, H, W) with bounds 0..255, "
                f"alone or inside a Dict), got {observation_space}"
            )
        flat_keys = [key for key, space in items if key not in image_keys]
        flat_dim, max_pools = 0, {}
        for key, space in items:
            if key in image_keys:
                name = repr(key) if key is not None else "the observation"
                max_pools[key] = _stem_max_pool(name, space, stem_max_pool)  # type: ignore[arg-type]
            elif not isinstance(space, spaces.Box):
                raise ValueError(f"The ResNet-18 extractor supports Box entries only; key {key!r} is {space}")
            else:
                flat_dim += int(th.Size(space.shape).numel())
        super().__init__(observation_space, features_dim=len(image_keys) * image_features_dim + flat_dim)
        self.image_keys = image_keys
        self.flat_keys = flat_keys
        self.width = width
        spaces_by_key = dict(items)
        self.encoders = nn.ModuleList(
            [
                ResNet18Encoder(spaces_by_key[key].shape[0], width, image_features_dim, max_pools[key])  # type: ignore[index]
                for key in image_keys
            ]
        )

    def forward(self, observations: th.Tensor | dict[str, th.Tensor]) -> th.Tensor:
        # Box: (batch, C, H, W) -> (batch, features_dim); Dict: {key: (batch, ...)} -> (batch, features_dim)
        if not isinstance(observations, dict):
            return self.encoders[0](observations)
        parts = [encoder(observations[key]) for key, encoder in zip(self.image_keys, self.encoders)]
        parts += [observations[key].reshape(len(parts[0]), -1).float() for key in self.flat_keys]
        return th.cat(parts, dim=1)
