"""
The IBRL replay buffer: n-step returns over online transitions (:class:`~sb3_ibrl.data.nstep_buffer.NStepBuffer`),
a permanent store of demonstrations and, when oversampling, a store of successful online episodes.

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
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.utils import get_device
from stable_baselines3.common.vec_env import VecNormalize

from sb3_ibrl.data.buffer_memory import (
    available_memory_bytes,
    check_buffer_memory,
    observation_bytes,
    stored_transitions,
    transition_bytes,
)
from sb3_ibrl.data.episodes import Episode, Obs, obs_index, stack_obs, truncated_flag
from sb3_ibrl.data.il_cache import concat_samples
from sb3_ibrl.data.nstep_buffer import NStepBuffer
from sb3_ibrl.data.storage import gather, resolve_storage_device, to_numpy


class IBRLReplayBuffer(NStepBuffer):
    """
    Replay buffer with n-step returns, permanent demonstrations and optional oversampling of
    demonstrations + successful episodes.

    :param buffer_size: max number of online transitions, all envs together (as SB3's ``buffer_size``)
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
    :param storage_device: where observations are kept (``"auto"``: on the GPU for images when the device is CUDA;
        ``None``: host memory), for the demonstrations and successes too (see :class:`NStepBuffer`)
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
        storage_device: Optional[Union[str, th.device]] = "auto",
    ):
        if not 0.0 <= demo_fraction < 1.0:
            raise ValueError(f"demo_fraction must be in [0, 1), got {demo_fraction}")
        keep_successes = demo_fraction > 0 and oversample_successes
        # One check for every store, before any is made: the online transitions and the successful episodes
        n_stored = stored_transitions(buffer_size, n_envs, success_buffer_size * keep_successes)
        storage_device = resolve_storage_device(
            storage_device, get_device(device), observation_space, n_stored * observation_bytes(observation_space)
        )
        memory_bytes = check_buffer_memory(
            buffer_size,
            observation_space,
            action_space,
            n_envs=n_envs,
            success_buffer_size=success_buffer_size * keep_successes,
            on_device=storage_device is not None,
        )
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
            storage_device,
        )
        self.demo_fraction = demo_fraction
        self.demos = None
        self.oversample_successes = oversample_successes
        self.successes = self._make_store(min(success_buffer_size, buffer_size)) if keep_successes else None
        self.memory_bytes = memory_bytes
        self._episode_lengths = np.zeros(self.n_envs, dtype=np.int64)

    def _make_store(self, size: int) -> NStepBuffer:
        return NStepBuffer(
            size,
            self.observation_space,
            self.action_space,
            self.device,
            n_steps=self.n_steps,
            gamma=self.gamma,
            storage_device=self.storage_device,
        )

    @property
    def n_demo_transitions(self) -> int:
        """Number of demonstration transitions held."""
        return 0 if self.demos is None else self.demos.size()

    @property
    def n_success_transitions(self) -> int:
        """Number of transitions of successful online episodes held for oversampling."""
        return 0 if self.successes is None else self.successes.size()

    def add_demonstrations(
        self,
        episodes: Sequence[Episode],
        scale_action: Callable[[np.ndarray], np.ndarray],
        next_il_actions: Optional[Sequence[np.ndarray]] = None,
    ) -> None:
        """
        Store demonstrations permanently (they are never evicted by online data).

        :param episodes: the demonstrations, actions in env units
        :param scale_action: maps env-unit actions to the ``[-1, 1]`` actions stored in the buffer
        :param next_il_actions: per episode, the IL actions of its next observations ``obs[1:]`` (``(T, action_dim)``
            in ``[-1, 1]``), cached for the bootstrap proposal; ``None``: not cached
        """
        held = [] if self.demos is None else self.demos.episodes()  # already scaled
        held_il = [None] * len(held) if self.demos is None else self.demos.episode_next_il_actions()
        new = [Episode(ep.obs, scale_action(ep.acts), ep.rews, ep.terminal) for ep in episodes]
        new_il = [None] * len(new) if next_il_actions is None else list(next_il_actions)
        self._check_memory_with_demos(sum(len(ep) for ep in held + new))
        store = self._make_store(sum(len(ep) for ep in held + new))
        for ep, il_actions in zip(held + new, held_il + new_il):
            self._add_episode(store, ep, il_actions)
        self.demos = store

    def _check_memory_with_demos(self, n_demo_transitions: int) -> None:
        """The memory check of every store, with the demonstrations (a ``MemoryError`` when they do not all fit)."""
        available = available_memory_bytes()
        if available is None:
            return
        # The transitions written so far (and the demonstrations held, replaced) are already out of `available`
        written = self.size() * self.n_envs + self.n_success_transitions + self.n_demo_transitions
        on_device = self.storage_device is not None
        host_bytes = transition_bytes(self.observation_space, self.action_space)  # type: ignore[arg-type]
        host_bytes -= observation_bytes(self.observation_space) if on_device else 0
        check_buffer_memory(
            self.buffer_size * self.n_envs,
            self.observation_space,
            self.action_space,  # type: ignore[arg-type]
            available=available + written * host_bytes,
            n_envs=self.n_envs,
            success_buffer_size=0 if self.successes is None else self.successes.buffer_size,
            extra_transitions=n_demo_transitions,
            on_device=on_device,
        )

    @staticmethod
    def _add_episode(store: NStepBuffer, episode: Episode, next_il_actions: Optional[np.ndarray] = None) -> None:
        n_steps = len(episode)
        for t in range(n_steps):
            last = t == n_steps - 1
            if next_il_actions is not None:
                store.set_next_il_actions(next_il_actions[t][None])
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
                frames = [to_numpy(gather(self.observations, (r, env_idx))) for r in rows]
                obs_seq = stack_obs([*frames, to_numpy(self.final_observations[(row, int(env_idx))])])
                terminal = not truncated_flag(infos[env_idx])
                episode = Episode(obs_seq, self.actions[rows, env_idx], self.rewards[rows, env_idx], terminal)
                cache = self.il_cache
                il_actions = cache.actions[rows, env_idx] if cache is not None and cache.cached[rows, env_idx].all() else None
                self._add_episode(self.successes, episode, il_actions)
            self._episode_lengths[env_idx] = 0

    def _break_links(self, row: int, obs: Obs) -> np.ndarray:
        broken = super()._break_links(row, obs)
        self._episode_lengths[broken] = 0  # the row just added starts a new run: the episode before it is incomplete
        return broken

    def truncate_open_episodes(self) -> None:
        super().truncate_open_episodes()
        self._episode_lengths[:] = 0  # an interrupted episode is not added to the successes

    def to_device(self, device: Union[th.device, str]) -> None:
        super().to_device(device)
        for store in (self.demos, self.successes):  # every store samples onto the same device
            if store is not None:
                store.to_device(self.device)

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
        return concat_samples(parts)
