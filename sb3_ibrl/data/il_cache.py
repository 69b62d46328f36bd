"""
Cached IL actions: the frozen IL policy's action for the next observation of every stored transition, computed once
when the transition enters the replay buffer (the IL policy is frozen: it never changes), so that the bootstrap
proposal reads it instead of running the IL policy on every sampled batch.
"""

from collections.abc import Sequence
from typing import NamedTuple, Optional

import numpy as np
import torch as th
from stable_baselines3.common.type_aliases import ReplayBufferSamples


class ILReplayBufferSamples(NamedTuple):
    """
    SB3's ``ReplayBufferSamples`` with the cached IL actions of the next observations: ``next_il_actions`` ``(batch,
    action_dim)`` in ``[-1, 1]``, and ``next_il_missing``, the rows (a numpy array) whose action was not cached
    (transitions added without one, e.g. by hand): the caller computes those.
    """

    observations: th.Tensor
    actions: th.Tensor
    next_observations: th.Tensor
    dones: th.Tensor
    rewards: th.Tensor
    discounts: Optional[th.Tensor]
    next_il_actions: th.Tensor
    next_il_missing: np.ndarray


class ILActionCache:
    """
    The IL action of each stored row's next observation: ``(rows, n_envs, action_dim)`` float32, with a mask of the
    rows that have one.

    :param rows: rows of the buffer
    :param n_envs: envs of the buffer
    :param action_dim: action size
    """

    def __init__(self, rows: int, n_envs: int, action_dim: int):
        self.actions = np.zeros((rows, n_envs, action_dim), dtype=np.float32)
        self.cached = np.zeros((rows, n_envs), dtype=bool)

    def write(self, row: int, actions: Optional[np.ndarray]) -> None:
        """Set (or, with ``None``, forget) the cached actions of one row, for every env."""
        if actions is None:
            self.cached[row] = False
            return
        actions = np.asarray(actions, dtype=np.float32).reshape(self.actions.shape[1:])
        if not np.isfinite(actions).all():
            raise ValueError(f"Non-finite cached IL actions {actions.tolist()} for row {row}")
        self.actions[row], self.cached[row] = actions, True

    def read(self, rows: np.ndarray, env_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The cached actions of these rows and the indices of the rows without one."""
        return self.actions[rows, env_indices], np.flatnonzero(~self.cached[rows, env_indices])


def with_il_actions(samples: ReplayBufferSamples, actions: np.ndarray, missing: np.ndarray, to_torch) -> ILReplayBufferSamples:
    """``samples`` with cached IL actions (``to_torch``: the buffer's conversion to its device)."""
    return ILReplayBufferSamples(*samples, next_il_actions=to_torch(actions), next_il_missing=missing)


def _cat(values: list) -> th.Tensor:
    if isinstance(values[0], dict):
        return {key: th.cat([value[key] for value in values], dim=0) for key in values[0]}  # type: ignore[return-value]
    return th.cat(values, dim=0)


def concat_samples(parts: Sequence[ReplayBufferSamples]) -> ReplayBufferSamples:
    """
    One batch from batches of several stores; when any of them carries cached IL actions, the result does (the rows of
    the others count as missing).
    """
    if len(parts) == 1:
        return parts[0]
    fields = ReplayBufferSamples._fields
    joined = [_cat([getattr(part, name) for part in parts]) for name in fields]
    if not any(isinstance(part, ILReplayBufferSamples) for part in parts):
        return ReplayBufferSamples(*joined)
    actions, missing, offset = [], [], 0
    for part in parts:
        n_rows = len(part.actions)
        if isinstance(part, ILReplayBufferSamples):
            actions.append(part.next_il_actions)
            missing.append(part.next_il_missing + offset)
        else:
            actions.append(th.zeros_like(part.actions))
            missing.append(np.arange(n_rows) + offset)
        offset += n_rows
    return ILReplayBufferSamples(*joined, next_il_actions=th.cat(actions), next_il_missing=np.concatenate(missing))
