"""
Map the observation keys of a robomimic HDF5 file to an env's observation space (Box state, Box image, Dict of
Boxes), and read the file as that env's observations (images transposed to the space's layout).
"""

import os
from collections.abc import Mapping, Sequence
from typing import Optional, Union

import numpy as np
from gymnasium import spaces

from sb3_ibrl.data.episodes import Episode
from sb3_ibrl.data.robomimic_hdf5 import (
    ROBOMIMIC_STATE_KEYS,
    KeyInfo,
    ObsKeys,
    PathType,
    as_key_groups,
    key_info,
    normalize_obs_keys,
    read_robomimic_episodes,
)


def _fits(keys: Sequence[str], info: KeyInfo, space: spaces.Space) -> bool:
    """Whether these file keys give observations of the Box space (images: channel-first or channel-last)."""
    if not isinstance(space, spaces.Box) or any(key not in info for key in keys):
        return False
    shape = tuple(space.shape)
    if len(shape) == 3:
        channel_last = (shape[1], shape[2], shape[0])
        return len(keys) == 1 and info[keys[0]][0] in (shape, channel_last)
    if len(shape) != 1 or any(len(info[key][0]) >= 3 for key in keys):
        return False
    return sum(int(np.prod(info[key][0])) for key in keys) == shape[0]


def _infer_keys(space: spaces.Space, info: KeyInfo, name: Optional[str]) -> list[str]:
    """File keys for one Box space (the top-level one, or the Dict entry ``name``)."""
    named: list[list[str]] = []
    if name is not None:
        named += [[name], [f"{name}_image"]]
    named.append(list(ROBOMIMIC_STATE_KEYS[1:] if name == "proprio" else ROBOMIMIC_STATE_KEYS))
    for keys in named:
        if _fits(keys, info, space):
            return keys
    single = [[key] for key in sorted(info) if _fits([key], info, space)]
    if len(single) == 1:
        return single[0]
    where = "the observation space" if name is None else f"the Dict entry {name!r}"
    if single:
        raise ValueError(f"several file keys fit {where} ({space}): {[keys[0] for keys in single]}")
    raise ValueError(f"no file key (or robomimic key set {list(named[-1])}) fits {where} ({space})")


def match_obs_keys(
    path: PathType, observation_space: spaces.Space, obs_keys: Optional[ObsKeys] = None, split: Optional[str] = None
) -> Union[list[str], dict[str, list[str]]]:
    """
    The file keys that give an env's observations: ``obs_keys`` when given (checked), else the keys recorded in
    the file when they fit, else keys picked by name and shape: for a state Box, robomimic's
    ``object + robot0_eef_pos + robot0_eef_quat + robot0_gripper_qpos`` or the one key of that size; for an image
    Box, the one image key of that shape (``(C, H, W)`` or ``(H, W, C)``); for a Dict, per entry ``<key>``,
    ``<key>_image``, (``proprio``) robomimic's three proprio keys, or the one key that fits.

    :param path: the file
    :param observation_space: the env's observation space (Box or Dict of Boxes)
    :param obs_keys: keys to check instead of picking them: a list (Box) or ``{env key: [file keys]}`` (Dict)
    :param split: a ``mask`` split whose first demo is inspected
    :return: a list of file keys (Box) or ``{env key: [file keys]}`` (Dict)
    """
    info, recorded = key_info(path, split)
    entries = observation_space.spaces if isinstance(observation_space, spaces.Dict) else {None: observation_space}

    def fits_all(keys: Optional[ObsKeys]) -> bool:
        if keys is None or isinstance(keys, Mapping) != isinstance(observation_space, spaces.Dict):
            return False
        groups, _ = as_key_groups(keys)
        return set(groups) == set(entries) and all(_fits(groups[name], info, space) for name, space in entries.items())

    def listing() -> str:
        return ", ".join(f"{key} {shape} {dtype}" for key, (shape, dtype) in sorted(info.items()))

    try:
        if obs_keys is not None:
            if not fits_all(obs_keys):
                raise ValueError(f"obs_keys={obs_keys!r} do not give the shapes of the space")
            keys: ObsKeys = obs_keys
        elif fits_all(recorded):
            keys = recorded  # type: ignore[assignment]
        elif isinstance(observation_space, spaces.Dict):
            keys = {name: _infer_keys(space, info, name) for name, space in observation_space.spaces.items()}
        else:
            keys = _infer_keys(observation_space, info, None)
    except ValueError as error:
        raise ValueError(
            f"Cannot map the observation keys of {os.fspath(path)} to the observation space {observation_space}: {error}. "
            f"The file's keys (shape per step, dtype): {listing() or 'none'}. Pass obs_keys=[...] for a Box space or "
            "obs_keys={env key: [file keys]} for a Dict space."
        ) from error
    return normalize_obs_keys(keys)


def _to_layout(obs: np.ndarray, space: spaces.Space) -> np.ndarray:
    """Images stored ``(H, W, C)`` transposed to a channel-first space's ``(C, H, W)``."""
    shape = tuple(space.shape)  # type: ignore[arg-type]
    if len(shape) == 3 and tuple(obs.shape[1:]) != shape:
        return np.ascontiguousarray(np.moveaxis(obs, -1, 1))
    return obs


def read_episodes_for_env(
    path: PathType,
    observation_space: spaces.Space,
    n_demos: Optional[int] = None,
    split: Optional[str] = None,
    obs_keys: Optional[ObsKeys] = None,
) -> list[Episode]:
    """
    Read a robomimic HDF5 file as observations of an env (:func:`match_obs_keys` picks the keys): a state Box
    gets the low-dim keys concatenated, an image Box the image key in the space's layout, a Dict one array per entry.

    :param path: the file
    :param observation_space: the env's observation space
    :param n_demos: read only the first ``n_demos`` demos
    :param split: name of a ``mask`` split to read from
    :param obs_keys: the keys, when they cannot be picked: a list (Box) or ``{env key: [file keys]}`` (Dict)
    :return: the episodes, whose observations fit ``observation_space``
    """
    keys = match_obs_keys(path, observation_space, obs_keys, split)
    episodes = read_robomimic_episodes(path, keys, n_demos=n_demos, split=split, channel_first=False)
    for episode in episodes:
        if isinstance(episode.obs, dict):
            episode.obs = {key: _to_layout(value, observation_space[key]) for key, value in episode.obs.items()}
        else:
            episode.obs = _to_layout(episode.obs, observation_space)
    return episodes
