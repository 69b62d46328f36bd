"""
Image encoders for pixel-based IBRL: the ViT patch encoder of the IBRL paper (with the authors'
convolutional-stem variant) and the DrQ ConvNet with a narrow bottleneck ("IBRL Basic").
"""

from typing import Optional

import torch as th
from torch import nn
from torch.nn import functional as F


def _scale_images(images: th.Tensor, channels_last: bool = False) -> th.Tensor:
    """
    Scale images from 0..255 (uint8 or float) to [-0.5, 0.5].

    :param images: images ``(batch, C, H, W)``
    :param channels_last: return them in the channels-last memory format (a copy only where they are not already)
    :return: float32 images in [-0.5, 0.5]
    """
    memory_format = th.channels_last if channels_last else th.preserve_format  # NHWC in memory, or as given
    return images.to(th.float32, memory_format=memory_format) / 255.0 - 0.5  # one conversion, no copy if already so


def _to_channels_last(module: nn.Module, channels_last: bool) -> None:
    """
    Store a module's convolution weights in the channels-last memory format (NHWC), so that its convolutions run on
    NHWC inputs without converting them (cuDNN's tensor-core kernels and oneDNN prefer it). The values are unchanged.

    :param module: the encoder
    :param channels_last: whether to convert (``False`` leaves the default, contiguous NCHW)
    """
    if channels_last:
        module.to(memory_format=th.channels_last)  # only 4-D tensors (the conv weights) change layout


def _check_images(name: str, images: th.Tensor, channels: int, size: Optional[int]) -> None:
    """
    Raise a ``ValueError`` naming expected vs. received shape when ``images`` do not match.

    :param name: encoder name for the message
    :param images: images ``(batch, C, H, W)``
    :param channels: expected number of channels
    :param size: expected (square) image size, ``None`` to accept any size
    """
    shape = tuple(images.shape)
    ok = images.ndim == 4 and shape[1] == channels and (size is None or (shape[2] == size and shape[3] == size))
    if not ok:
        expected = f"(batch, {channels}, {size}, {size})" if size is not None else f"(batch, {channels}, H, W)"
        raise ValueError(f"{name} expects images of shape {expected}, got {shape}")


class ViTEncoder(nn.Module):
    """
    Vision Transformer encoder of IBRL: images -> patch tokens (no CLS token, no pooling).

    :param in_channels: number of image channels C
    :param image_size: height and width of the (square) input images
    :param patch_size: patch size of the ``"patch"`` stem
    :param embed_dim: token dimension
    :param depth: number of transformer blocks
    :param num_heads: attention heads per block
    :param stem: ``"patch"`` (one Conv2d with kernel = stride = ``patch_size``, the paper's ViT) or
        ``"conv"`` (Conv2d(k=8, s=4) -> ReLU -> Conv2d(k=3, s=2), the authors' release)
    :param channels_last: run the stem in the channels-last memory format (a speed option; the same values)
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int = 96,
        patch_size: int = 8,
        embed_dim: int = 128,
        depth: int = 3,
        num_heads: int = 4,
        stem: str = "patch",
        channels_last: bool = False,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.image_size = image_size
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.depth = depth
        self.stem_type = stem
        self.channels_last = channels_last
        if stem == "patch":
            self.stem = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)
        elif stem == "conv":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, embed_dim, kernel_size=8, stride=4),
                nn.ReLU(),
                nn.Conv2d(embed_dim, embed_dim, kernel_size=3, stride=2),
            )
        else:
            raise ValueError(f"Unknown ViT stem {stem!r}, expected 'patch' or 'conv'")
        with th.no_grad():
            grid = self.stem(th.zeros(1, in_channels, image_size, image_size))  # (1, embed_dim, h, w)
        if grid.shape[-1] < 1 or grid.shape[-2] < 1:
            raise ValueError(f"image_size={image_size} is too small for stem {stem!r}")
        self.grid_size = (grid.shape[-2], grid.shape[-1])
        self.n_patches = grid.shape[-2] * grid.shape[-1]
        self.pos_embed = nn.Parameter(th.zeros(1, self.n_patches, embed_dim))
        nn.init.normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(
            [
                nn.TransformerEncoderLayer(
                    d_model=embed_dim,
                    nhead=num_heads,
                    dim_feedforward=4 * embed_dim,
                    dropout=0.0,
                    activation="gelu",
                    batch_first=True,
                    norm_first=True,
                )
                for _ in range(depth)
            ]
        )
        self.norm = nn.LayerNorm(embed_dim)
        _to_channels_last(self, channels_last)

    def forward(self, images: th.Tensor) -> th.Tensor:
        _check_images(type(self).__name__, images, self.in_channels, self.image_size)
        x = _scale_images(images, self.channels_last)  # (batch, C, H, W)
        x = self.stem(x)  # (batch, embed_dim, h, w)
        # Channels-last, this is a view: the tokens (batch, h * w, embed_dim) are already contiguous in memory
        x = x.flatten(2).transpose(1, 2)  # (batch, n_patches, embed_dim)
        x = x + self.pos_embed  # (batch, n_patches, embed_dim)
        for block in self.blocks:
            x = block(x)  # (batch, n_patches, embed_dim)
        return self.norm(x)  # (batch, n_patches, embed_dim)


class DrQEncoder(nn.Module):
    """
    DrQ ConvNet with a narrow bottleneck ("IBRL Basic"): four 3x3 convolutions of 32 channels (first with
    stride 2, then stride 1, ReLU after each), flatten, then ``Linear -> LayerNorm -> Tanh``.

    :param in_channels: number of image channels C
    :param feature_dim: size of the output features
    :param resize: inputs whose size differs are bilinearly resized to ``resize x resize``; ``None`` disables
        resizing (inputs must then be ``image_size x image_size``)
    :param image_size: input size used to compute ``conv_out_dim`` when ``resize`` is ``None``
    :param channels_last: run the convolutions in the channels-last memory format (a speed option; the same values)
    """

    def __init__(
        self,
        in_channels: int,
        feature_dim: int = 64,
        resize: Optional[int] = 84,
        image_size: int = 84,
        channels_last: bool = False,
    ):
        super().__init__()
        self.channels_last = channels_last
        self.in_channels = in_channels
        self.feature_dim = feature_dim
        self.resize = resize
        self.image_size = resize if resize is not None else image_size
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=3, stride=2),
            nn.ReLU(),
            nn.Conv2d(32, 32, kernel_size=3, stride=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, kernel_size=3, stride=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, kernel_size=3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with th.no_grad():
            self.conv_out_dim = self.convs(th.zeros(1, in_channels, self.image_size, self.image_size)).shape[1]
        self.head = nn.Sequential(nn.Linear(self.conv_out_dim, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())
        _to_channels_last(self, channels_last)

    def forward(self, images: th.Tensor) -> th.Tensor:
        _check_images(type(self).__name__, images, self.in_channels, None if self.resize is not None else self.image_size)
        x = _scale_images(images, self.channels_last)  # (batch, C, H, W)
        if self.resize is not None and x.shape[-2:] != (self.resize, self.resize):
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
        x = self.convs(x)  # (batch, conv_out_dim)
        return self.head(x)  # (batch, feature_dim)
