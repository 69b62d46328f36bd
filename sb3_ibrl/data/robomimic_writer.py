"""
Write demonstrations in the robomimic HDF5 layout (robomimic v0.3 datasets) with ``h5py``: the layout is described,
and read back, in :mod:`sb3_ibrl.data.robomimic_hdf5`.

Images are written channel-last ``(H, W, C)`` and gzip-compressed; a file written from channel-first env
observations (``channel_first=True``) records it, and the observation keys it was given, so that the readers need not
be told either. The new file replaces the old one only once it is complete.
"""

import json
from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np

from sb3_ibrl.common.files import atomic_path
from sb3_ibrl.data.robomimic_hdf5 import (
    CHANNEL_FIRST_ATTR,
    OBS_KEYS_ATTR,
    ObsKeys,
    PathType,
    as_key_groups,
    normalize_obs_keys,
    require_h5py,
)


def _is_image(value: np.ndarray) -> bool:
    """Whether a stacked observation array holds images (``uint8`` with 3 dims per step)."""
    return value.dtype == np.uint8 and value.ndim == 4


def _prepare_demo(index: int, demo: dict[str, Any], channel_first: bool) -> tuple:
    """Check one demo dict for the writer; return ``(actions, rewards, dones, obs, states, attrs)``."""
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
        if channel_first and _is_image(value):
            obs[key] = np.ascontiguousarray(np.moveaxis(value, 1, -1))  # (T + 1, C, H, W) -> (T + 1, H, W, C)
    states = demo.get("states")
    return actions, rewards, dones, obs, None if states is None else np.asarray(states), dict(demo.get("attrs") or {})


def _check_recorded_keys(obs_keys: ObsKeys, first_obs: dict[str, np.ndarray]) -> Union[list[str], dict[str, list[str]]]:
    groups, _ = as_key_groups(obs_keys)
    for key in (key for keys in groups.values() for key in keys):
        if key not in first_obs:
            raise ValueError(f"obs_keys names {key!r}, which demo 0 does not have; keys: {sorted(first_obs)}")
    return normalize_obs_keys(obs_keys)


def write_robomimic_hdf5(
    path: PathType,
    demos: Sequence[dict[str, Any]],
    env_args: Optional[dict[str, Any]] = None,
    masks: Optional[dict[str, Sequence[int]]] = None,
    obs_keys: Optional[ObsKeys] = None,
    channel_first: bool = False,
) -> None:
    """
    Write demonstrations in the robomimic HDF5 layout.

    :param path: file to write (replaced once the new file is complete: a write that fails keeps the old file)
    :param demos: one dict per demo with ``obs`` (a dict of arrays with ``T + 1`` rows per key: the first
        ``T`` are written to ``obs``, the last ``T`` to ``next_obs``), ``actions`` ``(T, act_dim)``,
        ``rewards`` ``(T,)``, optional ``dones`` ``(T,)`` (default: 1 on the last step when the last reward
        is positive), optional ``states`` ``(T, state_dim)`` and optional ``attrs`` (a dict of scalars or strings
        stored as the attributes of ``data/demo_<k>``, e.g. the reset ``seed``)
    :param env_args: environment metadata stored as JSON in ``data.attrs["env_args"]``
    :param masks: splits, mapping a split name to demo indices (``{"train": [0, 1], "valid": [2]}``)
    :param obs_keys: when given, recorded in ``data.attrs["sb3_ibrl_obs_keys"]`` so that
        :func:`sb3_ibrl.data.demo_files.load_episodes` can read the file without being told the keys: a list
        (one observation array) or ``{env key: [file keys]}`` (Dict observations)
    :param channel_first: the image observations in ``demos`` (``uint8``, 3 dims per step) are channel-first
        ``(C, H, W)``, as SB3 envs give them: they are written channel-last ``(H, W, C)`` (robomimic's layout) and
        the file records it, so that the readers give them back channel-first
    """
    lib = require_h5py()
    if len(demos) == 0:
        raise ValueError("Refusing to write an empty demo file: no demo was given")
    if env_args is None:
        env_args = {"env_name": "unknown", "type": 1, "env_kwargs": {}}
    prepared = [_prepare_demo(index, demo, channel_first) for index, demo in enumerate(demos)]
    recorded = None if obs_keys is None else _check_recorded_keys(obs_keys, prepared[0][3])
    for split, indices in (masks or {}).items():
        for i in indices:
            if not 0 <= int(i) < len(prepared):
                raise ValueError(f"Mask {split!r} names demo index {i}, but only {len(prepared)} demos were given")
    with atomic_path(path) as temporary, lib.File(temporary, "w") as file:
        data = file.create_group("data")
        total = 0
        for index, (actions, rewards, dones, obs, states, attrs) in enumerate(prepared):
            group = data.create_group(f"demo_{index}")
            group.attrs["num_samples"] = len(actions)
            for name, value in attrs.items():
                group.attrs[name] = value
            group.create_dataset("actions", data=actions)
            group.create_dataset("rewards", data=rewards)
            group.create_dataset("dones", data=dones)
            if states is not None:
                group.create_dataset("states", data=states)
            for key, value in obs.items():
                # images are gzip-compressed (several times smaller; any HDF5 reader decodes it)
                options = dict(compression="gzip", compression_opts=4) if _is_image(value) else {}
                group.create_dataset(f"obs/{key}", data=value[:-1], **options)
                group.create_dataset(f"next_obs/{key}", data=value[1:], **options)
            total += len(actions)
        data.attrs["total"] = total
        data.attrs["env_args"] = json.dumps(env_args)
        if recorded is not None:
            data.attrs[OBS_KEYS_ATTR] = json.dumps(recorded)
        if channel_first:
            data.attrs[CHANNEL_FIRST_ATTR] = True
        if masks:
            mask = file.create_group("mask")
            for split, indices in masks.items():
                mask.create_dataset(split, data=np.array([f"demo_{int(i)}".encode() for i in indices], dtype="S"))
