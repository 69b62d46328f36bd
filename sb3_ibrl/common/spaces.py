"""Observation spaces: which hold images, and how a Dict space splits into its image and proprio entries."""

from typing import Optional

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
