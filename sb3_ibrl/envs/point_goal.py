"""
``PointGoal-v0``: a small sparse-reward continuous-control task with a scripted, imperfect demonstrator.

A point mass with momentum moves in the square arena ``[-1, 1]^2``. The action is a force in
``[-1, 1]^2`` (an acceleration, scaled by ``max_accel``); the velocity decays through linear drag and
is capped at ``max_speed``; the position is clipped to the walls, and the velocity component that
pushes into a wall is zeroed on contact. One control step lasts ``dt`` seconds.

Task: reach the goal disc (radius ``goal_radius``) **and stay in it slowly** (speed below
``hold_speed``) for ``hold_steps`` consecutive steps. The step that completes the hold is a success:
reward ``1.0`` and ``terminated=True``. Every other step gives reward ``0.0`` (sparse reward).
``info["is_success"]`` is set on every step. The episode time limit (``max_episode_steps`` of the
gymnasium registration, ``PointGoal-v0``) is a truncation.

Episodes start at rest at a position drawn uniformly in the arena, at least ``min_start_distance``
from the goal, so a random policy practically never succeeds: the task is hard to discover by
exploration but easy to learn from a few demonstrations.

Observation (``float32``):

- fixed goal (default): ``[x, y, vx, vy]``
- randomised goal (``random_goal=True``): ``[x, y, vx, vy, goal_x, goal_y]``

:class:`PointGoalExpert` is a human-like demonstrator: a PD controller that steers along a curved
detour, brakes sluggishly and acts with temporally correlated noise. It succeeds in almost every
episode, more slowly than an optimal controller would.
"""

from collections.abc import Sequence
from typing import Any, Optional

import gymnasium as gym
import numpy as np
from gymnasium import spaces

DEFAULT_GOAL = (0.5, 0.5)
ARENA_HALF_SIZE = 1.0


class PointGoalEnv(gym.Env):
    """
    A 2-D point mass (double integrator with drag) that must reach a goal disc and stay there.

    :param goal: goal position, used when ``random_goal`` is ``False``
    :param random_goal: draw the goal uniformly in the arena (away from the walls) at every reset and
        append it to the observation
    :param goal_radius: radius of the goal disc
    :param hold_steps: number of consecutive steps the point must spend slowly inside the disc
    :param hold_speed: speed below which the point counts as stopped inside the disc
    :param min_start_distance: minimal distance between the start position and the goal
    :param dt: duration of one control step (seconds)
    :param max_accel: acceleration produced by an action of norm 1 per axis
    :param drag: linear drag coefficient (1/s): ``dv/dt = max_accel * action - drag * v``
    :param max_speed: speed cap (per axis), also the bound of the velocity part of the observation
    :param render_mode: ``None`` or ``"rgb_array"`` (a small top-down image)
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        goal: Sequence[float] = DEFAULT_GOAL,
        random_goal: bool = False,
        goal_radius: float = 0.1,
        hold_steps: int = 5,
        hold_speed: float = 0.2,
        min_start_distance: float = 1.0,
        dt: float = 0.1,
        max_accel: float = 1.0,
        drag: float = 0.5,
        max_speed: float = 2.0,
        render_mode: Optional[str] = None,
    ) -> None:
        super().__init__()
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"Unsupported render_mode {render_mode!r}: expected None or 'rgb_array'")
        if hold_steps < 1:
            raise ValueError(f"hold_steps must be at least 1, got {hold_steps}")
        self.fixed_goal = np.asarray(goal, dtype=np.float64).reshape(2)
        if np.any(np.abs(self.fixed_goal) > ARENA_HALF_SIZE):
            raise ValueError(f"The goal {tuple(self.fixed_goal)} lies outside the arena [-1, 1]^2")
        self.random_goal = random_goal
        self.goal_radius = float(goal_radius)
        self.hold_steps = int(hold_steps)
        self.hold_speed = float(hold_speed)
        self.min_start_distance = float(min_start_distance)
        self.dt = float(dt)
        self.max_accel = float(max_accel)
        self.drag = float(drag)
        self.max_speed = float(max_speed)
        self.render_mode = render_mode

        obs_high = [ARENA_HALF_SIZE, ARENA_HALF_SIZE, self.max_speed, self.max_speed]
        if random_goal:
            obs_high += [ARENA_HALF_SIZE, ARENA_HALF_SIZE]
        high = np.array(obs_high, dtype=np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

        self.goal = self.fixed_goal.copy()
        self.pos = np.zeros(2)
        self.vel = np.zeros(2)
        self.hold_count = 0

    def _get_obs(self) -> np.ndarray:
        parts = [self.pos, self.vel] + ([self.goal] if self.random_goal else [])
        return np.concatenate(parts).astype(np.float32)

    def _get_info(self, is_success: bool) -> dict[str, Any]:
        return {
            "is_success": is_success,
            "distance": float(np.linalg.norm(self.pos - self.goal)),
            "hold_count": self.hold_count,
        }

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict[str, Any]] = None) -> tuple[np.ndarray, dict[str, Any]]:
        """
        Start a new episode at rest, far from the goal.

        :param seed: seed of the env's random generator
        :param options: unused
        :return: the first observation and an info dict
        """
        super().reset(seed=seed)
        if self.random_goal:
            self.goal = self.np_random.uniform(-0.7, 0.7, size=2)
        else:
            self.goal = self.fixed_goal.copy()
        # Rejection sampling of a start far from the goal (the arena is large enough for this to end fast)
        for _ in range(1000):
            pos = self.np_random.uniform(-0.95 * ARENA_HALF_SIZE, 0.95 * ARENA_HALF_SIZE, size=2)
            if np.linalg.norm(pos - self.goal) >= self.min_start_distance:
                break
        else:  # pragma: no cover - only reachable with an unreasonable min_start_distance
            raise RuntimeError(f"Could not find a start position at distance >= {self.min_start_distance} from the goal")
        self.pos = pos
        self.vel = np.zeros(2)
        self.hold_count = 0
        return self._get_obs(), self._get_info(False)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """
        Apply a force for one control step.

        :param action: force in ``[-1, 1]^2`` (clipped)
        :return: observation, reward (1.0 on success, else 0.0), terminated (success), truncated
            (always ``False``: the time limit is added by the registration's ``TimeLimit`` wrapper), info
        """
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        self.vel = self.vel + self.dt * (self.max_accel * action - self.drag * self.vel)
        self.vel = np.clip(self.vel, -self.max_speed, self.max_speed)
        self.pos = self.pos + self.dt * self.vel
        for axis in range(2):  # walls: clip the position, stop the motion into the wall
            if abs(self.pos[axis]) >= ARENA_HALF_SIZE:
                self.pos[axis] = np.sign(self.pos[axis]) * ARENA_HALF_SIZE
                self.vel[axis] = 0.0

        inside = np.linalg.norm(self.pos - self.goal) <= self.goal_radius
        slow = np.linalg.norm(self.vel) <= self.hold_speed
        self.hold_count = self.hold_count + 1 if (inside and slow) else 0
        is_success = self.hold_count >= self.hold_steps
        reward = 1.0 if is_success else 0.0
        return self._get_obs(), reward, bool(is_success), False, self._get_info(bool(is_success))

    def render(self) -> Optional[np.ndarray]:
        """
        Draw the arena from above (``render_mode="rgb_array"`` only): goal disc in green, point in red.

        :return: an ``(84, 84, 3)`` ``uint8`` image, or ``None`` without a render mode
        """
        if self.render_mode != "rgb_array":
            return None
        size = 84
        coords = (np.arange(size) + 0.5) / size * 2 * ARENA_HALF_SIZE - ARENA_HALF_SIZE
        xs, ys = np.meshgrid(coords, -coords)  # image rows go downwards, y goes upwards
        image = np.full((size, size, 3), 255, dtype=np.uint8)
        goal_mask = (xs - self.goal[0]) ** 2 + (ys - self.goal[1]) ** 2 <= self.goal_radius**2
        image[goal_mask] = (80, 200, 80)
        point_mask = (xs - self.pos[0]) ** 2 + (ys - self.pos[1]) ** 2 <= 0.04**2
        image[point_mask] = (220, 40, 40)
        return image


class PointGoalExpert:
    """
    A scripted, imperfect demonstrator for :class:`PointGoalEnv`, like a human teleoperator.

    It is a PD controller whose target bends the path into a curved detour (the aim is rotated away
    from the goal direction, the more so the farther the goal), with a low damping gain (sluggish
    braking, so it overshoots and settles) and temporally correlated action noise. It succeeds in
    almost every episode, but takes noticeably longer than necessary.

    :param goal: goal position of a fixed-goal env (ignored when the observation carries the goal)
    :param kp: proportional gain
    :param kd: damping gain
    :param detour_angle: rotation (radians) of the aim at a distance of 1 from the goal
    :param noise_std: standard deviation of the stationary action noise
    :param noise_corr: correlation of the noise between consecutive calls (0: white noise)
    :param seed: seed of the noise generator
    """

    def __init__(
        self,
        goal: Sequence[float] = DEFAULT_GOAL,
        kp: float = 2.0,
        kd: float = 1.2,
        detour_angle: float = 0.6,
        noise_std: float = 0.3,
        noise_corr: float = 0.7,
        seed: Optional[int] = None,
    ) -> None:
        self.goal = np.asarray(goal, dtype=np.float64).reshape(2)
        self.kp = kp
        self.kd = kd
        self.detour_angle = detour_angle
        self.noise_std = noise_std
        self.noise_corr = noise_corr
        self.rng = np.random.default_rng(seed)
        self._noise: Optional[np.ndarray] = None

    def reset(self, seed: Optional[int] = None) -> None:
        """
        Forget the correlated noise state (and reseed the noise generator if a seed is given).

        :param seed: new seed of the noise generator
        """
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self._noise = None

    def _next_noise(self, n: int) -> np.ndarray:
        white = self.rng.normal(0.0, self.noise_std, size=(n, 2))
        if self._noise is None or self._noise.shape[0] != n:
            self._noise = white
        else:
            self._noise = self.noise_corr * self._noise + np.sqrt(1.0 - self.noise_corr**2) * white
        return self._noise

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """
        Act on one observation (``(obs_dim,)`` -> ``(2,)``) or a batch (``(n, obs_dim)`` -> ``(n, 2)``).

        :param obs: observation(s) of :class:`PointGoalEnv`
        :return: action(s) in ``[-1, 1]``, ``float32``
        """
        obs = np.asarray(obs, dtype=np.float64)
        single = obs.ndim == 1
        batch = obs.reshape(1, -1) if single else obs
        pos, vel = batch[:, 0:2], batch[:, 2:4]
        goal = batch[:, 4:6] if batch.shape[1] >= 6 else np.broadcast_to(self.goal, pos.shape)

        to_goal = goal - pos
        dist = np.linalg.norm(to_goal, axis=1, keepdims=True)
        # Curved detour: aim at the goal rotated around the point, by an angle growing with the distance
        angle = self.detour_angle * np.clip(dist[:, 0], 0.0, 1.0)
        cos, sin = np.cos(angle), np.sin(angle)
        aim = np.stack([cos * to_goal[:, 0] - sin * to_goal[:, 1], sin * to_goal[:, 0] + cos * to_goal[:, 1]], axis=1)
        action = self.kp * aim - self.kd * vel
        # Noise fades near the goal (a human steadies the hand when stopping), so it still finishes
        noise_scale = np.clip(dist / 0.3, 0.3, 1.0)
        action = action + noise_scale * self._next_noise(len(batch))
        action = np.clip(action, -1.0, 1.0).astype(np.float32)
        return action[0] if single else action
