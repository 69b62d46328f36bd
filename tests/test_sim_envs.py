"""
The paper's simulated tasks (robosuite and Meta-World) as gymnasium ids: spaces, images, rewards, episode
ends, seeding. Tests of a simulator are skipped when it is not installed, pixel tests when no OpenGL
backend works.
"""

import importlib.util
import os
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from sb3_ibrl.envs import (
    METAWORLD_ENV_IDS,
    METAWORLD_TASKS,
    ROBOMIMIC_TASKS,
    ROBOSUITE_ENV_IDS,
    MetaWorldEnv,
    RobosuiteEnv,
)
from sb3_ibrl.envs.rendering import select_gl_backend

HAS_ROBOSUITE = importlib.util.find_spec("robosuite") is not None
HAS_METAWORLD = importlib.util.find_spec("metaworld") is not None
try:  # chosen before any simulator imports mujoco (the reference renders below use mujoco's default context)
    GL_BACKEND = select_gl_backend()
except RuntimeError:
    GL_BACKEND = None

# Size of the flat state vector (info["state"], and the state-mode observation)
STATE_DIMS = {"Lift": 19, "Can": 23, "Square": 23, **{name: 39 for name in METAWORLD_TASKS}}


def _marks(env_id: str) -> list:
    simulator_ok = HAS_ROBOSUITE if env_id in ROBOSUITE_ENV_IDS else HAS_METAWORLD
    marks = [pytest.mark.skipif(not simulator_ok, reason="simulator not installed")]
    if "pixel" in env_id:
        marks.append(pytest.mark.skipif(GL_BACKEND is None, reason="no OpenGL backend for offscreen rendering"))
    return marks


ALL_IDS = [pytest.param(env_id, marks=_marks(env_id)) for env_id in [*ROBOSUITE_ENV_IDS, *METAWORLD_ENV_IDS]]
PIXEL_IDS = [param for param in ALL_IDS if "pixel" in param.values[0]]
needs_robosuite = pytest.mark.skipif(not HAS_ROBOSUITE, reason="robosuite not installed")
needs_metaworld = pytest.mark.skipif(not HAS_METAWORLD, reason="metaworld not installed")
needs_gl = pytest.mark.skipif(GL_BACKEND is None, reason="no OpenGL backend for offscreen rendering")


def _task_and_mode(env_id: str) -> tuple[str, str]:
    name, mode, _ = env_id.split("-")
    return name, mode


@pytest.fixture(scope="module", params=ALL_IDS)
def made_env(request):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the passive checker's notes on unbounded / degenerate Box bounds
        env = gym.make(request.param, render_mode="rgb_array")
    yield request.param, env
    env.close()


def _image(env_id: str, obs) -> np.ndarray:
    """The (3, H, W) image of a pixel observation."""
    if isinstance(obs, dict):
        camera = ROBOMIMIC_TASKS[_task_and_mode(env_id)[0]].camera
        return obs[camera]
    return obs


def test_registration_imports_no_simulator():
    code = "import sys, sb3_ibrl; print(sorted(m for m in ('robosuite', 'metaworld', 'mujoco', 'OpenGL') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    assert len(ROBOSUITE_ENV_IDS) == 9 and len(METAWORLD_ENV_IDS) == 8
    for env_id in [*ROBOSUITE_ENV_IDS, *METAWORLD_ENV_IDS]:
        name, mode = _task_and_mode(env_id)
        spec = gym.spec(env_id)
        assert spec.kwargs["obs_mode"] == mode
        expected_steps = ROBOMIMIC_TASKS[name].horizon if name in ROBOMIMIC_TASKS else 100
        assert spec.max_episode_steps == expected_steps
    assert gym.spec("Can-pixel-v0").max_episode_steps == 200 and gym.spec("Square-pixel-v0").max_episode_steps == 300


def test_unknown_obs_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="obs_mode"):
        RobosuiteEnv("Lift", obs_mode="depth")
    with pytest.raises(ValueError, match="obs_mode"):
        MetaWorldEnv("assembly-v3", obs_mode="pixelproprio")
    with pytest.raises(ValueError, match="obs_mode"):
        gym.make("Square-state-v0", obs_mode="rgbd")


def test_missing_simulator_names_the_extra(monkeypatch):
    for module in ("robosuite", "metaworld", "metaworld.env_dict"):
        monkeypatch.setitem(sys.modules, module, None)  # makes `import <module>` fail
    with pytest.raises(ImportError, match=r"sb3-ibrl\[robosuite\]"):
        RobosuiteEnv("Lift", obs_mode="state")
    with pytest.raises(ImportError, match=r"sb3-ibrl\[metaworld\]"):
        MetaWorldEnv("assembly-v3", obs_mode="state")


def test_gl_backend_selection(monkeypatch):
    from sb3_ibrl.envs import rendering

    probed = []
    monkeypatch.setattr(rendering, "probe_gl_backend", lambda backend: probed.append(backend) or (False, "no library"))
    monkeypatch.setattr(rendering, "_probed_backend", None)
    monkeypatch.setenv("MUJOCO_GL", "osmesa")  # a user's choice is kept, without probing
    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    assert rendering.select_gl_backend() == "osmesa" and os.environ["PYOPENGL_PLATFORM"] == "osmesa" and probed == []
    monkeypatch.delenv("MUJOCO_GL")
    with pytest.raises(RuntimeError, match="apt-get install libegl1 libegl-mesa0") as error:
        rendering.select_gl_backend()
    assert "libosmesa6" in str(error.value) and probed == ["egl", "osmesa"]
    assert "MUJOCO_GL" not in os.environ
    monkeypatch.setenv("MUJOCO_GL", "disable")
    with pytest.raises(RuntimeError, match="disables rendering"):
        rendering.select_gl_backend()


@pytest.mark.skipif(GL_BACKEND not in ("egl", "osmesa"), reason="no EGL or OSMesa backend")
def test_probe_finds_the_working_backend():
    from sb3_ibrl.envs.rendering import probe_gl_backend

    assert probe_gl_backend(GL_BACKEND) == (True, "")


def test_env_checker(made_env):
    _, env = made_env
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped, skip_render_check=True)


def test_spaces_rewards_and_info(made_env):
    env_id, env = made_env
    name, mode = _task_and_mode(env_id)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, shape=(7,) if name in ROBOMIMIC_TASKS else (4,), dtype=np.float32)
    obs, info = env.reset(seed=0)
    assert info["is_success"] is False
    assert info["state"].dtype == np.float32 and info["state"].shape == (STATE_DIMS[name],)
    if mode == "state":
        assert env.observation_space.shape == (STATE_DIMS[name],) and env.observation_space.dtype == np.float32
        np.testing.assert_array_equal(obs, info["state"])
    else:
        image_space = env.observation_space[ROBOMIMIC_TASKS[name].camera] if mode == "pixelproprio" else env.observation_space
        assert image_space.shape == (3, 96, 96) and image_space.dtype == np.uint8
    if mode == "pixelproprio":
        assert env.observation_space["proprio"].shape == (9,) and env.observation_space["proprio"].dtype == np.float32
        np.testing.assert_array_equal(obs["proprio"], info["state"][-9:])
    env.action_space.seed(0)
    for _ in range(3):
        assert env.observation_space.contains(obs)
        if mode != "state":
            image = _image(env_id, obs)
            assert image.std() > 10 and len(np.unique(image)) > 20, "blank image"
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert isinstance(reward, float) and reward in (0.0, 1.0)
        assert isinstance(terminated, bool) and isinstance(truncated, bool)
        assert info["is_success"] is (reward == 1.0) and terminated is info["is_success"]
        assert info["state"].dtype == np.float32 and info["state"].shape == (STATE_DIMS[name],)
    frame = env.render()
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8 and frame.std() > 10


def test_seeding_is_deterministic(made_env):
    _, env = made_env
    actions = np.random.default_rng(0).uniform(-1, 1, size=(3, *env.action_space.shape)).astype(np.float32)
    runs = []
    for seed in (3, 3, 4):
        obs, info = env.reset(seed=seed)
        states = [info["state"]]
        for action in actions:
            obs, _, _, _, info = env.step(action)
            states.append(info["state"])
        runs.append((obs, np.stack(states)))
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    if isinstance(runs[0][0], dict):
        for key in runs[0][0]:
            np.testing.assert_array_equal(runs[0][0][key], runs[1][0][key])
    else:
        np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert not np.array_equal(runs[0][1][0], runs[2][1][0]), "another seed should place the objects elsewhere"


STATE_IDS = [param for param in ALL_IDS if "-state-" in param.values[0]]


def _states_after(env: gym.Env, seed: int, actions: np.ndarray) -> np.ndarray:
    _, info = env.reset(seed=seed)
    states = [info["state"]]
    for action in actions:
        states.append(env.step(action)[4]["state"])
    return np.stack(states)


@pytest.mark.parametrize("env_id", STATE_IDS)
def test_two_instances_start_the_same_episode(env_id):
    """``reset(seed=s)`` gives the same episode in another instance (another process): what robosuite draws when the
    model is built (Lift's cube size) is seeded too."""
    actions = np.random.default_rng(0).uniform(-1, 1, size=(3, 7 if env_id in ROBOSUITE_ENV_IDS else 4)).astype(np.float32)
    runs = []
    for _ in range(2):
        env = gym.make(env_id)
        runs.append(_states_after(env, 3, actions))
        env.close()
    np.testing.assert_array_equal(runs[0], runs[1])


@needs_robosuite
def test_lift_model_seed():
    """``model_seed`` sets Lift's cube size; ``None`` draws it per instance (robosuite's own behaviour)."""

    def cube_size(**kwargs) -> float:
        env = gym.make("Lift-state-v0", **kwargs)
        size = float(env.unwrapped.unwrapped_sim.cube.size[0])
        env.close()
        return size

    sizes = [cube_size(), cube_size(), cube_size(model_seed=1), cube_size(model_seed=None), cube_size(model_seed=None)]
    assert all(0.020 <= size <= 0.022 for size in sizes)
    assert sizes[0] == sizes[1] and sizes[0] != sizes[2], "model_seed (default 0) should set the size"
    assert sizes[3] != sizes[4], "model_seed=None should draw a size per instance"
    with pytest.raises(ValueError, match="model_seed"):
        gym.make("Lift-state-v0", model_seed="zero")


@needs_robosuite
def test_unseeded_resets_differ_between_instances():
    """With the model seeded, episodes reset without a seed are still random per instance: ``n_envs`` workers
    (SB3's ``VecEnv`` resets them without seeds unless told) must not play the same episodes."""
    starts = []
    for _ in range(2):
        env = gym.make("Lift-state-v0")
        starts.append(env.reset()[1]["state"])
        env.close()
    assert not np.array_equal(starts[0], starts[1])


@pytest.mark.parametrize("made_env", PIXEL_IDS, indirect=True)
def test_images_are_upright(made_env, monkeypatch):
    """Compare with mujoco's own renderer (upright for a normally mounted camera) of the same state."""
    env_id, env = made_env
    name, _ = _task_and_mode(env_id)
    import mujoco

    if GL_BACKEND in ("egl", "osmesa"):  # mujoco picked its default context when first imported
        monkeypatch.setattr(mujoco.gl_context, "GLContext", importlib.import_module(f"mujoco.{GL_BACKEND}").GLContext)

    obs, _ = env.reset(seed=0)
    image = _image(env_id, obs).transpose(1, 2, 0).astype(np.int16)
    sim = env.unwrapped.unwrapped_sim
    if name in ROBOMIMIC_TASKS:
        model, data, camera, groups = sim.sim.model._model, sim.sim.data._data, env.unwrapped.camera, (1,)
    else:
        model, data, camera, groups = sim.model, sim.data, env.unwrapped.camera, (0, 1, 2)
    option = mujoco.MjvOption()
    option.geomgroup[:] = [int(group in groups) for group in range(len(option.geomgroup))]
    with mujoco.Renderer(model, 96, 96) as renderer:
        renderer.update_scene(data, camera=camera, scene_option=option)
        reference = renderer.render().astype(np.int16)
    camera_up = data.cam_xmat[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)].reshape(3, 3)[:, 1]
    if name in ROBOMIMIC_TASKS:
        assert camera != "agentview" or camera_up[2] > 0
    else:  # corner2 is mounted upside down: the upright image is mujoco's rotated by 180 degrees
        assert camera_up[2] < 0
        reference = reference[::-1, ::-1]
    difference = np.abs(image - reference).mean()
    assert difference < 8, difference
    assert difference < 0.5 * np.abs(image - reference[::-1]).mean()
    assert difference <= 0.5 * np.abs(image - reference[:, ::-1]).mean()


@needs_metaworld
@needs_gl
def test_metaworld_scene_layout():
    """Independent of any renderer: the table lies in the lower half and the robot's base on the left."""
    env = MetaWorldEnv("assembly-v3", obs_mode="pixel")
    obs, _ = env.reset(seed=0)
    red, green, blue = obs.astype(np.int16)
    rows, cols = np.indices(red.shape)
    wood = (red > 90) & (red - blue > 40) & (green > 50) & (green - blue > 15)
    robot = (red > 110) & (green < 60) & (blue < 60)
    assert wood.sum() > 500 and robot.sum() > 300
    assert rows[wood].mean() > 48, "the table should be in the lower half"
    assert cols[robot].mean() < 48, "the robot (seen from its right-front corner) should be on the left"
    env.close()


def test_truncation_at_the_horizon():
    ids = [env_id for env_id, ok in (("Lift-state-v0", HAS_ROBOSUITE), ("Assembly-state-v0", HAS_METAWORLD)) if ok]
    if not ids:
        pytest.skip("no simulator installed")
    for env_id in ids:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            env = gym.make(env_id, max_episode_steps=3)
        env.reset(seed=0)
        ends = [env.step(np.zeros(env.action_space.shape, dtype=np.float32))[2:4] for _ in range(3)]
        assert ends == [(False, False), (False, False), (False, True)]
        env.close()


@needs_robosuite
def test_robosuite_success_terminates(monkeypatch):
    env = RobosuiteEnv("Lift", obs_mode="state")
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(np.zeros(7, dtype=np.float32))
    assert (reward, terminated, info["is_success"]) == (0.0, False, False)
    monkeypatch.setattr(env.unwrapped_sim, "_check_success", lambda: True)
    _, reward, terminated, truncated, info = env.step(np.zeros(7, dtype=np.float32))
    assert (reward, terminated, truncated, info["is_success"]) == (1.0, True, False, True)
    env.close()


@needs_metaworld
def test_metaworld_success_stops_the_action_repeat(monkeypatch):
    env = MetaWorldEnv("box-close-v3", obs_mode="state")
    env.reset(seed=0)
    sim = env.unwrapped_sim
    env.step(np.zeros(4, dtype=np.float32))
    assert sim.curr_path_length == 2  # action repeat 2
    evaluate = sim.evaluate_state
    monkeypatch.setattr(sim, "evaluate_state", lambda obs, action: (evaluate(obs, action)[0], {"success": 1.0}))
    _, reward, terminated, truncated, info = env.step(np.zeros(4, dtype=np.float32))
    assert (reward, terminated, truncated, info["is_success"]) == (1.0, True, False, True)
    assert sim.curr_path_length == 3  # stopped at the inner step that succeeded
    env.close()


@needs_metaworld
@pytest.mark.filterwarnings("ignore:Constant")  # Meta-World's experts warn about their own gains
@pytest.mark.parametrize("name", sorted(METAWORLD_TASKS))
def test_metaworld_experts_succeed(name):
    """The scripted experts solve each task through the wrapper (and info["state"] is what they need)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make(f"{name}-state-v0")
    expert = env.unwrapped.make_expert()
    for seed in range(2):
        _, info = env.reset(seed=seed)
        for _ in range(100):
            _, reward, terminated, truncated, info = env.step(expert.get_action(info["state"]))
            if terminated or truncated:
                break
        assert terminated and reward == 1.0 and info["is_success"]
    env.close()


@pytest.mark.skipif(not (HAS_ROBOSUITE and HAS_METAWORLD), reason="simulators not installed")
def test_state_modes_load_no_gl_library():
    code = (
        "import os, sys, gymnasium as gym, sb3_ibrl\n"
        "for env_id in ('Lift-state-v0', 'Assembly-state-v0'):\n"
        "    env = gym.make(env_id); env.reset(seed=0); env.step(env.action_space.sample()); env.close()\n"
        "print('OpenGL' in sys.modules, os.environ.get('MUJOCO_GL'))\n"
    )
    environment = {key: value for key, value in os.environ.items() if key not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False None"
