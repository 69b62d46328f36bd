"""
``PointGoal-v0`` from pixels: IBRL settings for ``obs_mode="pixel"``, and an adapter that lets a policy of
states act on images (it reads the point and its velocity dot back from the image).
"""

from typing import Any

import numpy as np

from sb3_ibrl.envs.point_goal import ARENA_HALF_SIZE

# IBRL settings for ``obs_mode="pixel"`` (32 x 32 images): a small ViT, E = 2 as in the paper's pixel tasks
POINT_GOAL_PIXEL_IBRL_SETTINGS: dict[str, Any] = dict(
    learning_rate=1e-3,
    batch_size=64,
    learning_starts=300,
    gradient_steps=1,
    policy_delay=1,
    n_steps=10,
    tau=0.05,
    policy_kwargs=dict(
        encoder="vit",
        encoder_kwargs=dict(embed_dim=32, depth=1, num_heads=2),
        q_hidden_dim=64,
        net_arch=[64, 64],
        trunk_dim=32,
        n_critics=2,
    ),
)


def state_from_image(image: np.ndarray) -> np.ndarray:
    """
    Read ``[x, y, vx, vy]`` back from a ``"pixel"`` observation (channel-first): the centre of the red point,
    and the velocity from the blue dot behind it (zero when the point hides it). Accurate to about one pixel.

    :param image: a ``(3, size, size)`` ``uint8`` image drawn with the velocity dot
    :return: the estimated state, ``float32``
    """
    size = image.shape[-1]
    red = (image[0] == 220) & (image[1] == 40) & (image[2] == 40)
    blue = (image[0] == 40) & (image[1] == 40) & (image[2] == 220)

    def centre(mask: np.ndarray) -> np.ndarray:
        rows, cols = np.nonzero(mask)
        x = (cols.mean() + 0.5) / size * 2 * ARENA_HALF_SIZE - ARENA_HALF_SIZE
        y = ARENA_HALF_SIZE - (rows.mean() + 0.5) / size * 2 * ARENA_HALF_SIZE
        return np.array([x, y])

    pos = centre(red) if red.any() else np.zeros(2)
    vel = (pos - centre(blue)) / 0.25 if blue.any() else np.zeros(2)
    return np.concatenate([pos, vel]).astype(np.float32)


class PixelStateAdapter:
    """
    Run a policy of states on ``"pixel"`` observations: read the state back from each image
    (:func:`state_from_image`), then act. Turns a state BC policy into an IL policy that reads pixels.

    :param state_policy: an SB3 policy (``predict``) or a callable on a batch of states
    """

    def __init__(self, state_policy: Any):
        self.state_policy = state_policy

    def __call__(self, images: Any) -> np.ndarray:
        images = np.asarray(images.cpu() if hasattr(images, "cpu") else images)
        states = np.stack([state_from_image(image) for image in images.reshape(-1, *images.shape[-3:])])
        if hasattr(self.state_policy, "predict"):
            return self.state_policy.predict(states, deterministic=True)[0]
        return np.asarray(self.state_policy(states))
