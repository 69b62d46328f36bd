"""
Demonstrations in memory: the :class:`Episode` type, helpers for observation batches (arrays or dicts of
arrays), adapters from the ``imitation`` library's ``Trajectory`` / ``Transitions`` types, and the check of
episodes against an env's spaces.

:class:`Episode` is the single format the replay buffer and the BC helpers consume (demo files are read into
it by :mod:`sb3_ibrl.data.demo_files`). ``imitation`` is never imported here: its types are read by duck typing,
so this module works whether or not ``imitation`` is installed.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
from gymnasium import spaces

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


def from_imitation_trajectory(traj: Any) -> Episode:
    rews = getattr(traj, "rews", None)
    terminal = bool(getattr(traj, "terminal", True))
    if rews is None:
        rews = sparse_rewards(len(traj.acts), terminal)
    obs = traj.obs if hasattr(traj.obs, "_d") or isinstance(traj.obs, Mapping) else np.asarray(traj.obs)
    return Episode(obs=obs, acts=np.asarray(traj.acts), rews=np.asarray(rews), terminal=terminal)


def from_imitation_transitions(trans: Any) -> list[Episode]:
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
