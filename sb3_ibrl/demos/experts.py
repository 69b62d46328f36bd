"""
Scripted experts of the simulated tasks: they read the flat state vector (``info["state"]``) and need no
download, so they drive every observation mode of a task.

- Meta-World: the simulator's own scripted policies (:meth:`sb3_ibrl.envs.MetaWorldEnv.make_expert`).
- robosuite (Lift, Can, Square): :class:`PickPlaceExpert`, a proportional controller for ``OSC_POSE`` delta
  actions (``dpos`` 3, scaled by 0.05 m; ``drot`` 3, axis-angle in the world frame, scaled by 0.5 rad;
  gripper 1, ``-1`` opens and ``+1`` closes, integrated by the Panda gripper). It runs a small state machine:
  approach above the grasp point, descend, close, lift, and for Can and Square carry the object over its
  target (feedback on the object's own position), lower it, open and back off.

The robosuite state layout (:mod:`sb3_ibrl.envs.robosuite_envs`) is the object position (3) and quaternion
(4, ``xyzw``) first and the proprioception last: ``eef_pos`` (3), ``eef_quat`` (4), ``gripper_qpos`` (2).
"""

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Optional

import gymnasium as gym
import numpy as np

from sb3_ibrl.envs.metaworld_envs import MetaWorldEnv
from sb3_ibrl.envs.robosuite_envs import PROPRIO_KEYS, RobosuiteEnv

# Phases of PickPlaceExpert
APPROACH, DESCEND, GRASP, LIFT, CARRY, LOWER, RELEASE, RETREAT = range(8)


def quat_to_matrix(quat_xyzw: np.ndarray) -> np.ndarray:
    """
    Rotation matrix of a unit quaternion.

    :param quat_xyzw: quaternion ``(x, y, z, w)`` (robosuite's convention)
    :return: the ``(3, 3)`` rotation matrix
    """
    x, y, z, w = np.asarray(quat_xyzw, dtype=np.float64) / max(float(np.linalg.norm(quat_xyzw)), 1e-12)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def yaw_of(quat_xyzw: np.ndarray) -> float:
    """Heading (rotation about the world z axis) of the frame's x axis, in radians."""
    matrix = quat_to_matrix(quat_xyzw)
    return float(np.arctan2(matrix[1, 0], matrix[0, 0]))


def wrap_angle(angle: float, period: float) -> float:
    """The angle modulo ``period``, in ``[-period / 2, period / 2)``."""
    return float((angle + period / 2) % period - period / 2)


@dataclass(frozen=True)
class PickPlaceTask:
    """
    Settings of :class:`PickPlaceExpert` for one task (heights are world ``z`` in metres).

    :param handle_offset: grasp point along the object's own x axis from its position (Square's handle)
    :param grasp_dz: grasp point height relative to the object position
    :param align_grasp_yaw: turn the gripper so that its fingers close across the object's x axis
    :param lift_dz: (no place target) lift the grasp point this high above its start; the task succeeds on the way
    :param carry_z: end-effector height while carrying to the place target
    :param release_z: open the gripper when the object is this low (over the target)
    :param object_yaw_period: while carrying, turn the object to a multiple of this angle (``None``: do not)
    :param grasp_steps: steps with the gripper closing before lifting
    :param approach_tolerance: horizontal distance to the point above the grasp point that starts the descent
    :param place_tolerance: horizontal distance of the object to its target that starts lowering it
    """

    handle_offset: float = 0.0
    grasp_dz: float = 0.0
    align_grasp_yaw: bool = False
    lift_dz: float = 0.2
    carry_z: float = 1.05
    release_z: float = 0.97
    object_yaw_period: Optional[float] = None
    grasp_steps: int = 6
    approach_tolerance: float = 0.01
    place_tolerance: float = 0.02


PICK_PLACE_TASKS: dict[str, PickPlaceTask] = {
    "Lift": PickPlaceTask(grasp_dz=-0.005),
    "Can": PickPlaceTask(carry_z=1.05, release_z=0.97),
    "Square": PickPlaceTask(
        handle_offset=0.054,
        align_grasp_yaw=True,
        carry_z=1.08,
        release_z=0.86,
        object_yaw_period=np.pi / 2,
        grasp_steps=12,
        approach_tolerance=0.004,
        place_tolerance=0.004,
    ),
}


class PickPlaceExpert:
    """
    Proportional scripted controller of a robosuite pick (and place) task, reading the flat state vector.

    :param task: the task's settings
    :param place_xy: where the object goes (Can: its bin quadrant, Square: the peg); ``None`` only lifts (Lift)
    :param gain: position gain: action = ``gain * error`` (metres), clipped to ``[-1, 1]``
    :param rot_gain: rotation gain: action = ``rot_gain * angle error`` (radians), clipped
    """

    def __init__(self, task: PickPlaceTask, place_xy: Optional[np.ndarray] = None, gain: float = 10.0, rot_gain: float = 3.0):
        self.task, self.gain, self.rot_gain = task, gain, rot_gain
        self.place_xy = None if place_xy is None else np.asarray(place_xy, dtype=np.float64)[:2]
        self.reset()

    def reset(self) -> None:
        """Start a new episode (back to the approach phase)."""
        self.phase, self.steps_in_phase = APPROACH, 0
        self.start_z: Optional[float] = None
        self.previous_object_z = np.inf

    def _goto(self, phase: int) -> None:
        self.phase, self.steps_in_phase = phase, 0

    def _grasp_point(self, obj_pos: np.ndarray, obj_yaw: float) -> np.ndarray:
        offset = self.task.handle_offset * np.array([np.cos(obj_yaw), np.sin(obj_yaw), 0.0])
        return obj_pos + offset + np.array([0.0, 0.0, self.task.grasp_dz])

    def _yaw_error(self, obj_yaw: float, eef_yaw: float) -> float:
        if self.phase in (APPROACH, DESCEND, GRASP) and self.task.align_grasp_yaw:
            return wrap_angle(obj_yaw - eef_yaw, np.pi)  # the fingers close across the object's x axis
        if self.phase in (CARRY, LOWER) and self.task.object_yaw_period is not None:
            return wrap_angle(-obj_yaw, self.task.object_yaw_period)  # the object square to the world axes
        return 0.0

    def _pick(self, grasp: np.ndarray, eef: np.ndarray, yaw_error: float) -> tuple[np.ndarray, float]:
        """Target and gripper command of the pick phases (approach, descend, grasp, lift)."""
        task, target = self.task, eef
        if self.phase == APPROACH:
            target = grasp + np.array([0.0, 0.0, 0.08])
            error = target - eef
            if np.linalg.norm(error[:2]) < task.approach_tolerance and abs(error[2]) < 0.02 and abs(yaw_error) < 0.05:
                self._goto(DESCEND)
            else:
                return target, -1.0
        if self.phase == DESCEND:
            if np.linalg.norm(grasp - eef) < 0.01 or self.steps_in_phase > 15:  # there, or blocked (e.g. by the table)
                self._goto(GRASP)
            else:
                return grasp, -1.0
        if self.phase == GRASP:
            if self.steps_in_phase < task.grasp_steps:
                return grasp, 1.0
            self._goto(LIFT)
        assert self.start_z is not None
        if self.place_xy is None:
            return np.array([grasp[0], grasp[1], self.start_z + task.lift_dz]), 1.0  # success comes on the way up
        if eef[2] > task.carry_z - 0.07:
            self._goto(CARRY)
        return np.array([eef[0], eef[1], task.carry_z]), 1.0

    def _place(self, obj_pos: np.ndarray, eef: np.ndarray, yaw_error: float) -> tuple[np.ndarray, float]:
        """Target and gripper command of the place phases (carry, lower, release, retreat)."""
        assert self.place_xy is not None
        task, to_place = self.task, self.place_xy - obj_pos[:2]
        if self.phase == CARRY:
            if np.linalg.norm(to_place) < task.place_tolerance and abs(yaw_error) < 0.03:
                self._goto(LOWER)
                self.previous_object_z = np.inf
            else:
                return eef + np.array([to_place[0], to_place[1], task.carry_z - eef[2]]), 1.0
        if self.phase == LOWER:
            stalled = self.steps_in_phase > 8 and self.previous_object_z - obj_pos[2] < 0.001
            self.previous_object_z = float(obj_pos[2])
            if obj_pos[2] < task.release_z or (stalled and obj_pos[2] < task.release_z + 0.07):
                self._goto(RELEASE)  # low enough, or jammed on the way down: let go
            else:
                return eef + np.array([to_place[0], to_place[1], -0.03]), 1.0
        if self.phase == RELEASE and self.steps_in_phase < 4:
            return eef, -1.0
        self.phase = RETREAT
        return eef + np.array([0.0, 0.0, 0.05]), -1.0

    def __call__(self, state: np.ndarray) -> np.ndarray:
        """
        :param state: the env's flat state vector (``info["state"]``)
        :return: a 7-dim ``OSC_POSE`` delta action in ``[-1, 1]``
        """
        state = np.asarray(state, dtype=np.float64)
        obj_pos, eef = state[0:3], state[-9:-6]
        obj_yaw, eef_yaw = yaw_of(state[3:7]), yaw_of(state[-6:-2])
        grasp = self._grasp_point(obj_pos, obj_yaw)
        if self.start_z is None:
            self.start_z = float(grasp[2])
        self.steps_in_phase += 1
        if self.phase in (CARRY, LOWER) and np.linalg.norm(grasp - eef) > 0.03:
            self._goto(APPROACH)  # the object slipped out of the gripper: grasp it again
        yaw_error = self._yaw_error(obj_yaw, eef_yaw)
        if self.phase <= LIFT:
            target, grip = self._pick(grasp, eef, yaw_error)
        else:
            target, grip = self._place(obj_pos, eef, yaw_error)
        dpos = np.clip(self.gain * (target - eef), -1.0, 1.0)
        drot = np.clip(np.array([0.0, 0.0, self.rot_gain * yaw_error]), -1.0, 1.0)
        return np.concatenate([dpos, drot, [grip]]).astype(np.float32)


class MetaWorldExpert:
    """
    Meta-World's scripted policy of a task as a function of the state vector.

    :param env: a :class:`~sb3_ibrl.envs.MetaWorldEnv` (or a wrapper of one)
    """

    def __init__(self, env: gym.Env):
        self.policy = env.unwrapped.make_expert()  # type: ignore[attr-defined]

    def reset(self) -> None:
        """Meta-World's policies are stateless."""

    def __call__(self, state: np.ndarray) -> np.ndarray:
        """
        :param state: the env's 39-dim state vector (``info["state"]``)
        :return: the expert's 4-dim action
        """
        with warnings.catch_warnings():  # Meta-World warns that its gains exceed the action bounds (it clips)
            warnings.filterwarnings("ignore", message=r"Constant\(s\) may be too high")
            action = self.policy.get_action(np.asarray(state, dtype=np.float64))
        return np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)


def _robosuite_expert(env: RobosuiteEnv) -> PickPlaceExpert:
    if env.task_name not in PICK_PLACE_TASKS:
        raise ValueError(f"No scripted expert for robosuite task {env.task_name!r}; experts: {sorted(PICK_PLACE_TASKS)}")
    if env.state_keys[-len(PROPRIO_KEYS) :] != PROPRIO_KEYS or not env.state_keys[0].endswith("_pos"):
        raise ValueError(f"Unexpected state layout {env.state_keys}: the expert needs object pose first, proprio last")
    sim = env.unwrapped_sim
    place_xy = None
    if env.task_name == "Can":
        place_xy = np.asarray(sim.target_bin_placements[sim.object_id])[:2]
    elif env.task_name == "Square":
        place_xy = np.asarray(sim.sim.data.body_xpos[sim.sim.model.body_name2id("peg1")])[:2]
    return PickPlaceExpert(PICK_PLACE_TASKS[env.task_name], place_xy=place_xy)


def make_scripted_expert(env: gym.Env) -> Callable[[np.ndarray], np.ndarray]:
    """
    The scripted expert of a simulated task: a callable ``expert(info["state"]) -> action`` with a
    ``reset()`` method (called before each episode by :func:`sb3_ibrl.common.evaluation.record_episodes`).

    :param env: a Meta-World or robosuite env of :mod:`sb3_ibrl.envs` (any observation mode, wrappers allowed)
    :return: the expert
    """
    base: Any = env.unwrapped
    if isinstance(base, MetaWorldEnv):
        return MetaWorldExpert(env)
    if isinstance(base, RobosuiteEnv):
        return _robosuite_expert(base)
    raise ValueError(f"No scripted expert for {type(base).__name__}: experts exist for the Meta-World and robosuite tasks")
