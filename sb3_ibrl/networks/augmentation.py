"""
Image augmentation for pixel-based IBRL: the DrQ random shift (replicate-pad, then random crop back).
"""

import torch as th
from torch import nn
from torch.nn import functional as F


def random_shift(images: th.Tensor, pad: int = 4, channels_last: bool = False) -> th.Tensor:
    """
    DrQ-style random shift: pad every image by ``pad`` pixels with replicate padding, then crop it back
    to its original size at an independent random integer offset in ``[0, 2 * pad]`` (x and y drawn
    independently, per sample). Fully vectorized, no Python loop over the batch.

    :param images: batch of images ``(batch, channels, height, width)``, uint8 or float
    :param pad: padding in pixels on every side; ``0`` returns the input as float32 unchanged
    :param channels_last: return the images in the channels-last memory format (NHWC), which the shift produces,
        instead of copying them to the default NCHW layout: for encoders whose convolutions run channels-last
    :return: shifted images as float32 ``(batch, channels, height, width)``, same value scale as the input
        (uint8 0..255 gives float 0..255); the same values whatever ``channels_last``
    """
    if images.ndim != 4:
        raise ValueError(f"random_shift expects images of shape (batch, channels, height, width), got {tuple(images.shape)}")
    if pad < 0:
        raise ValueError(f"pad must be non-negative, got {pad}")
    images = images.float()
    if pad == 0:
        return images
    batch, _, height, width = images.shape
    device = images.device
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")  # (batch, C, H + 2 pad, W + 2 pad)
    # Independent offsets per sample and per axis
    off_y = th.randint(0, 2 * pad + 1, (batch, 1, 1), device=device)
    off_x = th.randint(0, 2 * pad + 1, (batch, 1, 1), device=device)
    rows = off_y + th.arange(height, device=device).view(1, height, 1)  # (batch, H, 1)
    cols = off_x + th.arange(width, device=device).view(1, 1, width)  # (batch, 1, W)
    batch_idx = th.arange(batch, device=device).view(batch, 1, 1)  # (batch, 1, 1)
    # Advanced indexing over (batch, row, col) of the channels-last view
    shifted = padded.permute(0, 2, 3, 1)[batch_idx, rows, cols]  # (batch, H, W, C)
    shifted = shifted.permute(0, 3, 1, 2)  # (batch, C, H, W), NHWC in memory
    return shifted if channels_last else shifted.contiguous()


class RandomShift(nn.Module):
    """
    Module wrapper of :func:`random_shift`. It is applied whenever called (also in eval mode):
    whether to augment is the caller's choice.

    :param pad: padding in pixels on every side
    """

    def __init__(self, pad: int = 4):
        super().__init__()
        self.pad = pad

    def forward(self, images: th.Tensor) -> th.Tensor:
        # (batch, C, H, W) -> (batch, C, H, W) float32
        return random_shift(images, self.pad)

    def extra_repr(self) -> str:
        return f"pad={self.pad}"
