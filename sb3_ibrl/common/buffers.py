"""
The IBRL replay buffer: SB3's n-step replay buffer for online transitions, plus a permanent store
of demonstrations and, when oversampling, a store of successful online episodes.

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
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from sb3_ibrl.common.demos import Episode


def _concat_samples(parts: Sequence[ReplayBufferSamples]) -> ReplayBufferSamples:
    if len(parts) == 1:
        return parts[0]
    fields = {}
    for name in ReplayBufferSamples._fields:
        values = [getattr(part, name) for part in parts]
        fields[name] = None if any(v is None for v in values) else th.cat(values, dim=0)
    return ReplayBufferSamples(**fields)


class IBRLReplayBuffer(NStepReplayBuffer):
    """
    Replay buffer with n-step returns, permanent demonstrations and optional oversampling of
    demonstrations + successful episodes.

    :param buffer_size: max number of online transitions
    :param observation_space: observation space
    :param action_space: action space
    :param device: PyTorch device
    :param n_envs: number of parallel environments
    :param optimize_memory_usage: not supported (n-step returns need the next observations)
    :param handle_timeout_termination: treat time-limit ends as truncations (bootstrapped), not terminals
    :param n_steps: n of the n-step return (1 gives the one-step TD target)
    :param gamma: discount factor of the n-step return
    :param demo_fraction: fraction of each batch drawn from demonstrations + successful online episodes;
        0 samples uniformly from everything
    :param success_buffer_size: capacity of the store of successful online episodes (used when ``demo_fraction > 0``)
    """

    demos: Optional[NStepReplayBuffer]
    successes: Optional[NStepReplayBuffer]

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
    ):
        if not 0.0 <= demo_fraction < 1.0:
            raise ValueError(f"demo_fraction must be in [0, 1), got {demo_fraction}")
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}")
        super().__init__(
            buffer_size,
            observation_space,
            action_space,
            device=device,
            n_envs=n_envs,
            optimize_memory_usage=optimize_memory_usage,
            handle_timeout_termination=handle_timeout_termination,
            n_steps=n_steps,
            gamma=gamma,
        )
        self.demo_fraction = demo_fraction
        self.demos = None
        self.successes = self._make_store(success_buffer_size) if demo_fraction > 0 else None
        self._episode_lengths = np.zeros(self.n_envs, dtype=np.int64)

    def _make_store(self, size: int) -> NStepReplayBuffer:
        return NStepReplayBuffer(
            size,
            self.observation_space,
            self.action_space,
            device=self.device,
            n_envs=1,
            handle_timeout_termination=True,
            n_steps=self.n_steps,
            gamma=self.gamma,
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
        new = list(episodes)
        if self.demos is not None:  # keep the ones already there
            new = self._stored_episodes(self.demos) + new
        store = self._make_store(sum(len(ep) for ep in new))
        for ep in new:
            self._add_episode(store, ep.obs, scale_action(ep.acts), ep.rews, ep.terminal)
        self.demos = store

    @staticmethod
    def _add_episode(store: ReplayBuffer, obs: np.ndarray, acts: np.ndarray, rews: np.ndarray, terminal: bool) -> None:
        n_steps = len(acts)
        for t in range(n_steps):
            last = t == n_steps - 1
            store.add(
                obs[t][None],
                obs[t + 1][None],
                np.asarray(acts[t])[None],
                np.array([rews[t]], dtype=np.float32),
                np.array([last]),
                [{"TimeLimit.truncated": last and not terminal}],
            )

    @staticmethod
    def _stored_episodes(store: ReplayBuffer) -> list[Episode]:
        size = store.size()
        ends = np.flatnonzero(np.logical_or(store.dones[:size, 0], store.timeouts[:size, 0]))
        episodes, start = [], 0
        for end in ends:
            obs = np.concatenate([store.observations[start : end + 1, 0], store.next_observations[end : end + 1, 0]])
            terminal = bool(store.dones[end, 0]) and not bool(store.timeouts[end, 0])
            episodes.append(Episode(obs, store.actions[start : end + 1, 0], store.rewards[start : end + 1, 0], terminal))
            start = end + 1
        return episodes

    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        pos = self.pos
        super().add(obs, next_obs, action, reward, done, infos)
        if self.successes is None:
            return
        self._episode_lengths += 1
        for env_idx in np.flatnonzero(done):
            length = self._episode_lengths[env_idx]
            if infos[env_idx].get("is_success") and length <= self.buffer_size:
                rows = np.arange(pos - length + 1, pos + 1) % self.buffer_size
                terminal = not infos[env_idx].get("TimeLimit.truncated", False)
                obs_seq = np.concatenate(
                    [self.observations[rows, env_idx], self.next_observations[rows[-1:], env_idx]], axis=0
                )
                self._add_episode(self.successes, obs_seq, self.actions[rows, env_idx], self.rewards[rows, env_idx], terminal)
            self._episode_lengths[env_idx] = 0

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
