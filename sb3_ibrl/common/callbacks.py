"""Callbacks: the success-rate curve of a policy during training (paper Fig. 3 and 5)."""

import time
from typing import Optional

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from sb3_ibrl.common.evaluation import evaluate_policy_success


class SuccessCurveCallback(BaseCallback):
    """
    Every ``eval_freq`` env steps, evaluate the model's deterministic policy (for IBRL: the hybrid) on
    ``n_eval_episodes`` episodes of ``eval_env``; log ``eval/success_rate`` and ``eval/mean_ep_length`` and
    keep the curve in ``self.curve`` as ``(env steps, success rate, mean episode length)`` rows.

    :param eval_env: the evaluation env (not vectorized, with its time limit)
    :param eval_freq: evaluate every this many env steps
    :param n_eval_episodes: episodes per evaluation
    :param seed: seed of the first evaluation episode (every evaluation uses the same episodes)
    :param print_curve: print one line per evaluation
    :param verbose: verbosity level
    """

    def __init__(
        self,
        eval_env: gym.Env,
        eval_freq: int,
        n_eval_episodes: int = 20,
        seed: int = 10_000,
        print_curve: bool = False,
        verbose: int = 0,
    ):
        super().__init__(verbose)
        if eval_freq <= 0 or n_eval_episodes <= 0:
            raise ValueError(f"eval_freq and n_eval_episodes must be positive, got {eval_freq} and {n_eval_episodes}")
        self.eval_env, self.eval_freq, self.n_eval_episodes, self.seed = eval_env, eval_freq, n_eval_episodes, seed
        self.print_curve = print_curve
        self.curve: list[tuple[int, float, float]] = []
        self._next_eval = eval_freq
        self._start: Optional[float] = None

    def _on_training_start(self) -> None:
        self._start = time.perf_counter()
        self._next_eval = (self.num_timesteps // self.eval_freq + 1) * self.eval_freq

    def evaluate(self) -> tuple[float, float]:
        """Evaluate now; return (success rate, mean episode length)."""

        def act(obs: np.ndarray) -> np.ndarray:
            return self.model.predict(obs, deterministic=True)[0]

        return evaluate_policy_success(self.eval_env, act, self.n_eval_episodes, seed=self.seed)

    def _on_step(self) -> bool:
        if self.num_timesteps < self._next_eval:
            return True
        self._next_eval += self.eval_freq
        success, length = self.evaluate()
        self.curve.append((self.num_timesteps, success, length))
        self.logger.record("eval/success_rate", success)
        self.logger.record("eval/mean_ep_length", length)
        if self.print_curve:
            il_fraction = getattr(self.model, "il_action_fraction", float("nan"))
            elapsed = time.perf_counter() - (self._start or time.perf_counter())
            print(
                f"{self.num_timesteps:>10} {success:>8.0%} {length:>10.1f} {il_fraction:>11.0%} {elapsed:>7.0f}s",
                flush=True,
            )
        return True

    @staticmethod
    def header() -> str:
        """Column titles of the printed curve."""
        return f"{'env steps':>10} {'success':>8} {'ep length':>10} {'IL actions':>11} {'elapsed':>8}"
