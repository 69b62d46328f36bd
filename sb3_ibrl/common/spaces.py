"""
Spaces: which observation spaces hold images, how a Dict space splits into its image and proprio entries, and
whether an action space is already the ``[-1, 1]`` box of the networks.
"""

from typing import Optional

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space


def has_image(observation_space: spaces.Space) -> bool:
    """Whether the observation space is an image (uint8, 3-D Box) or a Dict holding one."""
    if isinstance(observation_space, spaces.Dict):
        return any(is_image_space(space) for space in observation_space.spaces.values())
    return is_image_space(observation_space)


def split_image_space(observation_space: spaces.Space) -> tuple[Optional[str], list[str]]:
    """
    Find the image of a Dict observation space and its other (proprio) keys.

    :param observation_space: a Dict space with exactly one image entry and any number of vector entries
    :return: the image key and the sorted proprio keys
    """
    if not isinstance(observation_space, spaces.Dict):
        raise ValueError(f"Expected a Dict observation space, got {observation_space}")
    image_keys = [key for key, space in observation_space.spaces.items() if is_image_space(space)]
    if len(image_keys) != 1:
        raise ValueError(
            f"A Dict observation needs exactly one image entry (uint8, (C, H, W) or (H, W, C)) next to vector entries; "
            f"found {len(image_keys)} in {observation_space}"
        )
    others = sorted(key for key in observation_space.spaces if key != image_keys[0])
    for key in others:
        if len(observation_space.spaces[key].shape) != 1:  # type: ignore[arg-type]
            raise ValueError(f"Non-image Dict entries must be vectors (proprio); '{key}' is {observation_space.spaces[key]}")
    return image_keys[0], others


def is_unit_box(action_space: spaces.Space) -> bool:
    """
    Whether the action space is a Box with every bound at ``-1`` / ``1`` (robosuite, Meta-World): then the map
    between env units and the networks' ``[-1, 1]`` is the identity, and should be applied as one (the affine map
    in float32 moves actions by up to 6e-8, which is enough to change a contact-rich episode).
    """
    return isinstance(action_space, spaces.Box) and bool(np.all(action_space.low == -1.0) and np.all(action_space.high == 1.0))
