"""
The robomimic tasks of the IBRL paper, simulated by robosuite 1.5 directly (no ``robomimic`` dependency):
``Lift``, ``Can`` (robosuite's ``PickPlaceCan``) and ``Square`` (``NutAssemblySquare``).

Panda arm with its default gripper, controlled by robosuite's default ``OSC_POSE`` part controller
(delta end-effector pose, 6 dims, plus 1 gripper dim; actions in ``[-1, 1]^7``), at 20 Hz. The reward is
sparse: ``1.0`` on the step that succeeds (robosuite's ``_check_success()``), ``0.0`` otherwise, and
that step ends the episode (``terminated=True``). ``info["is_success"]`` is set on every step and
``info["state"]`` always holds the flat state observation (so scripted experts can drive pixel envs).
The time limit is the gymnasium registration's ``max_episode_steps`` (``TimeLimit``, a truncation):
robosuite runs with ``ignore_done=True`` and never ends an episode by itself.

Horizons (:data:`ROBOMIMIC_TASKS`): Can 200 and Square 300 as in the authors' release. Lift uses 200:
humans need about 48 steps and the paper's BC policy about 78, so 200 leaves a wide margin while
keeping failed episodes short (robomimic's own 400 doubles the cost of failures for no benefit).

Observation modes (``obs_mode``):

- ``"state"``: ``float32`` vector, the object keys of the task (robomimic's low-dim ``object`` layout)
  followed by the proprioception ``robot0_eef_pos`` (3), ``robot0_eef_quat`` (4),
  ``robot0_gripper_qpos`` (2). Sizes: Lift 19, Can 23, Square 23. Unbounded (``-inf``/``inf``) Box.
- ``"pixel"``: ``uint8`` image ``(3, 96, 96)``, channel-first, upright, from the task camera
  (``robot0_eye_in_hand`` for Lift and Can, ``agentview`` for Square).
- ``"pixelproprio"``: ``Dict({<camera>: (3, 96, 96) uint8, "proprio": (9,) float32})``.

Seeding: ``reset(seed=s)`` reseeds robosuite's generator (object placement, initial joint noise). What robosuite draws
once, when the env is built (Lift's cube size, 2.0-2.2 cm), comes from ``model_seed`` (default 0), so that every
instance of a task is the same and ``reset(seed=s)`` starts the same episode in every process (scripted demos,
evaluations). ``model_seed=None`` draws it at random per instance, as robosuite does. Episodes reset without a seed are
placed at random, differently in every instance, whatever ``model_seed``.
"""

import os
import sys
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np
from gymnasium import spaces

from sb3_ibrl.envs.rendering import CameraRenderer, RenderedSimEnv, select_gl_backend

ROBOSUITE_OBS_MODES = ("state", "pixel", "pixelproprio")
PROPRIO_KEYS = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")
ROBOSUITE_INSTALL_HINT = 'robosuite is not installed: `pip install "sb3-ibrl[robosuite]"`'

ObsType = Union[np.ndarray, dict[str, np.ndarray]]


@dataclass(frozen=True)
class RobomimicTask:
    """
    Settings of one robomimic task.

    :param robosuite_name: robosuite environment name
    :param horizon: episode time limit (control steps)
    :param camera: camera of the pixel observations
    :param object_keys: robosuite observation keys of the object state, in robomimic's ``object`` order
    """

    robosuite_name: str
    horizon: int
    camera: str
    object_keys: tuple[str, ...]


ROBOMIMIC_TASKS: dict[str, RobomimicTask] = {
    "Lift": RobomimicTask("Lift", 200, "robot0_eye_in_hand", ("cube_pos", "cube_quat", "gripper_to_cube_pos")),
    "Can": RobomimicTask(
        "PickPlaceCan", 200, "robot0_eye_in_hand", ("Can_pos", "Can_quat", "Can_to_robot0_eef_pos", "Can_to_robot0_eef_quat")
    ),
    "Square": RobomimicTask(
        "NutAssemblySquare",
        300,
        "agentview",
        ("SquareNut_pos", "SquareNut_quat", "SquareNut_to_robot0_eef_pos", "SquareNut_to_robot0_eef_quat"),
    ),
}


def import_robosuite(needs_rendering: bool) -> Any:
    """
    Import robosuite, with an OpenGL backend chosen first when images are needed.

    robosuite forces ``MUJOCO_GL=egl`` at import unless it is ``osmesa`` or ``glx``; for state-only use
    (no rendering at all) ``MUJOCO_GL`` is left as the user had it, so that no GL library is required.

    :param needs_rendering: whether the env renders images
    :return: the ``robosuite`` module
    :raises ImportError: when robosuite is missing, naming the extra to install
    """
    if needs_rendering:
        select_gl_backend()
    unset = "MUJOCO_GL" not in os.environ and "robosuite" not in sys.modules
    if unset:
        os.environ["MUJOCO_GL"] = "glx"  # keeps robosuite from forcing EGL; nothing is rendered through it
    try:
        import robosuite
    except ImportError as error:
        raise ImportError(ROBOSUITE_INSTALL_HINT) from error
    finally:
        if unset:
            os.environ.pop("MUJOCO_GL", None)
    return robosuite


def osc_pose_controller_config(robosuite: Any) -> dict[str, Any]:
    """
    robosuite 1.5's default ``OSC_POSE`` part controller for the Panda's arm, as a composite controller config.

    :param robosuite: the robosuite module
    :return: the ``controller_configs`` argument of ``robosuite.make``
    """
    from robosuite.controllers.composite.composite_controller_factory import refactor_composite_controller_config

    part_config = robosuite.load_part_controller_config(default_controller="OSC_POSE")
    return refactor_composite_controller_config(part_config, "Panda", ["right"])


class RobosuiteEnv(RenderedSimEnv):
    """
    A robomimic task (Lift, Can, Square) as a sparse-reward gymnasium env. See the module docstring.

    :param task: ``"Lift"``, ``"Can"`` or ``"Square"``
    :param obs_mode: ``"state"``, ``"pixel"`` or ``"pixelproprio"``
    :param image_size: height and width of the pixel observations
    :param camera: camera of the pixel observations (default: the task's, see :data:`ROBOMIMIC_TASKS`)
    :param render_mode: ``None`` or ``"rgb_array"`` (:meth:`render` returns an ``(H, W, 3)`` image)
    :param render_size: height and width of :meth:`render`'s images
    :param render_camera: camera of :meth:`render` (default: ``agentview``)
    :param il_camera: with ``obs_mode="state"``, also render this camera for the IL policy: the observation is then
        ``{"state": the state vector, il_camera: (3, image_size, image_size) uint8}``, e.g. the wrist camera
        ``"robot0_eye_in_hand"`` (the paper's state runs use a pixel BC policy); give ``IBRL(il_obs_keys=[il_camera])``
        so that the RL networks read the state and the IL policy the image
    :param model_seed: seed of what robosuite draws once, when the env is built (Lift's cube size); ``None``: at
        random per instance (then two instances differ after the same ``reset(seed=s)``)
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        task: str = "Lift",
        obs_mode: str = "state",
        image_size: int = 96,
        camera: Optional[str] = None,
        render_mode: Optional[str] = None,
        render_size: int = 256,
        render_camera: str = "agentview",
        il_camera: Optional[str] = None,
        model_seed: Optional[int] = 0,
    ) -> None:
        super().__init__()
        if il_camera is not None and obs_mode != "state":
            raise ValueError(f"il_camera={il_camera!r} is for obs_mode='state' (pixel modes render their camera already)")
        if model_seed is not None and (isinstance(model_seed, bool) or not isinstance(model_seed, (int, np.integer))):
            raise ValueError(f"model_seed must be an int or None, got {model_seed!r}")
        if task not in ROBOMIMIC_TASKS:
            raise ValueError(f"Unknown robomimic task {task!r}: expected one of {sorted(ROBOMIMIC_TASKS)}")
        if obs_mode not in ROBOSUITE_OBS_MODES:
            raise ValueError(f"Unknown obs_mode {obs_mode!r}: expected one of {ROBOSUITE_OBS_MODES}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"Unsupported render_mode {render_mode!r}: expected None or 'rgb_array'")
        self.task = ROBOMIMIC_TASKS[task]
        self.task_name = task
        self.obs_mode = obs_mode
        self.image_size = int(image_size)
        self.camera = camera or self.task.camera
        self.render_mode = render_mode
        self.render_size = int(render_size)
        self.render_camera = render_camera
        self.il_camera = il_camera
        self.state_keys = self.task.object_keys + PROPRIO_KEYS

        robosuite = import_robosuite(needs_rendering=obs_mode != "state" or il_camera is not None)
        self._sim = robosuite.make(
            self.task.robosuite_name,
            robots="Panda",
            controller_configs=osc_pose_controller_config(robosuite),
            has_renderer=False,
            has_offscreen_renderer=False,  # images come from CameraRenderer (faster, one camera)
            use_camera_obs=False,
            use_object_obs=True,
            reward_shaping=False,
            control_freq=20,
            horizon=self.task.horizon,
            ignore_done=True,  # the time limit is gymnasium's TimeLimit
            hard_reset=False,  # keep one model (and one renderer) for the env's lifetime
            seed=None if model_seed is None else int(model_seed),  # what is drawn when the model is built
        )
        # Episodes: unseeded resets stay random per instance (n_envs workers must not repeat each other's episodes)
        self._sim.rng.bit_generator.state = np.random.default_rng().bit_generator.state
        raw = self._sim.observation_spec()
        missing = [key for key in self.state_keys if key not in raw]
        if missing:
            raise RuntimeError(f"robosuite's {self.task.robosuite_name} has no observation {missing}")
        state_dim = sum(np.asarray(raw[key]).size for key in self.state_keys)
        proprio_dim = sum(np.asarray(raw[key]).size for key in PROPRIO_KEYS)
        state_space = spaces.Box(-np.inf, np.inf, shape=(state_dim,), dtype=np.float32)
        image_space = spaces.Box(0, 255, shape=(3, self.image_size, self.image_size), dtype=np.uint8)
        if obs_mode == "state" and il_camera is not None:
            self.observation_space = spaces.Dict({"state": state_space, il_camera: image_space})
        elif obs_mode == "state":
            self.observation_space = state_space
        elif obs_mode == "pixel":
            self.observation_space = image_space
        else:
            proprio_space = spaces.Box(-np.inf, np.inf, shape=(proprio_dim,), dtype=np.float32)
            self.observation_space = spaces.Dict({self.camera: image_space, "proprio": proprio_space})
        self.action_space = spaces.Box(-1.0, 1.0, shape=(self._sim.action_dim,), dtype=np.float32)

        self._renderer: Optional[CameraRenderer] = None
        self._video_renderer: Optional[CameraRenderer] = None
        if obs_mode != "state" or il_camera is not None:
            self.camera = il_camera or self.camera
            self._renderer = self._make_renderer(self.camera, self.image_size)

    @property
    def unwrapped_sim(self) -> Any:
        """The robosuite environment (e.g. for ``_check_success()``, ``sim`` or ``reset_from_xml_string``)."""
        return self._sim

    def _make_renderer(self, camera: str, size: int) -> CameraRenderer:
        # robosuite draws visual meshes (group 1) and hides collision geoms (group 0)
        return CameraRenderer(self._sim.sim.model._model, self._sim.sim.data._data, camera, size, size, geom_groups=(1,))

    def _current(self, renderer: Optional[CameraRenderer], camera: str, size: int) -> CameraRenderer:
        """A renderer of the current model (rebuilt if robosuite reloaded the model, e.g. from an XML string)."""
        if renderer is None or renderer.model is not self._sim.sim.model._model:
            if renderer is not None:
                renderer.close()
            renderer = self._make_renderer(camera, size)
        return renderer

    def _observe(self, raw: dict[str, Any]) -> tuple[ObsType, np.ndarray]:
        state = np.concatenate([np.asarray(raw[key], dtype=np.float32).ravel() for key in self.state_keys])
        if self.obs_mode == "state" and self.il_camera is None:
            return state, state
        self._renderer = self._current(self._renderer, self.camera, self.image_size)
        image = self._renderer.render_chw()
        if self.obs_mode == "state":
            return {"state": state, self.camera: image}, state
        if self.obs_mode == "pixel":
            return image, state
        proprio = np.concatenate([np.asarray(raw[key], dtype=np.float32).ravel() for key in PROPRIO_KEYS])
        return {self.camera: image, "proprio": proprio}, state

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict[str, Any]] = None) -> tuple[ObsType, dict[str, Any]]:
        """
        Start a new episode (objects placed at random by robosuite).

        :param seed: reseeds robosuite's random generator (object placement, initial joint noise)
        :param options: unused
        :return: the first observation and an info dict (``is_success``, ``state``)
        """
        super().reset(seed=seed)
        if seed is not None:
            # The placement samplers hold a reference to this generator: reseed it in place
            self._sim.rng.bit_generator.state = np.random.default_rng(seed).bit_generator.state
        obs, state = self._observe(self._sim.reset())
        return obs, {"is_success": False, "state": state}

    def step(self, action: np.ndarray) -> tuple[ObsType, float, bool, bool, dict[str, Any]]:
        """
        Apply one control step (delta end-effector pose + gripper).

        :param action: ``(7,)`` in ``[-1, 1]`` (clipped)
        :return: observation, reward (1.0 on success, else 0.0), terminated (success), truncated (always
            ``False``: the registration's ``TimeLimit`` truncates), info (``is_success``, ``state``)
        """
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(self.action_space.shape), -1.0, 1.0)
        raw, _, _, _ = self._sim.step(action)
        success = bool(self._sim._check_success())
        obs, state = self._observe(raw)
        return obs, float(success), success, False, {"is_success": success, "state": state}

    def render(self) -> Optional[np.ndarray]:
        """
        :return: an upright ``(render_size, render_size, 3)`` ``uint8`` image of ``render_camera``
            (``render_mode="rgb_array"``), else ``None``
        """
        if self.render_mode != "rgb_array":
            return None
        self._video_renderer = self._current(self._video_renderer, self.render_camera, self.render_size)
        return self._video_renderer.render()
