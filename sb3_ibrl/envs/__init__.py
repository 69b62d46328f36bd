"""
Built-in tasks of sb3-ibrl, registered with gymnasium when the package is imported (once, however often).

- ``PointGoal-v0``: a small sparse-reward task with a scripted demonstrator (no simulator needed).
- The paper's simulated tasks, ``<Task>-<obs_mode>-v0``:

  - robomimic through robosuite (extra ``sb3-ibrl[robosuite]``): ``Lift``, ``Can``, ``Square``, each with
    ``state``, ``pixel`` and ``pixelproprio`` observations (:mod:`sb3_ibrl.envs.robosuite_envs`);
  - Meta-World v3 (extra ``sb3-ibrl[metaworld]``): ``Assembly``, ``BoxClose``, ``CoffeePush``,
    ``StickPull``, each with ``state`` and ``pixel`` observations (:mod:`sb3_ibrl.envs.metaworld_envs`).

Registering imports no simulator: robosuite, Meta-World and mujoco are imported when such an env is made.
"""

import gymnasium as gym

from sb3_ibrl.envs.metaworld_envs import METAWORLD_MAX_EPISODE_STEPS, METAWORLD_OBS_MODES, METAWORLD_TASKS, MetaWorldEnv
from sb3_ibrl.envs.point_goal import POINT_GOAL_IBRL_SETTINGS, PointGoalEnv, PointGoalExpert
from sb3_ibrl.envs.robosuite_envs import ROBOMIMIC_TASKS, ROBOSUITE_OBS_MODES, RobosuiteEnv

POINT_GOAL_ID = "PointGoal-v0"
POINT_GOAL_MAX_EPISODE_STEPS = 100

if POINT_GOAL_ID not in gym.registry:
    gym.register(
        id=POINT_GOAL_ID,
        entry_point="sb3_ibrl.envs.point_goal:PointGoalEnv",
        max_episode_steps=POINT_GOAL_MAX_EPISODE_STEPS,
    )

# Every registered id of a simulated task: {id: (task, obs_mode)}
ROBOSUITE_ENV_IDS: dict[str, tuple[str, str]] = {
    f"{task}-{mode}-v0": (task, mode) for task in ROBOMIMIC_TASKS for mode in ROBOSUITE_OBS_MODES
}
METAWORLD_ENV_IDS: dict[str, tuple[str, str]] = {
    f"{name}-{mode}-v0": (task, mode) for name, task in METAWORLD_TASKS.items() for mode in METAWORLD_OBS_MODES
}

for _env_id, (_task, _mode) in ROBOSUITE_ENV_IDS.items():
    if _env_id not in gym.registry:
        gym.register(
            id=_env_id,
            entry_point="sb3_ibrl.envs.robosuite_envs:RobosuiteEnv",
            max_episode_steps=ROBOMIMIC_TASKS[_task].horizon,
            kwargs={"task": _task, "obs_mode": _mode},
        )
for _env_id, (_task, _mode) in METAWORLD_ENV_IDS.items():
    if _env_id not in gym.registry:
        gym.register(
            id=_env_id,
            entry_point="sb3_ibrl.envs.metaworld_envs:MetaWorldEnv",
            max_episode_steps=METAWORLD_MAX_EPISODE_STEPS,
            kwargs={"task": _task, "obs_mode": _mode},
        )

__all__ = [
    "METAWORLD_ENV_IDS",
    "METAWORLD_TASKS",
    "POINT_GOAL_IBRL_SETTINGS",
    "POINT_GOAL_ID",
    "POINT_GOAL_MAX_EPISODE_STEPS",
    "ROBOMIMIC_TASKS",
    "ROBOSUITE_ENV_IDS",
    "MetaWorldEnv",
    "PointGoalEnv",
    "PointGoalExpert",
    "RobosuiteEnv",
]
