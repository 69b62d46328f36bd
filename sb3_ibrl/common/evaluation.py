"""
Rollout helpers: record demonstration episodes from any policy (e.g. a scripted expert) and measure
a policy's success rate. Generic: they work with any gymnasium env that reports
``info["is_success"]``.
"""

from typing import Any, Callable, NamedTuple, Optional

import gymnasium as gym
import numpy as np

from sb3_ibrl.data.episodes import Episode, stack_obs

ActFn = Callable[[np.ndarray], np.ndarray]


def _reset_act_fn(act_fn: ActFn) -> None:
    # Stateful policies (e.g. a demonstrator with correlated noise) forget their state between episodes
    reset = getattr(act_fn, "reset", None)
    if callable(reset):
        reset()


def _act_fn_input(obs: Any, info: dict[str, Any], act_fn_input: str) -> Any:
    if act_fn_input == "obs":
        return obs
    if act_fn_input not in info:
        raise KeyError(f"act_fn_input={act_fn_input!r}, but the env's info has no such entry (keys: {sorted(info)})")
    return info[act_fn_input]


class EpisodeOutcome(NamedTuple):
    """
    One evaluation episode.

    :param success: whether it ended with ``info["is_success"]`` true
    :param length: its number of steps
    :param start_info: the ``info`` of its ``env.reset`` (e.g. robosuite's ``"state"``: where the objects started)
    """

    success: bool
    length: int
    start_info: dict[str, Any]


def _run_episode(
    env: gym.Env, act_fn: ActFn, seed: Optional[int], act_fn_input: str = "obs"
) -> tuple[Episode, bool, dict[str, Any]]:
    """Play one episode; return it, whether it ended with ``info["is_success"]`` true, and the reset's ``info``."""
    _reset_act_fn(act_fn)
    obs, info = env.reset(seed=seed)
    start_info = dict(info)
    observations, actions, rewards = [obs], [], []
    terminated = truncated = False
    while not (terminated or truncated):
        action = np.asarray(act_fn(_act_fn_input(obs, info, act_fn_input)))
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        actions.append(np.asarray(action, dtype=np.float32).reshape(-1))
        rewards.append(float(reward))
    episode = Episode(obs=stack_obs(observations), acts=np.stack(actions), rews=np.asarray(rewards), terminal=bool(terminated))
    return episode, bool(info.get("is_success", False)), start_info


def record_episodes(
    env: gym.Env,
    act_fn: ActFn,
    n_episodes: int,
    seed: int = 0,
    successful_only: bool = True,
    max_attempts: Optional[int] = None,
    act_fn_input: str = "obs",
) -> list[Episode]:
    """
    Record episodes of a policy (e.g. a scripted demonstrator) as :class:`~sb3_ibrl.data.episodes.Episode`.

    The env is seeded once, at the first reset, so the whole recording is reproducible.

    :param env: the environment (with its time limit, so that every episode ends)
    :param act_fn: maps one observation to one action (in the env's action units); if it has a
        ``reset()`` method, it is called before each episode
    :param n_episodes: number of episodes to return
    :param seed: seed of the first ``env.reset``
    :param successful_only: keep only the episodes that end with ``info["is_success"]`` true
    :param max_attempts: most episodes to play (default ``10 * n_episodes``)
    :param act_fn_input: what ``act_fn`` reads: ``"obs"``, or an ``info`` entry such as ``"state"`` (scripted
        experts that need the simulator state drive pixel envs that way)
    :return: the episodes
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {n_episodes}")
    max_attempts = 10 * n_episodes if max_attempts is None else max_attempts
    episodes: list[Episode] = []
    attempts = 0
    while len(episodes) < n_episodes and attempts < max_attempts:
        episode, success, _ = _run_episode(env, act_fn, seed if attempts == 0 else None, act_fn_input)
        attempts += 1
        if success or not successful_only:
            episodes.append(episode)
    if len(episodes) < n_episodes:
        raise RuntimeError(
            f"Collected only {len(episodes)} successful episode(s) out of the {n_episodes} requested in "
            f"{attempts} attempts: the policy rarely succeeds (check it, or raise max_attempts)"
        )
    return episodes


def evaluate_episodes(env: gym.Env, act_fn: ActFn, n_episodes: int, seed: int = 0) -> list[EpisodeOutcome]:
    """
    Play ``n_episodes`` evaluation episodes and report each (the episodes of :func:`evaluate_policy_success`).

    :param env: the environment (with its time limit)
    :param act_fn: maps one observation to one action (in the env's action units)
    :param n_episodes: number of episodes
    :param seed: seed of the first ``env.reset``
    :return: each episode's success, length and reset ``info``
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {n_episodes}")
    outcomes = []
    for i in range(n_episodes):
        episode, success, start_info = _run_episode(env, act_fn, seed if i == 0 else None)
        outcomes.append(EpisodeOutcome(success, len(episode), start_info))
    return outcomes


def evaluate_policy_success(env: gym.Env, act_fn: ActFn, n_episodes: int, seed: int = 0) -> tuple[float, float]:
    """
    Measure a policy's success rate (``info["is_success"]`` at the end of the episode).

    :param env: the environment (with its time limit)
    :param act_fn: maps one observation to one action (in the env's action units)
    :param n_episodes: number of episodes
    :param seed: seed of the first ``env.reset``
    :return: the success rate and the mean episode length (over all episodes)
    """
    return success_and_length(evaluate_episodes(env, act_fn, n_episodes, seed))


def success_and_length(outcomes: list[EpisodeOutcome]) -> tuple[float, float]:
    """
    :param outcomes: episodes of :func:`evaluate_episodes`
    :return: their success rate and mean length
    """
    return float(np.mean([o.success for o in outcomes])), float(np.mean([o.length for o in outcomes]))
