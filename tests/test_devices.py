"""
Models and replay buffers saved on one device and loaded on another (e.g. trained on a GPU, resumed on a CPU).

These run without a GPU by faking the saved device: the code paths are those a CUDA save takes
(``tests/test_cuda.py`` runs the real thing when a GPU is available).
"""

import cloudpickle
import ibrl_helpers
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.save_util import load_from_pkl, save_to_pkl

from sb3_ibrl import IBRL
from sb3_ibrl.data.episodes import Episode
from sb3_ibrl.data.nstep_buffer import NStepBuffer
from sb3_ibrl.data.storage import host_to_device

SETTINGS = dict(policy_kwargs=dict(net_arch=[16, 16], n_critics=2), learning_starts=20, batch_size=16, gradient_steps=1,
                policy_delay=1)  # fmt: skip


def small_ibrl(**kwargs) -> IBRL:
    return ibrl_helpers.small_ibrl(**{**SETTINGS, **kwargs})


def demo() -> Episode:
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (11, 3)).astype(np.float32)
    return Episode(obs=obs, acts=rng.uniform(-2, 2, (10, 1)), rews=np.ones(10), terminal=True)


def test_buffer_saved_on_a_gpu_samples_every_store_on_the_model_device(tmp_path):
    model = small_ibrl(demonstrations=[demo()], demo_fraction=0.5).learn(40)
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    saved = load_from_pkl(tmp_path / "buffer.pkl")
    assert saved.demos is not None and saved.successes is not None
    for store in (saved, saved.demos, saved.successes):  # as pickled by a model on a GPU
        store.device = th.device("cuda")
    save_to_pkl(tmp_path / "buffer.pkl", saved)

    resumed = small_ibrl(demo_fraction=0.5)
    resumed.load_replay_buffer(tmp_path / "buffer.pkl")
    buffer = resumed.replay_buffer
    assert [store.device.type for store in (buffer, buffer.demos, buffer.successes)] == ["cpu"] * 3
    assert buffer.n_demo_transitions == 10
    batch = buffer.sample(16)  # half from the demos: a CUDA store would fail here ("Torch not compiled with CUDA")
    assert batch.observations.device.type == "cpu" and batch.observations.shape == (16, 3)
    resumed.learn(30, reset_num_timesteps=False)
    assert all(bool(th.isfinite(p).all()) for p in resumed.policy.parameters())


def test_observations_kept_on_a_gpu_move_to_host_memory_with_the_buffer():
    buffer = NStepBuffer(50, small_ibrl().observation_space, small_ibrl().action_space, "cpu", storage_device="cpu")
    rng = np.random.default_rng(1)
    obs = rng.uniform(-1, 1, (9, 1, 3)).astype(np.float32)
    for t in range(8):
        buffer.add(obs[t], obs[t + 1], np.zeros((1, 1)), np.zeros(1), np.array([t == 7]), [{}])
    assert isinstance(buffer.observations, th.Tensor) and len(buffer.final_observations) == 1
    buffer.to_device("cpu")  # the same device: nothing moves
    assert isinstance(buffer.observations, th.Tensor)
    buffer.storage_device = th.device("cuda")  # as when the observations were kept on a GPU
    buffer.to_device("cpu")
    assert buffer.storage_device is None and isinstance(buffer.observations, np.ndarray)
    assert all(isinstance(value, np.ndarray) for value in buffer.final_observations.values())
    np.testing.assert_array_equal(buffer.observations[:8], obs[:8])
    np.testing.assert_array_equal(next(iter(buffer.final_observations.values())), obs[8, 0])
    samples = buffer.sample(8)
    assert samples.observations.device.type == "cpu" and samples.next_observations.shape == (8, 3)


def test_il_policy_pickled_on_cuda_without_cuda_says_what_to_do(tmp_path, monkeypatch):
    model = small_ibrl(il_policy=lambda obs: th.zeros(len(obs), 1))
    model.save(tmp_path / "model.zip")

    def loads(*args, **kwargs):
        raise RuntimeError("Attempting to deserialize object on a CUDA device but torch.cuda.is_available() is False.")

    monkeypatch.setattr(cloudpickle, "loads", loads)
    with pytest.raises(RuntimeError, match=r"holds CUDA tensors and this machine has no CUDA device.*il_policy=<IL policy>"):
        IBRL.load(tmp_path / "model.zip")
    monkeypatch.undo()
    loaded = IBRL.load(tmp_path / "model.zip", il_policy=lambda obs: th.ones(len(obs), 1))
    assert loaded.il_policy is not None


def test_host_to_device_copies_the_values_and_dtype():
    source = np.arange(12, dtype=np.int64).reshape(3, 4)[:, ::2]  # not contiguous
    copied = host_to_device(source, th.device("cpu"))
    assert copied.dtype == th.int64 and copied.tolist() == source.tolist()
    source[0, 0] = 99  # a copy: later writes to the source do not reach it
    assert copied[0, 0].item() == 0
    flags = host_to_device(np.array([True, False]), th.device("cpu"))
    assert flags.dtype == th.bool and flags.tolist() == [True, False]
