"""Tests of the standalone pixel building blocks: random shift, ViT encoder and DrQ encoder."""

import pytest
import torch as th
from torch import nn
from torch.nn import functional as F

from sb3_ibrl.networks.augmentation import RandomShift, random_shift
from sb3_ibrl.networks.encoders import DrQEncoder, ViTEncoder


def _uint8_images(batch: int, channels: int, height: int, width: int, seed: int = 0) -> th.Tensor:
    gen = th.Generator().manual_seed(seed)
    return th.randint(0, 256, (batch, channels, height, width), generator=gen, dtype=th.uint8)


def _offsets(images: th.Tensor, shifted: th.Tensor, pad: int) -> list[set[tuple[int, int]]]:
    """For every sample, the set of offsets (dy, dx) whose crop of the padded input equals the output."""
    _, _, height, width = images.shape
    padded = F.pad(images.float(), (pad, pad, pad, pad), mode="replicate")
    result = []
    for i in range(images.shape[0]):
        matches = set()
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                if th.equal(padded[i, :, dy : dy + height, dx : dx + width], shifted[i]):
                    matches.add((dy, dx))
        result.append(matches)
    return result


def test_random_shift_is_a_crop_of_the_padded_input():
    th.manual_seed(0)
    images = _uint8_images(4, 3, 12, 16)
    shifted = random_shift(images, pad=4)
    assert shifted.shape == images.shape
    assert shifted.dtype == th.float32
    assert all(len(matches) > 0 for matches in _offsets(images, shifted, pad=4))
    assert shifted.min() >= images.min().float() and shifted.max() <= images.max().float()
    # Float input keeps its scale and is also shifted
    float_shifted = random_shift(images.float(), pad=4)
    assert float_shifted.dtype == th.float32
    assert all(len(matches) > 0 for matches in _offsets(images, float_shifted, pad=4))


def test_random_shift_offsets_vary_and_module():
    th.manual_seed(1)
    # Distinct values so that every offset gives a unique crop
    images = th.arange(2 * 10 * 14, dtype=th.float32).view(1, 2, 10, 14).repeat(64, 1, 1, 1)
    shifted = random_shift(images, pad=2)
    matches = _offsets(images, shifted, pad=2)
    assert all(len(m) == 1 for m in matches)
    offsets = {next(iter(m)) for m in matches}
    assert len(offsets) > 1
    assert len({dy for dy, _ in offsets}) > 1 and len({dx for _, dx in offsets}) > 1
    module = RandomShift(pad=2).eval()
    assert module.pad == 2
    out = module(images)
    assert out.shape == images.shape and not th.equal(out, images)


def test_random_shift_pad_zero_is_identity():
    images = _uint8_images(3, 3, 8, 8)
    out = random_shift(images, pad=0)
    assert out.dtype == th.float32
    assert th.equal(out, images.float())


@pytest.mark.parametrize("stem, depth, n_patches", [("patch", 3, 144), ("conv", 1, 121)])
def test_vit_encoder_shapes_and_modules(stem: str, depth: int, n_patches: int):
    th.manual_seed(0)
    encoder = ViTEncoder(in_channels=3, image_size=96, depth=depth, stem=stem)
    assert encoder.n_patches == n_patches and encoder.embed_dim == 128
    images = _uint8_images(2, 3, 96, 96)
    tokens = encoder(images)
    assert tokens.shape == (2, n_patches, 128)
    assert tokens.device.type == "cpu"
    assert th.allclose(tokens, encoder(images.float()), atol=1e-6)
    layers = [m for m in encoder.modules() if isinstance(m, nn.TransformerEncoderLayer)]
    assert len(layers) == depth
    attentions = [m for m in encoder.modules() if isinstance(m, nn.MultiheadAttention)]
    assert len(attentions) == depth
    assert all(any(m is layer.self_attn for layer in layers) for m in attentions)


def test_vit_encoder_gradients_reach_patch_embedding():
    encoder = ViTEncoder(in_channels=3, image_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2)
    encoder(_uint8_images(2, 3, 32, 32)).square().mean().backward()
    assert encoder.stem.weight.grad is not None and encoder.stem.weight.grad.abs().sum() > 0
    assert encoder.pos_embed.grad is not None and encoder.pos_embed.grad.abs().sum() > 0


def test_vit_encoder_errors():
    encoder = ViTEncoder(in_channels=3, image_size=32, embed_dim=32, depth=1, num_heads=2)
    with pytest.raises(ValueError, match=r"\(batch, 3, 32, 32\).*\(2, 3, 24, 24\)"):
        encoder(_uint8_images(2, 3, 24, 24))
    with pytest.raises(ValueError, match=r"\(batch, 3, 32, 32\).*\(2, 4, 32, 32\)"):
        encoder(_uint8_images(2, 4, 32, 32))
    with pytest.raises(ValueError, match="stem"):
        ViTEncoder(in_channels=3, stem="resnet")


def test_drq_encoder():
    th.manual_seed(0)
    encoder = DrQEncoder(in_channels=3)
    assert encoder.feature_dim == 64
    assert encoder.conv_out_dim == 32 * 35 * 35
    images = _uint8_images(2, 3, 96, 96)
    features = encoder(images)
    assert features.shape == (2, 64)
    # The 96x96 input is bilinearly resized to 84x84 before the convolutions
    resized = F.interpolate(images.float(), size=(84, 84), mode="bilinear", align_corners=False)
    assert th.allclose(features, encoder(resized), atol=1e-5)
    assert features.min() >= -1 and features.max() <= 1
    features.sum().backward()
    first_conv = encoder.convs[0]
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(batch, 3, H, W\).*\(2, 1, 96, 96\)"):
        encoder(_uint8_images(2, 1, 96, 96))


def test_random_shift_channels_last_gives_the_same_images_without_the_copy():
    images = _uint8_images(4, 3, 12, 12)
    th.manual_seed(3)
    default = random_shift(images, pad=2)
    th.manual_seed(3)
    nhwc = random_shift(images, pad=2, channels_last=True)
    assert th.equal(default, nhwc)  # the same offsets and values
    assert default.is_contiguous() and not default.is_contiguous(memory_format=th.channels_last)
    assert nhwc.is_contiguous(memory_format=th.channels_last) and not nhwc.is_contiguous()


@pytest.mark.parametrize(
    "make",
    [
        lambda cl: ViTEncoder(3, image_size=32, embed_dim=16, depth=1, num_heads=2, patch_size=8, channels_last=cl),
        lambda cl: ViTEncoder(3, image_size=32, embed_dim=16, depth=1, num_heads=2, stem="conv", channels_last=cl),
        lambda cl: DrQEncoder(3, feature_dim=8, resize=None, image_size=32, channels_last=cl),
    ],
    ids=["vit-patch", "vit-conv", "drq"],
)
def test_channels_last_encoders_compute_the_same_features_and_gradients(make):
    th.manual_seed(0)
    default = make(False)
    nhwc = make(True)
    nhwc.load_state_dict(default.state_dict())  # the same weights, in the other layout
    convs = [p for p in nhwc.parameters() if p.ndim == 4]
    assert convs and all(p.is_contiguous(memory_format=th.channels_last) and not p.is_contiguous() for p in convs)
    assert all(p.is_contiguous() for p in default.parameters())
    images = _uint8_images(5, 3, 32, 32)
    for inputs in (images, random_shift(images, pad=2, channels_last=True)):  # NCHW uint8 (acting), NHWC float (updates)
        out_default, out_nhwc = default(inputs), nhwc(inputs)
        assert th.allclose(out_default, out_nhwc, atol=1e-5)
        (out_default**2).sum().backward()
        (out_nhwc**2).sum().backward()
        # The layouts sum in different orders, and the ViT's float32 gradients carry rounding errors of up to ~1e-3 of
        # a tensor's largest gradient (as large in either layout, against a float64 reference; measured on an AMD
        # EPYC, where oneDNN picks other kernels than on Intel): compare at 5e-3 of that scale. A layout mistake
        # (a permuted channel or pixel) moves gradients by about their scale.
        for p, q in zip(default.parameters(), nhwc.parameters()):
            assert th.allclose(p.grad, q.grad, rtol=0, atol=5e-3 * float(p.grad.abs().max()))
        default.zero_grad()
        nhwc.zero_grad()
