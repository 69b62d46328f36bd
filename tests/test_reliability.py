"""
Nothing silently wrong (issue 13): non-finite IL actions and demo values, image demos of the wrong dtype, buffer_size
across envs and the memory check of every store, IL policies that cannot be loaded, atomic saves, resuming without
spliced episodes, and option checks.
"""

import importlib
import sys
import threading
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn

import sb3_ibrl.data.buffer_memory as buffer_memory
import sb3_ibrl.data.replay_buffer as replay_buffer
from sb3_ibrl import IBRL
from sb3_ibrl.data.buffer_memory import check_buffer_memory, stored_transitions, transition_bytes
from sb3_ibrl.data.episodes import Episode, check_episodes
from sb3_ibrl.data.replay_buffer import IBRLReplayBuffer

SMALL = dict(net_arch=[16, 16], n_critics=2)
PENDULUM_OBS = gym.make("Pendulum-v1").observation_space


def small_ibrl(env="Pendulum-v1", **kwargs) -> IBRL:
    params = dict(policy_kwargs=SMALL, learning_starts=20, batch_size=16, gradient_steps=1, policy_delay=1, seed=0)
    params.update(kwargs)
    return IBRL("MlpPolicy", env, **params)


def pendulum_episode(length: int = 5, **changes) -> Episode:
    obs = np.tile(np.array([1.0, 0.0, 0.5], np.float32), (length + 1, 1))
    episode = dict(obs=obs, acts=np.zeros((length, 1)), rews=np.zeros(length))
    episode.update(changes)
    return Episode(**episode)


def all_parameters_finite(model: IBRL) -> bool:
    return all(bool(th.isfinite(p).all()) for p in model.policy.parameters())


# ---------------------------------------------------------------- 1. non-finite values


class NaNWhereCosIsNegative(nn.Module):
    """An IL policy that returns NaN for some observations only (cos(theta) < 0), finite actions elsewhere."""

    def forward(self, obs: th.Tensor) -> th.Tensor:
        actions = obs[:, 2:3].clamp(-2, 2)
        return th.where(obs[:, :1] < 0, th.full_like(actions, float("nan")), actions)


def test_nan_il_action_names_the_observation_before_any_parameter_is_hit():
    model = small_ibrl(il_policy=NaNWhereCosIsNegative(), warmup="random")
    with pytest.raises(ValueError, match=r"non-finite action \[nan\] for observation \d+ of a batch of") as error:
        model.learn(300)  # the TD target of a batch with such a next observation, or acting on one
    assert "observation [-" in str(error.value)  # its values: cos(theta) < 0
    assert all_parameters_finite(model)
    obs = np.array([[-1.0, 0.0, 0.3], [1.0, 0.0, 0.3]], np.float32)
    with pytest.raises(ValueError, match=r"for observation 0 of a batch of 2 \(1 such rows\): observation \[-1.0, 0.0, 0.3\]"):
        model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(model.predict(obs[1:], deterministic=True)[0].shape, (1, 1))


def test_infinite_il_action_and_image_observation_description():
    from sb3_ibrl.il.frozen import FrozenILPolicy, describe_observation

    frozen = FrozenILPolicy(lambda obs: th.full((len(obs), 1), float("inf")), gym.make("Pendulum-v1").action_space, "inf")
    with pytest.raises(ValueError, match=r"non-finite action \[inf\] for observation 0 of a batch of 3 \(3 such rows\)"):
        frozen(th.zeros(3, 3))
    images = th.zeros(2, 3, 8, 8, dtype=th.uint8)
    images[1, 0, 0, 0] = 200
    assert describe_observation(images, 1) == "observation of shape (3, 8, 8), finite values in [0, 200], 0 non-finite values"
    assert describe_observation({"proprio": th.ones(2, 2)}, 0) == "{'proprio': observation [1.0, 1.0]}"


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            dict(obs=np.r_[np.zeros((3, 3)), [[0.0, np.nan, 0.0]], np.zeros((2, 3))]),
            r"non-finite value \(nan\) in its observations at step 3",
        ),
        (
            dict(obs=np.r_[np.zeros((4, 3)), [[1e30, 0.0, 0.0]], np.zeros((1, 3))]),
            r"huge value \(1e\+30\) in its observations at step 4",
        ),
        (dict(rews=[0, 0, 1e30, 0, 0]), r"huge value \(1e\+30\) in its rewards at step 2"),
        (dict(rews=[0, np.inf, 0, 0, 0]), r"non-finite value \(inf\) in its rewards at step 1"),
    ],
)
def test_non_finite_or_huge_demo_values_name_episode_and_step(changes, message):
    episodes = [pendulum_episode(), pendulum_episode(**changes)]
    with pytest.raises(ValueError, match=rf"Demonstration episode 1 has a {message}"):
        small_ibrl(demonstrations=episodes)
    check_episodes([pendulum_episode(rews=[0, 0, 1e6, 0, 0])], PENDULUM_OBS, gym.make("Pendulum-v1").action_space)


# ---------------------------------------------------------------- 2. image demos


IMAGE = spaces.Box(0, 255, (3, 4, 4), np.uint8)
ACTION = spaces.Box(-1, 1, (1,), np.float32)


def image_episode(frames: np.ndarray) -> Episode:
    return Episode(obs=frames, acts=np.zeros((len(frames) - 1, 1)), rews=np.zeros(len(frames) - 1))


def test_float_image_demos_in_unit_range_are_refused_with_the_conversion():
    frames = np.full((4, 3, 4, 4), 0.5, np.float32)
    with pytest.raises(ValueError, match=r"fractional values at step 0 .* black frames.*np.round\(obs \* 255\)"):
        check_episodes([image_episode(frames)], IMAGE, ACTION)


def test_image_demo_values_outside_the_dtype_range_are_refused():
    frames = np.zeros((4, 3, 4, 4), np.float32)
    frames[2, 1, 0, 0] = -20.0
    with pytest.raises(ValueError, match=r"outside \[0, 255\] at step 2 \(e.g. -20.0\).*wrap around"):
        check_episodes([image_episode(frames)], IMAGE, ACTION)
    frames = np.zeros((4, 3, 4, 4), np.int64)
    frames[3] = 300
    with pytest.raises(ValueError, match=r"outside \[0, 255\] at step 3 \(e.g. 300\)"):
        check_episodes([image_episode(frames)], IMAGE, ACTION)
    dict_space = spaces.Dict(image=IMAGE, proprio=spaces.Box(-1, 1, (2,)))
    dict_obs = dict(image=np.full((4, 3, 4, 4), 0.25), proprio=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="'image' observations with fractional values"):
        check_episodes([Episode(dict_obs, np.zeros((3, 1)), np.zeros(3))], dict_space, ACTION)


def test_float_images_with_integer_values_are_stored_exactly():
    frames = np.stack([np.full((3, 4, 4), value, np.float32) for value in (0, 17, 128, 255)])
    episodes = [image_episode(frames)]
    check_episodes(episodes, IMAGE, ACTION)
    buffer = IBRLReplayBuffer(10, IMAGE, ACTION, device="cpu", n_steps=1)
    buffer.add_demonstrations(episodes, lambda actions: actions)
    np.testing.assert_array_equal(buffer.demos.observations[:3, 0, 0, 0, 0], [0, 17, 128])
    np.testing.assert_array_equal(buffer.demos.final_observations[(2, 0)][0, 0, 0], 255)


# ---------------------------------------------------------------- 3. buffer_size and the memory check

VECTOR = spaces.Box(-np.inf, np.inf, (1,), np.float32)  # 4 + 4 + 4 + 3 = 15 bytes per transition


@pytest.fixture
def memory_of(monkeypatch):
    """Pretend the machine has memory for exactly ``n`` transitions of ``VECTOR`` (after the 90% margin)."""

    def set_transitions(n: int) -> None:
        available = int(np.ceil(n * transition_bytes(VECTOR, ACTION) / buffer_memory.MEMORY_FRACTION))
        for module in (buffer_memory, replay_buffer):
            monkeypatch.setattr(module, "available_memory_bytes", lambda: available)

    return set_transitions


def test_buffer_size_counts_all_envs_as_in_sb3():
    env = DummyVecEnv([lambda: gym.make("Pendulum-v1")] * 4)
    model = small_ibrl(env=env, buffer_size=100, learning_starts=1000)
    assert model.replay_buffer.buffer_size == 25  # rows per env, as SB3's ReplayBuffer
    model.learn(160)  # 160 transitions offered to a buffer of 100
    assert model.replay_buffer.full and model.replay_buffer.size() * 4 == 100
    assert stored_transitions(102, n_envs=4) == 100 and stored_transitions(3, n_envs=4) == 4


def test_memory_error_suggestion_counts_envs_and_is_correct(memory_of):
    memory_of(150)
    per_transition = transition_bytes(VECTOR, ACTION)  # 15: obs, action, reward, done / timeout / break flags
    with pytest.raises(
        MemoryError, match=rf"buffer_size=152 \(4 envs; {per_transition} bytes per transition\).*at most 151\."
    ) as error:
        IBRLReplayBuffer(152, VECTOR, ACTION, device="cpu", n_envs=4)
    assert "Lower buffer_size" in str(error.value)
    assert IBRLReplayBuffer(151, VECTOR, ACTION, device="cpu", n_envs=4).buffer_size == 37  # the suggestion fits


def test_memory_check_counts_the_success_store(memory_of):
    memory_of(150)
    per_transition = transition_bytes(VECTOR, ACTION)
    assert IBRLReplayBuffer(100, VECTOR, ACTION, device="cpu").memory_bytes == 100 * per_transition  # fits alone
    with pytest.raises(MemoryError, match=r"successful episodes.*at most 75\.") as error:
        IBRLReplayBuffer(100, VECTOR, ACTION, device="cpu", demo_fraction=0.5, success_buffer_size=100)
    assert "buffer_size=100 (1 env, successful episodes" in str(error.value)
    buffer = IBRLReplayBuffer(75, VECTOR, ACTION, device="cpu", demo_fraction=0.5, success_buffer_size=100)
    assert buffer.memory_bytes == 150 * transition_bytes(VECTOR, ACTION) and buffer.successes.buffer_size == 75
    with pytest.raises(MemoryError):
        check_buffer_memory(76, VECTOR, ACTION, n_envs=1, success_buffer_size=100)


def test_memory_check_counts_the_demonstrations(memory_of):
    memory_of(150)
    buffer = IBRLReplayBuffer(100, VECTOR, ACTION, device="cpu")
    demos = [Episode(np.zeros((31, 1)), np.zeros((30, 1)), np.zeros(30))] * 2
    with pytest.raises(MemoryError, match=r"60 demonstration transitions.*at most 90\."):
        buffer.add_demonstrations(demos, lambda actions: actions)
    buffer.add_demonstrations(demos[:1], lambda actions: actions)
    assert buffer.n_demo_transitions == 30


# ---------------------------------------------------------------- 4. loading without the IL policy's code


@pytest.fixture
def il_module(tmp_path, monkeypatch):
    """An IL policy class in a module of its own, which the tests then rename or remove."""
    name = f"il_module_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(
        "import torch as th\nfrom torch import nn\n\n\nclass MovableIL(nn.Module):\n"
        "    def forward(self, obs):\n        return th.zeros(len(obs), 1)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(name)
    yield module
    sys.modules.pop(name, None)


def test_il_policy_of_a_renamed_class_is_an_error_with_the_fix(tmp_path, il_module):
    small_ibrl(il_policy=il_module.MovableIL()).save(tmp_path / "model.zip")
    del il_module.MovableIL  # renamed or moved
    with pytest.raises(ImportError, match=r"cannot be loaded here \(AttributeError.*custom_objects=\{'il_policy': None\}"):
        IBRL.load(tmp_path / "model.zip")
    assert IBRL.load(tmp_path / "model.zip", custom_objects={"il_policy": None}).il_policy is None
    replaced = IBRL.load(tmp_path / "model.zip", il_policy=lambda obs: th.ones(len(obs), 1))
    assert replaced.il_policy(th.zeros(1, 3)).item() == 0.5  # 1 in [-2, 2] -> 0.5 in [-1, 1]


def test_il_policy_of_a_missing_module_is_an_error_with_the_fix(tmp_path, il_module):
    small_ibrl(il_policy=il_module.MovableIL()).save(tmp_path / "model")  # SB3 appends .zip
    sys.modules.pop(il_module.__name__)
    (tmp_path / f"{il_module.__name__}.py").unlink()
    importlib.invalidate_caches()
    with pytest.raises(ImportError, match=r"ModuleNotFoundError.*il_policy=<IL policy>"):
        IBRL.load(tmp_path / "model")
    with open(tmp_path / "model.zip", "rb") as file:  # file objects too
        with pytest.raises(ImportError, match="ModuleNotFoundError"):
            IBRL.load(file)
    assert IBRL.load(tmp_path / "model.zip", il_policy=None).il_policy is None


# ---------------------------------------------------------------- 5. resuming


class EpisodeIdEnv(gym.Env):
    """Observations (episode id, step): every episode has an id of its own, across env instances."""

    observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = spaces.Box(-1, 1, (1,), np.float32)
    next_id = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        EpisodeIdEnv.next_id += 1
        self.episode, self.t = EpisodeIdEnv.next_id, 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), 0.0, False, self.t >= 7, {}

    def _obs(self):
        return np.array([self.episode, self.t], np.float32)


def spliced_transitions(buffer) -> int:
    """Transitions whose next observation (one step, and n steps ahead) belongs to another episode."""
    rows = np.arange(buffer.size())
    spliced = 0
    for env_idx in range(buffer.n_envs):
        next_obs = buffer.next_observations_of(rows, np.full_like(rows, env_idx))
        spliced += int((next_obs[:, 0] != buffer.observations[rows, env_idx, 0]).sum())
    batch = buffer._get_samples(np.repeat(rows, 20))  # n-step look-ahead, envs drawn at random
    return spliced + int((batch.next_observations[:, 0] != batch.observations[:, 0]).sum().item())


@pytest.mark.parametrize("n_envs", [1, 2])
def test_interrupted_and_resumed_run_splices_no_episode(tmp_path, n_envs):
    env = DummyVecEnv([EpisodeIdEnv] * n_envs)
    model = small_ibrl(env=env, buffer_size=200, learning_starts=1000, n_steps=3)
    model.learn(10 * n_envs)  # interrupted mid-episode (episodes are 7 steps)
    model.save(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    resumed = IBRL.load(tmp_path / "model.zip", env=DummyVecEnv([EpisodeIdEnv] * n_envs))
    resumed.load_replay_buffer(tmp_path / "buffer.pkl")
    resumed.learn(10 * n_envs, reset_num_timesteps=False)
    assert resumed.num_timesteps == 20 * n_envs and resumed.replay_buffer.size() == 20
    assert spliced_transitions(resumed.replay_buffer) == 0
    # Without ending the open episodes, the buffer still sees that the reset env's first observation does not follow
    # the interrupted row (issue 15's breaks): that row keeps its own next observation, nothing is spliced
    kept_open = IBRL.load(tmp_path / "model.zip", env=DummyVecEnv([EpisodeIdEnv] * n_envs))
    kept_open.load_replay_buffer(tmp_path / "buffer.pkl", truncate_last_traj=False)
    kept_open.learn(10 * n_envs, reset_num_timesteps=False)
    assert kept_open.replay_buffer.breaks.any() and spliced_transitions(kept_open.replay_buffer) == 0
    with pytest.raises(ValueError, match=f"holds the transitions of {n_envs} envs, but the model has 3 envs"):
        small_ibrl(env=DummyVecEnv([EpisodeIdEnv] * 3)).load_replay_buffer(tmp_path / "buffer.pkl")


# ---------------------------------------------------------------- 6. atomic saves


def unpicklable_il_policy():
    lock = threading.Lock()
    return lambda obs: th.zeros(len(obs), 1) if lock else None


def test_failed_save_keeps_the_previous_checkpoint(tmp_path):
    good = small_ibrl(il_policy=lambda obs: th.zeros(len(obs), 1))
    good.save(tmp_path / "model.zip")
    good.save_replay_buffer(tmp_path / "buffer.pkl")
    saved_model, saved_buffer = (tmp_path / "model.zip").read_bytes(), (tmp_path / "buffer.pkl").read_bytes()
    bad = small_ibrl(il_policy=unpicklable_il_policy())
    with pytest.raises(TypeError, match="lock"):
        bad.save(tmp_path / "model.zip")
    bad.replay_buffer.lock = threading.Lock()
    with pytest.raises(TypeError, match="lock"):
        bad.save_replay_buffer(tmp_path / "buffer")  # SB3 appends .pkl
    assert (tmp_path / "model.zip").read_bytes() == saved_model and (tmp_path / "buffer.pkl").read_bytes() == saved_buffer
    assert sorted(path.name for path in tmp_path.iterdir()) == ["buffer.pkl", "model.zip"]  # no temporary file left
    assert IBRL.load(tmp_path / "model.zip").il_policy is not None
    good.save(tmp_path / "sub" / "model")  # new folders and SB3's suffix, as before
    assert (tmp_path / "sub" / "model.zip").is_file()


# ---------------------------------------------------------------- 7. smaller


@pytest.mark.parametrize(
    "option, message",
    [
        (dict(exploration_std=-0.1), r"exploration_std must be a number >= 0, got -0.1 \(float\)"),
        (dict(batch_size=0), r"batch_size must be an integer >= 1, got 0 \(int\)"),
        (dict(n_steps=2.5), r"n_steps must be an integer >= 1, got 2.5 \(float\)"),
        (dict(proposal_beta="10"), r"proposal_beta must be a positive number \(e.g. 10\).*got '10' \(str\)"),
        (dict(proposal_beta=-1.0), r"proposal_beta must be a positive number"),
        (dict(buffer_size=0), r"buffer_size must be an integer >= 1"),
        (dict(gradient_steps=0), r"gradient_steps must be a positive integer \(or -1"),
        (dict(tau=0.0), r"tau must be a number in \(0, 1\]"),
        (dict(gamma=1.5), r"gamma must be a number in \[0, 1\]"),
        (dict(learning_starts=-1), r"learning_starts must be an integer >= 0"),
        (dict(demo_fraction="0.5"), r"demo_fraction must be a number in \[0, 1\)"),
    ],
)
def test_bad_options_fail_with_their_name(option, message):
    with pytest.raises(ValueError, match=message):
        small_ibrl(**option)


def test_out_of_bounds_demo_actions_warn_with_episode_and_step():
    acts = np.zeros((5, 1))
    acts[3] = 2.5  # Pendulum's bounds: [-2, 2]
    with pytest.warns(
        UserWarning, match=r"1 of 10 demonstration action values are outside.*episode 1, step 3, action \[2.5\]"
    ):
        model = small_ibrl(demonstrations=[pendulum_episode(), pendulum_episode(acts=acts)])
    assert model.replay_buffer.demos.actions[8, 0, 0] == 1.0  # stored clipped (2 -> 1 in [-1, 1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        small_ibrl(demonstrations=[pendulum_episode(acts=np.full((5, 1), 2.0 + 1e-7))])  # float rounding: no warning
    assert not [warning for warning in caught if "action bounds" in str(warning.message)]
