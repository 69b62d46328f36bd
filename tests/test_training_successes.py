"""benchmarks/training_successes.py: successful training episodes per window, from a saved replay buffer."""

import csv
import importlib.util
import os

import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.save_util import save_to_pkl

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "training_successes.py")


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("training_successes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_episodes_are_cut_at_dones_and_placed_by_their_last_step(script):
    rewards = np.array([0, 0, 0, 1, 0, 0, 0, 0, 1, 0], dtype=np.float32)
    dones = np.array([0, 0, 0, 1, 0, 1, 0, 0, 1, 0], dtype=np.float32)  # the last episode has not ended
    ends = script.episode_ends(rewards, dones)
    assert ends == [(3, True), (5, False), (8, True)]
    rows = script.window_counts(ends, 0, 10, 4)
    assert [(r["first_step"], r["last_step"], r["episodes"], r["successes"]) for r in rows] == [
        (0, 3, 1, 1),
        (4, 7, 1, 0),
        (8, 9, 1, 1),
    ]


def buffer_with(episodes, size):
    space = spaces.Box(-1, 1, (2,), np.float32)
    buffer = ReplayBuffer(size, space, space, device="cpu")
    for length, success in episodes:
        for step in range(length):
            last = step == length - 1
            reward = np.array([1.0 if (last and success) else 0.0])
            infos = [{"TimeLimit.truncated": last and not success}]
            obs = np.zeros((1, 2), np.float32)
            buffer.add(obs, obs, obs, reward, np.array([last]), infos)
    return buffer


def test_the_counts_of_a_saved_run(script, tmp_path):
    run = tmp_path / "Lift-state-v0" / "seed_1" / "ibrl"
    run.mkdir(parents=True)
    save_to_pkl(str(run / "buffer.pkl"), buffer_with([(3, False), (2, True), (4, True), (3, False)], 100))
    rows = script.main(["--out", str(tmp_path), "--seeds", "1", "--window", "5"])
    assert [(r["seed"], r["episodes"], r["successes"]) for r in rows] == [(1, 2, 1), (1, 1, 1), (1, 1, 0)]
    with open(tmp_path / "Lift-state-v0" / "training_successes.csv", newline="") as file:
        assert [row["successes"] for row in csv.DictReader(file)] == ["1", "1", "0"]
    # a wrapped buffer has lost its oldest episodes: refused, as a missing buffer is
    save_to_pkl(str(run / "buffer.pkl"), buffer_with([(3, False), (2, True), (4, True)], 5))
    with pytest.raises(ValueError, match="wrapped around"):
        script.main(["--out", str(tmp_path), "--seeds", "1"])
    with pytest.raises(FileNotFoundError, match=r"buffer\.pkl not found"):
        script.main(["--out", str(tmp_path), "--seeds", "2"])
