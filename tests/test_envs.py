import importlib
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import sb3_ibrl.envs
from sb3_ibrl.common.evaluation import evaluate_policy_success, record_episodes
from sb3_ibrl.envs import POINT_GOAL_ID, POINT_GOAL_MAX_EPISODE_STEPS, PointGoalEnv, PointGoalExpert


def zero_policy(obs: np.ndarray) -> np.ndarray:
    return np.zeros(2, dtype=np.float32)


@pytest.mark.parametrize("kwargs", [{}, {"random_goal": True}, {"wall": None}])
def test_env_checkers(kwargs):
    env = gym.make(POINT_GOAL_ID, **kwargs)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env, warn=True)
    assert env.observation_space.shape == ((6,) if kwargs.get("random_goal") else (4,))


def test_registration_is_idempotent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(sb3_ibrl.envs)
    spec = gym.spec(POINT_GOAL_ID)
    assert spec.max_episode_steps == POINT_GOAL_MAX_EPISODE_STEPS
    assert spec.entry_point == "sb3_ibrl.envs.point_goal:PointGoalEnv"


def test_sparse_reward_and_success():
    env = gym.make(POINT_GOAL_ID)
    expert = PointGoalExpert(seed=0)
    for episode in range(5):
        obs, info = env.reset(seed=episode)
        assert info["is_success"] is False
        rewards, terminated, truncated = [], False, False
        while not (terminated or truncated):
            obs, reward, terminated, truncated, info = env.step(expert(obs))
            assert isinstance(info["is_success"], bool)
            assert info["is_success"] == terminated
            rewards.append(reward)
        assert terminated
        assert set(rewards) <= {0.0, 1.0}
        assert rewards[-1] == 1.0 and sum(rewards) == 1.0


def test_time_limit_is_a_truncation():
    env = gym.make(POINT_GOAL_ID)
    env.reset(seed=0)
    for step in range(POINT_GOAL_MAX_EPISODE_STEPS):
        _, reward, terminated, truncated, info = env.step(zero_policy(None))
        assert reward == 0.0 and not terminated and not info["is_success"]
        assert truncated == (step == POINT_GOAL_MAX_EPISODE_STEPS - 1)


def test_seeding_is_deterministic():
    actions = np.random.default_rng(0).uniform(-1, 1, size=(30, 2)).astype(np.float32)
    trajectories = []
    for _ in range(2):
        env = gym.make(POINT_GOAL_ID, random_goal=True)
        obs, _ = env.reset(seed=123)
        observations = [obs] + [env.step(action)[0] for action in actions]
        trajectories.append(np.stack(observations))
    np.testing.assert_array_equal(trajectories[0], trajectories[1])
    other_start = gym.make(POINT_GOAL_ID).reset(seed=124)[0]
    assert not np.array_equal(other_start, trajectories[0][0][:4])


def test_walls_stop_the_point():
    env = PointGoalEnv()
    env.reset(seed=0)
    x_min = env.wall[0]
    env.pos = np.array([x_min - 0.3, 0.0])
    for _ in range(50):  # full force into the inner wall: the point never gets through
        obs, *_ = env.step(np.array([1.0, 0.0], dtype=np.float32))
        assert obs[0] <= np.float32(x_min)  # float32 observations
    assert obs[0] == pytest.approx(x_min) and obs[2] == 0.0
    for _ in range(50):  # and into the outer corner
        obs, *_ = env.step(np.array([-1.0, -1.0], dtype=np.float32))
        assert np.all(np.abs(obs[:2]) <= 1.0)
    np.testing.assert_allclose(obs, [-1.0, -1.0, 0.0, 0.0])


def test_render():
    env = PointGoalEnv(render_mode="rgb_array")
    env.reset(seed=0)
    image = env.render()
    assert image.shape == (84, 84, 3) and image.dtype == np.uint8
    assert PointGoalEnv().render() is None


def test_expert_and_random_success_rates():
    env = gym.make(POINT_GOAL_ID)
    expert_rate, expert_length = evaluate_policy_success(env, PointGoalExpert(seed=0), 50, seed=0)
    assert expert_rate >= 0.9
    assert 30 < expert_length < 80  # imperfect: slower than necessary, but within the time limit
    rng = np.random.default_rng(0)
    random_rate, _ = evaluate_policy_success(env, lambda _: rng.uniform(-1, 1, 2).astype(np.float32), 50, seed=0)
    assert random_rate <= 0.02


def test_expert_batch():
    env = gym.make(POINT_GOAL_ID, random_goal=True)
    obs = np.stack([env.reset(seed=seed)[0] for seed in range(7)])
    actions = PointGoalExpert(seed=0, noise_std=0.0)(obs)
    assert actions.shape == (7, 2) and actions.dtype == np.float32
    assert np.all(np.abs(actions) <= 1.0)
    single = PointGoalExpert(seed=0, noise_std=0.0)(obs[3])
    np.testing.assert_allclose(single, actions[3], rtol=1e-6, atol=1e-6)


def test_record_episodes():
    env = gym.make(POINT_GOAL_ID)
    episodes = record_episodes(env, PointGoalExpert(seed=0), 3, seed=0)
    assert len(episodes) == 3
    for episode in episodes:
        n_steps = len(episode)
        assert episode.obs.shape == (n_steps + 1, 4)
        assert episode.acts.shape == (n_steps, 2)
        assert episode.rews.shape == (n_steps,)
        assert episode.terminal and episode.rews[-1] == 1.0 and episode.rews[:-1].sum() == 0.0
    again = record_episodes(gym.make(POINT_GOAL_ID), PointGoalExpert(seed=0), 3, seed=0)
    for first, second in zip(episodes, again):
        np.testing.assert_array_equal(first.obs, second.obs)


def test_record_episodes_failures():
    env = gym.make(POINT_GOAL_ID)
    with pytest.raises(RuntimeError, match="successful"):
        record_episodes(env, zero_policy, 1, max_attempts=2)
    episodes = record_episodes(env, zero_policy, 2, successful_only=False)
    assert all(not ep.terminal and len(ep) == POINT_GOAL_MAX_EPISODE_STEPS for ep in episodes)
    with pytest.raises(ValueError):
        record_episodes(env, zero_policy, 0)
