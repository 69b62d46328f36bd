"""Speed options: observations stored as tensors, bf16 autocast, compiled updates, updates per env step with n_envs."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env

import sb3_ibrl  # noqa: F401  (registers PointGoal-v0)
from sb3_ibrl import IBRL
from sb3_ibrl.data.episodes import Episode
from sb3_ibrl.data.replay_buffer import IBRLReplayBuffer
from sb3_ibrl.data.storage import resolve_storage_device
from sb3_ibrl.envs import POINT_GOAL_IBRL_SETTINGS
from sb3_ibrl.ibrl.acceleration import update_precision
from sb3_ibrl.ibrl.losses import critic_loss
from sb3_ibrl.networks.mlp import EnsembleLinear

SETTINGS = dict(POINT_GOAL_IBRL_SETTINGS, learning_starts=50, seed=0)
TINY_VIT = dict(encoder="vit", encoder_kwargs=dict(embed_dim=16, depth=1, num_heads=2), q_hidden_dim=32, net_arch=[32, 32])


def constant_il(obs):
    return obs[:, 2:4] * 0.0 + 0.3


def parameters(model: IBRL) -> th.Tensor:
    return th.cat([p.detach().flatten() for p in model.policy.parameters()])


def fill(buffer: IBRLReplayBuffer, seed: int = 0, steps: int = 300) -> None:
    """Random image transitions from 2 envs, with episode ends (terminal and truncated) and successes."""
    rng = np.random.default_rng(seed)
    for t in range(steps):
        obs = rng.integers(0, 256, (2, 3, 8, 8), dtype=np.uint8)
        next_obs = rng.integers(0, 256, (2, 3, 8, 8), dtype=np.uint8)
        done = np.array([t % 37 == 36, t % 23 == 22])
        infos = [{"TimeLimit.truncated": t % 74 == 73, "is_success": True}, {"is_success": False}]
        actions = rng.uniform(-1, 1, (2, 2)).astype(np.float32)
        buffer.add(obs, next_obs, actions, rng.normal(size=2).astype(np.float32), done, infos)


def image_buffer(storage_device) -> IBRLReplayBuffer:
    space, action_space = spaces.Box(0, 255, (3, 8, 8), np.uint8), spaces.Box(-1, 1, (2,))
    buffer = IBRLReplayBuffer(
        100, space, action_space, "cpu", n_envs=2, n_steps=3, demo_fraction=0.5, storage_device=storage_device
    )
    demo_obs = np.random.default_rng(1).integers(0, 256, (6, 3, 8, 8), dtype=np.uint8)
    buffer.add_demonstrations([Episode(demo_obs, np.zeros((5, 2)), np.zeros(5))], lambda actions: actions)
    fill(buffer)
    return buffer


def test_tensor_storage_samples_exactly_what_numpy_storage_samples():
    numpy_buffer, tensor_buffer = image_buffer(None), image_buffer("cpu")
    assert isinstance(numpy_buffer.observations, np.ndarray)
    assert isinstance(tensor_buffer.observations, th.Tensor) and tensor_buffer.observations.dtype == th.uint8
    assert isinstance(tensor_buffer.demos.observations, th.Tensor)  # the demo and success stores follow
    assert isinstance(tensor_buffer.successes.observations, th.Tensor)
    for seed in range(3):
        np.random.seed(seed)
        expected = numpy_buffer.sample(64)
        np.random.seed(seed)
        got = tensor_buffer.sample(64)
        for name in ("observations", "actions", "next_observations", "dones", "rewards", "discounts"):
            assert th.equal(getattr(expected, name), getattr(got, name)), name
    assert len(tensor_buffer.successes.episodes()) == len(numpy_buffer.successes.episodes()) > 0


def test_tensor_storage_pickles_in_host_memory_and_loads_back():
    buffer = image_buffer("cpu")
    state = buffer.__getstate__()
    assert isinstance(state["observations"], np.ndarray)  # saved without any device tensor
    assert all(isinstance(frame, np.ndarray) for frame in state["final_observations"].values())
    loaded = pickle.loads(pickle.dumps(buffer))
    assert isinstance(loaded.observations, th.Tensor)
    np.random.seed(7)
    expected = buffer.sample(32)
    np.random.seed(7)
    got = loaded.sample(32)
    assert th.equal(expected.next_observations, got.next_observations)


def test_auto_storage_stays_in_host_memory_without_cuda():
    image, vector = spaces.Box(0, 255, (3, 8, 8), np.uint8), spaces.Box(-1, 1, (4,))
    assert resolve_storage_device("auto", th.device("cpu"), image, 10) is None
    assert resolve_storage_device("auto", th.device("cuda"), vector, 10) is None  # vectors: no need, never probed
    assert resolve_storage_device(None, th.device("cuda"), image, 10) is None
    assert resolve_storage_device("cpu", th.device("cpu"), image, 10) == th.device("cpu")
    model = IBRL("MlpPolicy", "PointGoal-v0", **SETTINGS)
    assert model.replay_buffer.storage_device is None and isinstance(model.replay_buffer.observations, np.ndarray)


def test_compiled_updates_give_the_same_parameters():
    """The compiled update functions (traced by dynamo, AOT autograd) train exactly like the eager ones."""
    plain = IBRL("MlpPolicy", "PointGoal-v0", il_policy=constant_il, **SETTINGS).learn(120)
    compiled = IBRL(
        "MlpPolicy", "PointGoal-v0", il_policy=constant_il, compile_updates=dict(backend="aot_eager"), **SETTINGS
    ).learn(120)
    assert plain._fns.critic_loss is critic_loss and compiled._fns.critic_loss is not critic_loss  # really compiled
    th.testing.assert_close(parameters(compiled), parameters(plain), rtol=1e-5, atol=1e-6)
    assert not th.equal(parameters(plain), parameters(IBRL("MlpPolicy", "PointGoal-v0", **SETTINGS)))  # it learned


def test_bf16_autocast_runs_the_networks_in_bfloat16_and_keeps_float32_weights():
    model = IBRL("MlpPolicy", "PointGoal-v0", il_policy=constant_il, mixed_precision="bf16", **SETTINGS)
    dtypes = set()
    layer = next(module for module in model.critic.modules() if isinstance(module, EnsembleLinear))
    layer.register_forward_hook(lambda module, inputs, output: dtypes.add(output.dtype))
    before = parameters(model).clone()
    model.learn(120)
    assert th.bfloat16 in dtypes  # the updates ran the critic in bf16 ...
    assert all(p.dtype == th.float32 for p in model.policy.parameters())  # ... with float32 master weights
    after = parameters(model)
    assert th.isfinite(after).all() and not th.equal(after, before)
    assert np.isfinite(model.logger.name_to_value["train/critic_loss"])


def test_tf32_is_allowed_inside_the_updates_only():
    outside = th.backends.cuda.matmul.allow_tf32, th.backends.cudnn.allow_tf32
    seen = []
    model = IBRL("MlpPolicy", "PointGoal-v0", il_policy=constant_il, mixed_precision="tf32", **SETTINGS)
    layer = next(module for module in model.critic.modules() if isinstance(module, EnsembleLinear))
    layer.register_forward_hook(lambda module, inputs, output: seen.append((th.backends.cuda.matmul.allow_tf32, output.dtype)))
    # the backward passes (two thirds of an update's matmuls) and the optimizer steps are inside too
    backward, steps = [], []
    layer.register_full_backward_hook(lambda module, grad_in, grad_out: backward.append(th.backends.cuda.matmul.allow_tf32))
    model.critic.optimizer.register_step_pre_hook(lambda *_: steps.append(th.backends.cudnn.allow_tf32))
    th.backends.cudnn.allow_tf32 = False  # (torch's default is True: off here, to see the model turn it on)
    try:
        model.learn(120)
    finally:
        th.backends.cudnn.allow_tf32 = outside[1]
    assert {flag for flag, _ in seen} == {True, False}  # on in the updates, off in the actor proposal while collecting
    assert {dtype for _, dtype in seen} == {th.float32}
    assert len(backward) > 0 and set(backward) == {True} and len(steps) > 0 and set(steps) == {True}
    assert (th.backends.cuda.matmul.allow_tf32, th.backends.cudnn.allow_tf32) == outside  # the user's settings are back
    # On a CPU, TF32 changes nothing: the same parameters as float32 from one seed
    plain = IBRL("MlpPolicy", "PointGoal-v0", il_policy=constant_il, **SETTINGS).learn(120)
    assert th.equal(parameters(model), parameters(plain))


def test_tf32_context_restores_the_settings_after_an_error():
    outside = th.backends.cuda.matmul.allow_tf32
    with pytest.raises(RuntimeError, match="inside"):
        with update_precision("tf32"):
            assert th.backends.cuda.matmul.allow_tf32 and th.backends.cudnn.allow_tf32
            raise RuntimeError("inside")
    assert th.backends.cuda.matmul.allow_tf32 == outside


def test_bf16_pixel_updates_with_the_vit():
    env = gym.make("PointGoal-v0", obs_mode="pixel")
    il = lambda obs: th.zeros(len(obs), 2)  # noqa: E731
    params = dict(learning_starts=20, batch_size=16, gradient_steps=1, policy_delay=1, buffer_size=500, seed=0)
    model = IBRL("CnnPolicy", env, il_policy=il, mixed_precision="bf16", policy_kwargs=dict(TINY_VIT, n_critics=2), **params)
    model.learn(40)
    assert th.isfinite(parameters(model)).all()
    assert np.isfinite(model.logger.name_to_value["train/q_values"])


@pytest.mark.parametrize("n_envs", [1, 2, 4])
def test_updates_per_env_step_do_not_depend_on_n_envs(n_envs):
    env = make_vec_env("PointGoal-v0", n_envs=n_envs, seed=0)
    model = IBRL("MlpPolicy", env, **dict(SETTINGS, gradient_steps=2, policy_delay=1)).learn(200)
    train_calls = sum(1 for step in range(n_envs, 201, n_envs) if step > 50)  # vector steps past learning_starts
    # two updates per env step after learning_starts (150 env steps: 300, or 304 when 4 envs overshoot 50 by 2)
    assert model._n_updates == 2 * n_envs * train_calls
    assert abs(model._n_updates - 300) <= 2 * (n_envs - 1)
    sb3_meaning = IBRL("MlpPolicy", env, scale_updates_with_n_envs=False, **dict(SETTINGS, gradient_steps=2)).learn(200)
    assert sb3_meaning._n_updates == 2 * train_calls  # SB3's meaning: per train() call


def test_speed_options_survive_save_and_load(tmp_path):
    model = IBRL("MlpPolicy", "PointGoal-v0", mixed_precision="bf16", compile_updates=dict(backend="eager"), **SETTINGS)
    model.learn(60)
    model.save(tmp_path / "model.zip")
    loaded = IBRL.load(tmp_path / "model.zip", env=gym.make("PointGoal-v0"))
    assert loaded.mixed_precision == "bf16" and loaded.compile_updates == dict(backend="eager")
    loaded.learn(60, reset_num_timesteps=False)  # rebuilt update functions
    assert loaded._n_updates > model._n_updates


def test_unknown_speed_options_are_named():
    with pytest.raises(ValueError, match="mixed_precision='fp8'"):
        IBRL("MlpPolicy", "PointGoal-v0", mixed_precision="fp8")
    with pytest.raises(ValueError, match="compile_updates mode 'fastest'"):
        IBRL("MlpPolicy", "PointGoal-v0", compile_updates="fastest")
    with pytest.raises(TypeError, match="compile_updates"):
        IBRL("MlpPolicy", "PointGoal-v0", compile_updates=3)
