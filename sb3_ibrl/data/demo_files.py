"""
Demo files and demonstration sources: the ``.npz`` demo file of sb3-ibrl (:func:`save_episodes` /
:func:`load_episodes`, which also reads robomimic HDF5 files that record their keys) and :func:`to_episodes`,
which turns any supported source (a path, imitation types, episodes) into a list of :class:`Episode`.
"""

import os
from collections.abc import Iterable, Sequence
from typing import Any, Union

import numpy as np

from sb3_ibrl.common.files import atomic_path
from sb3_ibrl.data.episodes import Episode, from_imitation_trajectory, from_imitation_transitions, obs_index, obs_length
from sb3_ibrl.data.robomimic_hdf5 import read_recorded_episodes

NPZ_KEYS = ("obs", "acts", "rews", "episode_lengths", "terminal")
# Dict observations are stored in ``.npz`` files as one array per key, named ``obs.<key>``
NPZ_DICT_PREFIX = "obs."

DemoSource = Union[str, os.PathLike, Sequence[Any], Any]


def to_episodes(demonstrations: DemoSource) -> list[Episode]:
    """
    Turn any supported demonstration source into a list of :class:`Episode`.

    Accepted: a path to an ``.npz`` demo file written by :func:`save_episodes` or to a robomimic ``.hdf5``
    file that records its observation keys (see :func:`load_episodes`), a single ``Episode``, an imitation
    ``Transitions`` batch, or a sequence of ``Episode`` / imitation ``Trajectory`` objects.

    :param demonstrations: the source
    :return: the episodes
    """
    if isinstance(demonstrations, (str, os.PathLike)):
        return load_episodes(demonstrations)
    if isinstance(demonstrations, Episode):
        return [demonstrations]
    if hasattr(demonstrations, "next_obs") and hasattr(demonstrations, "dones"):
        return from_imitation_transitions(demonstrations)
    if not isinstance(demonstrations, Iterable):
        raise TypeError(
            f"Unsupported demonstrations of type {type(demonstrations).__name__}: pass a demo file path, "
            "a list of imitation Trajectory objects, an imitation Transitions batch or a list of Episode"
        )
    episodes: list[Episode] = []
    for item in demonstrations:
        if isinstance(item, Episode):
            episodes.append(item)
        elif hasattr(item, "obs") and hasattr(item, "acts") and hasattr(item, "next_obs"):
            episodes.extend(from_imitation_transitions(item))
        elif hasattr(item, "obs") and hasattr(item, "acts"):
            episodes.append(from_imitation_trajectory(item))
        else:
            raise TypeError(
                f"Unsupported demonstration item of type {type(item).__name__}: expected an Episode or an "
                "imitation Trajectory / Transitions"
            )
    if not episodes:
        raise ValueError("The demonstrations are empty: no episode was given")
    return episodes


def save_episodes(path: Union[str, os.PathLike], episodes: Sequence[Episode]) -> str:
    """
    Write episodes to an ``.npz`` demo file (uncompressed, loadable without pickle).

    :param path: file to write (``.npz`` is appended when missing, as numpy does); written beside it and renamed
        onto it, so that a write that fails keeps the old file
    :param episodes: the episodes
    :return: the path written
    """
    if len(episodes) == 0:
        raise ValueError("Refusing to write an empty demo file: no episode was given")
    if isinstance(episodes[0].obs, dict):
        obs_arrays = {f"{NPZ_DICT_PREFIX}{key}": np.concatenate([ep.obs[key] for ep in episodes]) for key in episodes[0].obs}
    else:
        obs_arrays = {"obs": np.concatenate([ep.obs for ep in episodes], axis=0)}
    target = os.fspath(path)
    target = target if target.endswith(".npz") else f"{target}.npz"
    with atomic_path(target) as temporary:
        np.savez(
            temporary,
            **obs_arrays,
            acts=np.concatenate([ep.acts for ep in episodes], axis=0),
            rews=np.concatenate([ep.rews for ep in episodes], axis=0),
            episode_lengths=np.array([len(ep) for ep in episodes], dtype=np.int64),
            terminal=np.array([ep.terminal for ep in episodes], dtype=bool),
        )
    return target


def load_episodes(path: Union[str, os.PathLike]) -> list[Episode]:
    """
    Read an ``.npz`` demo file written by :func:`save_episodes`, or a robomimic ``.hdf5`` / ``.h5`` file
    that records its observation keys (see :func:`sb3_ibrl.data.robomimic_writer.write_robomimic_hdf5`;
    for other robomimic files use :func:`sb3_ibrl.data.robomimic_hdf5.read_robomimic_episodes`).

    :param path: the file
    :return: the episodes
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Demo file not found: {path}")
    if path.endswith((".hdf5", ".h5")):
        try:
            import h5py  # noqa: F401
        except ImportError as error:
            raise ImportError(
                f"Reading the robomimic HDF5 demo file {path} needs h5py: run `pip install h5py` "
                f'(or `pip install "sb3_ibrl[hdf5]"`)'
            ) from error
        return read_recorded_episodes(path)
    try:
        data = np.load(path, allow_pickle=False)
        dict_keys = [name for name in data.files if name.startswith(NPZ_DICT_PREFIX)]
        arrays: dict[str, Any] = {key: data[key] for key in NPZ_KEYS if key != "obs" or not dict_keys}
        if dict_keys:
            arrays["obs"] = {name[len(NPZ_DICT_PREFIX) :]: data[name] for name in dict_keys}
    except KeyError as error:
        raise ValueError(f"{path} is not an sb3-ibrl demo file: missing array {error}; expected {NPZ_KEYS}") from error
    except Exception as error:  # zipfile / pickle / OS errors of a corrupt file
        raise ValueError(f"Could not read demo file {path}: {error}") from error
    lengths = arrays["episode_lengths"].astype(np.int64)
    if len(lengths) == 0:
        raise ValueError(f"{path} holds no demonstration episode")
    if (lengths <= 0).any():
        raise ValueError(f"{path} is corrupt: an episode length is not positive")
    n_steps, n_eps = int(lengths.sum()), len(lengths)
    expected = {"acts": n_steps, "rews": n_steps, "obs": n_steps + n_eps, "terminal": n_eps}
    for key, size in expected.items():
        rows = obs_length(arrays[key]) if key == "obs" else len(arrays[key])
        if rows != size:
            raise ValueError(
                f"{path} is corrupt or truncated: '{key}' has {rows} rows, expected {size} "
                f"for {n_eps} episodes of {n_steps} steps in all"
            )
    episodes, obs_start, act_start = [], 0, 0
    for length, terminal in zip(lengths, arrays["terminal"]):
        episodes.append(
            Episode(
                obs=obs_index(arrays["obs"], slice(obs_start, obs_start + length + 1)),
                acts=arrays["acts"][act_start : act_start + length],
                rews=arrays["rews"][act_start : act_start + length],
                terminal=bool(terminal),
            )
        )
        obs_start += length + 1
        act_start += length
    return episodes
