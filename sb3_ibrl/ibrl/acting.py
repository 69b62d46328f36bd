"""
How IBRL acts: the IL warm-up, then the actor proposal while collecting data (with exploration noise on the RL
action), and the hybrid action of ``predict``.

The deployed hybrid (``predict(..., deterministic=True)``) is confident first, greedy once proven: with
``proposal_confidence = k > 0`` it keeps the IL action unless the E critics agree that the RL action is better
(:func:`~sb3_ibrl.ibrl.proposals.confident_proposal`; the default, k = inf, keeps it everywhere: the IL policy
alone), until the hybrid has matched its IL policy in its own training episodes (the mean return of its last
``match_il_episodes`` episodes at least that of the IL warm-up episodes, by ``match_il_confidence`` standard errors);
then it takes the paper's greedy choice, and goes back to the confident one if its returns fall below the IL's again
(``collect_confidently``: the training episodes are collected by the same rule, with exploration noise). A new
policy is deployed once its measured performance reaches the baseline's, as in high-confidence policy improvement
(Thomas et al., 2015); the training episodes, collected with exploration noise, understate the deployed hybrid.
"""

from collections import deque
from typing import Any, Optional, Union

import numpy as np
import torch as th
from stable_baselines3.common.noise import ActionNoise


def matched(stats: dict[str, float], confidence: float) -> bool:
    """
    The match test: the hybrid's mean return minus the IL policy's is at least ``confidence`` standard errors of that
    difference (Welch's, from the two samples' standard deviations). ``confidence=0`` compares the means alone; with
    ``confidence > 0`` a lucky window of training episodes is not enough.

    :param stats: :meth:`ActingHooks.match_statistics`
    :param confidence: the number of standard errors (>= 0)
    :return: whether the hybrid has matched its IL policy (``False`` before any IL or hybrid episode)
    """
    difference = stats["hybrid_return_mean"] - stats["il_return_mean"]  # nan (never matched) without episodes
    standard_error = np.sqrt(
        stats["hybrid_return_sd"] ** 2 / max(stats["hybrid_episodes"], 1.0)
        + stats["il_return_sd"] ** 2 / max(stats["il_episodes"], 1.0)
    )
    return bool(difference >= confidence * standard_error)


class ActingHooks:
    """
    IBRL's acting, placed before SB3's algorithm class (``class IBRL(..., ActingHooks, ..., TD3)``).

    Before learning, the IL policy acts alone (``warmup="il"``) for ``learning_starts`` env steps and until
    ``il_warmup_episodes`` episodes have ended, whichever is later; no update is made until then. The episodes that
    began in the warm-up are played to their end by the IL policy. Then the actor proposal picks, at every step,
    between the noisy RL action and the IL action. The returns of the episodes are kept, to know when the hybrid has
    matched the IL policy.
    """

    policy: Any
    il_policy: Any
    _il: Any
    _il_choices: deque
    _last_obs: Any
    _vec_normalize_env: Any
    _episode_num: int
    num_timesteps: int
    device: th.device
    warmup: str
    learning_starts: int
    proposal_beta: Optional[float]
    proposal_confidence: float
    collect_confidently: bool
    il_warmup_episodes: int
    match_il_episodes: int
    match_il_confidence: float = 0.0  # models saved before the option compare the means alone
    _il_returns: deque  # returns of the IL warm-up episodes
    _hybrid_returns: deque  # returns of the last match_il_episodes episodes after the warm-up
    _running: Optional[np.ndarray]  # per env: return so far, and 1 if the episode started in the warm-up

    def _setup_returns(self) -> None:
        """The episode returns: kept when a saved model is loaded, created for a new one."""
        if getattr(self, "_il_returns", None) is None:
            self._il_returns = deque(maxlen=1000)
            self._hybrid_returns = deque(maxlen=max(1, self.match_il_episodes))
        self._running = None
        self.policy.proposal_confidence = self.deployed_confidence

    def match_statistics(self) -> dict[str, float]:
        """
        The match test's inputs: mean, sample standard deviation and count of the IL warm-up episodes' returns
        (``il_return_*``, ``il_episodes``) and of the last ``match_il_episodes`` training episodes' (``hybrid_*``).
        """
        stats = {}
        for name, returns in (("il", self._il_returns), ("hybrid", self._hybrid_returns)):
            values = np.asarray(returns, dtype=np.float64)
            stats[f"{name}_return_mean"] = float(values.mean()) if len(values) else float("nan")
            stats[f"{name}_return_sd"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            stats[f"{name}_episodes"] = float(len(values))
        return stats

    @property
    def il_matched(self) -> bool:
        """
        Whether the last ``match_il_episodes`` training episodes returned on average at least the IL warm-up's, by
        ``match_il_confidence`` standard errors of the difference of the two means (0: the means alone).
        """
        n_episodes = self.match_il_episodes
        if n_episodes == 0 or not self._il_returns or len(self._hybrid_returns) < n_episodes:
            return False
        return matched(self.match_statistics(), self.match_il_confidence)

    @property
    def deployed_confidence(self) -> float:
        """The ``proposal_confidence`` in effect when deployed: 0 (greedy) once the hybrid has matched the IL policy."""
        return 0.0 if self.il_matched else self.proposal_confidence

    def _record_returns(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        """Add the step's rewards to each env's episode return; file the returns of the episodes that ended."""
        il_warmup = self.il_policy is not None and self.warmup == "il"
        # The step just taken came from the IL warm-up (SB3 counts the step before storing it, the episodes after)
        step_in_warmup = il_warmup and (self.num_timesteps - len(rewards) < self.learning_starts or self._il_warmup_pending())
        if self._running is None or len(self._running) != len(rewards):  # per env: return so far, started in warm-up
            self._running = np.zeros((len(rewards), 2))
            self._running[:, 1] = step_in_warmup
        self._running[:, 0] += rewards
        episodes = self._episode_num + int(dones.sum())
        next_in_warmup = il_warmup and (self.num_timesteps < self.learning_starts or episodes < self.il_warmup_episodes)
        for env in np.flatnonzero(dones):
            episode_return, started_in_warmup = self._running[env]
            if started_in_warmup:  # the IL policy played it to its end (_finishing_il_episodes)
                self._il_returns.append(float(episode_return))
            else:
                self._hybrid_returns.append(float(episode_return))
            self._running[env] = (0.0, next_in_warmup)
        if dones.any():
            self.policy.proposal_confidence = self.deployed_confidence

    def _store_transition(self, replay_buffer: Any, buffer_action: np.ndarray, new_obs: Any, reward: np.ndarray,
                          dones: np.ndarray, infos: list[dict[str, Any]]) -> None:  # fmt: skip
        env_reward = reward if self._vec_normalize_env is None else self._vec_normalize_env.get_original_reward()
        self._record_returns(np.asarray(env_reward, dtype=np.float64).reshape(-1), np.asarray(dones).reshape(-1))
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)  # type: ignore[misc]

    def _setup_learn(self, total_timesteps: int, callback: Any = None, reset_num_timesteps: bool = True,
                     tb_log_name: str = "run", progress_bar: bool = False) -> Any:  # fmt: skip
        if reset_num_timesteps or self._last_obs is None:  # SB3 resets the envs: every episode starts anew
            self._running = None
        return super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)  # type: ignore[misc]

    @property
    def il_action_fraction(self) -> float:
        """Fraction of the last (up to 1000) actions executed while training that came from the IL policy."""
        return float(np.mean(self._il_choices)) if self._il_choices else float("nan")

    def _finishing_il_episodes(self, n_envs: int) -> np.ndarray:
        """
        Per env, whether its episode began in the IL warm-up: the IL policy plays it to its end, after the warm-up too,
        so that the IL returns (the baseline of ``il_matched``) count whole episodes of the IL policy, not only those
        short enough to end within the warm-up (with several envs, a warm-up of ``learning_starts`` steps may end
        none of the long, failed ones, and the baseline would count only successes).
        """
        if self._running is None or len(self._running) != n_envs:
            return np.zeros(n_envs, dtype=bool)
        return self._running[:, 1] == 1.0

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
                finishing = self._finishing_il_episodes(n_envs)  # (n_envs,) episodes the IL warm-up began
                if finishing.any() and il_action is None:  # computed once: propose() and these rows share it
                    il_action = self.il_policy(obs_tensor)  # type: ignore[misc]
                scaled_action, use_il = self.policy.propose(
                    obs_tensor, noise, self.proposal_beta, il_action=il_action, confident=self.collect_confidently
                )
                if finishing.any():
                    keep_il = th.as_tensor(finishing, device=scaled_action.device)  # (n_envs,)
                    scaled_action, use_il = th.where(keep_il[:, None], il_action, scaled_action), use_il | keep_il
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
        if rl_only and self._il is not None:  # the RL actor reads its own keys of full observations
            observation = self._il.rl_observation(observation)
        act_with_il = self.policy.act_with_il
        self.policy.act_with_il = act_with_il and not rl_only
        try:
            return self.policy.predict(observation, state, episode_start, deterministic)
        finally:
            self.policy.act_with_il = act_with_il
