"""
Meta-World v3 tasks of the IBRL paper (Assembly, BoxClose, CoffeePush, StickPull) as sparse-reward
gymnasium envs, set up like the authors' release.

- Goal-observable task classes, with a new random object/goal placement at every reset drawn from
  the env's own seeded generator (``reset(seed=s)`` is deterministic).
- Action repeat 2: one step runs the action for (up to) two Meta-World steps; the repeat stops at the
  inner step that succeeds, so the step's success is "any inner step succeeded" and its reward and
  observation are those of the last inner step run. The registrations' 100 steps (``TimeLimit``) are
  200 Meta-World steps.
- Reward ``1.0`` on success (Meta-World's ``info["success"]``), else ``0.0``; success ends the episode
  (``terminated=True``). ``info["is_success"]`` on every step; ``info["state"]`` is the 39-dim state
  vector in every mode, so the scripted experts (:meth:`MetaWorldEnv.make_expert`) can drive pixel envs.
- ``obs_mode="state"``: the 39-dim ``float32`` state, clipped to Meta-World's observation bounds.
  ``obs_mode="pixel"``: a ``uint8`` ``(3, 96, 96)`` channel-first image of camera ``corner2``, moved to
  ``(0.75, 0.075, 0.7)`` as in the authors' release. ``corner2`` is mounted upside down (its up axis
  points to the floor), so MuJoCo's image is upside down: it is rotated by 180 degrees, which gives the
  upright and non-mirrored view (a vertical flip alone would give an upright but mirrored one).
"""

from typing import Any, Optional

import numpy as np
from gymnasium import spaces

from sb3_ibrl.envs.rendering import CameraRenderer, RenderedSimEnv, select_gl_backend

METAWORLD_OBS_MODES = ("state", "pixel")
METAWORLD_INSTALL_HINT = 'metaworld is not installed: `pip install "sb3-ibrl[metaworld]"`'
# Gymnasium id prefix -> Meta-World task name
METAWORLD_TASKS: dict[str, str] = {
    "Assembly": "assembly-v3",
    "BoxClose": "box-close-v3",
    "CoffeePush": "coffee-push-v3",
    "StickPull": "stick-pull-v3",
}
METAWORLD_MAX_EPISODE_STEPS = 100
# Camera positions the authors' release overrides
CAMERA_POSITIONS = {"corner2": (0.75, 0.075, 0.7)}


class MetaWorldEnv(RenderedSimEnv):
    """
    A Meta-World v3 task with action repeat, sparse reward and termination on success. See the module docstring.

    :param task: Meta-World task name, e.g. ``"assembly-v3"``
    :param obs_mode: ``"state"`` (39-dim vector) or ``"pixel"`` (camera image)
    :param image_size: height and width of the pixel observations
    :param camera: camera of the pixel observations (and of :meth:`render`)
    :param action_repeat: Meta-World steps per env step
    :param render_mode: ``None`` or ``"rgb_array"`` (:meth:`render` returns an ``(H, W, 3)`` image)
    :param render_size: height and width of :meth:`render`'s images
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 40}

    def __init__(
        self,
        task: str = "assembly-v3",
        obs_mode: str = "pixel",
        image_size: int = 96,
        camera: str = "corner2",
        action_repeat: int = 2,
        render_mode: Optional[str] = None,
        render_size: int = 256,
    ) -> None:
        super().__init__()
        if obs_mode not in METAWORLD_OBS_MODES:
            raise ValueError(f"Unknown obs_mode {obs_mode!r}: expected one of {METAWORLD_OBS_MODES}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"Unsupported render_mode {render_mode!r}: expected None or 'rgb_array'")
        if action_repeat < 1:
            raise ValueError(f"action_repeat must be at least 1, got {action_repeat}")
        self.task_name = task
        self.obs_mode = obs_mode
        self.image_size = int(image_size)
        self.camera = camera
        self.action_repeat = int(action_repeat)
        self.render_mode = render_mode
        self.render_size = int(render_size)

        if obs_mode == "pixel":
            select_gl_backend()
        try:
            from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE
        except ImportError as error:
            raise ImportError(METAWORLD_INSTALL_HINT) from error
        key = f"{task}-goal-observable"
        if key not in ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE:
            raise ValueError(f"Unknown Meta-World v3 task {task!r}")
        # A seed keeps the constructor's first reset off numpy's global generator
        self._sim = ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[key](seed=0)
        self._sim._freeze_rand_vec = False  # new placement at every reset...
        self._sim.seeded_rand_vec = True  # ...drawn from the env's seeded generator
        self._sim.max_path_length = 1_000_000_000  # the time limit is gymnasium's TimeLimit

        import mujoco

        model, data = self._sim.model, self._sim.data
        self._camera_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if self._camera_id < 0:
            raise ValueError(f"Meta-World has no camera {camera!r}")
        if camera in CAMERA_POSITIONS:
            model.cam_pos[self._camera_id] = CAMERA_POSITIONS[camera]
        mujoco.mj_forward(model, data)
        # A camera whose up axis (2nd column of its frame) points downwards renders upside down
        self._rotate_180 = bool(data.cam_xmat[self._camera_id].reshape(3, 3)[2, 1] < 0)

        bounds = self._sim.sawyer_observation_space
        self._state_low, self._state_high = bounds.low, bounds.high
        state_space = spaces.Box(bounds.low.astype(np.float32), bounds.high.astype(np.float32), dtype=np.float32)
        if obs_mode == "state":
            self.observation_space = state_space
        else:
            self.observation_space = spaces.Box(0, 255, shape=(3, self.image_size, self.image_size), dtype=np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, shape=self._sim.action_space.shape, dtype=np.float32)

        self._renderer: Optional[CameraRenderer] = None
        self._video_renderer: Optional[CameraRenderer] = None
        if obs_mode == "pixel":
            self._renderer = self._make_renderer(self.image_size)

    @property
    def unwrapped_sim(self) -> Any:
        """The Meta-World environment (``SawyerXYZEnv``): ``model``, ``data``, ``evaluate_state`` and so on."""
        return self._sim

    def make_expert(self) -> Any:
        """
        Meta-World's scripted expert of this task: ``expert.get_action(info["state"])`` gives an action.

        :return: a ``metaworld.policies`` policy
        """
        from metaworld.policies import ENV_POLICY_MAP

        return ENV_POLICY_MAP[self.task_name]()

    def _make_renderer(self, size: int) -> CameraRenderer:
        return CameraRenderer(self._sim.model, self._sim.data, self.camera, size, size, rotate_180=self._rotate_180)

    def _state(self, raw: np.ndarray) -> np.ndarray:
        return np.clip(raw, self._state_low, self._state_high).astype(np.float32)

    def _observe(self, state: np.ndarray) -> np.ndarray:
        if self.obs_mode == "state":
            return state
        assert self._renderer is not None
        return self._renderer.render_chw()

    def reset(
        self, *, seed: Optional[int] = None, options: Optional[dict[str, Any]] = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """
        Start a new episode with a random object and goal placement.

        :param seed: reseeds the placement generator
        :param options: unused
        :return: the first observation and an info dict (``is_success``, ``state``)
        """
        super().reset(seed=seed)
        if seed is not None:
            self._sim.seed(seed)
        raw, _ = self._sim.reset()
        state = self._state(raw)
        return self._observe(state), {"is_success": False, "state": state}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """
        Run the action for ``action_repeat`` Meta-World steps (fewer if one succeeds).

        :param action: ``(4,)`` in ``[-1, 1]``: end-effector displacement and gripper (clipped)
        :return: observation, reward (1.0 on success, else 0.0), terminated (success), truncated (always
            ``False``: the registration's ``TimeLimit`` truncates), info (Meta-World's last info, ``is_success``,
            ``state``)
        """
        action = np.clip(np.asarray(action, dtype=np.float32).reshape(self.action_space.shape), -1.0, 1.0)
        success = False
        for _ in range(self.action_repeat):
            raw, _, _, _, sim_info = self._sim.step(action)
            success = bool(sim_info.get("success", 0.0))
            if success:
                break
        state = self._state(raw)
        info = dict(sim_info, is_success=success, state=state)
        return self._observe(state), float(success), success, False, info

    def render(self) -> Optional[np.ndarray]:
        """
        :return: an upright ``(render_size, render_size, 3)`` ``uint8`` image of the camera
            (``render_mode="rgb_array"``), else ``None``
        """
        if self.render_mode != "rgb_array":
            return None
        if self._video_renderer is None:
            self._video_renderer = self._make_renderer(self.render_size)
        return self._video_renderer.render()
