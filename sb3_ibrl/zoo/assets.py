"""
Generate the files that an rl-zoo3 IBRL config names when they are missing: the demonstrations and the IL policy.

``hyperparams/ibrl.yml`` gives ``demonstrations`` and ``il_policy`` as paths, relative to the working directory
(e.g. ``demos/Lift-state-v0.hdf5`` and ``il/Lift-state-v0.zip``). Before the model is built,
:func:`ensure_assets` creates the missing ones, showing progress:

- demos of the simulated tasks with the scripted experts: ``python -m sb3_ibrl.demos --env ID --n N --out PATH``
  (``N``: the paper's demo count, :data:`DEMO_COUNTS`); for ``PointGoal-v0`` with :class:`PointGoalExpert`;
- the IL policy with behaviour cloning on those demos (``python -m sb3_ibrl.bc``, :data:`BC_SETTINGS`), for a number
  of batches sized to the demos (:func:`sb3_ibrl.il.sizing.bc_batches`); it prints how long that will take.

Files are written under a temporary name and moved in place, while holding a lock on the folder, so that several
processes (e.g. Optuna workers) starting together generate each file once.
"""

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional, Union

from sb3_ibrl.common.files import atomic_path
from sb3_ibrl.envs import METAWORLD_ENV_IDS, POINT_GOAL_ID, ROBOSUITE_ENV_IDS

PathType = Union[str, os.PathLike]

# Number of demonstrations per task (paper, Sec. 5.1 and Table 2)
TASK_DEMO_COUNTS = {"Lift": 1, "Can": 10, "Square": 50}
METAWORLD_DEMO_COUNT = 3
DEMO_COUNTS: dict[str, int] = {
    POINT_GOAL_ID: 1,
    **{env_id: TASK_DEMO_COUNTS[task] for env_id, (task, _) in ROBOSUITE_ENV_IDS.items()},
    **{env_id: METAWORLD_DEMO_COUNT for env_id in METAWORLD_ENV_IDS},
}
# Behaviour cloning: batch 256, Adam 1e-4 as the paper (Appendix); the number of batches is sized to the demos
# (sb3_ibrl.il.sizing.bc_batches) instead of the paper's 100K, which is 100K passes over a few short demos (CoffeePush:
# 82 transitions) before the first RL step. PointGoal as in the quickstart.
PAPER_BC_SETTINGS: dict[str, Any] = dict(batch_size=256, lr=1e-4)
BC_SETTINGS: dict[str, dict[str, Any]] = {POINT_GOAL_ID: dict(n_batches=1000, batch_size=256, lr=1e-3)}
POINT_GOAL_DEMO_SEED = 2


def default_demos_path(env_id: str) -> str:
    """Where demos are generated when the config names an IL policy to train but no demonstrations."""
    return os.path.join("demos", f"{env_id}{'.npz' if env_id == POINT_GOAL_ID else '.hdf5'}")


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on a folder (POSIX ``flock``; no lock where it is unavailable)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextlib.contextmanager
def _atomic_target(path: PathType) -> Iterator[Optional[Path]]:
    """
    Yield a temporary file name next to ``path`` (same suffix), then move it to ``path``; yield ``None`` when
    ``path`` exists (possibly made by another process meanwhile).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(target.parent):
        if target.exists():
            yield None
            return
        with atomic_path(target) as temporary:
            yield temporary
        print(f"Wrote {target}", flush=True)


def _record_point_goal(path: Path, n: int, env_kwargs: dict[str, Any]) -> None:
    import gymnasium as gym

    from sb3_ibrl.common.evaluation import record_episodes
    from sb3_ibrl.data.demo_files import save_episodes
    from sb3_ibrl.envs import PointGoalExpert

    env = gym.make(POINT_GOAL_ID, **env_kwargs)
    pixels = env_kwargs.get("obs_mode", "state") != "state"
    episodes = record_episodes(
        env,
        PointGoalExpert(seed=POINT_GOAL_DEMO_SEED),
        n_episodes=n,
        seed=POINT_GOAL_DEMO_SEED,
        act_fn_input="state" if pixels else "obs",
    )
    env.close()
    if path.suffix in (".hdf5", ".h5"):
        from sb3_ibrl.data.robomimic_writer import write_robomimic_hdf5

        if isinstance(episodes[0].obs, dict):
            raise ValueError(f"Write Dict-observation demos of {POINT_GOAL_ID} to an .npz file, not {path.name}")
        demos = [dict(obs={"obs": ep.obs}, actions=ep.acts, rewards=ep.rews) for ep in episodes]
        write_robomimic_hdf5(path, demos, env_args={"env_name": POINT_GOAL_ID, "type": 0}, obs_keys=["obs"])
    elif path.suffix == ".npz":
        save_episodes(path, episodes)
    else:
        raise ValueError(f"Demo files end with .npz or .hdf5, got {path}")
    print(f"{POINT_GOAL_ID}: {n} scripted demo(s), lengths {[len(ep) for ep in episodes]}")


def ensure_demos(env_id: str, path: PathType, n: Optional[int] = None, env_kwargs: Optional[dict[str, Any]] = None) -> str:
    """
    Record scripted demonstrations into ``path`` unless it exists.

    :param env_id: the task id
    :param path: demo file (``.hdf5``; ``.npz`` or ``.hdf5`` for ``PointGoal-v0``)
    :param n: number of demos (default: the paper's, :data:`DEMO_COUNTS`)
    :param env_kwargs: keyword arguments of ``gym.make`` (``PointGoal-v0`` only: the scripted-demo command line
        makes the registered task as is)
    :return: the path
    """
    n = DEMO_COUNTS.get(env_id) if n is None else n
    if n is None:
        raise ValueError(
            f"No scripted demonstrator or demo count for {env_id!r}: record demos yourself and point "
            f"`demonstrations` of its hyperparameters at the file ({os.fspath(path)} is missing)"
        )
    with _atomic_target(path) as temporary:
        if temporary is None:
            return os.fspath(path)
        print(f"Demonstrations {os.fspath(path)} are missing: recording {n} scripted demo(s) of {env_id}", flush=True)
        if env_id == POINT_GOAL_ID:
            _record_point_goal(temporary, n, dict(env_kwargs or {}))
        else:
            command = [sys.executable, "-m", "sb3_ibrl.demos", "--env", env_id, "--n", str(n), "--out", str(temporary)]
            print("$ " + " ".join(command[1:]).replace(str(temporary), os.fspath(path)), flush=True)
            result = subprocess.run(command, check=False)
            if result.returncode != 0:
                raise RuntimeError(
                    f"Could not record the demos of {env_id} (`python -m sb3_ibrl.demos` exited with status "
                    f"{result.returncode}, see above): record them yourself into {os.fspath(path)}"
                )
    return os.fspath(path)


def ensure_il_policy(
    env_id: str, demos_path: PathType, path: PathType, env_kwargs: Optional[dict[str, Any]] = None, **bc_settings: Any
) -> str:
    """
    Train a BC policy on ``demos_path`` and save it to ``path`` unless it exists (``python -m sb3_ibrl.bc``).

    :param env_id: the task id
    :param demos_path: the demo file to clone
    :param path: the policy file to write (``IBRL(il_policy=path)`` loads it)
    :param env_kwargs: keyword arguments of ``gym.make``
    :param bc_settings: ``n_batches``, ``batch_size``, ``lr``, ... of ``python -m sb3_ibrl.bc`` (default:
        :data:`BC_SETTINGS` for the task, else the paper's batch size and learning rate, :data:`PAPER_BC_SETTINGS`,
        and a number of batches sized to the demos); a given ``n_batches`` wins
    :return: the path
    """
    import json

    from sb3_ibrl.il.cli import make_parser, run

    settings = {**BC_SETTINGS.get(env_id, PAPER_BC_SETTINGS), **bc_settings}
    with _atomic_target(path) as temporary:
        if temporary is None:
            return os.fspath(path)
        print(f"IL policy {os.fspath(path)} is missing: behaviour cloning on {os.fspath(demos_path)}", flush=True)
        argv = ["--demos", os.fspath(demos_path), "--env", env_id, "--out", str(temporary)]
        for name, value in settings.items():
            if value is not None:  # None: the command line's default (e.g. n_batches sized to the demos)
                argv += [f"--{name.replace('_', '-')}", str(value)]
        if env_kwargs:
            argv += ["--env-kwargs", json.dumps(env_kwargs)]
        run(make_parser().parse_args(argv))
    return os.fspath(path)


def ensure_assets(env_id: str, hyperparams: dict[str, Any], env_kwargs: Optional[dict[str, Any]] = None) -> None:
    """
    Generate the ``demonstrations`` and ``il_policy`` files that IBRL hyperparameters name and that are missing.

    :param env_id: the task id
    :param hyperparams: IBRL hyperparameters (an rl-zoo3 config entry); values other than path strings are left alone
    :param env_kwargs: keyword arguments of ``gym.make``
    """
    demos, il_policy = hyperparams.get("demonstrations"), hyperparams.get("il_policy")
    if isinstance(demos, str) and not os.path.exists(demos):
        ensure_demos(env_id, demos, env_kwargs=env_kwargs)
    if isinstance(il_policy, str) and not os.path.exists(il_policy):
        source = demos if isinstance(demos, str) else ensure_demos(env_id, default_demos_path(env_id), env_kwargs=env_kwargs)
        ensure_il_policy(env_id, source, il_policy, env_kwargs=env_kwargs)
