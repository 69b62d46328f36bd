"""
Read demonstrations in the robomimic HDF5 layout (robomimic v0.3 datasets) with ``h5py``, without depending on the
``robomimic`` package; :mod:`sb3_ibrl.data.robomimic_writer` writes them.

Layout::

    data                       attrs: total (int), env_args (JSON string)
    data/demo_<k>              attrs: num_samples (int T)
        actions (T, act_dim)   rewards (T,)   dones (T,)   [states (T, state_dim)]
        obs/<key> (T, ...)     next_obs/<key> (T, ...)
    mask/<split>               byte strings of demo names (b"demo_0", ...)

Low-dimensional observation keys are flattened per step and concatenated into ``float32`` vectors; a
single image key (``(T, H, W, 3)`` ``uint8``) is kept as is. A dict ``{env key: [file keys]}`` reads Dict
observations (e.g. ``{"agentview": ["agentview_image"], "proprio": ["robot0_eef_pos", ...]}``). The final
observation of an episode (row ``T``) comes from ``next_obs/<key>[T - 1]``.

Images are stored channel-last ``(H, W, C)`` as robomimic does. Files written from channel-first env
observations (``write_robomimic_hdf5(..., channel_first=True)``) record it (``data.attrs["sb3_ibrl_channel_first"]``)
and are read back channel-first ``(C, H, W)``. :func:`sb3_ibrl.data.obs_keys.read_episodes_for_env`
maps a file's keys to an env's observation space (Box state, Box image, Dict) and transposes images to its layout.
"""

import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

import numpy as np

from sb3_ibrl.data.episodes import Episode

try:
    import h5py
except ImportError:  # pragma: no cover - depends on the environment
    h5py = None

PathType = Union[str, os.PathLike]
# Observation keys: a list (one array: an image key alone, or low-dim keys concatenated) or {env key: [file keys]}
ObsKeys = Union[Sequence[str], Mapping[str, Sequence[str]]]
Groups = dict[Optional[str], list[str]]  # normalized keys: {env key (None: a single array): [file keys]}
OBS_KEYS_ATTR = "sb3_ibrl_obs_keys"
CHANNEL_FIRST_ATTR = "sb3_ibrl_channel_first"
# robomimic's low-dim keys, in the order of sb3-ibrl's robosuite state vector (proprio: the last three)
ROBOMIMIC_STATE_KEYS = ("object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")
_DEMO_NAME = re.compile(r"^demo_(\d+)$")


def require_h5py() -> Any:
    """The ``h5py`` module, or an ``ImportError`` that says how to install it."""
    if h5py is None:
        raise ImportError(
            "Reading or writing robomimic HDF5 demo files needs h5py: run `pip install h5py` "
            '(or `pip install "sb3_ibrl[hdf5]"`)'
        )
    return h5py


def _open(path: PathType) -> Any:
    """Open an HDF5 file for reading, turning low-level errors into clear ones naming the path."""
    lib = require_h5py()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Demo file not found: {path}")
    try:
        return lib.File(path, "r")
    except OSError as error:
        raise ValueError(f"Could not read {path} as an HDF5 file (not HDF5, or truncated/corrupt): {error}") from error


def _data_group(file: Any, path: PathType) -> Any:
    if "data" not in file or not isinstance(file["data"], h5py.Group):
        raise ValueError(
            f"{os.fspath(path)} is not a robomimic demo file: it has no 'data' group (top-level keys: {sorted(file.keys())})"
        )
    return file["data"]


def _sorted_demo_names(names: Sequence[str]) -> list[str]:
    """Demo names in numeric order (``demo_2`` before ``demo_10``); other names are ignored."""
    demos = [name for name in names if _DEMO_NAME.match(name)]
    return sorted(demos, key=lambda name: int(_DEMO_NAME.match(name).group(1)))  # type: ignore[union-attr]


def _decode(name: Any) -> str:
    return name.decode("utf-8") if isinstance(name, (bytes, np.bytes_)) else str(name)


def _demo_names(file: Any, path: PathType, split: Optional[str]) -> list[str]:
    data = _data_group(file, path)
    all_demos = _sorted_demo_names(list(data.keys()))
    if split is None:
        return all_demos
    splits = sorted(file["mask"].keys()) if "mask" in file else []
    if split not in splits:
        raise ValueError(
            f"{os.fspath(path)} has no split {split!r}; available splits: {splits if splits else 'none (no mask group)'}"
        )
    names = [_decode(name) for name in np.asarray(file["mask"][split][()]).reshape(-1)]
    missing = [name for name in names if name not in data]
    if missing:
        raise ValueError(f"{os.fspath(path)}: split {split!r} names demos that are not in 'data': {missing[:5]}")
    return names


def list_robomimic_demos(path: PathType, split: Optional[str] = None) -> list[str]:
    """
    Demo names of a robomimic HDF5 file.

    :param path: the file
    :param split: name of a ``mask`` split (e.g. ``"train"``); ``None`` lists every demo
    :return: the demo names, in numeric order (or in the split's order)
    """
    with _open(path) as file:
        return _demo_names(file, path, split)


def robomimic_obs_keys(path: PathType) -> list[str]:
    """
    Observation keys of the first demo of a robomimic HDF5 file.

    :param path: the file
    :return: the keys of ``data/<first demo>/obs``
    """
    with _open(path) as file:
        names = _demo_names(file, path, None)
        if not names:
            raise ValueError(f"{os.fspath(path)} holds no demonstration (no 'data/demo_<k>' group)")
        demo = file["data"][names[0]]
        return sorted(demo["obs"].keys()) if "obs" in demo else []


def as_key_groups(obs_keys: ObsKeys) -> tuple[Groups, bool]:
    """Normalize observation keys to ``{env key or None: [file keys]}``; return it and whether it is a Dict."""
    if isinstance(obs_keys, str):
        obs_keys = [obs_keys]
    if isinstance(obs_keys, Mapping):
        groups: Groups = {str(key): [keys] if isinstance(keys, str) else list(keys) for key, keys in obs_keys.items()}
        is_dict = True
    else:
        groups, is_dict = {None: list(obs_keys)}, False
    if not groups or any(len(keys) == 0 for keys in groups.values()):
        raise ValueError("obs_keys is empty: name at least one observation key (per Dict entry)")
    return groups, is_dict


def _check_obs_keys(groups: Groups, demo: Any) -> dict[Optional[str], bool]:
    """Validate the keys against a demo; return, per group, whether it is a single image key."""
    available = sorted(demo["obs"].keys()) if "obs" in demo else []
    images = {}
    for group, keys in groups.items():
        for key in keys:
            if key not in available:
                raise ValueError(f"Observation key {key!r} not found in {demo.name}/obs; available keys: {available}")
            if "next_obs" not in demo or key not in demo["next_obs"]:
                raise ValueError(
                    f"Observation key {key!r} not found in {demo.name}/next_obs (needed for the final observation)"
                )
        is_image = [demo["obs"][key].ndim >= 4 for key in keys]  # (T, H, W, C): ndim >= 3 per step
        if any(is_image) and len(keys) > 1:
            image_keys = [key for key, image in zip(keys, is_image) if image]
            raise ValueError(
                f"Image key(s) {image_keys} cannot be concatenated with other observation keys: read Dict observations "
                f"with obs_keys={{env key: [file keys]}}, e.g. {{'image': [{image_keys[0]!r}], 'proprio': [...]}}"
            )
        images[group] = bool(is_image[0])
    return images


def _read_rows(demo: Any, keys: list[str], image: bool, n_steps: int, channel_first: bool) -> np.ndarray:
    """The ``T + 1`` observations of one group of keys: an image as stored (or channel-first), or low-dim float32."""
    if image:
        rows = np.concatenate([demo["obs"][keys[0]][()], demo["next_obs"][keys[0]][n_steps - 1 : n_steps]], axis=0)
        return np.ascontiguousarray(np.moveaxis(rows, -1, 1)) if channel_first else rows
    parts = []
    for key in keys:
        rows = np.concatenate([demo["obs"][key][()], demo["next_obs"][key][n_steps - 1 : n_steps]], axis=0)
        parts.append(rows.reshape(n_steps + 1, -1).astype(np.float32))
    return np.concatenate(parts, axis=1)


def _read_demo(
    demo: Any, name: str, groups: Groups, images: dict[Optional[str], bool], channel_first: bool, path: str
) -> Episode:
    for required in ("actions", "rewards", "dones"):
        if required not in demo:
            raise ValueError(f"{path}: demo {name!r} has no {required!r} dataset")
    actions = np.asarray(demo["actions"][()], dtype=np.float32)
    n_steps = len(actions)
    if n_steps == 0:
        raise ValueError(f"{path}: demo {name!r} has no step")
    num_samples = demo.attrs.get("num_samples")
    lengths = {"actions": n_steps, "rewards": len(demo["rewards"]), "dones": len(demo["dones"])}
    for key in (key for keys in groups.values() for key in keys):
        lengths[f"obs/{key}"] = len(demo["obs"][key])
        lengths[f"next_obs/{key}"] = len(demo["next_obs"][key])
    if num_samples is not None:
        lengths["num_samples attr"] = int(num_samples)
    bad = {key: size for key, size in lengths.items() if size != n_steps}
    if bad:
        raise ValueError(f"{path} is truncated or corrupt: in demo {name!r}, 'actions' has {n_steps} rows but {bad} differ")
    rewards = np.asarray(demo["rewards"][()], dtype=np.float32).reshape(-1)
    dones = np.asarray(demo["dones"][()]).reshape(-1)
    obs = {group: _read_rows(demo, keys, images[group], n_steps, channel_first) for group, keys in groups.items()}
    return Episode(obs=obs[None] if None in obs else obs, acts=actions, rews=rewards, terminal=bool(dones[-1]))


def read_robomimic_episodes(
    path: PathType,
    obs_keys: ObsKeys,
    n_demos: Optional[int] = None,
    split: Optional[str] = None,
    channel_first: Optional[bool] = None,
) -> list[Episode]:
    """
    Read demonstrations from a robomimic HDF5 file (e.g. the official ``can_ph.hdf5``).

    :param path: the file
    :param obs_keys: observation keys; a single image key gives image observations (``uint8`` kept), low-dimensional
        keys are flattened and concatenated in this order into ``float32`` vectors; a dict ``{env key: [file keys]}``
        gives Dict observations, each entry read that way
    :param n_demos: read only the first ``n_demos`` demos (of the split when given); ``None`` reads all
    :param split: name of a ``mask`` split (e.g. ``"train"``) to read from
    :param channel_first: return images ``(C, H, W)`` (stored ``(H, W, C)``); ``None``: as the file records
        (``True`` for files written with ``write_robomimic_hdf5(..., channel_first=True)``, else as stored)
    :return: the episodes
    """
    groups, _ = as_key_groups(obs_keys)
    if n_demos is not None and n_demos < 1:
        raise ValueError(f"n_demos must be at least 1 (got {n_demos})")
    str_path = os.fspath(path)
    with _open(path) as file:
        names = _demo_names(file, path, split)
        if not names:
            raise ValueError(f"{str_path} holds no demonstration" + (f" in split {split!r}" if split else ""))
        if n_demos is not None:
            if n_demos > len(names):
                where = f"split {split!r} of {str_path}" if split else str_path
                raise ValueError(f"n_demos={n_demos} is larger than the {len(names)} demos available in {where}")
            names = names[:n_demos]
        data = file["data"]
        if channel_first is None:
            channel_first = bool(data.attrs.get(CHANNEL_FIRST_ATTR, False))
        try:
            images = _check_obs_keys(groups, data[names[0]])
            return [_read_demo(data[name], name, groups, images, channel_first, str_path) for name in names]
        except OSError as error:  # a read failure inside a damaged file
            raise ValueError(f"Could not read {str_path}: the file is truncated or corrupt ({error})") from error


def normalize_obs_keys(obs_keys: ObsKeys) -> Union[list[str], dict[str, list[str]]]:
    """Observation keys as a JSON-friendly list or ``{env key: [file keys]}``."""
    groups, is_dict = as_key_groups(obs_keys)
    return {str(group): keys for group, keys in groups.items()} if is_dict else groups[None]


def recorded_obs_keys(path: PathType) -> Optional[ObsKeys]:
    """
    The observation keys recorded in a file by :func:`~sb3_ibrl.data.robomimic_writer.write_robomimic_hdf5`, or ``None``.

    :param path: the file
    :return: a list of keys, ``{env key: [file keys]}``, or ``None`` when the file records none
    """
    with _open(path) as file:
        recorded = _data_group(file, path).attrs.get(OBS_KEYS_ATTR)
    return None if recorded is None else json.loads(_decode(recorded))


def read_recorded_episodes(path: PathType) -> list[Episode]:
    """
    Read every demo of a robomimic HDF5 file with the observation keys recorded in it by
    :func:`~sb3_ibrl.data.robomimic_writer.write_robomimic_hdf5` (``data.attrs["sb3_ibrl_obs_keys"]``; a dict of
    keys gives Dict observations).

    :param path: the file
    :return: the episodes
    """
    obs_keys = recorded_obs_keys(path)
    if obs_keys is None:
        keys = robomimic_obs_keys(path)
        raise ValueError(
            f"{os.fspath(path)} is a robomimic HDF5 file without recorded observation keys: call "
            f"sb3_ibrl.data.obs_keys.read_episodes_for_env(path, env.observation_space) (or "
            f"read_robomimic_episodes(path, obs_keys=[...])) and pass the episodes as demonstrations; the file's obs "
            f"keys are {keys}"
        )
    return read_robomimic_episodes(path, obs_keys=obs_keys)


KeyInfo = dict[str, tuple[tuple[int, ...], np.dtype]]  # file key -> (shape per step, dtype)


def key_info(path: PathType, split: Optional[str]) -> tuple[KeyInfo, Optional[ObsKeys]]:
    """
    Per-step shape and dtype of every observation key of a file's first demo, and the keys recorded in it.

    :param path: the file
    :param split: a ``mask`` split whose first demo is inspected
    :return: ``{file key: (shape per step, dtype)}`` and the recorded keys (``None`` when none)
    """
    with _open(path) as file:
        names = _demo_names(file, path, split)
        if not names:
            raise ValueError(f"{os.fspath(path)} holds no demonstration" + (f" in split {split!r}" if split else ""))
        demo = file["data"][names[0]]
        info = {key: (tuple(value.shape[1:]), value.dtype) for key, value in demo["obs"].items()} if "obs" in demo else {}
        recorded = file["data"].attrs.get(OBS_KEYS_ATTR)
    return info, None if recorded is None else json.loads(_decode(recorded))
