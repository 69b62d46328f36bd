"""A save that fails part-way keeps the old file, for every file sb3-ibrl writes (``sb3_ibrl.common.files``)."""

import errno
import os

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from ibrl_helpers import small_ibrl
from stable_baselines3.common.policies import ActorCriticPolicy

from sb3_ibrl.common.files import atomic_path
from sb3_ibrl.data.demo_files import load_episodes, save_episodes
from sb3_ibrl.data.episodes import Episode
from sb3_ibrl.ibrl.policies import IBRLPolicy
from sb3_ibrl.il.training import make_bc_policy, save_bc_policy


def disk_full_after(n_bytes: int, path_arg: int = 0):
    """
    A stand-in for a writer (its path: argument ``path_arg``) that gets ``n_bytes`` onto the disk, then fails as a
    full disk does.
    """

    def write(*args, **kwargs):
        with open(args[path_arg], "wb") as file:
            file.write(b"\0" * n_bytes)
        raise OSError(errno.ENOSPC, "No space left on device")

    return write


def episode(length: int, value: float) -> Episode:
    obs = np.full((length + 1, 3), value, dtype=np.float32)
    return Episode(obs=obs, acts=np.zeros((length, 2), np.float32), rews=np.zeros(length, np.float32), terminal=False)


def files_in(folder) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_atomic_path_replaces_only_a_complete_file(tmp_path):
    target = tmp_path / "sub" / "file.txt"
    with atomic_path(target) as temporary:
        assert temporary.parent == target.parent and temporary.suffix == ".txt" and temporary != target
        temporary.write_text("first")
    assert target.read_text() == "first"
    with pytest.raises(ZeroDivisionError):
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            _ = 1 / 0
    assert target.read_text() == "first" and files_in(target.parent) == ["file.txt"]
    with pytest.raises(RuntimeError, match=r"Nothing was written for .*file\.txt: the old file is kept"):
        with atomic_path(target):
            pass
    assert target.read_text() == "first"


def test_demo_file_survives_a_failed_write(tmp_path, monkeypatch):
    assert save_episodes(tmp_path / "demos", [episode(4, 1.0)]) == os.fspath(tmp_path / "demos.npz")  # numpy's suffix
    monkeypatch.setattr(np, "savez", disk_full_after(100))
    with pytest.raises(OSError, match="No space left"):
        save_episodes(tmp_path / "demos.npz", [episode(6, 2.0)])
    monkeypatch.undo()
    (kept,) = load_episodes(tmp_path / "demos.npz")
    assert len(kept) == 4 and np.all(kept.obs == 1.0)
    assert files_in(tmp_path) == ["demos.npz"]


def test_robomimic_file_survives_a_demo_that_cannot_be_written(tmp_path):
    pytest.importorskip("h5py")
    from sb3_ibrl.data.robomimic_hdf5 import read_robomimic_episodes
    from sb3_ibrl.data.robomimic_writer import write_robomimic_hdf5

    def demo(length: int, value: float, **extra) -> dict:
        obs = {"robot0_eef_pos": np.full((length + 1, 3), value, np.float32)}
        return dict(obs=obs, actions=np.zeros((length, 2), np.float32), rewards=np.zeros(length, np.float32), **extra)

    path = tmp_path / "demos.hdf5"
    write_robomimic_hdf5(path, [demo(5, 1.0)])
    # HDF5 attributes cannot hold a dict: h5py fails once the file is open, after demo 0 was written
    with pytest.raises(TypeError):
        write_robomimic_hdf5(path, [demo(3, 2.0), demo(3, 2.0, attrs={"meta": {"a": 1}})])
    (kept,) = read_robomimic_episodes(path, obs_keys=["robot0_eef_pos"])
    assert len(kept) == 5 and np.all(kept.obs == 1.0)
    assert files_in(tmp_path) == ["demos.hdf5"]


def test_policy_file_survives_a_failed_save(tmp_path, monkeypatch):
    policy = small_ibrl().policy
    policy.save(tmp_path / "policy.pth")
    saved = (tmp_path / "policy.pth").read_bytes()
    monkeypatch.setattr(th, "save", disk_full_after(10, path_arg=1))  # th.save(obj, path)
    with pytest.raises(OSError, match="No space left"):
        policy.save(tmp_path / "policy.pth")
    monkeypatch.undo()
    assert (tmp_path / "policy.pth").read_bytes() == saved and files_in(tmp_path) == ["policy.pth"]
    assert isinstance(IBRLPolicy.load(tmp_path / "policy.pth"), IBRLPolicy)


def test_bc_policy_file_survives_a_failed_save(tmp_path, monkeypatch):
    env = gym.make("Pendulum-v1")
    policy = make_bc_policy(env.observation_space, env.action_space, net_arch=[8])
    assert save_bc_policy(policy, tmp_path / "bc" / "policy.zip") == os.fspath(tmp_path / "bc" / "policy.zip")
    saved = (tmp_path / "bc" / "policy.zip").read_bytes()
    monkeypatch.setattr(th, "save", disk_full_after(10, path_arg=1))  # th.save(obj, path)
    with pytest.raises(OSError, match="No space left"):
        save_bc_policy(policy, tmp_path / "bc" / "policy.zip")
    monkeypatch.undo()
    assert (tmp_path / "bc" / "policy.zip").read_bytes() == saved and files_in(tmp_path / "bc") == ["policy.zip"]
    kept = ActorCriticPolicy.load(tmp_path / "bc" / "policy.zip")
    assert all(th.equal(a, b) for a, b in zip(kept.state_dict().values(), policy.state_dict().values()))


def test_a_figure_that_fails_to_save_keeps_the_old_image_and_is_closed(tmp_path, monkeypatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sb3_ibrl.common.files import save_figure

    path = tmp_path / "curve.png"
    figure, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    assert save_figure(figure, path, dpi=50) == str(path)
    old = path.read_bytes()
    assert old.startswith(b"\x89PNG") and not plt.fignum_exists(figure.number)

    figure, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    monkeypatch.setattr(figure, "savefig", disk_full_after(100))
    with pytest.raises(OSError, match="No space left"):
        save_figure(figure, path)
    assert path.read_bytes() == old and files_in(tmp_path) == ["curve.png"]
    assert not plt.fignum_exists(figure.number)
