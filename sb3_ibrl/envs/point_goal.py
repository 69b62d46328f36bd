"""
``PointGoal-v0``: a small sparse-reward continuous-control task with a scripted, imperfect demonstrator.

A point mass with momentum moves in the square arena ``[-1, 1]^2``. The action is a force in
``[-1, 1]^2`` (an acceleration, scaled by ``max_accel``); the velocity decays through linear drag and
is capped at ``max_speed`` per axis. The outer walls and an inner wall (a rectangle between the start
region and the goal) stop the point: its position is clipped to the wall and the velocity component
that pushes into the wall is zeroed (it slides along the wall). One control step lasts ``dt`` seconds.

Task: get around the inner wall, reach the goal disc (radius ``goal_radius``) **and stay in it
slowly** (speed below ``hold_speed``) for ``hold_steps`` consecutive steps. The step that completes
the hold is a success: reward ``1.0`` and ``terminated=True``. Every other step gives reward ``0.0``
(sparse reward). ``info["is_success"]`` is set on every step. The episode time limit
(``max_episode_steps`` of the gymnasium registration ``PointGoal-v0``) is a truncation.

Episodes start at rest at a position drawn uniformly in the left part of the arena (``x <=
start_x_max``), behind the inner wall, so a random policy practically never succeeds and the
path to the goal bends one way or the other depending on the start: hard to discover by
exploration, learnable from a few demonstrations (but not perfectly by behaviour cloning).

Observation (``obs_mode``):

- ``"state"`` (``float32``): ``[x, y, vx, vy]`` (``[x, y, vx, vy, goal_x, goal_y]`` with ``random_goal=True``)
- ``"pixel"``: a channel-first ``uint8`` image ``(3, image_size, image_size)`` of the arena seen from above: wall,
  goal, the point, and a fainter dot behind it that shows its velocity (so one frame is a Markov state)
- ``"pixel_proprio"``: ``Dict(image=<the same image without the velocity dot>, proprio=[vx, vy])``
- ``"state_pixel"``: ``Dict(state=<the state>, image=<the "pixel" image>)``: RL from the state and IL from the image
  (``IBRL(il_obs_keys=["image"])``), as the paper's state-based robomimic runs use a pixel BC policy

In pixel modes ``info["state"]`` holds the state observation, so :class:`PointGoalExpert` can drive them.

:class:`PointGoalExpert` is a human-like demonstrator: it steers around the wall through waypoints
on the side of the wall nearer to it, with a sluggish velocity controller (it overshoots corners and
brakes late) and temporally correlated action noise. It succeeds in almost every episode, more
slowly than an optimal controller would.
"""

from collections.abc import Sequence
from typing import Any, Optional

import gymnasium as gym
import numpy as np
from gymnasium import spaces

ARENA_HALF_SIZE = 1.0
DEFAULT_GOAL = (0.6, 0.0)
# Inner wall: (x_min, x_max, y_min, y_max)
DEFAULT_WALL = (0.1, 0.25, -0.7, 0.7)

WallSpec = Optional[Sequence[float]]
OBS_MODES = ("state", "pixel", "pixel_proprio", "state_pixel")


class PointGoalEnv(gym.Env):
    """
    A 2-D point mass (double integrator with drag) that must get around a wall, reach a goal disc
    and stay there.

    :param goal: goal position, used when ``random_goal`` is ``False``
    :param random_goal: draw the goal at every reset (right of the wall) and append it to the observation
    :param goal_radius: radius of the goal disc
    :param hold_steps: number of consecutive steps the point must spend slowly inside the disc
    :param hold_speed: speed below which the point counts as stopped inside the disc
    :param wall: inner wall ``(x_min, x_max, y_min, y_max)``, or ``None`` for an empty arena
    :param start_x_max: episodes start at rest at a position uniform in ``[-0.95, start_x_max] x [-0.95, 0.95]``
    :param dt: duration of one control step (seconds)
    :param max_accel: acceleration produced by an action of 1 on an axis
    :param drag: linear drag coefficient (1/s): ``dv/dt = max_accel * action - drag * v``
    :param max_speed: speed cap per axis, also the bound of the velocity part of the observation
    :param render_mode: ``None`` or ``"rgb_array"`` (a small top-down image)
    :param obs_mode: ``"state"``, ``"pixel"``, ``"pixel_proprio"`` or ``"state_pixel"`` (see the module docstring)
    :param image_size: side of the observed images in pixel modes
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        goal: Sequence[float] = DEFAULT_GOAL,
        random_goal: bool = False,
        goal_radius: float = 0.1,
        hold_steps: int = 8,
        hold_speed: float = 0.2,
        wall: WallSpec = DEFAULT_WALL,
        start_x_max: float = -0.3,
        dt: float = 0.1,
        max_accel: float = 1.0,
        drag: float = 0.5,
        max_speed: float = 2.0,
        render_mode: Optional[str] = None,
        obs_mode: str = "state",
        image_size: int = 32,
    ) -> None:
        super().__init__()
        if obs_mode not in OBS_MODES:
            raise ValueError(f"Unknown obs_mode {obs_mode!r}: expected one of {OBS_MODES}")
        if image_size < 16:
            raise ValueError(f"image_size must be at least 16, got {image_size}")
        self.obs_mode, self.image_size = obs_mode, int(image_size)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"Unsupported render_mode {render_mode!r}: expected None or 'rgb_array'")
        if hold_steps < 1:
            raise ValueError(f"hold_steps must be at least 1, got {hold_steps}")
        self.fixed_goal = np.asarray(goal, dtype=np.float64).reshape(2)
        if np.any(np.abs(self.fixed_goal) > ARENA_HALF_SIZE):
            raise ValueError(f"The goal {tuple(self.fixed_goal)} lies outside the arena [-1, 1]^2")
        self.wall = None if wall is None else tuple(float(v) for v in wall)
        if self.wall is not None and (len(self.wall) != 4 or self.wall[0] >= self.wall[1] or self.wall[2] >= self.wall[3]):
            raise ValueError(f"wall must be (x_min, x_max, y_min, y_max) with x_min < x_max and y_min < y_max, got {wall}")
        if self.wall is not None and start_x_max >= self.wall[0]:
            raise ValueError(f"start_x_max ({start_x_max}) must be left of the wall (x_min = {self.wall[0]})")
        self.random_goal = random_goal
        self.goal_radius = float(goal_radius)
        self.hold_steps = int(hold_steps)
        self.hold_speed = float(hold_speed)
        self.start_x_max = float(start_x_max)
        self.dt = float(dt)
        self.max_accel = float(max_accel)
        self.drag = float(drag)
        self.max_speed = float(max_speed)
        self.render_mode = render_mode

        obs_high = [ARENA_HALF_SIZE, ARENA_HALF_SIZE, self.max_speed, self.max_speed]
        if random_goal:
            obs_high += [ARENA_HALF_SIZE, ARENA_HALF_SIZE]
        high = np.array(obs_high, dtype=np.float32)
        self.state_space = spaces.Box(-high, high, dtype=np.float32)
        image_space = spaces.Box(0, 255, (3, self.image_size, self.image_size), dtype=np.uint8)
        if obs_mode == "state":
            self.observation_space: spaces.Space = self.state_space
        elif obs_mode == "pixel":
            self.observation_space = image_space
        elif obs_mode == "state_pixel":
            self.observation_space = spaces.Dict({"state": self.state_space, "image": image_space})
        else:
            proprio = spaces.Box(-self.max_speed, self.max_speed, (2,), dtype=np.float32)
            self.observation_space = spaces.Dict({"image": image_space, "proprio": proprio})
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

        self.goal = self.fixed_goal.copy()
        self.pos = np.zeros(2)
        self.vel = np.zeros(2)
        self.hold_count = 0

    def _get_state(self) -> np.ndarray:
        parts = [self.pos, self.vel] + ([self.goal] if self.random_goal else [])
        return np.concatenate(parts).astype(np.float32)

    def _get_obs(self) -> Any:
        if self.obs_mode == "state":
            return self._get_state()
        if self.obs_mode in ("pixel", "state_pixel"):
            image = self.draw(self.image_size, velocity_dot=True).transpose(2, 0, 1).copy()
            return image if self.obs_mode == "pixel" else {"state": self._get_state(), "image": image}
        image = self.draw(self.image_size, velocity_dot=False).transpose(2, 0, 1).copy()
        return {"image": image, "proprio": self.vel.astype(np.float32)}

    def _get_info(self, is_success: bool) -> dict[str, Any]:
        info = {
            "is_success": is_success,
            "distance": float(np.linalg.norm(self.pos - self.goal)),
            "hold_count": self.hold_count,
        }
        if self.obs_mode != "state":
            info["state"] = self._get_state()
        return info

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict[str, Any]] = None) -> tuple[Any, dict[str, Any]]:
        """
        Start a new episode at rest, left of the wall.

        :param seed: seed of the env's random generator
        :param options: unused
        :return: the first observation and an info dict
        """
        super().reset(seed=seed)
        if self.random_goal:
            x_low = 0.45 if self.wall is None else self.wall[1] + 0.2
            self.goal = np.array([self.np_random.uniform(x_low, 0.85), self.np_random.uniform(-0.7, 0.7)])
        else:
            self.goal = self.fixed_goal.copy()
        limit = 0.95 * ARENA_HALF_SIZE
        self.pos = np.array([self.np_random.uniform(-limit, self.start_x_max), self.np_random.uniform(-limit, limit)])
        self.vel = np.zeros(2)
        self.hold_count = 0
        return self._get_obs(), self._get_info(False)

    def _move(self) -> None:
        """Integrate the position one step, stopping at the outer walls and at the inner wall."""
        new = self.pos + self.dt * self.vel
        if self.wall is not None:
            x_min, x_max, y_min, y_max = self.wall
            # Along x, at the old y (segment test, so that no step tunnels through the wall)
            if y_min < self.pos[1] < y_max:
                if self.pos[0] <= x_min < new[0]:
                    new[0], self.vel[0] = x_min, 0.0
                elif self.pos[0] >= x_max > new[0]:
                    new[0], self.vel[0] = x_max, 0.0
            # Along y, at the new x
            if x_min < new[0] < x_max:
                if self.pos[1] <= y_min < new[1]:
                    new[1], self.vel[1] = y_min, 0.0
                elif self.pos[1] >= y_max > new[1]:
                    new[1], self.vel[1] = y_max, 0.0
        for axis in range(2):
            if abs(new[axis]) >= ARENA_HALF_SIZE:
                new[axis] = np.sign(new[axis]) * ARENA_HALF_SIZE
                self.vel[axis] = 0.0
        self.pos = new

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """
        Apply a force for one control step.

        :param action: force in ``[-1, 1]^2`` (clipped)
        :return: observation, reward (1.0 on success, else 0.0), terminated (success), truncated
            (always ``False``: the time limit is added by the registration's ``TimeLimit`` wrapper), info
        """
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        self.vel = self.vel + self.dt * (self.max_accel * action - self.drag * self.vel)
        self.vel = np.clip(self.vel, -self.max_speed, self.max_speed)
        self._move()

        inside = np.linalg.norm(self.pos - self.goal) <= self.goal_radius
        slow = np.linalg.norm(self.vel) <= self.hold_speed
        self.hold_count = self.hold_count + 1 if (inside and slow) else 0
        is_success = self.hold_count >= self.hold_steps
        reward = 1.0 if is_success else 0.0
        return self._get_obs(), reward, bool(is_success), False, self._get_info(bool(is_success))

    def render(self) -> Optional[np.ndarray]:
        """
        Draw the arena from above (``render_mode="rgb_array"`` only): wall in grey, goal disc in green,
        point in red.

        :return: an ``(84, 84, 3)`` ``uint8`` image, or ``None`` without a render mode
        """
        if self.render_mode != "rgb_array":
            return None
        return self.draw(84)

    def draw(self, size: int, velocity_dot: bool = False) -> np.ndarray:
        """
        Draw the arena from above: wall in grey, goal disc in green, point in red (at least 1.5 pixels wide) and,
        with ``velocity_dot``, a blue dot at ``position - 0.25 * velocity`` (where it came from).

        :param size: image side in pixels
        :param velocity_dot: draw the velocity dot
        :return: an ``(size, size, 3)`` ``uint8`` image
        """
        coords = (np.arange(size) + 0.5) / size * 2 * ARENA_HALF_SIZE - ARENA_HALF_SIZE
        xs, ys = np.meshgrid(coords, -coords)  # image rows go downwards, y goes upwards
        image = np.full((size, size, 3), 255, dtype=np.uint8)
        if self.wall is not None:
            x_min, x_max, y_min, y_max = self.wall
            image[(xs >= x_min) & (xs <= x_max) & (ys >= y_min) & (ys <= y_max)] = (120, 120, 120)
        image[(xs - self.goal[0]) ** 2 + (ys - self.goal[1]) ** 2 <= self.goal_radius**2] = (80, 200, 80)
        radius = max(0.04, 1.5 * 2 * ARENA_HALF_SIZE / size)
        if velocity_dot:
            tail = self.pos - 0.25 * self.vel
            image[(xs - tail[0]) ** 2 + (ys - tail[1]) ** 2 <= radius**2] = (40, 40, 220)
        image[(xs - self.pos[0]) ** 2 + (ys - self.pos[1]) ** 2 <= radius**2] = (220, 40, 40)
        return image


class PointGoalExpert:
    """
    A scripted, imperfect demonstrator for :class:`PointGoalEnv`, like a human teleoperator.

    It heads for a waypoint beyond the near end of the inner wall (the end on its side of the
    wall), then for the goal, with a velocity controller: a desired velocity towards the current
    target (slowing down near the goal only) tracked with a low gain, so it cuts corners wide,
    brakes late and settles with some overshoot, plus temporally correlated action noise. It
    succeeds in almost every episode, but takes noticeably longer than necessary.

    :param goal: goal position of a fixed-goal env (ignored when the observation carries the goal)
    :param wall: the env's inner wall ``(x_min, x_max, y_min, y_max)``, or ``None``
    :param cruise_speed: desired speed far from the goal
    :param gain: velocity-tracking gain (low: sluggish)
    :param approach_gain: desired speed per unit of distance to the goal, near it
    :param noise_std: standard deviation of the stationary action noise
    :param noise_corr: correlation of the noise between consecutive calls (0: white noise)
    :param seed: seed of the noise generator
    """

    def __init__(
        self,
        goal: Sequence[float] = DEFAULT_GOAL,
        wall: WallSpec = DEFAULT_WALL,
        cruise_speed: float = 0.8,
        gain: float = 2.0,
        approach_gain: float = 1.5,
        noise_std: float = 0.3,
        noise_corr: float = 0.7,
        seed: Optional[int] = None,
    ) -> None:
        self.goal = np.asarray(goal, dtype=np.float64).reshape(2)
        self.wall = None if wall is None else tuple(float(v) for v in wall)
        self.cruise_speed = cruise_speed
        self.gain = gain
        self.approach_gain = approach_gain
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

    def _targets(self, pos: np.ndarray, goal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Current target of each row and whether it is the goal itself."""
        target, is_goal = goal.copy(), np.ones(len(pos), dtype=bool)
        if self.wall is None:
            return target, is_goal
        x_min, x_max, y_min, y_max = self.wall
        margin = 0.2
        # Pass the wall on the side of its end nearer to the point (and to the goal, on a tie)
        side = np.where(
            np.abs(pos[:, 1] - y_max) + np.abs(goal[:, 1] - y_max) <= np.abs(pos[:, 1] - y_min) + np.abs(goal[:, 1] - y_min),
            1.0,
            -1.0,
        )
        corner_y = np.where(side > 0, y_max + margin, y_min - margin)
        blocked = (side > 0) & (pos[:, 1] < y_max + 0.5 * margin) | (side < 0) & (pos[:, 1] > y_min - 0.5 * margin)
        before = pos[:, 0] < x_min - 0.5 * margin
        beside = ~before & (pos[:, 0] < x_max + 0.5 * margin)
        first = before & blocked  # go to the corner before the wall
        second = (before & ~blocked) | beside  # then along the wall, to the corner after it
        target[first] = np.stack([np.full(first.sum(), x_min - margin), corner_y[first]], axis=1)
        target[second] = np.stack([np.full(second.sum(), x_max + margin), corner_y[second]], axis=1)
        is_goal &= ~(first | second)
        return target, is_goal

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
        goal = batch[:, 4:6] if batch.shape[1] >= 6 else np.broadcast_to(self.goal, pos.shape).copy()

        target, is_goal = self._targets(pos, goal)
        offset = target - pos
        dist = np.linalg.norm(offset, axis=1, keepdims=True)
        speed = np.where(is_goal[:, None], np.minimum(self.cruise_speed, self.approach_gain * dist), self.cruise_speed)
        desired_vel = speed * offset / np.maximum(dist, 1e-6)
        action = self.gain * (desired_vel - vel)
        # Noise fades near the goal (a human steadies the hand when stopping), so that it still finishes
        goal_dist = np.linalg.norm(goal - pos, axis=1, keepdims=True)
        noise_scale = np.clip(goal_dist / 0.3, 0.3, 1.0)
        action = action + noise_scale * self._next_noise(len(batch))
        action = np.clip(action, -1.0, 1.0).astype(np.float32)
        return action[0] if single else action


# IBRL settings that solve PointGoal-v0 from 1 demo in about 2000 env steps (used by the quickstart, the
# learning test and benchmarks/learning_check.py): small nets, and fast value propagation (10-step returns,
# tau = 0.05) so that the sparse reward reaches the start states within a short budget. The paper's
# state-based defaults (3 x 512 nets, n = 3, tau = 0.01, G = 5) are the IBRL constructor's defaults.
POINT_GOAL_IBRL_SETTINGS: dict[str, Any] = dict(
    learning_rate=1e-3,
    batch_size=128,
    learning_starts=300,
    gradient_steps=1,
    policy_delay=1,
    n_steps=10,
    tau=0.05,
    policy_kwargs=dict(net_arch=[64, 64], n_critics=5),
)
