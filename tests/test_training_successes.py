"""benchmarks/training_successes.py: successful training episodes per window, from a saved replay buffer."""

import csv

import numpy as np
import pytest
from benchmark_helpers import load_benchmark
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.save_util import save_to_pkl

from sb3_ibrl.data.nstep_buffer import NStepBuffer


@pytest.fixture(scope="module")
def script():
    return load_benchmark("training_successes")


def test_episodes_are_placed_by_their_last_step(script):
    ends = [(3, True), (5, False), (8, True)]  # (last row, success)
    rows = script.window_counts(ends, 10, 4)
    assert [(r["first_step"], r["last_step"], r["episodes"], r["successes"]) for r in rows] == [
        (0, 3, 1, 1),
        (4, 7, 1, 0),
        (8, 9, 1, 1),
    ]


def buffer_with(episodes, size, open_steps=0):
    """An sb3-ibrl buffer holding ``episodes`` (length, success), then ``open_steps`` of an episode not ended."""
    space = spaces.Box(-1, 1, (2,), np.float32)
    buffer = NStepBuffer(size, space, space, device="cpu", storage_device=None)
    obs = np.zeros((1, 2), np.float32)
    for length, success in [*episodes, (open_steps, None)]:
        for step in range(length):
            last = step == length - 1 and success is not None
            reward = np.array([1.0 if (last and success) else 0.0])
            infos = [{"TimeLimit.truncated": last and not success}]
            buffer.add(obs, obs, obs, reward, np.array([last]), infos)
    return buffer


def test_the_counts_of_a_saved_run(script, tmp_path):
    run = tmp_path / "Lift-state-v0" / "seed_1" / "ibrl"
    run.mkdir(parents=True)
    buffer = buffer_with([(3, False), (2, True), (4, True), (3, False)], 100, open_steps=2)  # 14 steps
    assert script.episode_ends(buffer) == [(2, False), (4, True), (8, True), (11, False)]  # the open episode is left out
    save_to_pkl(str(run / "buffer.pkl"), buffer)
    rows = script.main(["--out", str(tmp_path), "--seeds", "1", "--window", "5"])
    assert [(r["seed"], r["episodes"], r["successes"]) for r in rows] == [(1, 2, 1), (1, 1, 1), (1, 1, 0)]
    with open(tmp_path / "Lift-state-v0" / "training_successes.csv", newline="") as file:
        assert [row["successes"] for row in csv.DictReader(file)] == ["1", "1", "0"]
    # another seed counted later: the first seed's rows stay (its buffer may be gone by then), in seed order
    other = tmp_path / "Lift-state-v0" / "seed_0" / "ibrl"
    other.mkdir(parents=True)
    save_to_pkl(str(other / "buffer.pkl"), buffer_with([(4, True)], 100))
    (run / "buffer.pkl").unlink()
    script.main(["--out", str(tmp_path), "--seeds", "0", "--window", "5"])
    with open(tmp_path / "Lift-state-v0" / "training_successes.csv", newline="") as file:
        pairs = [(row["seed"], row["successes"]) for row in csv.DictReader(file)]
    assert pairs == [("0", "1"), ("1", "1"), ("1", "1"), ("1", "0")]
    # a wrapped buffer has lost its oldest episodes: refused, as are another kind of buffer and a missing one
    save_to_pkl(str(run / "buffer.pkl"), buffer_with([(3, False), (2, True), (4, True)], 5))
    with pytest.raises(ValueError, match="wrapped around"):
        script.main(["--out", str(tmp_path), "--seeds", "1"])
    save_to_pkl(str(run / "buffer.pkl"), ReplayBuffer(10, spaces.Box(-1, 1, (2,)), spaces.Box(-1, 1, (2,)), device="cpu"))
    with pytest.raises(ValueError, match="holds a ReplayBuffer, not an sb3-ibrl replay buffer"):
        script.main(["--out", str(tmp_path), "--seeds", "1"])
    with pytest.raises(FileNotFoundError, match=r"buffer\.pkl not found"):
        script.main(["--out", str(tmp_path), "--seeds", "2"])
