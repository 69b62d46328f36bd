"""
Demonstrations in memory: the :class:`Episode` type, helpers for observation batches (arrays or dicts of
arrays), adapters from the ``imitation`` library's ``Trajectory`` / ``Transitions`` types, and the check of
episodes against an env's spaces.

:class:`Episode` is the single format the replay buffer and the BC helpers consume (demo files are read into
it by :mod:`sb3_ibrl.data.demo_files`). ``imitation`` is never imported here: its types are read by duck typing,
so this module works whether or not ``imitation`` is installed.
"""

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np
from gymnasium import spaces

# An observation batch: an array, or a dict of arrays (Dict observation spaces)
Obs = Union[np.ndarray, dict[str, np.ndarray]]

# Demo observations and rewards beyond this magnitude are refused: such values (e.g. 1e30 from a corrupt file)
# overflow float32 in the networks' LayerNorm and in the squared TD error, and every parameter becomes NaN
MAX_ABS_DEMO_VALUE = 1e10
# Demo actions may exceed the action bounds by float rounding without a warning
ACTION_BOUND_TOLERANCE = 1e-5


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
        _check_values(f"Demonstration episode {i}", "rewards", ep.rews, None)
        for key, values in ep.obs.items() if isinstance(ep.obs, dict) else [(None, ep.obs)]:
            what, space = (
                ("observations", observation_space) if key is None else (f"'{key}' observations", observation_space[key])
            )
            _check_values(f"Demonstration episode {i}", what, values, space)
    _warn_out_of_bounds_actions(episodes, action_space)


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


def _first_step(mask: np.ndarray) -> int:
    """The first step (leading index) where ``mask`` holds anywhere."""
    return int(np.flatnonzero(mask.reshape(len(mask), -1).any(axis=1))[0])


def _check_values(where: str, what: str, values: np.ndarray, space: Optional[spaces.Space]) -> None:
    """
    Refuse demo values that would silently ruin a run: non-finite or huge floats, and images that would not survive
    the conversion to the space's integer dtype (float images in [0, 1] become black, values outside [0, 255] wrap).

    :param where: names the episode, for messages
    :param what: names the values, for messages
    :param values: the values, steps along the first axis
    :param space: the observation space they must fit (``None`` for rewards)
    """
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.floating):
        bad = ~np.isfinite(values) | (np.abs(values) > MAX_ABS_DEMO_VALUE)
        if bad.any():
            step = _first_step(bad)
            example = values[step][bad[step]].flat[0] if values.ndim > 1 else values[step]
            raise ValueError(
                f"{where} has {'a non-finite' if not np.isfinite(example) else 'a huge'} value ({example:.6g}) in its {what} "
                f"at step {step} ({int(bad.sum())} such in the episode): it would make every network parameter "
                f"NaN. Fix or drop this episode (values must be finite and within +-{MAX_ABS_DEMO_VALUE:g})."
            )
    if space is None or not isinstance(space, spaces.Box) or not np.issubdtype(space.dtype, np.integer):  # type: ignore[arg-type]
        return
    info = np.iinfo(space.dtype)  # type: ignore[arg-type]
    low, high = max(int(np.min(space.low)), info.min), min(int(np.max(space.high)), info.max)
    if values.dtype == space.dtype and (low, high) == (info.min, info.max):
        return  # e.g. uint8 images for a uint8 space: nothing can be lost
    outside = (values < low) | (values > high)
    if outside.any():
        step = _first_step(outside)
        raise ValueError(
            f"{where} has {what} outside [{low}, {high}] at step {step} (e.g. {values[step][outside[step]].flat[0]}), "
            f"but the env's observations are {np.dtype(space.dtype).name} (stored as such, they would wrap around). "  # type: ignore[arg-type]
            f"Convert the images to {np.dtype(space.dtype).name} in [{low}, {high}] first."  # type: ignore[arg-type]
        )
    if np.issubdtype(values.dtype, np.floating):
        fractional = values != np.round(values)
        if fractional.any():
            step = _first_step(fractional)
            hint = (
                "They look scaled to [0, 1]: convert them with np.round(obs * 255).astype(np.uint8)."
                if values.max() <= 1.0
                else f"Convert them to {np.dtype(space.dtype).name} first."  # type: ignore[arg-type]
            )
            raise ValueError(
                f"{where} has float {what} with fractional values at step {step} "
                f"(e.g. {values[step][fractional[step]].flat[0]}), but the env's observations are "
                f"{np.dtype(space.dtype).name} images: stored as such, they would be truncated "  # type: ignore[arg-type]
                f"(values in [0, 1] become black frames). {hint}"
            )


def _warn_out_of_bounds_actions(episodes: Sequence[Episode], action_space: spaces.Box) -> None:
    """Warn, naming the first episode and step, when demo actions exceed the action bounds beyond float rounding."""
    low, high = np.asarray(action_space.low, np.float32), np.asarray(action_space.high, np.float32)
    n_outside, n_values, first = 0, 0, None
    for i, ep in enumerate(episodes):
        outside = (ep.acts < low - ACTION_BOUND_TOLERANCE) | (ep.acts > high + ACTION_BOUND_TOLERANCE)
        n_outside, n_values = n_outside + int(outside.sum()), n_values + outside.size
        if first is None and outside.any():
            first = (i, _first_step(outside), ep.acts[_first_step(outside)])
    if first is not None:
        warnings.warn(
            f"{n_outside} of {n_values} demonstration action values are outside the env's action bounds "
            f"[{low}, {high}] (first: episode {first[0]}, step {first[1]}, action {first[2]}). IBRL stores them clipped "
            "to the bounds; behaviour cloning learns them as given. If the demos were recorded in other units, rescale "
            "them to the env's.",
            stacklevel=3,
        )


def truncated_flag(info: dict[str, Any]) -> bool:
    """
    ``info["TimeLimit.truncated"]`` as a bool; a 0-d or 1-element array (as some wrappers give) is accepted, as SB3 does.

    :param info: the info dict of one env
    :return: whether the episode was cut by a time limit
    """
    value = info.get("TimeLimit.truncated", False)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    value = np.asarray(value)
    if value.size != 1:
        raise ValueError(f'info["TimeLimit.truncated"] must be a bool (or an array of one bool), got {value!r}')
    return bool(value.reshape(-1)[0])
