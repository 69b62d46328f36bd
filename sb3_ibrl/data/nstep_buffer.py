"""
A replay buffer with n-step returns that stores every observation once.

Every observation is stored once, in the observation's own dtype (uint8 for images): the next
observation of a transition is the observation of the next row of the same env, except at the end of
an episode, whose final observation is kept apart (one per episode). Images therefore cost one frame
per transition instead of SB3's two, and Box and Dict observations (image + proprio) share one code path.
Transitions added out of sequence (``obs`` of a new row differs from the ``next_obs`` of the env's previous
row, e.g. transitions added by hand) are stored as SB3 stores them: the previous row keeps its own next
observation apart, as an episode end does, and n-step returns stop there without the row being terminal.
"""

from typing import Any, Optional, Union

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.utils import get_device
from stable_baselines3.common.vec_env import VecNormalize

from sb3_ibrl.data.buffer_memory import check_buffer_memory, observation_bytes
from sb3_ibrl.data.episodes import Episode, Obs, stack_obs, truncated_flag
from sb3_ibrl.data.il_cache import ILActionCache, with_il_actions
from sb3_ibrl.data.storage import (
    allocate,
    as_stored,
    differ_per_env,
    equal_as_stored,
    gather,
    host_to_device,
    resolve_storage_device,
    snapshot,
    to_numpy,
    write,
)

_NO_ENV = np.zeros(0, dtype=np.int64)


class NStepBuffer(ReplayBuffer):
    """
    Replay buffer with n-step returns that stores every observation once (see the module docstring).

    :param buffer_size: max number of transitions, all envs together (as SB3's ``ReplayBuffer``: each env gets
        ``buffer_size // n_envs`` rows)
    :param observation_space: observation space (Box or Dict of Box)
    :param action_space: action space
    :param device: PyTorch device
    :param n_envs: number of parallel environments
    :param optimize_memory_usage: ignored: observations are always stored once
    :param handle_timeout_termination: treat time-limit ends as truncations (bootstrapped), not terminals
    :param n_steps: n of the n-step return (1 gives the one-step TD target)
    :param gamma: discount factor of the n-step return
    :param storage_device: where observations are kept: ``"auto"`` (on the buffer's device when it is CUDA and the
        observations hold images, so that batches never cross from the host; else host memory), ``None`` (host
        memory, numpy) or a torch device
    """

    observations: Obs
    actions: np.ndarray

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: Union[th.device, str] = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        n_steps: int = 1,
        gamma: float = 0.99,
        storage_device: Optional[Union[str, th.device]] = "auto",
    ):
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}")
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
        total_size = buffer_size  # all envs together, as SB3's ReplayBuffer
        buffer_size = max(total_size // n_envs, 1)  # rows per env
        # A ReplayBuffer for SB3 (save / load_replay_buffer check it), but with its own storage: skip ReplayBuffer.__init__
        BaseBuffer.__init__(self, buffer_size, observation_space, action_space, device, n_envs=n_envs)
        self.n_steps, self.gamma = n_steps, gamma
        self.optimize_memory_usage = False  # SB3's variant of the single-copy idea; this buffer always does it
        self.handle_timeout_termination = handle_timeout_termination
        self.storage_device = resolve_storage_device(
            storage_device, self.device, observation_space, buffer_size * n_envs * observation_bytes(observation_space)
        )  # (device memory is checked there)
        self.memory_bytes = check_buffer_memory(
            total_size, observation_space, action_space, n_envs=n_envs, on_device=self.storage_device is not None
        )  # type: ignore[arg-type]
        self.observations = allocate(observation_space, buffer_size, n_envs, self.storage_device)
        self.actions = np.zeros((buffer_size, n_envs, self.action_dim), dtype=np.float32)
        self.rewards = np.zeros((buffer_size, n_envs), dtype=np.float32)
        self.dones = np.zeros((buffer_size, n_envs), dtype=bool)
        self.timeouts = np.zeros((buffer_size, n_envs), dtype=bool)
        # Rows whose next row (same env) does not follow them although the episode goes on: added out of sequence
        self.breaks = np.zeros((buffer_size, n_envs), dtype=bool)
        # Next observation of every episode end and break held, keyed by (row, env); that of the newest row (host copy)
        self.final_observations: dict[tuple[int, int], Obs] = {}
        self.newest_next_observations: Optional[Obs] = None
        # IL actions of the next observations, made when the first one is given (set_next_il_actions)
        self.il_cache: Optional[ILActionCache] = None
        self._pending_il_actions: Optional[np.ndarray] = None

    def add(
        self,
        obs: Obs,
        next_obs: Obs,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        row = self.pos
        for env_idx in range(self.n_envs):
            self.final_observations.pop((row, env_idx), None)  # its transition is overwritten
        write(self.observations, row, obs)
        self._break_links(row, obs)
        if self.il_cache is not None:
            self.il_cache.write(row, self._pending_il_actions)
        self._pending_il_actions = None
        self.actions[row] = np.asarray(action).reshape(self.n_envs, self.action_dim)
        self.rewards[row] = np.asarray(reward).reshape(self.n_envs)
        self.dones[row] = np.asarray(done).reshape(self.n_envs)
        if self.full:
            self.breaks[row] = False  # (rows not written yet are all False)
        if self.handle_timeout_termination:
            self.timeouts[row] = [truncated_flag(info) for info in infos]
        for env_idx in np.flatnonzero(self.dones[row]):
            self.final_observations[(row, int(env_idx))] = snapshot(gather(next_obs, env_idx), self.storage_device)
        self.newest_next_observations = as_stored(self.observation_space, next_obs, self.n_envs)
        self.pos = (self.pos + 1) % self.buffer_size
        self.full = self.full or self.pos == 0

    def set_next_il_actions(self, actions: np.ndarray) -> None:
        """
        The IL actions (in ``[-1, 1]``, one per env) of the next observations of the transitions that the next
        :meth:`add` stores: cached with them for the bootstrap proposal.

        :param actions: ``(n_envs, action_dim)``
        """
        if self.il_cache is None:
            self.il_cache = ILActionCache(self.buffer_size, self.n_envs, self.action_dim)
        self._pending_il_actions = np.asarray(actions, dtype=np.float32)

    def _break_links(self, row: int, obs: Obs) -> np.ndarray:
        """
        Keep the next observation of each env's previous row apart when the observation just written at ``row``
        is not that next observation (transitions added out of sequence).

        :param row: the row just written
        :param obs: the observations written there
        :return: the envs whose previous row was cut from ``row``
        """
        previous = (row - 1) % self.buffer_size
        if isinstance(self.observations, np.ndarray):
            stored = self.observations[row]  # as stored: the space's dtype
        elif self.storage_device is None:
            stored = gather(self.observations, row)
        else:  # compared in host memory, as the buffer stores it
            stored = as_stored(self.observation_space, obs, self.n_envs)
        if self.newest_next_observations is None or previous == row or equal_as_stored(stored, self.newest_next_observations):
            return _NO_ENV  # nothing held before, overwritten (size 1), or consecutive (the usual case)
        broken = np.flatnonzero(differ_per_env(stored, self.newest_next_observations, self.n_envs) & ~self.dones[previous])
        for env_idx in broken:
            self.breaks[previous, env_idx] = True
            held = gather(self.newest_next_observations, env_idx)
            self.final_observations[(previous, int(env_idx))] = snapshot(held, self.storage_device)
        return broken

    def truncate_open_episodes(self) -> None:
        """
        End every env's open episode at the newest row as a time-limit truncation (bootstrapped, not terminal).

        For collection that restarts in freshly reset envs (resuming from a checkpoint): n-step returns must not
        run from the interrupted episode into the next one.
        """
        if self.size() == 0 or self.newest_next_observations is None:
            return
        row = (self.pos - 1) % self.buffer_size
        for env_idx in np.flatnonzero(~self.dones[row]):
            self.dones[row, env_idx] = self.timeouts[row, env_idx] = True
            self.final_observations[(row, int(env_idx))] = snapshot(
                gather(self.newest_next_observations, env_idx), self.storage_device
            )

    def reset(self) -> None:
        super().reset()
        self.breaks[:] = False
        if self.il_cache is not None:
            self.il_cache.cached[:] = False
        self.final_observations.clear()
        self.newest_next_observations = None

    def next_observations_of(self, rows: np.ndarray, env_indices: np.ndarray) -> Obs:
        """
        The next observation of the transitions at ``rows`` (of envs ``env_indices``).

        :return: the observations, batched along the first axis
        """
        newest = (self.pos - 1) % self.buffer_size
        following = gather(self.observations, ((rows + 1) % self.buffer_size, env_indices))  # a copy (fancy indexing)
        held_apart = self.dones[rows, env_indices] | self.breaks[rows, env_indices]
        for i in np.flatnonzero(held_apart | (rows == newest)):
            row, env_idx = int(rows[i]), int(env_indices[i])
            if held_apart[i]:
                frame = self.final_observations[(row, env_idx)]
            else:
                frame = gather(self.newest_next_observations, env_idx)  # type: ignore[arg-type]
            write(following, i, frame)
        return following

    def sample(self, batch_size: int, env: Optional[VecNormalize] = None) -> ReplayBufferSamples:
        upper_bound = self.buffer_size if self.full else self.pos
        if upper_bound == 0:
            raise RuntimeError("Cannot sample from an empty replay buffer")
        return self._get_samples(np.random.randint(0, upper_bound, size=batch_size), env)

    def _get_samples(self, batch_inds: np.ndarray, env: Optional[VecNormalize] = None) -> ReplayBufferSamples:
        env_indices = np.random.randint(0, self.n_envs, size=batch_inds.shape)
        # Look ahead up to n steps, stopping at the episode's end, at a break or at the newest row (not followed yet)
        newest = (self.pos - 1) % self.buffer_size
        rows = (batch_inds[:, None] + np.arange(self.n_steps)[None]) % self.buffer_size  # (batch, n_steps)
        stops = self.dones[rows, env_indices[:, None]] | self.breaks[rows, env_indices[:, None]] | (rows == newest)
        last = np.where(stops.any(axis=1), stops.argmax(axis=1), self.n_steps - 1)  # (batch,) steps taken - 1
        mask = np.arange(self.n_steps)[None] <= last[:, None]  # (batch, n_steps)
        rewards = self._normalize_reward(self.rewards[rows, env_indices[:, None]], env)  # (batch, n_steps)
        returns = (rewards * self.gamma ** np.arange(self.n_steps, dtype=np.float32) * mask).sum(axis=1, keepdims=True)
        discounts = (self.gamma ** (last + 1.0)).astype(np.float32)[:, None]  # (batch, 1)
        last_rows = rows[np.arange(len(rows)), last]  # (batch,)
        terminal = self.dones[last_rows, env_indices] & ~self.timeouts[last_rows, env_indices]  # (batch,)

        obs = self._normalize_obs(gather(self.observations, (batch_inds, env_indices)), env)  # type: ignore[arg-type]
        next_obs = self._normalize_obs(self.next_observations_of(last_rows, env_indices), env)  # type: ignore[arg-type]
        samples = ReplayBufferSamples(
            observations=self._obs_to_torch(obs),
            actions=self.to_torch(self.actions[batch_inds, env_indices]),
            next_observations=self._obs_to_torch(next_obs),
            dones=self.to_torch(terminal.astype(np.float32)[:, None]),
            rewards=self.to_torch(returns.astype(np.float32)),
            discounts=self.to_torch(discounts),
        )
        if self.il_cache is None:
            return samples
        return with_il_actions(samples, *self.il_cache.read(last_rows, env_indices), self.to_torch)  # type: ignore[return-value]

    def to_torch(self, array: np.ndarray, copy: bool = True) -> th.Tensor:
        """SB3's conversion; onto a GPU without waiting for its queued work (:func:`~sb3_ibrl.data.storage.host_to_device`)."""
        return host_to_device(array, self.device) if self.device.type == "cuda" else super().to_torch(array, copy)

    def _obs_to_torch(self, obs: Obs) -> Any:
        if isinstance(obs, dict):
            return {key: self._obs_to_torch(value) for key, value in obs.items()}
        return obs.to(self.device) if isinstance(obs, th.Tensor) else self.to_torch(obs)

    def _normalize_obs(self, obs: Obs, env: Optional[VecNormalize] = None) -> Obs:  # type: ignore[override]
        if env is None:
            return obs
        return super()._normalize_obs(to_numpy(obs), env)  # type: ignore[arg-type]  # VecNormalize works on numpy

    def __getstate__(self) -> dict[str, Any]:
        # Pickled (save_replay_buffer) in host memory, so that a buffer saved on a GPU loads anywhere
        state = self.__dict__.copy()
        state["observations"] = to_numpy(self.observations)
        state["final_observations"] = {key: to_numpy(value) for key, value in self.final_observations.items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "breaks" not in state:  # pickled before breaks were kept: every row was added in sequence
            self.breaks = np.zeros_like(self.dones)
        self.__dict__.setdefault("il_cache", None)  # pickled before IL actions were cached
        self.__dict__.setdefault("_pending_il_actions", None)
        device, self.storage_device = state.get("storage_device"), None  # pickled in host memory
        if device is not None and (device.type != "cuda" or th.cuda.is_available()):  # saved on a GPU, loaded without: host
            self._store_observations_on(device)

    def to_device(self, device: Union[th.device, str]) -> None:
        """
        Sample onto ``device`` from now on (a buffer saved on a GPU, loaded by a model on the CPU, or the reverse).
        Observations kept on another device follow: onto ``device`` when it is CUDA, else into host memory.
        """
        self.device = get_device(device)
        if self.storage_device is not None and str(self.storage_device) != str(self.device):
            self._store_observations_on(self.device if self.device.type == "cuda" else None)

    def _store_observations_on(self, storage_device: Optional[th.device]) -> None:
        """Keep the observations in host memory (``None``) or on a torch device."""
        self.storage_device = storage_device
        self.observations = snapshot(self.observations, storage_device)
        self.final_observations = {key: snapshot(value, storage_device) for key, value in self.final_observations.items()}

    def episode_rows(self) -> list[np.ndarray]:
        """The rows of each complete episode held (env 0, in row order, from a buffer that has not wrapped around)."""
        size = self.size()
        ends = np.flatnonzero(self.dones[:size, 0] | self.breaks[:size, 0])
        episode_rows, start = [], 0
        for end in ends:
            if self.dones[end, 0]:  # rows before a break (added out of sequence) belong to no complete episode
                episode_rows.append(np.arange(start, end + 1))
            start = end + 1
        return episode_rows

    def episodes(self) -> list[Episode]:
        """
        The complete episodes held (env 0, in row order, from a buffer that has not wrapped around). Rows before a
        break (transitions added out of sequence) belong to no complete episode and are left out.
        """
        episodes = []
        for rows in self.episode_rows():
            frames = [to_numpy(gather(self.observations, (row, 0))) for row in rows]
            obs = stack_obs([*frames, to_numpy(self.final_observations[(rows[-1], 0)])])
            terminal = not bool(self.timeouts[rows[-1], 0])
            episodes.append(Episode(obs, self.actions[rows, 0], self.rewards[rows, 0], terminal))
        return episodes

    def episode_next_il_actions(self) -> list[Optional[np.ndarray]]:
        """For each of :meth:`episodes`, the cached IL actions of its next observations, or ``None`` when not cached."""
        cache = self.il_cache
        return [
            cache.actions[rows, 0] if cache is not None and cache.cached[rows, 0].all() else None
            for rows in self.episode_rows()
        ]
