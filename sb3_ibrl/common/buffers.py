"""
The IBRL replay buffer: n-step returns over online transitions, a permanent store of demonstrations
and, when oversampling, a store of successful online episodes.

Every observation is stored once, in the observation's own dtype (uint8 for images): the next
observation of a transition is the observation of the next row of the same env, except at the end of
an episode, whose final observation is kept apart (one per episode). Images therefore cost one frame
per transition instead of SB3's two, and Box and Dict observations (image + proprio) share one code path.

Without oversampling (``demo_fraction=0``, Lift, Can and Meta-World in the paper) a batch is drawn
uniformly from online transitions and demonstrations together, exactly as if the demos had been
written into the buffer first (Algorithm 1 line 4), except that they are never evicted. With
``demo_fraction=f`` (Square: 0.5) a fraction ``f`` of every batch comes from demonstrations plus
successful online episodes (Algorithm 1 line 13).
"""

from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from sb3_ibrl.common.demos import Episode, Obs, obs_index, stack_obs

# Refuse buffers whose arrays would take more than this fraction of the memory available now
MEMORY_FRACTION = 0.9


def available_memory_bytes() -> Optional[int]:
    """Memory available to new allocations (``MemAvailable`` of ``/proc/meminfo``), ``None`` when unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def transition_bytes(observation_space: spaces.Space, action_space: spaces.Box) -> int:
    """
    Bytes one transition takes in :class:`NStepBuffer`: one observation (in its own dtype), the action
    and reward (float32) and the done / timeout flags.

    :param observation_space: observation space (Box or Dict of Box)
    :param action_space: action space
    :return: bytes per transition
    """
    boxes = observation_space.spaces.values() if isinstance(observation_space, spaces.Dict) else [observation_space]
    obs_bytes = sum(int(np.prod(box.shape)) * np.dtype(box.dtype).itemsize for box in boxes)  # type: ignore[arg-type]
    return obs_bytes + 4 * int(np.prod(action_space.shape)) + 4 + 2


def check_buffer_memory(
    n_transitions: int, observation_space: spaces.Space, action_space: spaces.Box, available: Optional[int] = None
) -> int:
    """
    Fail early, with the numbers, when a buffer cannot fit in memory (instead of swapping or being
    killed once it fills up: numpy allocates lazily).

    :param n_transitions: capacity in transitions (``buffer_size * n_envs``)
    :param observation_space: observation space
    :param action_space: action space
    :param available: bytes available (read from the system when ``None``)
    :return: the bytes the buffer needs when full
    """
    per_transition = transition_bytes(observation_space, action_space)
    needed = n_transitions * per_transition
    available = available_memory_bytes() if available is None else available
    if available is not None and needed > MEMORY_FRACTION * available:
        raise MemoryError(
            f"A replay buffer of {n_transitions:,} transitions x {per_transition:,} bytes needs {needed / 2**30:.1f} GiB "
            f"when full, but only {available / 2**30:.1f} GiB of memory is available. Lower buffer_size to at most "
            f"{int(MEMORY_FRACTION * available / per_transition):,}."
        )
    return needed


def _allocate(space: spaces.Space, rows: int, n_envs: int) -> Obs:
    if isinstance(space, spaces.Dict):
        return {key: _allocate(sub, rows, n_envs) for key, sub in space.spaces.items()}  # type: ignore[misc]
    return np.zeros((rows, n_envs, *space.shape), dtype=space.dtype)  # type: ignore[misc]


def _write(store: Obs, index: Any, value: Obs) -> None:
    if isinstance(store, dict):
        for key in store:
            store[key][index] = value[key]  # type: ignore[index]
    else:
        store[index] = value


def _copy(obs: Obs) -> Obs:
    return {key: np.array(value) for key, value in obs.items()} if isinstance(obs, dict) else np.array(obs)


class NStepBuffer(ReplayBuffer):
    """
    Replay buffer with n-step returns that stores every observation once (see the module docstring).

    :param buffer_size: max number of transitions per env
    :param observation_space: observation space (Box or Dict of Box)
    :param action_space: action space
    :param device: PyTorch device
    :param n_envs: number of parallel environments
    :param optimize_memory_usage: ignored: observations are always stored once
    :param handle_timeout_termination: treat time-limit ends as truncations (bootstrapped), not terminals
    :param n_steps: n of the n-step return (1 gives the one-step TD target)
    :param gamma: discount factor of the n-step return
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
    ):
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}")
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
        # A ReplayBuffer for SB3 (save / load_replay_buffer check it), but with its own storage: skip ReplayBuffer.__init__
        BaseBuffer.__init__(self, buffer_size, observation_space, action_space, device, n_envs=n_envs)
        self.n_steps, self.gamma = n_steps, gamma
        self.optimize_memory_usage = False  # SB3's variant of the single-copy idea; this buffer always does it
        self.handle_timeout_termination = handle_timeout_termination
        self.memory_bytes = check_buffer_memory(buffer_size * n_envs, observation_space, action_space)  # type: ignore[arg-type]
        self.observations = _allocate(observation_space, buffer_size, n_envs)
        self.actions = np.zeros((buffer_size, n_envs, self.action_dim), dtype=np.float32)
        self.rewards = np.zeros((buffer_size, n_envs), dtype=np.float32)
        self.dones = np.zeros((buffer_size, n_envs), dtype=bool)
        self.timeouts = np.zeros((buffer_size, n_envs), dtype=bool)
        # Final observation of every episode end held, keyed by (row, env); the next observation of the newest row
        self.final_observations: dict[tuple[int, int], Obs] = {}
        self.newest_next_observations: Optional[Obs] = None

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
        _write(self.observations, row, obs)
        self.actions[row] = np.asarray(action).reshape(self.n_envs, self.action_dim)
        self.rewards[row] = np.asarray(reward).reshape(self.n_envs)
        self.dones[row] = np.asarray(done).reshape(self.n_envs)
        if self.handle_timeout_termination:
            self.timeouts[row] = [info.get("TimeLimit.truncated", False) for info in infos]
        for env_idx in np.flatnonzero(self.dones[row]):
            self.final_observations[(row, int(env_idx))] = _copy(obs_index(next_obs, env_idx))
        self.newest_next_observations = _copy(next_obs)
        self.pos = (self.pos + 1) % self.buffer_size
        self.full = self.full or self.pos == 0

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
            self.final_observations[(row, int(env_idx))] = _copy(obs_index(self.newest_next_observations, env_idx))

    def reset(self) -> None:
        super().reset()
        self.final_observations.clear()
        self.newest_next_observations = None

    def next_observations_of(self, rows: np.ndarray, env_indices: np.ndarray) -> Obs:
        """
        The next observation of the transitions at ``rows`` (of envs ``env_indices``).

        :return: the observations, batched along the first axis
        """
        newest = (self.pos - 1) % self.buffer_size
        following = obs_index(self.observations, ((rows + 1) % self.buffer_size, env_indices))  # a copy (fancy indexing)
        for i in np.flatnonzero(self.dones[rows, env_indices] | (rows == newest)):
            row, env_idx = int(rows[i]), int(env_indices[i])
            if self.dones[row, env_idx]:
                frame = self.final_observations[(row, env_idx)]
            else:
                frame = obs_index(self.newest_next_observations, env_idx)  # type: ignore[arg-type]
            _write(following, i, frame)
        return following

    def sample(self, batch_size: int, env: Optional[VecNormalize] = None) -> ReplayBufferSamples:
        upper_bound = self.buffer_size if self.full else self.pos
        if upper_bound == 0:
            raise RuntimeError("Cannot sample from an empty replay buffer")
        return self._get_samples(np.random.randint(0, upper_bound, size=batch_size), env)

    def _get_samples(self, batch_inds: np.ndarray, env: Optional[VecNormalize] = None) -> ReplayBufferSamples:
        env_indices = np.random.randint(0, self.n_envs, size=batch_inds.shape)
        # Look ahead up to n steps, stopping at the episode's end or at the newest row (not followed yet)
        newest = (self.pos - 1) % self.buffer_size
        rows = (batch_inds[:, None] + np.arange(self.n_steps)[None]) % self.buffer_size  # (batch, n_steps)
        stops = self.dones[rows, env_indices[:, None]] | (rows == newest)  # (batch, n_steps)
        last = np.where(stops.any(axis=1), stops.argmax(axis=1), self.n_steps - 1)  # (batch,) steps taken - 1
        mask = np.arange(self.n_steps)[None] <= last[:, None]  # (batch, n_steps)
        rewards = self._normalize_reward(self.rewards[rows, env_indices[:, None]], env)  # (batch, n_steps)
        returns = (rewards * self.gamma ** np.arange(self.n_steps, dtype=np.float32) * mask).sum(axis=1, keepdims=True)
        discounts = (self.gamma ** (last + 1.0)).astype(np.float32)[:, None]  # (batch, 1)
        last_rows = rows[np.arange(len(rows)), last]  # (batch,)
        terminal = self.dones[last_rows, env_indices] & ~self.timeouts[last_rows, env_indices]  # (batch,)

        obs = self._normalize_obs(obs_index(self.observations, (batch_inds, env_indices)), env)  # type: ignore[arg-type]
        next_obs = self._normalize_obs(self.next_observations_of(last_rows, env_indices), env)  # type: ignore[arg-type]
        return ReplayBufferSamples(
            observations=self._obs_to_torch(obs),
            actions=self.to_torch(self.actions[batch_inds, env_indices]),
            next_observations=self._obs_to_torch(next_obs),
            dones=self.to_torch(terminal.astype(np.float32)[:, None]),
            rewards=self.to_torch(returns.astype(np.float32)),
            discounts=self.to_torch(discounts),
        )

    def _obs_to_torch(self, obs: Obs) -> Any:
        if isinstance(obs, dict):
            return {key: self.to_torch(value) for key, value in obs.items()}
        return self.to_torch(obs)

    def episodes(self) -> list[Episode]:
        """The complete episodes held (env 0, in row order, from a buffer that has not wrapped around)."""
        size = self.size()
        ends = np.flatnonzero(self.dones[:size, 0])
        episodes, start = [], 0
        for end in ends:
            rows = np.arange(start, end + 1)
            obs = stack_obs([*(obs_index(self.observations, (row, 0)) for row in rows), self.final_observations[(end, 0)]])
            terminal = not bool(self.timeouts[end, 0])
            episodes.append(Episode(obs, self.actions[rows, 0], self.rewards[rows, 0], terminal))
            start = end + 1
        return episodes


class IBRLReplayBuffer(NStepBuffer):
    """
    Replay buffer with n-step returns, permanent demonstrations and optional oversampling of
    demonstrations + successful episodes.

    :param buffer_size: max number of online transitions
    :param observation_space: observation space
    :param action_space: action space
    :param device: PyTorch device
    :param n_envs: number of parallel environments
    :param optimize_memory_usage: ignored: observations are always stored once
    :param handle_timeout_termination: treat time-limit ends as truncations (bootstrapped), not terminals
    :param n_steps: n of the n-step return (1 gives the one-step TD target)
    :param gamma: discount factor of the n-step return
    :param demo_fraction: fraction of each batch drawn from demonstrations + successful online episodes;
        0 samples uniformly from everything
    :param success_buffer_size: capacity of the store of successful online episodes (used when ``demo_fraction > 0``)
    :param oversample_successes: with ``demo_fraction > 0``, grow the oversampled set with successful online
        episodes (IBRL, RLPD+); ``False`` oversamples the demonstrations alone (vanilla RLPD, SQIL)
    """

    demos: Optional[NStepBuffer]
    successes: Optional[NStepBuffer]

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
        demo_fraction: float = 0.0,
        success_buffer_size: int = 100_000,
        oversample_successes: bool = True,
    ):
        if not 0.0 <= demo_fraction < 1.0:
            raise ValueError(f"demo_fraction must be in [0, 1), got {demo_fraction}")
        super().__init__(
            buffer_size,
            observation_space,
            action_space,
            device,
            n_envs,
            optimize_memory_usage,
            handle_timeout_termination,
            n_steps,
            gamma,
        )
        self.demo_fraction = demo_fraction
        self.demos = None
        self.oversample_successes = oversample_successes
        keep_successes = demo_fraction > 0 and oversample_successes
        self.successes = self._make_store(min(success_buffer_size, buffer_size)) if keep_successes else None
        self._episode_lengths = np.zeros(self.n_envs, dtype=np.int64)

    def _make_store(self, size: int) -> NStepBuffer:
        return NStepBuffer(
            size, self.observation_space, self.action_space, self.device, n_steps=self.n_steps, gamma=self.gamma
        )

    @property
    def n_demo_transitions(self) -> int:
        """Number of demonstration transitions held."""
        return 0 if self.demos is None else self.demos.size()

    @property
    def n_success_transitions(self) -> int:
        """Number of transitions of successful online episodes held for oversampling."""
        return 0 if self.successes is None else self.successes.size()

    def add_demonstrations(self, episodes: Sequence[Episode], scale_action: Callable[[np.ndarray], np.ndarray]) -> None:
        """
        Store demonstrations permanently (they are never evicted by online data).

        :param episodes: the demonstrations, actions in env units
        :param scale_action: maps env-unit actions to the ``[-1, 1]`` actions stored in the buffer
        """
        held = [] if self.demos is None else self.demos.episodes()  # already scaled
        new = [Episode(ep.obs, scale_action(ep.acts), ep.rews, ep.terminal) for ep in episodes]
        store = self._make_store(sum(len(ep) for ep in held + new))
        for ep in held + new:
            self._add_episode(store, ep)
        self.demos = store

    @staticmethod
    def _add_episode(store: NStepBuffer, episode: Episode) -> None:
        n_steps = len(episode)
        for t in range(n_steps):
            last = t == n_steps - 1
            store.add(
                stack_obs([obs_index(episode.obs, t)]),
                stack_obs([obs_index(episode.obs, t + 1)]),
                episode.acts[t][None],
                episode.rews[t : t + 1],
                np.array([last]),
                [{"TimeLimit.truncated": last and not episode.terminal}],
            )

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
        super().add(obs, next_obs, action, reward, done, infos)
        if self.successes is None:
            return
        self._episode_lengths += 1
        for env_idx in np.flatnonzero(done):
            length = self._episode_lengths[env_idx]
            if infos[env_idx].get("is_success") and length <= self.buffer_size:
                rows = np.arange(row - length + 1, row + 1) % self.buffer_size
                frames = [obs_index(self.observations, (r, env_idx)) for r in rows]
                obs_seq = stack_obs([*frames, self.final_observations[(row, int(env_idx))]])
                terminal = not infos[env_idx].get("TimeLimit.truncated", False)
                episode = Episode(obs_seq, self.actions[rows, env_idx], self.rewards[rows, env_idx], terminal)
                self._add_episode(self.successes, episode)
            self._episode_lengths[env_idx] = 0

    def truncate_open_episodes(self) -> None:
        super().truncate_open_episodes()
        self._episode_lengths[:] = 0  # an interrupted episode is not added to the successes

    def sample(self, batch_size: int, env: Optional[VecNormalize] = None) -> ReplayBufferSamples:
        n_online = self.size() * self.n_envs
        n_demo, n_success = self.n_demo_transitions, self.n_success_transitions
        n_prior_available = n_demo + n_success
        if n_online + n_prior_available == 0:
            raise RuntimeError("Cannot sample from an empty replay buffer (no online transition and no demonstration)")
        if n_prior_available == 0:
            n_prior = 0
        elif n_online == 0:
            n_prior = batch_size
        elif self.demo_fraction > 0:
            n_prior = round(batch_size * self.demo_fraction)
        else:  # uniform over online transitions and demonstrations together
            n_prior = int(np.random.binomial(batch_size, n_prior_available / (n_online + n_prior_available)))
        n_from_demos = int(np.random.binomial(n_prior, n_demo / n_prior_available)) if n_prior else 0

        parts = []
        if batch_size - n_prior > 0:
            parts.append(super().sample(batch_size - n_prior, env=env))
        if n_from_demos > 0:
            parts.append(self.demos.sample(n_from_demos, env=env))  # type: ignore[union-attr]
        if n_prior - n_from_demos > 0:
            parts.append(self.successes.sample(n_prior - n_from_demos, env=env))  # type: ignore[union-attr]
        return _concat_samples(parts)


def _cat(values: list[Any]) -> Any:
    if isinstance(values[0], dict):
        return {key: th.cat([value[key] for value in values], dim=0) for key in values[0]}
    return th.cat(values, dim=0)


def _concat_samples(parts: Sequence[ReplayBufferSamples]) -> ReplayBufferSamples:
    if len(parts) == 1:
        return parts[0]
    return ReplayBufferSamples(*(_cat([getattr(part, name) for part in parts]) for name in ReplayBufferSamples._fields))
