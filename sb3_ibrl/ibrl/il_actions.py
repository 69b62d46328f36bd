"""
The IL policy's actions, computed once: when acting (the actor proposal), when a transition is stored (the action for
its next observation, cached in the replay buffer) and when demonstrations are added. The bootstrap proposal then reads
the cached actions instead of running the IL policy on every sampled batch (``IBRL(cache_il_actions=True)``).

A stateful IL policy (:class:`~sb3_ibrl.il.stateful.StatefulILPolicy`) is stepped exactly once per env step, in env
order, and told where episodes start; the cached action of a transition is the one it proposed at that step.
"""

import warnings
from collections.abc import Sequence
from typing import Any, Callable, Optional

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.utils import obs_as_tensor

from sb3_ibrl.data.episodes import Episode, obs_length, stack_obs
from sb3_ibrl.data.il_cache import ILReplayBufferSamples
from sb3_ibrl.data.storage import as_stored, gather
from sb3_ibrl.il.frozen import FrozenILPolicy
from sb3_ibrl.il.observations import ILObservationSplit, take

ObsToTensor = Callable[[Any], Any]  # numpy observations (batched) -> tensors on the model's device


def _as_tensor(space: spaces.Space, obs: Any, obs_to_tensor: ObsToTensor) -> Any:
    """Observations as the replay buffer would return them (the space's dtype), as tensors."""
    return obs_to_tensor(as_stored(space, obs, obs_length(obs)))


def acting_il_actions(il: FrozenILPolicy, space: spaces.Space, obs: Any, obs_to_tensor: ObsToTensor) -> th.Tensor:
    """The IL actions for the observations of every env (one step of a stateful policy), ``(n_envs, action_dim)``."""
    tensor = _as_tensor(space, obs, obs_to_tensor)
    return il(tensor, env_indices=range(obs_length(obs)), context="train")


def il_actions_after_step(
    il: FrozenILPolicy, space: spaces.Space, new_obs: Any, dones: np.ndarray, infos: Sequence[dict], obs_to_tensor: ObsToTensor
) -> tuple[np.ndarray, th.Tensor]:
    """
    The IL actions after an env step: for the stored transitions' next observations (the final observation where an
    episode ended), and for the new observations, which the next actor proposal uses.

    :param il: the IL policy
    :param space: the observation space
    :param new_obs: the observations after the step (reset ones where an episode ended)
    :param dones: which envs ended an episode
    :param infos: the infos of the step (``terminal_observation`` where an episode ended)
    :param obs_to_tensor: the policy's conversion of observations to tensors
    :return: the actions to cache ``(n_envs, action_dim)`` (numpy) and those of ``new_obs`` (a tensor)
    """
    ended = np.flatnonzero(dones)
    final_actions = None
    if len(ended):  # the last step of these episodes, then their envs start new ones
        finals = [infos[i].get("terminal_observation", gather(new_obs, i)) for i in ended]
        final_actions = il(_as_tensor(space, stack_obs(finals), obs_to_tensor), env_indices=ended, context="train")
        il.start_episodes(ended, context="train")
    current = acting_il_actions(il, space, new_obs, obs_to_tensor)
    cached = current.clone()
    if final_actions is not None:
        cached[th.as_tensor(ended, device=cached.device)] = final_actions
    return cached.cpu().numpy(), current


def demo_il_actions(il: FrozenILPolicy, space: spaces.Space, episodes: Sequence[Episode], obs_to_tensor: ObsToTensor,
                    batch_size: int = 1024) -> list[np.ndarray]:  # fmt: skip
    """
    For each demonstration, the IL actions of its next observations ``obs[1:]``, ``(T, action_dim)``: a stateless
    policy in batches, a stateful one stepped through the episode from its start (in the ``"demos"`` context).
    """
    actions = []
    for episode in episodes:
        n_obs = len(episode) + 1
        if il.stateful:
            il.start_episodes([0], context="demos")
            steps = [
                il(_as_tensor(space, gather(episode.obs, slice(t, t + 1)), obs_to_tensor), [0], "demos") for t in range(n_obs)
            ]
            actions.append(th.cat(steps[1:]).cpu().numpy())
            continue
        parts = []
        for start in range(1, n_obs, batch_size):
            obs = gather(episode.obs, slice(start, min(start + batch_size, n_obs)))
            parts.append(il(_as_tensor(space, obs, obs_to_tensor)).cpu().numpy())
        actions.append(np.concatenate(parts))
    return actions


def bootstrap_il_actions(il: FrozenILPolicy, data: ReplayBufferSamples, use_cache: bool) -> th.Tensor:
    """
    The IL actions of a batch's next observations: the cached ones (the IL policy runs only on rows without one), or,
    with ``use_cache=False``, the IL policy run on the whole batch.
    """
    cached = isinstance(data, ILReplayBufferSamples) and use_cache
    missing: Optional[np.ndarray] = data.next_il_missing if cached else None  # type: ignore[union-attr]
    if cached and len(missing) == 0:  # type: ignore[arg-type]
        return data.next_il_actions  # type: ignore[union-attr]
    if il.stateful:
        raise ValueError(
            "A stateful IL policy cannot be run on replay batches (it needs the history of an episode), but the batch "
            "holds transitions without a cached IL action (added with replay_buffer.add, or loaded from a buffer saved "
            "without them). Use IBRL's own collection (learn) and demonstrations= to add transitions."
        )
    if not cached:
        return il(data.next_observations)
    rows = th.as_tensor(missing, device=data.next_il_actions.device)  # type: ignore[union-attr]
    next_obs = data.next_observations
    subset = {key: value[rows] for key, value in next_obs.items()} if isinstance(next_obs, dict) else next_obs[rows]
    actions = data.next_il_actions.clone()  # type: ignore[union-attr]
    actions[rows] = il(subset)
    return actions


class ILActions:
    """
    Where IBRL gets its IL actions: computed once per env step and cached (``cache=True``), or, without the cache, run
    on every observation batch that needs them.

    :param il: the frozen IL policy
    :param observation_space: the observation space
    :param obs_to_tensor: the policy's conversion of observations to tensors
    :param cache: cache the IL actions in the replay buffer (it must be an :class:`~sb3_ibrl.data.nstep_buffer.NStepBuffer`)
    :param normalized_obs: the observations are normalized (``VecNormalize(norm_obs=True)``): warn
    :param split: the env's :class:`~sb3_ibrl.il.observations.ILObservationSplit` when the IL policy reads its own
        observations (then they come from it, never from the replay buffer)
    """

    def __init__(
        self,
        il: FrozenILPolicy,
        observation_space: spaces.Space,
        obs_to_tensor: ObsToTensor,
        cache: bool,
        normalized_obs: bool,
        split: Optional[ILObservationSplit] = None,
    ):
        if normalized_obs:
            warnings.warn(
                "VecNormalize(norm_obs=True) is used with an IL policy: the IL policy receives the normalized "
                "observations that the RL networks see. Train it on normalized observations too, or set norm_obs=False."
            )
        if il.stateful and not cache:
            raise ValueError(
                "A stateful IL policy runs once per env step: it needs cache_il_actions=True and an IBRLReplayBuffer"
            )
        if split is not None and not cache:
            raise ValueError("An IL policy that reads its own observations (il_obs_keys) needs cache_il_actions=True")
        self.il, self.space, self.obs_to_tensor, self.cache, self.split = il, observation_space, obs_to_tensor, cache, split
        self.current: Optional[th.Tensor] = None  # the IL actions of the observations acted on next, when computed

    def il_obs(self, obs: Any) -> Any:
        """The IL policy's view of the latest observations (``obs``, or the IL part kept by the split env)."""
        return obs if self.split is None else self.split.il_observations

    def restart(self, n_envs: int) -> None:
        """Every env starts a new episode (``learn`` reset the envs)."""
        self.current = None
        self.il.start_episodes(range(n_envs), context="train")

    def for_acting(self, obs: Any) -> Optional[th.Tensor]:
        """The IL actions for the observations acted on (``None`` without the cache: the policy computes them)."""
        if not self.cache:
            return None
        if self.current is None:  # the first step after a reset
            self.current = acting_il_actions(self.il, self.space, self.il_obs(obs), self.obs_to_tensor)
        return self.current

    def after_step(self, new_obs: Any, dones: np.ndarray, infos: Sequence[dict]) -> Optional[np.ndarray]:
        """After an env step: the IL actions to cache with the stored transitions (``None`` without the cache)."""
        if not self.cache:
            return None
        if self.split is not None:  # the IL part of the observations (final ones: kept apart in the infos)
            infos = [{"terminal_observation": info.get("terminal_il_observation")} for info in infos]
        cached, self.current = il_actions_after_step(
            self.il, self.space, self.il_obs(new_obs), dones, infos, self.obs_to_tensor
        )
        return cached

    def for_demos(self, episodes: Sequence[Episode]) -> Optional[list[np.ndarray]]:
        """The IL actions of the demonstrations' next observations (``None`` without the cache)."""
        return demo_il_actions(self.il, self.space, episodes, self.obs_to_tensor) if self.cache else None

    def for_bootstrap(self, data: ReplayBufferSamples) -> th.Tensor:
        """The IL actions of a batch's next observations (the bootstrap proposal)."""
        if self.split is not None and isinstance(data, ILReplayBufferSamples) and len(data.next_il_missing):
            raise ValueError(
                "The IL policy reads its own observations (il_obs_keys), which the replay buffer does not keep, but a batch "
                "holds transitions without a cached IL action (added by hand, or demos without the IL's keys)"
            )
        return bootstrap_il_actions(self.il, data, self.cache)

    def split_demos(self, episodes: Sequence[Episode]) -> tuple[list[Episode], Optional[list[np.ndarray]]]:
        """The demonstrations the replay buffer keeps (the RL part, when split) and the IL actions to cache with them."""
        if self.split is None:
            return list(episodes), self.for_demos(episodes)
        full_keys = set(self.split.rl_keys) | set(self.split.il_keys)
        for i, episode in enumerate(episodes):
            if not isinstance(episode.obs, dict) or not full_keys <= set(episode.obs):
                got = sorted(episode.obs) if isinstance(episode.obs, dict) else "an array"
                raise ValueError(
                    f"Demonstration episode {i} has observations {got}; with il_obs_keys the demonstrations need the keys "
                    f"of both sides, {sorted(full_keys)} (the IL policy's actions for them are cached)"
                )
        il_view = [Episode(take(ep.obs, self.split.il_keys), ep.acts, ep.rews, ep.terminal) for ep in episodes]
        rl_view = [Episode(take(ep.obs, self.split.rl_keys), ep.acts, ep.rews, ep.terminal) for ep in episodes]
        return rl_view, self.for_demos(il_view)

    def _full(self, observation: Any) -> bool:
        """Whether ``observation`` holds both sides' keys of a split env (the env itself gives the RL part alone)."""
        return self.split is not None and isinstance(observation, dict) and set(self.split.il_keys) <= set(observation)

    def rl_observation(self, observation: Any) -> Any:
        """The RL networks' part of full observations (both sides' keys) when split, else ``observation`` itself."""
        if not self._full(observation):
            return observation
        return take(observation, self.split.rl_keys)

    def predict(self, policy: Any, observation: Any, deterministic: bool) -> Optional[np.ndarray]:
        """
        The hybrid action for full observations (both sides' keys) when split, else ``None`` (the policy predicts).
        """
        if not self._full(observation):
            return None
        policy.set_training_mode(False)  # as SB3's predict: no dropout
        rl_obs, vectorized = policy.obs_to_tensor(take(observation, self.split.rl_keys))
        il_obs = take(observation, self.split.il_keys)
        if not vectorized:  # one observation: a batch of one
            il_obs = {key: value[None] for key, value in il_obs.items()} if isinstance(il_obs, dict) else il_obs[None]
        with th.no_grad():
            il_action = self.il(_as_tensor(self.space, il_obs, self.obs_to_tensor))
            actions, _ = policy.propose(rl_obs, beta=None if deterministic else policy.proposal_beta,
                                        deterministic=deterministic, il_action=il_action)  # fmt: skip
        actions = policy.unscale_action(actions.cpu().numpy())
        return actions if vectorized else actions[0]


class ILCollectionHooks:
    """
    IBRL's collection hooks, placed before SB3's algorithm class (``class IBRL(..., ILCollectionHooks, TD3)``): every
    env starts an episode for the IL policy when ``learn`` resets the envs, and each stored transition gets the IL
    action of its next observation (``self._il``, an :class:`ILActions`, or ``None`` without an IL policy).
    """

    _il: Optional[ILActions]

    def _obs_to_tensor(self, obs: Any) -> Any:
        return obs_as_tensor(obs, self.device)  # batched numpy observations (the IL's own space: not the policy's)

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: Any = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> Any:
        reset = reset_num_timesteps or self._last_obs is None  # SB3 resets the envs then
        result = super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)
        if reset and self._il is not None:  # new episodes in every env
            self._il.restart(self.n_envs)
        return result

    def _store_transition(self, replay_buffer: Any, buffer_action: np.ndarray, new_obs: Any, reward: np.ndarray,
                          dones: np.ndarray, infos: list[dict[str, Any]]) -> None:  # fmt: skip
        cached = None if self._il is None else self._il.after_step(new_obs, dones, infos)
        if cached is not None:  # the IL actions of the stored transitions' next observations
            replay_buffer.set_next_il_actions(cached)
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)
