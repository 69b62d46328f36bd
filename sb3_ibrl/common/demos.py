"""
Demonstrations: one small episode type, the ``.npz`` demo file of sb3-ibrl, and adapters from
the ``imitation`` library's ``Trajectory`` / ``Transitions`` types.

Every loader returns a list of :class:`Episode`, the single format the replay buffer and the
BC helpers consume. ``imitation`` is never imported here: its types are read by duck typing, so
this module works whether or not ``imitation`` is installed.
"""

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
from gymnasium import spaces

NPZ_KEYS = ("obs", "acts", "rews", "episode_lengths", "terminal")
# Dict observations are stored in ``.npz`` files as one array per key, named ``obs.<key>``
NPZ_DICT_PREFIX = "obs."

# An observation batch: an array, or a dict of arrays (Dict observation spaces)
Obs = Union[np.ndarray, dict[str, np.ndarray]]


def obs_index(obs: Obs, index: Any) -> Obs:
    """
    Index an observation batch (array or dict of arrays) along its leading axes.

    :param obs: the observations
    :param index: any numpy index
    :return: the indexed observations, of the same kind
    """
    if isinstance(obs, Mapping):
        return {key: value[index] for key, value in obs.items()}
    return obs[index]


def stack_obs(items: Sequence[Obs]) -> Obs:
    """Stack single observations (arrays or dicts of arrays) into a batch along a new first axis."""
    if isinstance(items[0], Mapping):
        return {key: np.stack([item[key] for item in items]) for key in items[0]}  # type: ignore[index]
    return np.stack(items)  # type: ignore[arg-type]


def obs_length(obs: Obs) -> int:
    """Length of an observation batch (array or dict of arrays of one length)."""
    if isinstance(obs, Mapping):
        lengths = {len(value) for value in obs.values()}
        if len(lengths) != 1:
            raise ValueError(f"The observation keys hold different numbers of rows: {sorted(lengths)}")
        return lengths.pop()
    return len(obs)


@dataclass
class Episode:
    """
    One demonstrated episode.

    :param obs: observations, shape ``(T + 1, *obs_shape)`` (a dict of such arrays for Dict observation
        spaces): the last one is the final observation
    :param acts: actions in the env's own action units, shape ``(T, action_dim)``
    :param rews: rewards, shape ``(T,)``
    :param terminal: ``True`` when the episode ended by termination (e.g. success), ``False`` when it
        was cut (time limit): a truncated end is bootstrapped from, a terminal one is not
    """

    obs: Obs
    acts: np.ndarray
    rews: np.ndarray
    terminal: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.obs, Mapping) or hasattr(self.obs, "_d"):  # a dict, or imitation's DictObs
            items = self.obs.items() if isinstance(self.obs, Mapping) else self.obs._d.items()  # type: ignore[union-attr]
            self.obs = {key: np.asarray(value) for key, value in items}
        else:
            self.obs = np.asarray(self.obs)
        self.acts = np.asarray(self.acts, dtype=np.float32)
        if self.acts.ndim == 1:
            self.acts = self.acts[:, None]
        self.rews = np.asarray(self.rews, dtype=np.float32).reshape(-1)
        n_steps = len(self.acts)
        if n_steps == 0:
            raise ValueError("A demonstration episode must have at least one step (got 0 actions)")
        if obs_length(self.obs) != n_steps + 1:
            raise ValueError(
                f"A demonstration episode needs one more observation than actions (the final one): "
                f"got {obs_length(self.obs)} observations for {n_steps} actions"
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
    obs = traj.obs if hasattr(traj.obs, "_d") or isinstance(traj.obs, Mapping) else np.asarray(traj.obs)
    return Episode(obs=obs, acts=np.asarray(traj.acts), rews=np.asarray(rews), terminal=terminal)


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
    if isinstance(episodes[0].obs, dict):
        obs_arrays = {f"{NPZ_DICT_PREFIX}{key}": np.concatenate([ep.obs[key] for ep in episodes]) for key in episodes[0].obs}
    else:
        obs_arrays = {"obs": np.concatenate([ep.obs for ep in episodes], axis=0)}
    np.savez(
        path,
        **obs_arrays,
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


def check_episodes(episodes: Sequence[Episode], observation_space: spaces.Space, action_space: spaces.Box) -> None:
    """
    Check that demonstrations fit an environment's spaces; raise a ``ValueError`` naming the mismatch.

    :param episodes: the demonstrations
    :param observation_space: the env's observation space
    :param action_space: the env's action space
    """
    if len(episodes) == 0:
        raise ValueError("The demonstrations are empty: no episode was given")
    act_shape = action_space.shape
    for i, ep in enumerate(episodes):
        _check_obs(i, ep.obs, observation_space)
        if tuple(ep.acts.shape[1:]) != tuple(act_shape):
            raise ValueError(
                f"Demonstration episode {i} has actions of shape {tuple(ep.acts.shape[1:])}, "
                f"but the env's action space has shape {tuple(act_shape)}"
            )
        if not np.isfinite(ep.acts).all():
            raise ValueError(f"Demonstration episode {i} has non-finite actions")


def _check_obs(episode: int, obs: Obs, observation_space: spaces.Space) -> None:
    if isinstance(observation_space, spaces.Dict):
        if not isinstance(obs, dict) or set(obs) != set(observation_space.spaces):
            got = sorted(obs) if isinstance(obs, dict) else "an array"
            raise ValueError(
                f"Demonstration episode {episode} has observations {got}, but the env's observation space is a "
                f"Dict with keys {sorted(observation_space.spaces)}"
            )
        for key, space in observation_space.spaces.items():
            if tuple(obs[key].shape[1:]) != tuple(space.shape):  # type: ignore[arg-type]
                raise ValueError(
                    f"Demonstration episode {episode} has '{key}' observations of shape {tuple(obs[key].shape[1:])}, "
                    f"but the env's observation space has shape {tuple(space.shape)} for '{key}'"  # type: ignore[arg-type]
                )
        return
    if isinstance(obs, dict):
        raise ValueError(
            f"Demonstration episode {episode} has Dict observations {sorted(obs)}, but the env's observation space "
            f"is {observation_space}"
        )
    if observation_space.shape is not None and tuple(obs.shape[1:]) != tuple(observation_space.shape):
        raise ValueError(
            f"Demonstration episode {episode} has observations of shape {tuple(obs.shape[1:])}, "
            f"but the env's observation space has shape {tuple(observation_space.shape)}"
        )
