import json
from typing import Any, Optional

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from sb3_ibrl import IBRL
from sb3_ibrl.data.demo_files import load_episodes
from sb3_ibrl.data.obs_keys import match_obs_keys, read_episodes_for_env
from sb3_ibrl.data.robomimic_hdf5 import list_robomimic_demos, read_robomimic_episodes, recorded_obs_keys
from sb3_ibrl.data.robomimic_writer import write_robomimic_hdf5

h5py = pytest.importorskip("h5py")


def make_demo(rng: np.random.Generator, length: int, success: bool = True, image: bool = False) -> dict[str, Any]:
    obs = {
        "robot0_eef_pos": rng.normal(size=(length + 1, 3)).astype(np.float32),
        "robot0_gripper_qpos": rng.normal(size=(length + 1, 2)).astype(np.float32),
    }
    if image:
        obs["agentview_image"] = rng.integers(0, 256, size=(length + 1, 6, 5, 3), dtype=np.uint8)
    rewards = np.zeros(length, dtype=np.float32)
    rewards[-1] = float(success)
    return {
        "obs": obs,
        "actions": rng.uniform(-1, 1, size=(length, 2)).astype(np.float32),
        "rewards": rewards,
        "states": rng.normal(size=(length, 7)),
    }


def write_raw_official(path, n_demos: int = 12, truncate_key: Optional[str] = None) -> list[dict[str, np.ndarray]]:
    """Write a file with raw h5py calls, as the official robomimic datasets lay it out."""
    rng = np.random.default_rng(1)
    written = []
    with h5py.File(path, "w") as file:
        data = file.create_group("data")
        total = 0
        for k in range(n_demos):
            length = 3 + k % 4
            demo = data.create_group(f"demo_{k}")
            demo.attrs["num_samples"] = length
            actions = rng.uniform(-1, 1, size=(length, 2))
            rewards = np.zeros(length)
            rewards[-1] = 1.0
            dones = np.zeros(length, dtype=np.int64)
            dones[-1] = 1 if k % 2 == 0 else 0
            pos = rng.normal(size=(length + 1, 3))
            obj = rng.normal(size=(length + 1, 10))
            demo.create_dataset("actions", data=actions)
            demo.create_dataset("rewards", data=rewards)
            demo.create_dataset("dones", data=dones)
            demo.create_dataset("states", data=rng.normal(size=(length, 9)))
            stored_pos = pos[:-1] if truncate_key != "robot0_eef_pos" or k != 1 else pos[:-2]
            demo.create_dataset("obs/robot0_eef_pos", data=stored_pos)
            demo.create_dataset("obs/object", data=obj[:-1])
            demo.create_dataset("next_obs/robot0_eef_pos", data=pos[1:])
            demo.create_dataset("next_obs/object", data=obj[1:])
            total += length
            written.append({"actions": actions, "rewards": rewards, "dones": dones, "pos": pos, "object": obj})
        data.attrs["total"] = total
        data.attrs["env_args"] = json.dumps({"env_name": "PickPlaceCan", "type": 1, "env_kwargs": {"control_freq": 20}})
        mask = file.create_group("mask")
        mask.create_dataset("train", data=np.array([b"demo_10", b"demo_2", b"demo_0"]))
        mask.create_dataset("valid", data=np.array([b"demo_1"]))
    return written


def test_writer_layout_and_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    demos = [make_demo(rng, 5), make_demo(rng, 4, success=False), make_demo(rng, 6)]
    path = tmp_path / "demos.hdf5"
    env_args = {"env_name": "Lift", "type": 1, "env_kwargs": {"horizon": 10}}
    write_robomimic_hdf5(path, demos, env_args=env_args, masks={"train": [0, 2], "valid": [1]})
    with h5py.File(path, "r") as file:
        data = file["data"]
        assert int(data.attrs["total"]) == 15
        assert json.loads(data.attrs["env_args"]) == env_args
        assert "sb3_ibrl_obs_keys" not in data.attrs
        assert int(data["demo_1"].attrs["num_samples"]) == 4
        assert list(data["demo_0"]["dones"][()]) == [0, 0, 0, 0, 1]
        assert list(data["demo_1"]["dones"][()]) == [0, 0, 0, 0]
        np.testing.assert_array_equal(data["demo_2"]["states"][()], demos[2]["states"])
        np.testing.assert_array_equal(data["demo_0"]["obs/robot0_eef_pos"][()], demos[0]["obs"]["robot0_eef_pos"][:-1])
        np.testing.assert_array_equal(data["demo_0"]["next_obs/robot0_eef_pos"][()], demos[0]["obs"]["robot0_eef_pos"][1:])
        assert list(file["mask"]["train"][()]) == [b"demo_0", b"demo_2"]
    assert list_robomimic_demos(path, split="valid") == ["demo_1"]

    episodes = read_robomimic_episodes(path, obs_keys=["robot0_gripper_qpos", "robot0_eef_pos"])
    assert len(episodes) == 3
    for demo, ep in zip(demos, episodes):
        expected_obs = np.concatenate([demo["obs"]["robot0_gripper_qpos"], demo["obs"]["robot0_eef_pos"]], axis=1)
        assert ep.obs.dtype == np.float32 and ep.obs.shape == (len(demo["actions"]) + 1, 5)
        np.testing.assert_array_equal(ep.obs, expected_obs)
        np.testing.assert_array_equal(ep.acts, demo["actions"])
        np.testing.assert_array_equal(ep.rews, demo["rewards"])
        assert ep.rews.dtype == np.float32
    assert [ep.terminal for ep in episodes] == [True, False, True]

    # explicit dones override the default
    demo = make_demo(rng, 3)
    demo["dones"] = np.array([0, 0, 0])
    write_robomimic_hdf5(tmp_path / "dones.hdf5", [demo])
    assert not read_robomimic_episodes(tmp_path / "dones.hdf5", ["robot0_eef_pos"])[0].terminal


def test_image_key(tmp_path):
    rng = np.random.default_rng(0)
    demos = [make_demo(rng, 4, image=True), make_demo(rng, 3, image=True)]
    path = tmp_path / "images.hdf5"
    write_robomimic_hdf5(path, demos)
    episodes = read_robomimic_episodes(path, obs_keys=["agentview_image"])
    for demo, ep in zip(demos, episodes):
        assert ep.obs.dtype == np.uint8
        assert ep.obs.shape == (len(demo["actions"]) + 1, 6, 5, 3)
        np.testing.assert_array_equal(ep.obs, demo["obs"]["agentview_image"])
    with pytest.raises(ValueError, match=r"cannot be concatenated.*obs_keys=\{env key: \[file keys\]\}"):
        read_robomimic_episodes(path, obs_keys=["agentview_image", "robot0_eef_pos"])


def test_official_layout_ordering_and_splits(tmp_path):
    path = tmp_path / "can_ph.hdf5"
    written = write_raw_official(path)
    names = list_robomimic_demos(path)
    assert names == [f"demo_{k}" for k in range(12)]  # numeric: demo_10 after demo_9, not after demo_1
    assert list_robomimic_demos(path, split="train") == ["demo_10", "demo_2", "demo_0"]

    episodes = read_robomimic_episodes(path, obs_keys=["object", "robot0_eef_pos"])
    assert len(episodes) == 12
    for raw, ep in zip(written, episodes):
        np.testing.assert_array_equal(ep.obs, np.concatenate([raw["object"], raw["pos"]], axis=1).astype(np.float32))
        np.testing.assert_array_equal(ep.obs[-1, 10:], raw["pos"][-1].astype(np.float32))  # from next_obs[T - 1]
        np.testing.assert_array_equal(ep.acts, raw["actions"].astype(np.float32))
        np.testing.assert_array_equal(ep.rews, raw["rewards"].astype(np.float32))
        assert ep.terminal == bool(raw["dones"][-1])

    first = read_robomimic_episodes(path, obs_keys=["robot0_eef_pos"], n_demos=11)
    assert len(first) == 11
    np.testing.assert_array_equal(first[10].acts, written[10]["actions"].astype(np.float32))
    train = read_robomimic_episodes(path, obs_keys=["robot0_eef_pos"], split="train", n_demos=2)
    assert len(train) == 2
    np.testing.assert_array_equal(train[0].acts, written[10]["actions"].astype(np.float32))
    np.testing.assert_array_equal(train[1].acts, written[2]["actions"].astype(np.float32))

    # no recorded keys: load_episodes explains what to do and lists the keys
    with pytest.raises(ValueError, match=r"read_robomimic_episodes\(path, obs_keys=.*'object', 'robot0_eef_pos'"):
        load_episodes(path)


def test_errors(tmp_path):
    keys = ["robot0_eef_pos"]
    with pytest.raises(FileNotFoundError, match="not found"):
        read_robomimic_episodes(tmp_path / "missing.hdf5", keys)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_episodes(tmp_path / "missing.hdf5")
    (tmp_path / "text.hdf5").write_text("this is not an HDF5 file")
    with pytest.raises(ValueError, match=r"text\.hdf5 as an HDF5 file"):
        read_robomimic_episodes(tmp_path / "text.hdf5", keys)
    with pytest.raises(ValueError, match=r"text\.hdf5 as an HDF5 file"):
        load_episodes(tmp_path / "text.hdf5")
    with h5py.File(tmp_path / "nodata.hdf5", "w") as file:
        file.create_group("other")
    with pytest.raises(ValueError, match="no 'data' group"):
        read_robomimic_episodes(tmp_path / "nodata.hdf5", keys)

    path = tmp_path / "can.hdf5"
    write_raw_official(path)
    with pytest.raises(ValueError, match=r"'robot0_eef_quat' not found.*available keys: \['object', 'robot0_eef_pos'\]"):
        read_robomimic_episodes(path, ["robot0_eef_pos", "robot0_eef_quat"])
    with pytest.raises(ValueError, match="n_demos=13 is larger than the 12 demos"):
        read_robomimic_episodes(path, keys, n_demos=13)
    with pytest.raises(ValueError, match="n_demos=4 is larger than the 3 demos available in split 'train'"):
        read_robomimic_episodes(path, keys, n_demos=4, split="train")
    with pytest.raises(ValueError, match="at least 1"):
        read_robomimic_episodes(path, keys, n_demos=0)
    with pytest.raises(ValueError, match=r"no split 'test'; available splits: \['train', 'valid'\]"):
        read_robomimic_episodes(path, keys, split="test")
    with pytest.raises(ValueError, match="no split 'test'"):
        list_robomimic_demos(path, split="test")

    write_raw_official(tmp_path / "short.hdf5", truncate_key="robot0_eef_pos")
    with pytest.raises(ValueError, match=r"truncated or corrupt.*demo_1.*obs/robot0_eef_pos"):
        read_robomimic_episodes(tmp_path / "short.hdf5", keys)
    assert len(read_robomimic_episodes(tmp_path / "short.hdf5", keys, n_demos=1)) == 1


def test_truncated_file(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "full.hdf5"
    write_robomimic_hdf5(path, [make_demo(rng, 50) for _ in range(4)], obs_keys=["robot0_eef_pos"])
    raw = path.read_bytes()
    cut = tmp_path / "cut.hdf5"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"cut\.hdf5.*truncated/corrupt"):
        read_robomimic_episodes(cut, ["robot0_eef_pos"])
    with pytest.raises(ValueError, match=r"cut\.hdf5.*truncated/corrupt"):
        load_episodes(cut)


class TinyEnv(gym.Env):
    """Observation of size 5 (eef pos 3 + gripper 2), action of size 2."""

    observation_space = spaces.Box(-np.inf, np.inf, (5,), dtype=np.float32)
    action_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        super().reset(seed=seed)
        self._t = 0
        return np.zeros(5, dtype=np.float32), {}

    def step(self, action):
        self._t += 1
        return np.zeros(5, dtype=np.float32), 0.0, False, self._t >= 10, {}


def test_ibrl_accepts_recorded_keys_file(tmp_path):
    rng = np.random.default_rng(0)
    demos = [make_demo(rng, 5), make_demo(rng, 7, success=False)]
    path = tmp_path / "demos.hdf5"
    keys = ["robot0_eef_pos", "robot0_gripper_qpos"]
    write_robomimic_hdf5(path, demos, obs_keys=keys)
    episodes = load_episodes(path)
    assert [len(ep) for ep in episodes] == [5, 7]
    assert [ep.terminal for ep in episodes] == [True, False]
    model = IBRL("MlpPolicy", TinyEnv(), demonstrations=str(path), policy_kwargs=dict(net_arch=[8]))
    assert model.replay_buffer.n_demo_transitions == 12


def chw_demo(rng: np.random.Generator, length: int) -> dict[str, Any]:
    """A demo as recorded from a channel-first Dict env: image (3, 6, 5), proprio 9, plus robomimic's object key."""
    demo = make_demo(rng, length)
    demo["obs"] = {
        "cam_image": rng.integers(0, 256, size=(length + 1, 3, 6, 5), dtype=np.uint8),
        "object": rng.normal(size=(length + 1, 4)).astype(np.float32),
        "robot0_eef_pos": rng.normal(size=(length + 1, 3)).astype(np.float32),
        "robot0_eef_quat": rng.normal(size=(length + 1, 4)).astype(np.float32),
        "robot0_gripper_qpos": rng.normal(size=(length + 1, 2)).astype(np.float32),
    }
    demo["attrs"] = {"seed": 7 + length}
    return demo


PROPRIO = ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"]
IMAGE_SPACE = spaces.Box(0, 255, (3, 6, 5), dtype=np.uint8)
DICT_SPACE = spaces.Dict({"cam": IMAGE_SPACE, "proprio": spaces.Box(-np.inf, np.inf, (9,), dtype=np.float32)})
STATE_SPACE = spaces.Box(-np.inf, np.inf, (13,), dtype=np.float32)


def test_dict_observations_channel_first(tmp_path):
    rng = np.random.default_rng(0)
    demos = [chw_demo(rng, 4), chw_demo(rng, 3)]
    path = tmp_path / "dict.hdf5"
    keys = {"cam": ["cam_image"], "proprio": PROPRIO}
    write_robomimic_hdf5(path, demos, obs_keys=keys, channel_first=True)
    with h5py.File(path, "r") as file:  # robomimic's layout on disk: channel-last, per-demo attrs kept
        assert file["data/demo_0/obs/cam_image"].shape == (4, 6, 5, 3)
        assert int(file["data/demo_1"].attrs["seed"]) == 10
        assert bool(file["data"].attrs["sb3_ibrl_channel_first"])
    assert recorded_obs_keys(path) == keys

    for episodes in (load_episodes(path), read_robomimic_episodes(path, keys)):  # recorded: back to channel-first
        for demo, ep in zip(demos, episodes):
            assert set(ep.obs) == {"cam", "proprio"}
            np.testing.assert_array_equal(ep.obs["cam"], demo["obs"]["cam_image"])
            expected = np.concatenate([demo["obs"][key] for key in PROPRIO], axis=1)
            np.testing.assert_array_equal(ep.obs["proprio"], expected)
    raw = read_robomimic_episodes(path, {"cam": ["cam_image"]}, channel_first=False)
    assert raw[0].obs["cam"].shape == (5, 6, 5, 3)
    # a Dict file trains IBRL directly (the recorded keys give the env's Dict observations)
    assert [len(ep) for ep in load_episodes(path)] == [4, 3]


def test_read_episodes_for_env_maps_keys(tmp_path):
    rng = np.random.default_rng(1)
    demos = [chw_demo(rng, 4), chw_demo(rng, 5)]
    path = tmp_path / "all.hdf5"
    write_robomimic_hdf5(path, demos, obs_keys=["cam_image"], channel_first=True)

    # Box image: the one image key, channel-first like the space
    assert match_obs_keys(path, IMAGE_SPACE) == ["cam_image"]
    images = read_episodes_for_env(path, IMAGE_SPACE)
    np.testing.assert_array_equal(images[1].obs, demos[1]["obs"]["cam_image"])
    # ... or channel-last if the space is
    hwc = read_episodes_for_env(path, spaces.Box(0, 255, (6, 5, 3), dtype=np.uint8), n_demos=1)
    np.testing.assert_array_equal(hwc[0].obs, np.moveaxis(demos[0]["obs"]["cam_image"], 1, -1))
    # Box state: robomimic's object + proprio keys, in that order
    assert match_obs_keys(path, STATE_SPACE) == ["object", *PROPRIO]
    states = read_episodes_for_env(path, STATE_SPACE)
    expected = np.concatenate([demos[0]["obs"][key] for key in ["object", *PROPRIO]], axis=1)
    np.testing.assert_array_equal(states[0].obs, expected)
    # Dict: '<key>_image' for the camera, robomimic's proprio keys for 'proprio'
    assert match_obs_keys(path, DICT_SPACE) == {"cam": ["cam_image"], "proprio": PROPRIO}
    dicts = read_episodes_for_env(path, DICT_SPACE)
    np.testing.assert_array_equal(dicts[0].obs["cam"], demos[0]["obs"]["cam_image"])
    assert dicts[0].obs["proprio"].shape == (5, 9)
    # one low-dim key of the right size
    assert match_obs_keys(path, spaces.Box(-1, 1, (2,), dtype=np.float32)) == ["robot0_gripper_qpos"]
    # explicit keys are checked, not guessed
    assert match_obs_keys(path, spaces.Box(-1, 1, (7,), dtype=np.float32), obs_keys=["object", "robot0_eef_pos"]) == [
        "object",
        "robot0_eef_pos",
    ]


def test_read_episodes_for_env_errors(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "all.hdf5"
    write_robomimic_hdf5(path, [chw_demo(rng, 4)], channel_first=True)
    listing = r"cam_image \(6, 5, 3\) uint8.*object \(4,\) float32"
    with pytest.raises(ValueError, match=r"Cannot map the observation keys of .*all\.hdf5.*no file key.*" + listing):
        read_episodes_for_env(path, spaces.Box(-1, 1, (100,), dtype=np.float32))
    with pytest.raises(ValueError, match=r"several file keys fit .*\['object', 'robot0_eef_quat'\]"):
        match_obs_keys(path, spaces.Box(-1, 1, (4,), dtype=np.float32))
    with pytest.raises(ValueError, match=r"obs_keys=\['object'\] do not give the shapes"):
        read_episodes_for_env(path, STATE_SPACE, obs_keys=["object"])
    with pytest.raises(ValueError, match=r"Dict entry 'depth'"):
        read_episodes_for_env(path, spaces.Dict({"depth": spaces.Box(0, 255, (1, 6, 5), dtype=np.uint8)}))
    with pytest.raises(FileNotFoundError, match="not found"):
        read_episodes_for_env(tmp_path / "missing.hdf5", STATE_SPACE)
