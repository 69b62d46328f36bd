"""
Read and write demonstrations in the robomimic HDF5 layout (robomimic v0.3 datasets) with ``h5py``,
without depending on the ``robomimic`` package.

Layout::

    data                       attrs: total (int), env_args (JSON string)
    data/demo_<k>              attrs: num_samples (int T)
        actions (T, act_dim)   rewards (T,)   dones (T,)   [states (T, state_dim)]
        obs/<key> (T, ...)     next_obs/<key> (T, ...)
    mask/<split>               byte strings of demo names (b"demo_0", ...)

Low-dimensional observation keys are flattened per step and concatenated into ``float32`` vectors; a
single image key (``(T, H, W, 3)`` ``uint8``) is kept as is. The final observation of an episode (row
``T``) comes from ``next_obs/<key>[T - 1]``.
"""

import json
import os
import re
from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np

from sb3_ibrl.common.demos import Episode

try:
    import h5py
except ImportError:  # pragma: no cover - depends on the environment
    h5py = None

PathType = Union[str, os.PathLike]
OBS_KEYS_ATTR = "sb3_ibrl_obs_keys"
_DEMO_NAME = re.compile(r"^demo_(\d+)$")


def _require_h5py() -> Any:
    if h5py is None:
        raise ImportError(
            'Reading robomimic HDF5 demo files needs h5py: run `pip install h5py` (or `pip install "sb3_ibrl[hdf5]"`)'
        )
    return h5py


def _open(path: PathType) -> Any:
    """Open an HDF5 file for reading, turning low-level errors into clear ones naming the path."""
    lib = _require_h5py()
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


def _check_obs_keys(obs_keys: Sequence[str], demo: Any) -> bool:
    """Validate the keys against a demo; return whether they select a single image key."""
    if isinstance(obs_keys, str):
        obs_keys = [obs_keys]
    if len(obs_keys) == 0:
        raise ValueError("obs_keys is empty: name at least one observation key")
    available = sorted(demo["obs"].keys()) if "obs" in demo else []
    for key in obs_keys:
        if key not in available:
            raise ValueError(f"Observation key {key!r} not found in {demo.name}/obs; available keys: {available}")
        if "next_obs" not in demo or key not in demo["next_obs"]:
            raise ValueError(f"Observation key {key!r} not found in {demo.name}/next_obs (needed for the final observation)")
    is_image = [demo["obs"][key].ndim >= 4 for key in obs_keys]  # (T, H, W, C): ndim >= 3 per step
    if any(is_image) and len(obs_keys) > 1:
        images = [key for key, image in zip(obs_keys, is_image) if image]
        raise ValueError(
            f"Image key(s) {images} cannot be mixed with other observation keys: dict observations are not "
            "supported yet; pass a single image key or only low-dimensional keys"
        )
    return bool(is_image[0])


def _read_demo(demo: Any, name: str, obs_keys: Sequence[str], image: bool, path: str) -> Episode:
    for required in ("actions", "rewards", "dones"):
        if required not in demo:
            raise ValueError(f"{path}: demo {name!r} has no {required!r} dataset")
    actions = np.asarray(demo["actions"][()], dtype=np.float32)
    n_steps = len(actions)
    if n_steps == 0:
        raise ValueError(f"{path}: demo {name!r} has no step")
    num_samples = demo.attrs.get("num_samples")
    lengths = {"actions": n_steps, "rewards": len(demo["rewards"]), "dones": len(demo["dones"])}
    for key in obs_keys:
        lengths[f"obs/{key}"] = len(demo["obs"][key])
        lengths[f"next_obs/{key}"] = len(demo["next_obs"][key])
    if num_samples is not None:
        lengths["num_samples attr"] = int(num_samples)
    bad = {key: size for key, size in lengths.items() if size != n_steps}
    if bad:
        raise ValueError(f"{path} is truncated or corrupt: in demo {name!r}, 'actions' has {n_steps} rows but {bad} differ")
    rewards = np.asarray(demo["rewards"][()], dtype=np.float32).reshape(-1)
    dones = np.asarray(demo["dones"][()]).reshape(-1)
    if image:
        key = obs_keys[0]
        obs = np.concatenate([demo["obs"][key][()], demo["next_obs"][key][n_steps - 1 : n_steps]], axis=0)
    else:
        parts = []
        for key in obs_keys:
            rows = np.concatenate([demo["obs"][key][()], demo["next_obs"][key][n_steps - 1 : n_steps]], axis=0)
            parts.append(rows.reshape(n_steps + 1, -1).astype(np.float32))
        obs = np.concatenate(parts, axis=1)
    return Episode(obs=obs, acts=actions, rews=rewards, terminal=bool(dones[-1]))


def read_robomimic_episodes(
    path: PathType, obs_keys: Sequence[str], n_demos: Optional[int] = None, split: Optional[str] = None
) -> list[Episode]:
    """
    Read demonstrations from a robomimic HDF5 file (e.g. the official ``can_ph.hdf5``).

    :param path: the file
    :param obs_keys: observation keys; a single image key gives image observations (``uint8`` kept),
        otherwise the low-dimensional keys are flattened and concatenated in this order into ``float32`` vectors
    :param n_demos: read only the first ``n_demos`` demos (of the split when given); ``None`` reads all
    :param split: name of a ``mask`` split (e.g. ``"train"``) to read from
    :return: the episodes
    """
    if isinstance(obs_keys, str):
        obs_keys = [obs_keys]
    obs_keys = list(obs_keys)
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
        try:
            image = _check_obs_keys(obs_keys, data[names[0]])
            return [_read_demo(data[name], name, obs_keys, image, str_path) for name in names]
        except OSError as error:  # a read failure inside a damaged file
            raise ValueError(f"Could not read {str_path}: the file is truncated or corrupt ({error})") from error


def _prepare_demo(index: int, demo: dict[str, Any]) -> tuple:
    """Check one demo dict for the writer; return ``(actions, rewards, dones, obs, states)``."""
    actions = np.asarray(demo["actions"], dtype=np.float32)
    if actions.ndim == 1:
        actions = actions[:, None]
    n_steps = len(actions)
    if n_steps == 0:
        raise ValueError(f"Demo {index} has no step")
    rewards = np.asarray(demo["rewards"], dtype=np.float32).reshape(-1)
    if len(rewards) != n_steps:
        raise ValueError(f"Demo {index} has {len(rewards)} rewards for {n_steps} actions")
    if demo.get("dones") is not None:
        dones = np.asarray(demo["dones"]).astype(np.int64).reshape(-1)
    else:
        dones = np.zeros(n_steps, dtype=np.int64)
        dones[-1] = int(rewards[-1] > 0)
    if len(dones) != n_steps:
        raise ValueError(f"Demo {index} has {len(dones)} dones for {n_steps} actions")
    obs = {key: np.asarray(value) for key, value in demo["obs"].items()}
    for key, value in obs.items():
        if len(value) != n_steps + 1:
            raise ValueError(
                f"Demo {index}: observation key {key!r} has {len(value)} rows, expected {n_steps + 1} "
                "(one per action plus the final observation)"
            )
    states = demo.get("states")
    return actions, rewards, dones, obs, None if states is None else np.asarray(states)


def write_robomimic_hdf5(
    path: PathType,
    demos: Sequence[dict[str, Any]],
    env_args: Optional[dict[str, Any]] = None,
    masks: Optional[dict[str, Sequence[int]]] = None,
    obs_keys: Optional[Sequence[str]] = None,
) -> None:
    """
    Write demonstrations in the robomimic HDF5 layout.

    :param path: file to write (overwritten)
    :param demos: one dict per demo with ``obs`` (a dict of arrays with ``T + 1`` rows per key: the first
        ``T`` are written to ``obs``, the last ``T`` to ``next_obs``), ``actions`` ``(T, act_dim)``,
        ``rewards`` ``(T,)``, optional ``dones`` ``(T,)`` (default: 1 on the last step when the last reward
        is positive) and optional ``states`` ``(T, state_dim)``
    :param env_args: environment metadata stored as JSON in ``data.attrs["env_args"]``
    :param masks: splits, mapping a split name to demo indices (``{"train": [0, 1], "valid": [2]}``)
    :param obs_keys: when given, recorded in ``data.attrs["sb3_ibrl_obs_keys"]`` so that
        :func:`sb3_ibrl.common.demos.load_episodes` can read the file without being told the keys
    """
    lib = _require_h5py()
    if len(demos) == 0:
        raise ValueError("Refusing to write an empty demo file: no demo was given")
    if env_args is None:
        env_args = {"env_name": "unknown", "type": 1, "env_kwargs": {}}
    prepared = [_prepare_demo(index, demo) for index, demo in enumerate(demos)]
    if obs_keys is not None:
        obs_keys = [obs_keys] if isinstance(obs_keys, str) else list(obs_keys)
        for key in obs_keys:
            if key not in prepared[0][3]:
                raise ValueError(f"obs_keys names {key!r}, which demo 0 does not have; keys: {sorted(prepared[0][3])}")
    for split, indices in (masks or {}).items():
        for i in indices:
            if not 0 <= int(i) < len(prepared):
                raise ValueError(f"Mask {split!r} names demo index {i}, but only {len(prepared)} demos were given")
    with lib.File(os.fspath(path), "w") as file:
        data = file.create_group("data")
        total = 0
        for index, (actions, rewards, dones, obs, states) in enumerate(prepared):
            group = data.create_group(f"demo_{index}")
            group.attrs["num_samples"] = len(actions)
            group.create_dataset("actions", data=actions)
            group.create_dataset("rewards", data=rewards)
            group.create_dataset("dones", data=dones)
            if states is not None:
                group.create_dataset("states", data=states)
            for key, value in obs.items():
                group.create_dataset(f"obs/{key}", data=value[:-1])
                group.create_dataset(f"next_obs/{key}", data=value[1:])
            total += len(actions)
        data.attrs["total"] = total
        data.attrs["env_args"] = json.dumps(env_args)
        if obs_keys is not None:
            data.attrs[OBS_KEYS_ATTR] = json.dumps(obs_keys)
        if masks:
            mask = file.create_group("mask")
            for split, indices in masks.items():
                mask.create_dataset(split, data=np.array([f"demo_{int(i)}".encode() for i in indices], dtype="S"))


def read_recorded_episodes(path: PathType) -> list[Episode]:
    """
    Read every demo of a robomimic HDF5 file with the observation keys recorded in it by
    :func:`write_robomimic_hdf5` (``data.attrs["sb3_ibrl_obs_keys"]``).

    :param path: the file
    :return: the episodes
    """
    with _open(path) as file:
        data = _data_group(file, path)
        recorded = data.attrs.get(OBS_KEYS_ATTR)
    if recorded is None:
        keys = robomimic_obs_keys(path)
        raise ValueError(
            f"{os.fspath(path)} is a robomimic HDF5 file without recorded observation keys: call "
            f"sb3_ibrl.common.robomimic_hdf5.read_robomimic_episodes(path, obs_keys=[...]) and pass the episodes "
            f"as demonstrations; the file's obs keys are {keys}"
        )
    obs_keys = json.loads(_decode(recorded))
    return read_robomimic_episodes(path, obs_keys=obs_keys)
