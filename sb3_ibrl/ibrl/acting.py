"""
How IBRL acts: the IL warm-up, then the actor proposal while collecting data (with exploration noise on the RL
action), and the hybrid action of ``predict``.
"""

from collections import deque
from typing import Any, Optional, Union

import numpy as np
import torch as th
from stable_baselines3.common.noise import ActionNoise


class ActingHooks:
    """
    IBRL's acting, placed before SB3's algorithm class (``class IBRL(..., ActingHooks, ..., TD3)``).

    Before learning, the IL policy acts alone (``warmup="il"``) for ``learning_starts`` env steps and until
    ``il_warmup_episodes`` episodes have ended, whichever is later; no update is made until then. Then the actor
    proposal picks, at every step, between the noisy RL action and the IL action.
    """

    policy: Any
    il_policy: Any
    _il: Any
    _il_choices: deque
    _last_obs: Any
    _episode_num: int
    num_timesteps: int
    device: th.device
    warmup: str
    proposal_beta: Optional[float]
    il_warmup_episodes: int

    @property
    def il_action_fraction(self) -> float:
        """Fraction of the last (up to 1000) actions executed while training that came from the IL policy."""
        return float(np.mean(self._il_choices)) if self._il_choices else float("nan")

    def _il_warmup_pending(self) -> bool:
        """Whether episodes of the IL warm-up (``il_warmup_episodes``) are still to be collected, with no update."""
        return self.il_policy is not None and self._episode_num < self.il_warmup_episodes

    def _sample_action(
        self, learning_starts: int, action_noise: Optional[ActionNoise] = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Act while collecting data: warm-up, then the actor proposal with exploration noise on the RL action."""
        warming_up = self.num_timesteps < learning_starts or self._il_warmup_pending()
        if warming_up and (self.il_policy is None or self.warmup == "random"):
            return super()._sample_action(learning_starts, None, n_envs)  # uniform random actions
        obs_tensor, _ = self.policy.obs_to_tensor(self._last_obs)  # type: ignore[arg-type]
        il_action = None if self._il is None else self._il.for_acting(self._last_obs)  # computed as the obs came
        with th.no_grad():
            if warming_up:
                scaled_action = self.il_policy(obs_tensor) if il_action is None else il_action  # type: ignore[misc]
                use_il = th.ones(len(scaled_action), dtype=th.bool)
            else:
                noise = None
                if action_noise is not None:
                    noise = th.as_tensor(np.asarray(action_noise()), dtype=th.float32, device=self.device).reshape(n_envs, -1)
                scaled_action, use_il = self.policy.propose(obs_tensor, noise, self.proposal_beta, il_action=il_action)
        self._il_choices.extend(use_il.cpu().numpy().tolist())
        buffer_action = scaled_action.cpu().numpy()
        return self.policy.unscale_action(buffer_action), buffer_action

    def predict(
        self,
        observation: Union[np.ndarray, dict[str, np.ndarray]],
        state: Optional[tuple[np.ndarray, ...]] = None,
        episode_start: Optional[np.ndarray] = None,
        deterministic: bool = False,
        rl_only: bool = False,
    ) -> tuple[np.ndarray, Optional[tuple[np.ndarray, ...]]]:
        """
        The hybrid action (actor proposal without exploration noise); ``rl_only=True`` acts with the RL actor alone.

        ``deterministic=True`` takes the greedy choice (or, with ``proposal_confidence > 0``, the confident one); otherwise
        the choice configured by ``proposal_beta``.
        """
        if self.il_policy is not None and episode_start is not None:  # a stateful IL policy: its episodes start here
            self.il_policy.start_episodes(np.flatnonzero(episode_start), context="predict")
        hybrid = None if self._il is None or rl_only else self._il.predict(self.policy, observation, deterministic)
        if hybrid is not None:  # full observations of an env whose IL policy reads its own keys
            return hybrid, state
        act_with_il = self.policy.act_with_il
        self.policy.act_with_il = act_with_il and not rl_only
        try:
            return self.policy.predict(observation, state, episode_start, deterministic)
        finally:
            self.policy.act_with_il = act_with_il
