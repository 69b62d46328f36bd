"""
IL policies with memory across the steps of an episode (BC-RNN, action chunking, diffusion policies with action
horizons): IBRL calls them once per env step, tells them where episodes start, and caches the action each one proposed
at each step (``IBRL(cache_il_actions=True)``, required for them), instead of re-running them on replay batches.

- :class:`StatefulILPolicy`: the interface. Memory is kept per env and per *context* (``"train"``: the envs that
  ``learn()`` collects from; ``"predict"``: ``model.predict``; ``"demos"``: the pass over the demonstrations), so
  evaluating while training never disturbs the training envs' memory.
- :class:`ActionChunkingPolicy`: action chunking with temporal ensembling (Zhao et al., 2023, "ACT") on top of a
  policy that predicts the next ``chunk_size`` actions, e.g. a BC policy trained on :func:`chunk_episodes` demos.
"""

from collections import deque
from collections.abc import Sequence
from typing import Any, Callable, Union

import numpy as np
import torch as th
from gymnasium import spaces
from torch import nn

from sb3_ibrl.data.episodes import Episode, obs_length

Observation = Union[th.Tensor, dict[str, th.Tensor]]


class StatefulILPolicy(nn.Module):
    """
    An IL policy with memory across the steps of an episode. Subclasses implement :meth:`start_episodes` and
    :meth:`step`; calling the module itself steps envs ``0 .. batch - 1`` in the ``"predict"`` context.
    """

    stateful = True

    def start_episodes(self, env_indices: Sequence[int], context: str = "train") -> None:
        """
        Forget the memory of these envs: their next :meth:`step` is the first of an episode.

        :param env_indices: the envs whose episodes start
        :param context: ``"train"``, ``"predict"`` or ``"demos"``
        """
        raise NotImplementedError

    def step(self, observation: Observation, env_indices: Sequence[int], context: str = "train") -> th.Tensor:
        """
        One step of these envs: the action proposed for each observation, in the env's action units.

        :param observation: one observation per env, batched in the order of ``env_indices``
        :param env_indices: the env of each row
        :param context: ``"train"``, ``"predict"`` or ``"demos"``
        :return: actions ``(len(env_indices), action_dim)``
        """
        raise NotImplementedError

    def forward(self, observation: Observation) -> th.Tensor:
        return self.step(observation, list(range(obs_length(observation))), context="predict")


def chunk_episodes(episodes: Sequence[Episode], chunk_size: int) -> list[Episode]:
    """
    Demonstrations relabelled for a chunking policy: the action at step ``t`` becomes the next ``chunk_size`` actions
    ``a_t .. a_{t + chunk_size - 1}``, concatenated (the last action repeats past the episode's end).

    :param episodes: the demonstrations
    :param chunk_size: actions per chunk
    :return: episodes whose actions have ``chunk_size * action_dim`` entries
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    chunked = []
    for episode in episodes:
        n_steps = len(episode)
        index = np.minimum(np.arange(n_steps)[:, None] + np.arange(chunk_size)[None], n_steps - 1)  # (T, chunk)
        acts = episode.acts[index].reshape(n_steps, -1)  # (T, chunk * action_dim)
        chunked.append(Episode(episode.obs, acts, episode.rews, episode.terminal))
    return chunked


def chunk_action_space(action_space: spaces.Box, chunk_size: int) -> spaces.Box:
    """The action space of a chunking policy: ``chunk_size`` copies of ``action_space``, flattened."""
    return spaces.Box(np.tile(action_space.low, chunk_size), np.tile(action_space.high, chunk_size), dtype=np.float32)


def chunked_bc_data(
    episodes: Sequence[Episode], action_space: spaces.Box, chunk_size: int
) -> tuple[Sequence[Episode], spaces.Box]:
    """
    The demos and action space a chunking BC policy trains on (:func:`chunk_episodes`, :func:`chunk_action_space`);
    unchanged for ``chunk_size == 1`` (plain BC).
    """
    if chunk_size == 1:
        return episodes, action_space
    return chunk_episodes(episodes, chunk_size), chunk_action_space(action_space, chunk_size)


class ActionChunkingPolicy(StatefulILPolicy):
    """
    Action chunking with temporal ensembling (ACT, Zhao et al., 2023): at every step the chunk policy predicts the next
    ``chunk_size`` actions; the action taken at step ``t`` averages every prediction made for ``t`` (by the chunks of
    steps ``t - chunk_size + 1 .. t``), weighted ``exp(-decay * i)`` with ``i = 0`` for the oldest prediction.

    :param chunk_policy: an SB3 policy (e.g. imitation BC's ``bc.policy`` trained on :func:`chunk_episodes`) or a
        callable mapping a batch of observation tensors to ``(batch, chunk_size * action_dim)`` actions in env units
    :param chunk_size: actions per chunk
    :param action_dim: size of one action
    :param decay: ``m`` of the weights ``exp(-m * i)`` (ACT: 0.01); 0 averages uniformly
    """

    def __init__(self, chunk_policy: Union[nn.Module, Callable[[Observation], Any]], chunk_size: int, action_dim: int,
                 decay: float = 0.01):  # fmt: skip
        super().__init__()
        if chunk_size < 1 or action_dim < 1:
            raise ValueError(f"chunk_size and action_dim must be >= 1, got {chunk_size} and {action_dim}")
        if decay < 0:
            raise ValueError(f"decay must be >= 0, got {decay}")
        if isinstance(chunk_policy, nn.Module):
            self.chunk_policy: Any = chunk_policy
        else:
            object.__setattr__(self, "chunk_policy", chunk_policy)
        self.chunk_size, self.action_dim, self.decay = chunk_size, action_dim, decay
        self._chunks: dict[str, dict[int, deque]] = {}  # context -> env -> the last chunk_size chunks, oldest first

    def _predict_chunks(self, observation: Observation) -> th.Tensor:
        if hasattr(self.chunk_policy, "_predict"):
            chunks = self.chunk_policy._predict(observation, deterministic=True)
        else:
            chunks = th.as_tensor(self.chunk_policy(observation))
        return chunks.float().reshape(-1, self.chunk_size, self.action_dim)  # (batch, chunk, action_dim)

    def start_episodes(self, env_indices: Sequence[int], context: str = "train") -> None:
        memory = self._chunks.setdefault(context, {})
        for env_idx in env_indices:
            memory.pop(int(env_idx), None)

    @th.no_grad()
    def step(self, observation: Observation, env_indices: Sequence[int], context: str = "train") -> th.Tensor:
        chunks = self._predict_chunks(observation)  # (batch, chunk, action_dim)
        memory = self._chunks.setdefault(context, {})
        actions = []
        for row, env_idx in enumerate(env_indices):
            history = memory.setdefault(int(env_idx), deque(maxlen=self.chunk_size))
            history.append(chunks[row])
            n = len(history)
            # the prediction for this step of the chunk made j chunks ago (oldest first: j = n - 1 .. 0)
            predictions = th.stack([history[i][n - 1 - i] for i in range(n)])  # (n, action_dim)
            weights = th.exp(-self.decay * th.arange(n, dtype=th.float32, device=predictions.device))  # oldest: i = 0
            actions.append((weights[:, None] * predictions).sum(dim=0) / weights.sum())
        return th.stack(actions)  # (batch, action_dim)
