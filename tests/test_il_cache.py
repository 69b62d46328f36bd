"""Cached IL actions (computed once per stored transition) and IL policies with memory (action chunking)."""

import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from torch import nn

import sb3_ibrl  # noqa: F401  (registers PointGoal-v0)
from sb3_ibrl import IBRL
from sb3_ibrl.common.evaluation import record_episodes
from sb3_ibrl.data.il_cache import ILReplayBufferSamples
from sb3_ibrl.envs import POINT_GOAL_IBRL_SETTINGS, PointGoalExpert
from sb3_ibrl.il.stateful import ActionChunkingPolicy, StatefulILPolicy, chunk_action_space, chunk_episodes

SETTINGS = dict(POINT_GOAL_IBRL_SETTINGS, learning_starts=60, seed=0)


class MlpIL(nn.Module):
    """
    A deterministic IL network (random weights), counting the rows it is called on. It computes in float64, so that its
    float32 actions do not depend on the batch size (a float32 network may round differently on a batch of 1 than of
    256, and 240 updates amplify such a difference): cached and uncached runs can then be compared exactly.
    """

    def __init__(self, obs_dim: int, action_dim: int = 2):
        super().__init__()
        th.manual_seed(123)
        self.net = nn.Sequential(nn.Linear(obs_dim, 32), nn.Tanh(), nn.Linear(32, action_dim), nn.Tanh()).double()
        self.batch_sizes: list[int] = []

    def forward(self, obs: th.Tensor) -> th.Tensor:
        self.batch_sizes.append(len(obs))
        return self.net(obs.double()).float()


@pytest.fixture(scope="module")
def demos():
    return record_episodes(gym.make("PointGoal-v0"), PointGoalExpert(seed=1), n_episodes=2, seed=1)


def parameters(model: IBRL) -> th.Tensor:
    return th.cat([p.detach().flatten() for p in model.policy.parameters()])


@pytest.mark.parametrize("n_envs", [1, 2])
def test_cached_and_uncached_training_give_the_same_parameters(demos, n_envs):
    models = {}
    for cache in (True, False):
        il = MlpIL(gym.make("PointGoal-v0").observation_space.shape[0])
        env = make_vec_env("PointGoal-v0", n_envs=n_envs, seed=3)
        models[cache] = IBRL("MlpPolicy", env, il_policy=il, demonstrations=demos, cache_il_actions=cache, **SETTINGS)
        before_learning = len(il.batch_sizes)
        models[cache].learn(300)
        learning = il.batch_sizes[before_learning:]
        if cache:  # the IL policy runs on the observations of the envs (and on final ones), never on a training batch
            assert learning and max(learning) <= n_envs
        else:
            assert SETTINGS["batch_size"] in learning
    th.testing.assert_close(parameters(models[True]), parameters(models[False]), rtol=1e-4, atol=1e-5)
    assert models[True]._n_updates == models[False]._n_updates > 0


def test_cached_actions_are_the_il_actions_of_the_next_observations(demos):
    il = MlpIL(gym.make("PointGoal-v0").observation_space.shape[0])
    model = IBRL("MlpPolicy", make_vec_env("PointGoal-v0", n_envs=2, seed=0), il_policy=il, demonstrations=demos, **SETTINGS)
    model.learn(250)  # several episode ends (terminal observations) in both envs
    for store in (model.replay_buffer, model.replay_buffer.demos):
        rows = np.arange(store.size())
        for env_idx in range(store.n_envs):
            envs = np.full_like(rows, env_idx)
            next_obs = th.as_tensor(store.next_observations_of(rows, envs))
            assert store.il_cache.cached[rows, env_idx].all()
            expected = model.il_policy(next_obs).numpy()
            np.testing.assert_allclose(store.il_cache.actions[rows, env_idx], expected, atol=1e-5)
    batch = model.replay_buffer.sample(64)
    assert isinstance(batch, ILReplayBufferSamples) and len(batch.next_il_missing) == 0


def test_transitions_added_by_hand_get_their_il_actions_computed(demos):
    il = MlpIL(gym.make("PointGoal-v0").observation_space.shape[0])
    model = IBRL("MlpPolicy", "PointGoal-v0", il_policy=il, demonstrations=demos, **SETTINGS)
    model.learn(80)
    rng = np.random.default_rng(0)
    for _ in range(50):  # SB3's pattern: transitions added without an IL action
        obs, next_obs = rng.normal(size=(2, 1, 4)).astype(np.float32)
        model.replay_buffer.add(obs, next_obs, rng.uniform(-1, 1, (1, 2)), np.zeros(1), np.array([False]), [{}])
    batch = model.replay_buffer.sample(256)
    assert len(batch.next_il_missing) > 0
    actions = model._il.for_bootstrap(batch)
    np.testing.assert_allclose(actions.numpy(), model.il_policy(batch.next_observations).numpy(), atol=1e-5)


class RecordingChunks(nn.Module):
    """A chunk policy whose chunk for observation x is [x[0] + k for k in range(chunk)] (one action dim)."""

    def forward(self, obs: th.Tensor) -> th.Tensor:
        return obs[:, :1] + th.arange(3, dtype=th.float32)[None]  # (batch, chunk=3)


def test_temporal_ensembling_by_hand():
    policy = ActionChunkingPolicy(RecordingChunks(), chunk_size=3, action_dim=1, decay=0.5)
    w = np.exp(-0.5 * np.arange(3))  # oldest prediction first
    outputs = [policy.step(th.tensor([[x]]), [0], "train").item() for x in (10.0, 20.0, 30.0, 40.0)]
    # step 0: chunk of 10 -> 10; step 1: predictions 11 (oldest), 20; step 2: 12, 21, 30; step 3: 22, 31, 40
    expected = [10.0, (w[0] * 11 + w[1] * 20) / w[:2].sum(), (w @ [12, 21, 30]) / w.sum(), (w @ [22, 31, 40]) / w.sum()]
    np.testing.assert_allclose(outputs, expected, rtol=1e-6)
    # memory per env and per context; an episode start forgets it
    assert policy.step(th.tensor([[5.0]]), [1], "train").item() == 5.0
    assert policy.step(th.tensor([[7.0]]), [0], "predict").item() == 7.0
    policy.start_episodes([0], "train")
    assert policy.step(th.tensor([[1.0]]), [0], "train").item() == 1.0


class CountingStateful(StatefulILPolicy):
    """A stateful IL policy that records every call: (context, env, step of its episode) and episode starts."""

    def __init__(self):
        super().__init__()
        self.steps: dict[tuple[str, int], int] = {}
        self.calls: list[tuple[str, int, int]] = []
        self.starts: list[tuple[str, int]] = []

    def start_episodes(self, env_indices, context="train"):
        for env_idx in env_indices:
            self.steps[(context, env_idx)] = 0
            self.starts.append((context, env_idx))

    def step(self, observation, env_indices, context="train"):
        actions = []
        for env_idx in env_indices:
            t = self.steps.get((context, env_idx), 0)
            self.calls.append((context, env_idx, t))
            self.steps[(context, env_idx)] = t + 1
            actions.append([np.tanh(0.1 * t), -0.5])  # depends on the step of the episode: memory matters
        return th.tensor(actions, dtype=th.float32)


def test_a_stateful_il_policy_runs_once_per_env_step_and_its_proposals_are_cached(demos):
    il = CountingStateful()
    env = make_vec_env("PointGoal-v0", n_envs=2, seed=0)
    model = IBRL("MlpPolicy", env, il_policy=il, demonstrations=demos, **SETTINGS)
    model.learn(200)
    train_calls = [call for call in il.calls if call[0] == "train"]
    # once per observation of every episode (steps 0 .. T, T: the final one) in both envs: the 2 first observations,
    # one per env step (200), and the final observation of every episode that ended
    n_ended = int(model.replay_buffer.dones[: model.replay_buffer.size()].sum())
    assert len(train_calls) == 2 + 200 + n_ended
    for env_idx in range(2):
        steps = [t for context, e, t in train_calls if e == env_idx]
        assert steps[0] == 0 and all(b == a + 1 or b == 0 for a, b in itertools.pairwise(steps))  # restarts at episode starts
    # the cached action of each transition is the one the policy proposed for its next observation (step t + 1)
    buffer = model.replay_buffer
    for env_idx in range(2):
        t = 0
        for row in range(buffer.size()):
            expected = np.tanh(0.1 * (t + 1))
            assert buffer.il_cache.actions[row, env_idx, 0] == pytest.approx(np.clip(expected, -1, 1), abs=1e-6)
            t = 0 if buffer.dones[row, env_idx] else t + 1
    assert ("demos", 0) in il.starts  # the demos were stepped through from their start
    with pytest.raises(ValueError, match="stateful IL policy"):
        IBRL("MlpPolicy", "PointGoal-v0", il_policy=CountingStateful(), cache_il_actions=False, **SETTINGS)


def test_predict_with_a_stateful_il_policy_uses_its_own_memory(demos):
    il = CountingStateful()
    model = IBRL("MlpPolicy", "PointGoal-v0", il_policy=il, demonstrations=demos, **SETTINGS).learn(70)
    obs = np.stack([gym.make("PointGoal-v0").reset(seed=s)[0] for s in range(3)])
    model.predict(obs, episode_start=np.array([True, True, True]), deterministic=True)
    model.predict(obs, episode_start=np.array([False, True, False]), deterministic=True)
    assert il.steps[("predict", 0)] == 2 and il.steps[("predict", 1)] == 1 and il.steps[("predict", 2)] == 2
    assert il.steps[("train", 0)] > 0  # training memory untouched by predict


def test_action_chunking_on_a_bc_policy_learns_with_ibrl(demos):
    from sb3_ibrl.il.training import train_bc

    env = gym.make("PointGoal-v0")
    chunked = chunk_episodes(demos, chunk_size=4)
    assert chunked[0].acts.shape == (len(demos[0]), 8)
    np.testing.assert_array_equal(chunked[0].acts[0, 2:4], demos[0].acts[1])  # a_1 is the second action of chunk 0
    np.testing.assert_array_equal(chunked[0].acts[-1], np.tile(demos[0].acts[-1], 4))  # the last action repeats
    bc = train_bc(chunked, env.observation_space, chunk_action_space(env.action_space, 4), n_batches=50, net_arch=[32, 32])
    il = ActionChunkingPolicy(bc.policy, chunk_size=4, action_dim=2)
    model = IBRL("MlpPolicy", "PointGoal-v0", il_policy=il, demonstrations=demos, **SETTINGS).learn(150)
    assert model._n_updates > 0 and 0 < model.il_action_fraction <= 1
    assert model.replay_buffer.il_cache.cached[: model.replay_buffer.size()].all()


@pytest.mark.slow
def test_state_rl_with_an_image_il_policy_learns(tmp_path):
    """RL from the state, IL from the image (its own observations): the paper's state-based robomimic setup, small."""
    pytest.importorskip("imitation.algorithms.bc")
    from sb3_ibrl.common.evaluation import evaluate_policy_success
    from sb3_ibrl.envs.point_goal_pixels import PixelStateAdapter
    from sb3_ibrl.il.training import train_bc

    th.set_num_threads(1)
    env = gym.make("PointGoal-v0", obs_mode="state_pixel")
    demos = record_episodes(env, PointGoalExpert(seed=2), n_episodes=1, seed=2, act_fn_input="state")
    assert set(demos[0].obs) == {"state", "image"}
    state_demos = [type(ep)(ep.obs["state"], ep.acts, ep.rews, ep.terminal) for ep in demos]
    state_space = env.observation_space["state"]
    bc = train_bc(state_demos, state_space, env.action_space, n_batches=1000, learning_rate=1e-3, net_arch=[64, 64], seed=3)
    reader = PixelStateAdapter(bc.policy)  # acts on images: the IL policy never sees the state
    il = lambda images: th.as_tensor(reader(images), dtype=th.float32)  # noqa: E731
    model = IBRL(
        "MlpPolicy", env, il_policy=il, il_obs_keys=["image"], demonstrations=demos, seed=3, **POINT_GOAL_IBRL_SETTINGS
    )
    assert model.observation_space == state_space  # the RL networks read the state ...
    assert model.replay_buffer.observations.shape[-1] == 4  # ... and only the state enters the replay buffer
    # 4000 steps: at 3000 this seed scored 0.70 on one machine and passed on others (BC alone: 0.60);
    # seeds 0-3 continued from 3000 to 4000 steps scored 1.00
    model.learn(4000)
    assert model.replay_buffer.il_cache.cached[: model.replay_buffer.size()].all()

    def act(obs):  # full observations (both keys): the hybrid of RL on the state and IL on the image
        return model.predict(obs, deterministic=True)[0]

    success, _ = evaluate_policy_success(gym.make("PointGoal-v0", obs_mode="state_pixel"), act, 20, seed=123)
    assert success >= 0.8
    model.save(tmp_path / "model.zip")
    loaded = IBRL.load(tmp_path / "model.zip", env=gym.make("PointGoal-v0", obs_mode="state_pixel"))
    obs = gym.make("PointGoal-v0", obs_mode="state_pixel").reset(seed=5)[0]
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], act(obs), atol=1e-5)
    # the RL actor alone reads its own key of full observations, as of the state alone
    rl_alone = model.predict(obs, deterministic=True, rl_only=True)[0]
    np.testing.assert_allclose(rl_alone, model.predict(obs["state"], deterministic=True, rl_only=True)[0], atol=1e-6)
    np.testing.assert_allclose(rl_alone, loaded.predict(obs, deterministic=True, rl_only=True)[0], atol=1e-5)
    with pytest.raises(ValueError, match="need the keys of both sides"):
        model.add_demonstrations(state_demos)
    with pytest.raises(ValueError, match="il_obs_keys"):
        IBRL("MlpPolicy", gym.make("PointGoal-v0"), il_policy=il, il_obs_keys=["image"])  # not a Dict space
