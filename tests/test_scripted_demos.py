"""
Scripted demonstrations (sb3_ibrl.demos): the experts succeed, the robomimic HDF5 files read back as the env's
observations (Box state, Box image, Dict), the replay check reproduces them, and the command line works and fails
clearly. Tests of a simulator are skipped when it is not installed, pixel tests when no OpenGL backend works.
"""

import importlib.util
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from sb3_ibrl import IBRL
from sb3_ibrl.data.demo_files import load_episodes
from sb3_ibrl.data.episodes import check_episodes
from sb3_ibrl.data.obs_keys import read_episodes_for_env
from sb3_ibrl.demos import make_scripted_env, make_scripted_expert, record_demos, replay_demos, save_demos
from sb3_ibrl.demos.__main__ import main as demos_main
from sb3_ibrl.demos.recording import play_episode
from sb3_ibrl.envs.rendering import select_gl_backend

HAS_ROBOSUITE = importlib.util.find_spec("robosuite") is not None
HAS_METAWORLD = importlib.util.find_spec("metaworld") is not None
try:
    GL_BACKEND = select_gl_backend()
except RuntimeError:
    GL_BACKEND = None
needs_robosuite = pytest.mark.skipif(not HAS_ROBOSUITE, reason="robosuite not installed")
needs_metaworld = pytest.mark.skipif(not HAS_METAWORLD, reason="metaworld not installed")
needs_gl = pytest.mark.skipif(GL_BACKEND is None, reason="no OpenGL backend for offscreen rendering")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def assert_same_obs(recorded, read) -> None:
    if isinstance(recorded, dict):
        assert set(recorded) == set(read)
        for key in recorded:
            assert read[key].dtype == recorded[key].dtype
            np.testing.assert_array_equal(read[key], recorded[key])
    else:
        assert read.dtype == recorded.dtype
        np.testing.assert_array_equal(read, recorded)


def record_and_save(env_id: str, n_demos: int, path) -> tuple:
    env = make_scripted_env(env_id)
    demos, attempts = record_demos(env, n_demos, seed=0)
    save_demos(path, env, demos)
    return env, demos, attempts


def check_file(path, env, demos) -> None:
    """The file reads back, through both readers, as exactly the recorded observations of the env."""
    for episodes in (load_episodes(path), read_episodes_for_env(path, env.observation_space)):
        check_episodes(episodes, env.observation_space, env.action_space)
        assert len(episodes) == len(demos)
        for demo, episode in zip(demos, episodes):
            assert_same_obs(demo.episode.obs, episode.obs)
            np.testing.assert_array_equal(episode.acts, demo.episode.acts)
            assert episode.terminal and episode.rews[-1] == 1.0 and episode.rews[:-1].sum() == 0.0


@needs_metaworld
def test_metaworld_state_demos_round_trip_and_replay(tmp_path):
    path = tmp_path / "assembly.hdf5"
    env, demos, attempts = record_and_save("Assembly-state-v0", 3, path)
    assert attempts == 3  # the expert succeeds from seeds 0, 1, 2
    assert all(demo.episode.terminal and len(demo.episode) < 100 for demo in demos)
    assert [demo.seed for demo in demos] == [0, 1, 2]
    check_file(path, env, demos)
    with h5py.File(path, "r") as file:
        data = file["data"]
        assert json.loads(data.attrs["env_args"])["gym_id"] == "Assembly-state-v0"
        assert json.loads(data.attrs["sb3_ibrl_obs_keys"]) == ["state"]
        assert [int(data[f"demo_{k}"].attrs["seed"]) for k in range(3)] == [0, 1, 2]
        assert int(data.attrs["total"]) == sum(len(demo.episode) for demo in demos)

    report = replay_demos(path)
    assert report.successes == [True, True, True]
    assert report.lengths == [(len(demo.episode), len(demo.episode)) for demo in demos]
    assert max(report.max_state_error) == 0.0  # Meta-World replays exactly

    # the file prefills IBRL's buffer as it is
    model = IBRL("MlpPolicy", env, demonstrations=str(path), policy_kwargs=dict(net_arch=[16], n_critics=2))
    assert model.replay_buffer.n_demo_transitions == sum(len(demo.episode) for demo in demos)


@needs_metaworld
@needs_gl
def test_metaworld_pixel_demos_round_trip(tmp_path):
    path = tmp_path / "assembly_pixel.hdf5"
    env, demos, _ = record_and_save("Assembly-pixel-v0", 1, path)
    assert demos[0].episode.obs.shape[1:] == (3, 96, 96)
    check_file(path, env, demos)
    with h5py.File(path, "r") as file:
        assert file["data/demo_0/obs/corner2_image"].shape[1:] == (96, 96, 3)  # robomimic's channel-last on disk
        assert file["data/demo_0/obs/state"].shape[1:] == (39,)  # the state vector is stored in pixel files too
    state_env = make_scripted_env("Assembly-state-v0")  # ... so a pixel file also gives state demos
    states = read_episodes_for_env(path, state_env.observation_space)
    np.testing.assert_array_equal(states[0].obs, demos[0].states)
    # replaying the pixel file in state mode (faster) reproduces it
    assert replay_demos(path, "Assembly-state-v0").successes == [True]


@needs_robosuite
@pytest.mark.parametrize("task, n_episodes, max_length", [("Lift", 3, 80), ("Can", 2, 180), ("Square", 1, 260)])
def test_robosuite_experts_succeed(task, n_episodes, max_length):
    env = make_scripted_env(f"{task}-state-v0")
    expert = make_scripted_expert(env)
    results = [play_episode(env, expert, seed) for seed in range(n_episodes)]
    assert [success for _, success in results] == [True] * n_episodes
    assert all(len(demo.episode) < max_length for demo, _ in results)  # Lift ~40, Can ~135, Square ~185 steps
    assert all(demo.sim_states is not None and len(demo.sim_states) == len(demo.episode) for demo, _ in results)


@needs_robosuite
@needs_gl
def test_robosuite_pixelproprio_dict_round_trip(tmp_path):
    path = tmp_path / "lift.hdf5"
    env, demos, _ = record_and_save("Lift-pixelproprio-v0", 1, path)
    camera = env.unwrapped.camera
    assert set(demos[0].episode.obs) == {camera, "proprio"}
    check_file(path, env, demos)
    with h5py.File(path, "r") as file:
        demo = file["data/demo_0"]
        assert sorted(demo["obs"]) == sorted(
            [f"{camera}_image", "object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"]
        )
        assert demo["states"].shape[0] == len(demos[0].episode)  # robomimic's MuJoCo states
    # the BC command line's loader reads it as the env's Dict observations
    from sb3_ibrl.il.cli import load_demos

    check_episodes(load_demos(str(path)), env.observation_space, env.action_space)
    report = replay_demos(path, "Lift-state-v0")
    assert report.successes == [True]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "sb3_ibrl.demos", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=ROOT, env=env)


@needs_metaworld
def test_cli_record_and_replay(tmp_path):
    path = tmp_path / "sub" / "coffee.hdf5"
    result = run_cli("--env", "CoffeePush-state-v0", "--n", "2", "--out", str(path), "--seed", "5")
    assert result.returncode == 0, result.stderr
    assert "CoffeePush-state-v0: 2 successful demos" in result.stdout
    assert len(load_episodes(path)) == 2
    with h5py.File(path, "r") as file:
        assert [int(file[f"data/demo_{k}"].attrs["seed"]) for k in range(2)] == [5, 6]
    result = run_cli("replay", "--file", str(path), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "2/2 demos still succeed" in result.stdout


@needs_metaworld
def test_cli_errors(tmp_path, capsys):
    def error_of(*args: str) -> str:
        with pytest.raises(SystemExit) as exit_info:
            demos_main(list(args))
        assert exit_info.value.code == 2
        return capsys.readouterr().err

    out = str(tmp_path / "x.hdf5")
    assert "No scripted expert for env 'PointGoal-v0'" in error_of("--env", "PointGoal-v0", "--out", out)
    assert "Assembly-state-v0" in error_of("--env", "Nope-v0", "--out", out)  # the choices are listed
    assert "--n must be at least 1, got 0" in error_of("--env", "Assembly-state-v0", "--n", "0", "--out", out)
    assert "--max-attempts (1) must be at least --n (2)" in error_of(
        "--env", "Assembly-state-v0", "--n", "2", "--max-attempts", "1", "--out", out
    )
    assert "--env and --out are required" in error_of("--env", "Assembly-state-v0")
    assert "Demo file not found" in error_of("replay", "--file", str(tmp_path / "missing.hdf5"))

    path = tmp_path / "box.hdf5"
    assert demos_main(["--env", "BoxClose-state-v0", "--n", "1", "--out", str(path), "--no-progress"]) == 0
    assert "holds demos of BoxClose-state-v0, which cannot be replayed in Assembly-state-v0" in error_of(
        "replay", "--file", str(path), "--env", "Assembly-state-v0"
    )
    with h5py.File(path, "a") as file:  # a robomimic file that does not say which env it comes from
        file["data"].attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1, "env_kwargs": {}})
    assert "does not record its env" in error_of("replay", "--file", str(path))
    assert demos_main(["--list"]) == 0 and "StickPull-pixel-v0" in capsys.readouterr().out


@needs_metaworld
def test_metaworld_quickstart_smoke(tmp_path):
    """The README's Meta-World main job runs end to end (a tiny budget: the numbers are not checked)."""
    out = tmp_path / "run"
    command = [sys.executable, os.path.join(ROOT, "examples", "metaworld_quickstart.py"), "--steps", "1100"]
    command += ["--bc-batches", "20", "--eval-every", "1100", "--eval-episodes", "1", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr
    assert "[2/3] BC" in result.stdout and "Done in" in result.stdout
    for name in ("demos.hdf5", "bc_policy.zip", "ibrl_model.zip", "success_curve.csv"):
        assert (out / name).exists(), name
    rows = (out / "success_curve.csv").read_text().strip().splitlines()
    assert rows[0] == "env_steps,success_rate,mean_episode_length" and rows[1].startswith("1100,")
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    assert (out / "success_curve.png").exists() == has_matplotlib
    assert has_matplotlib or 'pip install "sb3-ibrl[plot]"' in result.stdout
