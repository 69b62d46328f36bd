"""
CUDA: every path places its tensors on the model's device (skipped without a GPU; run it whenever one is available).

    python -m pytest -q tests/test_cuda.py
"""

import gymnasium as gym
import numpy as np
import pytest
import torch as th

import sb3_ibrl  # noqa: F401  (registers PointGoal-v0)
from sb3_ibrl import IBRL, RLPD, PtFt
from sb3_ibrl.common.evaluation import record_episodes
from sb3_ibrl.data.storage import host_to_device
from sb3_ibrl.envs import PointGoalExpert
from sb3_ibrl.ibrl.persistence import il_policy_custom_objects
from sb3_ibrl.il.training import save_bc_policy, train_bc

pytestmark = pytest.mark.skipif(not th.cuda.is_available(), reason="needs a CUDA GPU")

TINY_VIT = dict(encoder="vit", encoder_kwargs=dict(embed_dim=16, depth=1, num_heads=2), q_hidden_dim=32, net_arch=[32, 32])
OBS_MODES = {"MlpPolicy": "state", "CnnPolicy": "pixel", "MultiInputPolicy": "pixel_proprio"}
SMALL = dict(learning_starts=30, batch_size=32, gradient_steps=1, policy_delay=1, buffer_size=2000, seed=0)


def make_env(policy: str) -> gym.Env:
    return gym.make("PointGoal-v0", obs_mode=OBS_MODES[policy])


@pytest.fixture(scope="module", params=list(OBS_MODES))
def setup(request, tmp_path_factory):
    """A policy name, its demos and a BC policy trained on them (on the GPU), saved to a file."""
    policy = request.param
    env = make_env(policy)
    expert_input = "obs" if policy == "MlpPolicy" else "state"  # the expert reads the state
    demos = record_episodes(env, PointGoalExpert(seed=0), n_episodes=2, seed=0, act_fn_input=expert_input)
    bc = train_bc(demos, env.observation_space, env.action_space, n_batches=20, batch_size=32, device="cuda")
    path = str(tmp_path_factory.mktemp("bc") / "bc.zip")
    save_bc_policy(bc, path)
    return policy, demos, path


def _ibrl(policy: str, demos, il_path: str, **kwargs) -> IBRL:
    policy_kwargs = dict(net_arch=[32, 32]) if policy == "MlpPolicy" else dict(TINY_VIT, n_critics=2)
    return IBRL(policy, make_env(policy), il_policy=il_path, demonstrations=demos, device="cuda",
                policy_kwargs=policy_kwargs, **{**SMALL, **kwargs})  # fmt: skip


def test_learn_save_load_predict_on_cuda(setup, tmp_path):
    policy, demos, il_path = setup
    model = _ibrl(policy, demos, il_path).learn(80)
    assert model.device.type == "cuda" and model.il_policy.device.type == "cuda"
    assert all(p.device.type == "cuda" for p in model.policy.parameters())
    if policy != "MlpPolicy":  # images stay on the GPU in the replay buffer
        assert model.replay_buffer.storage_device.type == "cuda"
    obs = make_env(policy).reset(seed=3)[0]
    action, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    loaded = IBRL.load(tmp_path / "model.zip", env=make_env(policy), device="cuda")
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], action, atol=1e-5)
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    loaded.learn(40, reset_num_timesteps=False)


def test_model_saved_on_cuda_loads_on_cpu(setup, tmp_path, monkeypatch):
    policy, demos, il_path = setup
    monkeypatch.setattr(th.backends.cudnn, "allow_tf32", False)  # CUDA and CPU convolutions then agree to ~1e-6
    model = _ibrl(policy, demos, il_path).learn(60)
    obs = make_env(policy).reset(seed=4)[0]
    action, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    assert model.il_policy.device.type == "cuda"  # saving leaves it where it runs
    saved_il = il_policy_custom_objects(tmp_path / "model.zip", None, {})["il_policy"]
    assert saved_il.device.type == "cpu"  # pickled from host memory: the file loads on a machine without CUDA
    cpu = IBRL.load(tmp_path / "model.zip", env=make_env(policy), device="cpu")
    assert cpu.device.type == "cpu" and cpu.il_policy.device.type == "cpu"
    np.testing.assert_allclose(cpu.predict(obs, deterministic=True)[0], action, atol=1e-4)
    cpu.load_replay_buffer(tmp_path / "buffer.pkl")
    buffer = cpu.replay_buffer
    stores = [store for store in (buffer, buffer.demos, buffer.successes) if store is not None]
    assert len(stores) >= 2 and all(store.device.type == "cpu" for store in stores)  # the demo store too
    assert buffer.storage_device is None  # images kept on the GPU came back to host memory
    cpu.learn(40, reset_num_timesteps=False)


def test_sampling_never_waits_for_the_gpu(setup):
    policy, demos, il_path = setup
    model = _ibrl(policy, demos, il_path).learn(40)
    model.replay_buffer.sample(32)  # pinned host blocks are allocated once, here
    source = np.arange(6, dtype=np.float32)
    th.cuda.set_sync_debug_mode("error")  # any synchronizing call raises
    try:
        batch = model.replay_buffer.sample(32)
        moved = host_to_device(source, model.device)
    finally:
        th.cuda.set_sync_debug_mode("default")
    source[:] = -1  # the copy was taken from a pinned copy of the source, not from the source itself
    assert moved.tolist() == [0, 1, 2, 3, 4, 5] and moved.device.type == "cuda"
    assert batch.actions.device.type == "cuda" and batch.rewards.device.type == "cuda"


@pytest.mark.parametrize("options", [dict(mixed_precision="bf16"), dict(compile_updates=True),
                                     dict(compile_updates="reduce-overhead", mixed_precision="bf16"),
                                     dict(compile_updates="reduce-overhead", mixed_precision="tf32")],
                         ids=["bf16", "compile", "cudagraphs-bf16", "cudagraphs-tf32"])  # fmt: skip
def test_speed_options_on_cuda(setup, options):
    policy, demos, il_path = setup
    model = _ibrl(policy, demos, il_path, **options).learn(80)
    assert all(th.isfinite(p).all() for p in model.policy.parameters())
    assert np.isfinite(model.logger.name_to_value["train/critic_loss"])


def test_channels_last_encoder_with_cuda_graphs_on_cuda(setup):
    policy, demos, il_path = setup
    if policy == "MlpPolicy":
        pytest.skip("no images")
    encoder_kwargs = dict(TINY_VIT["encoder_kwargs"], channels_last=True)
    model = IBRL(policy, make_env(policy), il_policy=il_path, demonstrations=demos, device="cuda",
                 policy_kwargs=dict(TINY_VIT, n_critics=2, encoder_kwargs=encoder_kwargs),
                 compile_updates="reduce-overhead", mixed_precision="tf32", **SMALL).learn(80)  # fmt: skip
    convs = [p for p in model.policy.critic.encoder.parameters() if p.ndim == 4]
    assert convs and all(p.is_cuda and p.is_contiguous(memory_format=th.channels_last) for p in convs)
    assert all(th.isfinite(p).all() for p in model.policy.parameters())
    assert np.isfinite(model.logger.name_to_value["train/critic_loss"])


def test_baselines_on_cuda(setup):
    policy, demos, _ = setup
    if policy != "MlpPolicy":
        pytest.skip("the baselines share IBRL's code paths; states are enough")
    for algo in (RLPD, PtFt):
        model = algo(policy, make_env(policy), demonstrations=demos, device="cuda", policy_kwargs=dict(net_arch=[32, 32]),
                     **SMALL)  # fmt: skip
        model.learn(60)
        assert all(p.device.type == "cuda" for p in model.policy.parameters())


def test_an_action_chunking_il_policy_with_oversampling_and_cuda_graphs(setup, tmp_path):
    """The headline's next settings: a stateful (chunking) BC, demos oversampled, target-critic proposals, TF32 graphs."""
    from stable_baselines3.common.policies import ActorCriticPolicy

    from sb3_ibrl.il.stateful import ActionChunkingPolicy, chunk_action_space, chunk_episodes

    policy, demos, _ = setup
    env = make_env(policy)
    chunked = chunk_episodes(demos, 3)
    bc = train_bc(chunked, env.observation_space, chunk_action_space(env.action_space, 3), n_batches=5, batch_size=32,
                  device="cuda")  # fmt: skip
    save_bc_policy(bc, str(tmp_path / "bc.zip"))
    il = ActionChunkingPolicy(ActorCriticPolicy.load(str(tmp_path / "bc.zip"), device="cuda"), 3, 2, 0.01)
    model = _ibrl(policy, demos, il, compile_updates="reduce-overhead", mixed_precision="tf32", demo_fraction=0.5,
                  proposal_critic="target").learn(80)  # fmt: skip
    assert model.il_policy.stateful and model.il_policy.device.type == "cuda"
    assert all(th.isfinite(p).all() for p in model.policy.parameters())
    obs = env.reset(seed=5)[0]
    first, _ = model.predict(obs, episode_start=np.array([True]), deterministic=True)
    again, _ = model.predict(obs, episode_start=np.array([True]), deterministic=True)
    np.testing.assert_allclose(first, again, atol=1e-5)  # a new episode forgets the last one's chunks
