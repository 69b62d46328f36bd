"""
The networks of the actor, the critics and the BC policy.

- :mod:`sb3_ibrl.networks.mlp`: batched ensemble MLPs (E critics in one matmul), the dropout actor MLP, EMA.
- :mod:`sb3_ibrl.networks.encoders`: the paper's ViT and the DrQ ConvNet image encoders.
- :mod:`sb3_ibrl.networks.q_networks`: the observation encoder, the MLP and ViT Q heads, the pixel actor head.
- :mod:`sb3_ibrl.networks.resnet`: ResNet-18 (GroupNorm) features extractor of the pixel BC policy.
- :mod:`sb3_ibrl.networks.augmentation`: DrQ's random shift.
"""

from sb3_ibrl.networks.augmentation import RandomShift, random_shift
from sb3_ibrl.networks.encoders import DrQEncoder, ViTEncoder
from sb3_ibrl.networks.mlp import EnsembleLinear, EnsembleMLP, dropout_mlp, ema_update, ensemble_mlp
from sb3_ibrl.networks.q_networks import Encoded, MLPQHead, ObservationEncoder, PixelActorHead, ViTQHead
from sb3_ibrl.networks.resnet import ResNet18Extractor

__all__ = [
    "DrQEncoder",
    "Encoded",
    "EnsembleLinear",
    "EnsembleMLP",
    "MLPQHead",
    "ObservationEncoder",
    "PixelActorHead",
    "RandomShift",
    "ResNet18Extractor",
    "ViTEncoder",
    "ViTQHead",
    "dropout_mlp",
    "ema_update",
    "ensemble_mlp",
    "random_shift",
]
