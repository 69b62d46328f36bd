"""
Record the scripted experts' demonstrations of the simulated tasks into robomimic HDF5 files, and replay them.

Every episode starts from its own reset seed (``seed``, ``seed + 1``, ... one per attempt; only successful
episodes are kept), so that any demo can be replayed alone: ``data/demo_<k>.attrs["seed"]`` (this is why the
recording loop is :func:`play_episode`, not :func:`~sb3_ibrl.common.evaluation.record_episodes`, which seeds only the
first reset; it also keeps the state vectors and robosuite's MuJoCo states). A file holds:

- ``data.attrs["env_args"]``: JSON with the gymnasium id (``"gym_id"``) and robomimic's ``env_name`` / ``type``;
- low-dimensional keys of the flat state vector in every observation mode: robosuite ``object``,
  ``robot0_eef_pos``, ``robot0_eef_quat``, ``robot0_gripper_qpos`` (robomimic's names and order); Meta-World
  ``state`` (39);
- pixel modes: the camera image as ``<camera>_image``, ``uint8`` channel-last ``(96, 96, 3)`` as robomimic
  stores images (read back channel-first, the env's layout);
- the keys of the recorded mode (``data.attrs["sb3_ibrl_obs_keys"]``): ``state`` the low-dim keys,
  ``pixel`` ``[<camera>_image]``, ``pixelproprio`` ``{<camera>: [<camera>_image], "proprio": [eef_pos, eef_quat,
  gripper_qpos]}``, so ``IBRL(demonstrations=path)`` and ``python -m sb3_ibrl.bc`` read it as that env's observations;
- robosuite: ``states``, MuJoCo's flattened state before each action (robomimic's convention).
"""

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from sb3_ibrl.data.episodes import Episode, stack_obs
from sb3_ibrl.data.robomimic_hdf5 import ObsKeys, list_robomimic_demos, read_robomimic_episodes
from sb3_ibrl.data.robomimic_writer import write_robomimic_hdf5
from sb3_ibrl.demos.experts import make_scripted_expert
from sb3_ibrl.envs import METAWORLD_ENV_IDS, ROBOSUITE_ENV_IDS, MetaWorldEnv, RobosuiteEnv
from sb3_ibrl.envs.robosuite_envs import PROPRIO_KEYS

SCRIPTED_ENV_IDS = (*ROBOSUITE_ENV_IDS, *METAWORLD_ENV_IDS)
ROBOSUITE_TYPE, GYM_TYPE = 1, 2  # robomimic's EnvType values


@dataclass
class RecordedDemo:
    """
    One recorded episode.

    :param episode: observations (in the env's observation mode), actions, rewards, terminal flag
    :param states: the flat state vectors (``info["state"]``), ``(T + 1, state_dim)``
    :param seed: the ``env.reset`` seed of the episode
    :param sim_states: robosuite's flattened MuJoCo states before each action, ``(T, dim)`` (``None`` for Meta-World)
    """

    episode: Episode
    states: np.ndarray
    seed: int
    sim_states: Optional[np.ndarray] = None


def make_scripted_env(env_id: str) -> gym.Env:
    """
    Make a simulated task that has a scripted expert.

    :param env_id: e.g. ``"Assembly-state-v0"`` or ``"Lift-pixelproprio-v0"``
    :return: the env (with its time limit)
    """
    if env_id not in SCRIPTED_ENV_IDS:
        raise ValueError(f"No scripted expert for env {env_id!r}: choose one of {', '.join(SCRIPTED_ENV_IDS)}")
    return gym.make(env_id)


def _sim_state(env: gym.Env) -> Optional[np.ndarray]:
    base = env.unwrapped
    if isinstance(base, RobosuiteEnv):
        return np.asarray(base.unwrapped_sim.sim.get_state().flatten(), dtype=np.float64)
    return None


def play_episode(env: gym.Env, expert: Callable[[np.ndarray], np.ndarray], seed: int) -> tuple[RecordedDemo, bool]:
    """
    Play one episode of a scripted expert (which reads ``info["state"]``) from a seeded reset.

    :param env: the env (with its time limit)
    :param expert: maps the state vector to an action; its ``reset()`` (if any) is called first
    :param seed: the reset seed
    :return: the recorded episode and whether it ended with ``info["is_success"]``
    """
    reset = getattr(expert, "reset", None)
    if callable(reset):
        reset()
    obs, info = env.reset(seed=seed)
    observations, states, actions, rewards, sim_states = [obs], [info["state"]], [], [], []
    terminated = truncated = False
    while not (terminated or truncated):
        sim_state = _sim_state(env)
        if sim_state is not None:
            sim_states.append(sim_state)
        action = np.asarray(expert(info["state"]), dtype=np.float32).reshape(-1)
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        states.append(info["state"])
        actions.append(action)
        rewards.append(float(reward))
    episode = Episode(obs=stack_obs(observations), acts=np.stack(actions), rews=np.asarray(rewards), terminal=bool(terminated))
    demo = RecordedDemo(episode, np.stack(states).astype(np.float32), seed, np.stack(sim_states) if sim_states else None)
    return demo, bool(info.get("is_success", False))


def record_demos(
    env: gym.Env, n_demos: int, seed: int = 0, max_attempts: Optional[int] = None, progress: bool = False
) -> tuple[list[RecordedDemo], int]:
    """
    Record successful episodes of the env's scripted expert, the attempt ``i`` starting from reset seed ``seed + i``.

    :param env: a Meta-World or robosuite env of :mod:`sb3_ibrl.envs`, any observation mode
    :param n_demos: number of successful demos to record
    :param seed: reset seed of the first attempt
    :param max_attempts: most episodes to play (default ``max(10, 2 * n_demos)``)
    :param progress: show a tqdm progress bar
    :return: the demos and the number of episodes played
    """
    if n_demos < 1:
        raise ValueError(f"The number of demos must be at least 1, got {n_demos}")
    max_attempts = max(10, 2 * n_demos) if max_attempts is None else max_attempts
    if max_attempts < n_demos:
        raise ValueError(f"max_attempts ({max_attempts}) must be at least the number of demos ({n_demos})")
    expert = make_scripted_expert(env)
    demos: list[RecordedDemo] = []
    attempts = 0
    name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    with tqdm(total=n_demos, unit="demo", desc=name, disable=not progress, dynamic_ncols=True) as bar:
        while len(demos) < n_demos and attempts < max_attempts:
            demo, success = play_episode(env, expert, seed + attempts)
            attempts += 1
            if success:
                demos.append(demo)
                bar.update()
            bar.set_postfix(attempts=attempts, length=len(demo.episode))
    if len(demos) < n_demos:
        raise RuntimeError(
            f"The scripted expert succeeded in only {len(demos)} of {attempts} episodes, fewer than the {n_demos} "
            "demos requested: raise max_attempts"
        )
    return demos, attempts


@dataclass
class ObsLayout:
    """
    How an env's observations are stored.

    :param low_dim: low-dim file keys of the state vector and their slices
    :param image_key: file key of the camera image (pixel modes), else ``None``
    :param obs_keys: the file keys that give the env's observations (recorded in the file)
    """

    low_dim: dict[str, slice]
    image_key: Optional[str]
    obs_keys: ObsKeys = field(default_factory=list)


def obs_layout(env: gym.Env, state_dim: int) -> ObsLayout:
    """
    The file layout of an env's observations (see the module docstring).

    :param env: a Meta-World or robosuite env of :mod:`sb3_ibrl.envs`
    :param state_dim: size of its flat state vector
    :return: the layout
    """
    base: Any = env.unwrapped
    if isinstance(base, RobosuiteEnv):
        sizes = dict(zip(PROPRIO_KEYS, (3, 4, 2)))
        low_dim, start = {"object": slice(0, state_dim - 9)}, state_dim - 9
        for key in PROPRIO_KEYS:
            low_dim[key] = slice(start, start + sizes[key])
            start += sizes[key]
    elif isinstance(base, MetaWorldEnv):
        low_dim = {"state": slice(0, state_dim)}
    else:
        raise ValueError(f"No demo file layout for {type(base).__name__}: only the Meta-World and robosuite tasks")
    mode = base.obs_mode
    image_key = None if mode == "state" else f"{base.camera}_image"
    if mode == "state":
        obs_keys: ObsKeys = list(low_dim)
    elif mode == "pixel":
        obs_keys = [str(image_key)]
    else:
        obs_keys = {base.camera: [str(image_key)], "proprio": list(PROPRIO_KEYS)}
    return ObsLayout(low_dim, image_key, obs_keys)


def env_args(env: gym.Env) -> dict[str, Any]:
    """
    The ``data.attrs["env_args"]`` of a demo file: robomimic's ``env_name``, ``type`` and ``env_kwargs``, and the
    gymnasium id (``gym_id``) that :func:`replay_demos` and the CLI check.

    :param env: the env made from a registered id
    :return: the metadata
    """
    if env.spec is None:
        raise ValueError("The env has no gymnasium spec: make it with gym.make(<id>)")
    base: Any = env.unwrapped
    common = {"gym_id": env.spec.id, "obs_mode": base.obs_mode, "max_episode_steps": env.spec.max_episode_steps}
    if isinstance(base, RobosuiteEnv):
        kwargs = {"robots": ["Panda"], "controller": "OSC_POSE", "control_freq": 20, "reward_shaping": False}
        return {"env_name": base.task.robosuite_name, "type": ROBOSUITE_TYPE, "env_kwargs": kwargs, **common}
    return {"env_name": env.spec.id, "type": GYM_TYPE, "env_kwargs": {"task": base.task_name}, **common}


def save_demos(path: Union[str, os.PathLike], env: gym.Env, demos: list[RecordedDemo]) -> str:
    """
    Write recorded demos to a robomimic HDF5 file (see the module docstring for its keys).

    :param path: the file (overwritten; parent folders are created)
    :param env: the env they were recorded in
    :param demos: the demos
    :return: the path written
    """
    if not demos:
        raise ValueError("No demo to save")
    layout = obs_layout(env, demos[0].states.shape[1])
    rows = []
    for demo in demos:
        obs = {key: demo.states[:, part] for key, part in layout.low_dim.items()}
        if layout.image_key is not None:
            episode_obs = demo.episode.obs
            camera = env.unwrapped.camera  # type: ignore[attr-defined]
            obs[layout.image_key] = episode_obs[camera] if isinstance(episode_obs, dict) else episode_obs
        dones = np.zeros(len(demo.episode), dtype=np.int64)
        dones[-1] = int(demo.episode.terminal)
        rows.append(
            dict(obs=obs, actions=demo.episode.acts, rewards=demo.episode.rews, dones=dones, attrs={"seed": demo.seed})
        )
        if demo.sim_states is not None:
            rows[-1]["states"] = demo.sim_states
    path = os.fspath(path)
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    write_robomimic_hdf5(path, rows, env_args=env_args(env), obs_keys=layout.obs_keys, channel_first=True)
    return path


def file_env_args(path: Union[str, os.PathLike]) -> dict[str, Any]:
    """
    The ``env_args`` of a demo file.

    :param path: the file
    :return: the decoded JSON (``{}`` when absent)
    """
    import h5py

    list_robomimic_demos(path)  # clear errors for a missing or non-robomimic file
    with h5py.File(os.fspath(path), "r") as file:
        raw = file["data"].attrs.get("env_args")
    if raw is None:
        return {}
    return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))


def task_of(env_id: str) -> str:
    """The task part of a simulated task's id (``"Lift-pixel-v0"`` -> ``"Lift"``)."""
    return env_id.split("-")[0]


@dataclass
class ReplayReport:
    """
    Outcome of :func:`replay_demos`.

    :param env_id: the env the actions ran in
    :param successes: per demo, whether the replay succeeded
    :param lengths: per demo, the recorded length and the replayed one (up to success)
    :param max_state_error: per demo, the largest absolute difference between the replayed and the recorded state vectors
    """

    env_id: str
    successes: list[bool] = field(default_factory=list)
    lengths: list[tuple[int, int]] = field(default_factory=list)
    max_state_error: list[float] = field(default_factory=list)

    @property
    def n_success(self) -> int:
        """Number of demos whose replay succeeds."""
        return int(sum(self.successes))


def _state_keys(env: gym.Env) -> list[str]:
    """The file keys that hold the flat state vector."""
    return ["object", *PROPRIO_KEYS] if isinstance(env.unwrapped, RobosuiteEnv) else ["state"]


def _replay_one(env: gym.Env, seed: int, recorded: Episode, sim_state: Optional[np.ndarray]) -> tuple[bool, int, float]:
    """Replay one demo's actions; return (success, replayed length, largest state error)."""
    _, info = env.reset(seed=seed)
    if sim_state is not None and not np.allclose(_sim_state(env), sim_state):  # type: ignore[arg-type]
        sim = env.unwrapped.unwrapped_sim.sim  # type: ignore[attr-defined]
        sim.set_state_from_flattened(sim_state)  # the seed gave another start (e.g. another robosuite version)
        sim.forward()
    states = recorded.obs
    error = float(np.abs(info["state"] - states[0]).max())  # type: ignore[index]
    for step, action in enumerate(recorded.acts):
        _, _, terminated, truncated, info = env.step(action)
        error = max(error, float(np.abs(info["state"] - states[step + 1]).max()))  # type: ignore[index]
        if info.get("is_success", False):
            return True, step + 1, error
        if terminated or truncated:
            break
    return False, step + 1, error


def replay_demos(path: Union[str, os.PathLike], env_id: Optional[str] = None, progress: bool = False) -> ReplayReport:
    """
    Re-execute a demo file's actions in its env, each demo from its recorded reset seed (and, for robosuite, the
    recorded first MuJoCo state if the seed gives another one), and report which demos still succeed.

    Meta-World and robosuite Can / Square replay exactly (state difference 0). robosuite draws Lift's cube size
    once per env instance, from an unseeded generator, so a Lift replay in another env instance differs by about a
    millimetre (and still succeeds).

    :param path: a file written by :func:`save_demos`
    :param env_id: the env to replay in (default: the file's); another observation mode of the same task is
        allowed (``state`` is the fastest), another task is an error
    :param progress: show a tqdm progress bar
    :return: the report
    """
    import h5py

    recorded_id = file_env_args(path).get("gym_id")
    if recorded_id is None:
        raise ValueError(
            f"{os.fspath(path)} does not record its env (no 'gym_id' in data.attrs['env_args']): "
            "not a demo file of python -m sb3_ibrl.demos"
        )
    env_id = env_id or recorded_id
    if task_of(env_id) != task_of(recorded_id):
        raise ValueError(f"{os.fspath(path)} holds demos of {recorded_id}, which cannot be replayed in {env_id}")
    names = list_robomimic_demos(path)
    with h5py.File(os.fspath(path), "r") as file:
        groups = [file["data"][name] for name in names]
        if any("seed" not in group.attrs for group in groups):
            raise ValueError(f"{os.fspath(path)} has demos without a reset seed (data/demo_<k>.attrs['seed']): cannot replay")
        seeds = [int(group.attrs["seed"]) for group in groups]
        first_states = [np.asarray(group["states"][0]) if "states" in group else None for group in groups]
    env = make_scripted_env(env_id)
    report = ReplayReport(env_id)
    try:
        episodes = read_robomimic_episodes(path, _state_keys(env), channel_first=False)
        items = zip(seeds, episodes, first_states)
        for seed, episode, first_state in tqdm(items, total=len(seeds), unit="demo", desc="replay", disable=not progress):
            success, length, error = _replay_one(env, seed, episode, first_state)
            report.successes.append(success)
            report.lengths.append((len(episode), length))
            report.max_state_error.append(error)
    finally:
        env.close()
    return report
