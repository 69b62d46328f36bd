"""StopAtDeadline: learn stops in time and keeps the step it stopped at (buffer, IL cache, returns, last observation)."""

import itertools

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import TD3
from stable_baselines3.common.env_util import make_vec_env

from sb3_ibrl import IBRL
from sb3_ibrl.benchmark.deadline import StopAtDeadline
from sb3_ibrl.common.evaluation import record_episodes
from sb3_ibrl.envs import POINT_GOAL_IBRL_SETTINGS, PointGoalExpert
from tests.test_il_cache import MlpIL

N_ENVS = 2


def step_clock() -> "itertools.count[int]":
    """A clock that ticks once per reading: the deadline passes at a known env step."""
    return itertools.count()


def make(algo: str):
    env = make_vec_env("PointGoal-v0", n_envs=N_ENVS, seed=3)
    if algo == "TD3":
        return TD3("MlpPolicy", env, learning_starts=60, batch_size=32, seed=0)
    demos = record_episodes(gym.make("PointGoal-v0"), PointGoalExpert(seed=1), n_episodes=2, seed=1)
    il = MlpIL(env.observation_space.shape[0])
    settings = dict(POINT_GOAL_IBRL_SETTINGS, learning_starts=60, il_warmup_episodes=2, match_il_episodes=2, seed=0)
    return IBRL("MlpPolicy", env, il_policy=il, demonstrations=demos, **settings)


def buffer_arrays(model) -> dict[str, np.ndarray]:
    buffer, stored = model.replay_buffer, model.replay_buffer.pos
    return {
        name: value[:stored] for name, value in vars(buffer).items() if isinstance(value, np.ndarray) and len(value) > stored
    }


@pytest.mark.parametrize("algo", ["TD3", "IBRL"])
@pytest.mark.parametrize("stop_at", [100, 130])  # the step that ends the first episodes (100 steps); one with updates
def test_a_stop_keeps_the_step_as_a_run_of_that_length_would(algo, stop_at):
    ticks = step_clock()
    stop = StopAtDeadline(deadline=stop_at - 2, clock=lambda: next(ticks))  # readings 0, 1, ...: due at on_step number stop_at
    stopped = make(algo).learn(10_000, callback=stop)
    assert stop.stopped and stop.n_calls == stop_at
    reference = make(algo).learn(stop_at * N_ENVS)  # the same seeds, learning exactly that many env steps
    assert stopped.num_timesteps == reference.num_timesteps == stop_at * N_ENVS
    assert stopped.replay_buffer.pos == reference.replay_buffer.pos
    arrays, expected = buffer_arrays(stopped), buffer_arrays(reference)
    assert arrays.keys() == expected.keys() and {"observations", "actions", "rewards", "dones"} <= set(arrays)
    for name in arrays:
        np.testing.assert_array_equal(arrays[name], expected[name], err_msg=name)
    np.testing.assert_array_equal(stopped._last_obs, reference._last_obs)
    assert stopped._episode_num == reference._episode_num == 2
    if algo == "IBRL":
        assert (stopped._n_updates > 0) == (stop_at > 100)  # no update during the IL warm-up (its 2 episodes)
        np.testing.assert_equal(stopped.match_statistics(), reference.match_statistics())
        assert stopped.match_statistics()["il_episodes"] == 2  # the IL warm-up's returns, recorded at the stop


def test_a_deadline_far_away_does_not_stop_and_the_flag_resets():
    ticks = step_clock()
    stop = StopAtDeadline(deadline=9, clock=lambda: next(ticks))
    model = make("TD3")
    model.learn(40, callback=stop)
    assert stop.stopped and model.num_timesteps == 11 * N_ENVS  # due at the 11th reading
    stop.deadline = 10**9
    model.learn(40, callback=stop, reset_num_timesteps=False)
    assert not stop.stopped and model.num_timesteps >= 11 * N_ENVS + 40
    stop.reserve = 10**9  # what the caller still needs no longer fits
    assert stop.due


def test_an_algorithm_without_sb3s_off_policy_collection_fails_clearly():
    from stable_baselines3 import PPO

    stop = StopAtDeadline(deadline=-1.0)  # due at once
    with pytest.raises(RuntimeError, match=r"needs collect_rollouts' variables \['buffer_actions', 'replay_buffer'\]"):
        PPO("MlpPolicy", "Pendulum-v1", n_steps=64, batch_size=32).learn(64, callback=stop)
