"""
Built-in tasks of sb3-ibrl.

Importing this package registers ``PointGoal-v0`` with gymnasium (once, however often it is imported).
"""

import gymnasium as gym

from sb3_ibrl.envs.point_goal import POINT_GOAL_IBRL_SETTINGS, PointGoalEnv, PointGoalExpert

POINT_GOAL_ID = "PointGoal-v0"
POINT_GOAL_MAX_EPISODE_STEPS = 100

if POINT_GOAL_ID not in gym.registry:
    gym.register(
        id=POINT_GOAL_ID,
        entry_point="sb3_ibrl.envs.point_goal:PointGoalEnv",
        max_episode_steps=POINT_GOAL_MAX_EPISODE_STEPS,
    )

__all__ = ["POINT_GOAL_IBRL_SETTINGS", "POINT_GOAL_ID", "POINT_GOAL_MAX_EPISODE_STEPS", "PointGoalEnv", "PointGoalExpert"]
