"""
Demonstrations: one small episode type, the ``.npz`` demo file of sb3-ibrl, and adapters from
the ``imitation`` library's ``Trajectory`` / ``Transitions`` types.

Every loader returns a list of :class:`Episode`, the single format the replay buffer and the
BC helpers consume. ``imitation`` is never imported here: its types are read by duck typing, so
this module works whether or not ``imitation`` is installed.
"""

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
from gymnasium import spaces

NPZ_KEYS = ("obs", "acts", "rews", "episode_lengths", "terminal")


@dataclass
class Episode:
    """
    One demonstrated episode.

    :param obs: observations, shape ``(T + 1, *obs_shape)``: the last one is the final observation
    :param acts: actions in the env's own action units, shape ``(T, action_dim)``
    :param rews: rewards, shape ``(T,)``
    :param terminal: ``True`` when the episode ended by termination (e.g. success), ``False`` when it
        was cut (time limit): a truncated end is bootstrapped from, a terminal one is not
    """

    obs: np.ndarray
    acts: np.ndarray
    rews: np.ndarray
    terminal: bool = True

    def __post_init__(self) -> None:
        self.obs = np.asarray(self.obs)
        self.acts = np.asarray(self.acts, dtype=np.float32)
        if self.acts.ndim == 1:
            self.acts = self.acts[:, None]
        self.rews = np.asarray(self.rews, dtype=np.float32).reshape(-1)
        n_steps = len(self.acts)
        if n_steps == 0:
            raise ValueError("A demonstration episode must have at least one step (got 0 actions)")
        if len(self.obs) != n_steps + 1:
            raise ValueError(
                f"A demonstration episode needs one more observation than actions (the final one): "
                f"got {len(self.obs)} observations for {n_steps} actions"
            )
        if len(self.rews) != n_steps:
            raise ValueError(f"Got {len(self.rews)} rewards for {n_steps} actions in a demonstration episode")

    def __len__(self) -> int:
        return len(self.acts)


DemoSource = Union[str, os.PathLike, Sequence[Any], Any]


def sparse_rewards(n_steps: int, terminal: bool) -> np.ndarray:
    """
    Rewards for a demonstration that carries none: the paper's sparse setting, 1 on the step that
    completes the task (the last step of a terminal episode) and 0 elsewhere.

    :param n_steps: episode length
    :param terminal: whether the episode ended by termination (task completed)
    :return: rewards of shape ``(n_steps,)``
    """
    rews = np.zeros(n_steps, dtype=np.float32)
    if terminal:
        rews[-1] = 1.0
    return rews


def _from_imitation_trajectory(traj: Any) -> Episode:
    rews = getattr(traj, "rews", None)
    terminal = bool(getattr(traj, "terminal", True))
    if rews is None:
        rews = sparse_rewards(len(traj.acts), terminal)
    return Episode(obs=np.asarray(traj.obs), acts=np.asarray(traj.acts), rews=np.asarray(rews), terminal=terminal)


def _from_imitation_transitions(trans: Any) -> list[Episode]:
    """Split a flat ``Transitions`` batch into episodes at its ``dones`` flags."""
    obs, acts, next_obs = np.asarray(trans.obs), np.asarray(trans.acts), np.asarray(trans.next_obs)
    dones = np.asarray(trans.dones, dtype=bool)
    rews = getattr(trans, "rews", None)
    if len(obs) == 0:
        raise ValueError("The demonstrations are empty: the Transitions batch has no transition")
    ends = list(np.flatnonzero(dones))
    if not ends or ends[-1] != len(obs) - 1:
        ends.append(len(obs) - 1)  # a last, unfinished piece: kept as a truncated episode
    episodes, start = [], 0
    for end in ends:
        terminal = bool(dones[end])
        ep_rews = np.asarray(rews[start : end + 1]) if rews is not None else sparse_rewards(end + 1 - start, terminal)
        ep_obs = np.concatenate([obs[start : end + 1], next_obs[end : end + 1]], axis=0)
        episodes.append(Episode(obs=ep_obs, acts=acts[start : end + 1], rews=ep_rews, terminal=terminal))
        start = end + 1
    return episodes


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
        return _from_imitation_transitions(demonstrations)
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
            episodes.extend(_from_imitation_transitions(item))
        elif hasattr(item, "obs") and hasattr(item, "acts"):
            episodes.append(_from_imitation_trajectory(item))
        else:
            raise TypeError(
                f"Unsupported demonstration item of type {type(item).__name__}: expected an Episode or an "
                "imitation Trajectory / Transitions"
            )
    if not episodes:
        raise ValueError("The demonstrations are empty: no episode was given")
    return episodes


def save_episodes(path: Union[str, os.PathLike], episodes: Sequence[Episode]) -> None:
    """
    Write episodes to an ``.npz`` demo file (uncompressed, loadable without pickle).

    :param path: file to write (``.npz`` is appended by numpy when missing)
    :param episodes: the episodes
    """
    if len(episodes) == 0:
        raise ValueError("Refusing to write an empty demo file: no episode was given")
    np.savez(
        path,
        obs=np.concatenate([ep.obs for ep in episodes], axis=0),
        acts=np.concatenate([ep.acts for ep in episodes], axis=0),
        rews=np.concatenate([ep.rews for ep in episodes], axis=0),
        episode_lengths=np.array([len(ep) for ep in episodes], dtype=np.int64),
        terminal=np.array([ep.terminal for ep in episodes], dtype=bool),
    )


def load_episodes(path: Union[str, os.PathLike]) -> list[Episode]:
    """
    Read an ``.npz`` demo file written by :func:`save_episodes`, or a robomimic ``.hdf5`` / ``.h5`` file
    that records its observation keys (see :func:`sb3_ibrl.common.robomimic_hdf5.write_robomimic_hdf5`;
    for other robomimic files use :func:`sb3_ibrl.common.robomimic_hdf5.read_robomimic_episodes`).

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
        from sb3_ibrl.common.robomimic_hdf5 import read_recorded_episodes

        return read_recorded_episodes(path)
    try:
        data = np.load(path, allow_pickle=False)
        arrays = {key: data[key] for key in NPZ_KEYS}
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
        if len(arrays[key]) != size:
            raise ValueError(
                f"{path} is corrupt or truncated: '{key}' has {len(arrays[key])} rows, expected {size} "
                f"for {n_eps} episodes of {n_steps} steps in all"
            )
    episodes, obs_start, act_start = [], 0, 0
    for length, terminal in zip(lengths, arrays["terminal"]):
        episodes.append(
            Episode(
                obs=arrays["obs"][obs_start : obs_start + length + 1],
                acts=arrays["acts"][act_start : act_start + length],
                rews=arrays["rews"][act_start : act_start + length],
                terminal=bool(terminal),
            )
        )
        obs_start += length + 1
        act_start += length
    return episodes


def check_episodes(episodes: Sequence[Episode], observation_space: spaces.Space, action_space: spaces.Box) -> None:
    """
    Check that demonstrations fit an environment's spaces; raise a ``ValueError`` naming the mismatch.

    :param episodes: the demonstrations
    :param observation_space: the env's observation space
    :param action_space: the env's action space
    """
    if len(episodes) == 0:
        raise ValueError("The demonstrations are empty: no episode was given")
    obs_shape, act_shape = observation_space.shape, action_space.shape
    for i, ep in enumerate(episodes):
        if obs_shape is not None and tuple(ep.obs.shape[1:]) != tuple(obs_shape):
            raise ValueError(
                f"Demonstration episode {i} has observations of shape {tuple(ep.obs.shape[1:])}, "
                f"but the env's observation space has shape {tuple(obs_shape)}"
            )
        if tuple(ep.acts.shape[1:]) != tuple(act_shape):
            raise ValueError(
                f"Demonstration episode {i} has actions of shape {tuple(ep.acts.shape[1:])}, "
                f"but the env's action space has shape {tuple(act_shape)}"
            )
        if not np.isfinite(ep.acts).all():
            raise ValueError(f"Demonstration episode {i} has non-finite actions")
