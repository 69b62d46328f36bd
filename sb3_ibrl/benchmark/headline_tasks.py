"""
What the headline run (:mod:`sb3_ibrl.benchmark.headline`) runs: its tasks and their settings, envs and demos, the
``--smoke`` sizes, the check of the keyword overrides, and one run's settings (:class:`HeadlineConfig`).
"""

import argparse
import functools
import inspect
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import gymnasium as gym
import numpy as np

from sb3_ibrl.benchmark.headline_tools import parse_assignments
from sb3_ibrl.benchmark.runner import record_task_demos
from sb3_ibrl.benchmark.tasks import TaskSpec, get_task, known_task_ids, task_name
from sb3_ibrl.data.episodes import Episode
from sb3_ibrl.envs import METAWORLD_TASKS, POINT_GOAL_ID
from sb3_ibrl.envs.point_goal_pixels import POINT_GOAL_PIXEL_IBRL_SETTINGS

POINT_GOAL_PIXEL = "PointGoal-pixel-v0"  # the headline's name for PointGoal-v0 with obs_mode="pixel" (no simulator)
HEADLINE_STEPS = {"Lift": 20_000, **{name: 100_000 for name in METAWORLD_TASKS}, "PointGoal": 3000}
BC_SECONDS = 60.0
# --smoke: the same code path in tiny sizes (CPU, under 2 minutes); the episodes are cut at SMOKE_EPISODE_STEPS
SMOKE = dict(steps=300, eval_every=150, eval_episodes=2, bc_seconds=3.0)
SMOKE_EPISODE_STEPS = 40
# the small ViT of the PointGoal pixel settings, without their ensemble size (the task's settings give it)
SMOKE_POLICY = {key: value for key, value in POINT_GOAL_PIXEL_IBRL_SETTINGS["policy_kwargs"].items() if key != "n_critics"}
SMOKE_IBRL = dict(batch_size=32, learning_starts=100, policy_kwargs=SMOKE_POLICY)
SMOKE_BC = dict(resnet_width=8, batch_size=32)


def headline_task_ids() -> list[str]:
    """The tasks of the headline run: the pixel tasks of the benchmark and ``PointGoal-pixel-v0``."""
    return [POINT_GOAL_PIXEL] + [env_id for env_id in known_task_ids() if "-pixel-" in env_id]


def check_keywords(overrides: dict[str, Any], bc_overrides: dict[str, Any]) -> None:
    """Fail before anything runs when an override is not a keyword of ``IBRL`` (or of ``train_bc``)."""
    from sb3_ibrl.ibrl import IBRL
    from sb3_ibrl.il.training import train_bc

    for options, function, flag in ((overrides, IBRL.__init__, "--override"), (bc_overrides, train_bc, "--bc")):
        known = set(inspect.signature(function).parameters) - {"self", "policy", "env"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"{flag} {', '.join(unknown)}: not a keyword of {function.__qualname__}; known: {sorted(known)}")


def ibrl_override(item: str) -> tuple[str, Any]:
    """
    One ``key=value`` of a benchmark's ``--override``, for ``argparse`` (``type=ibrl_override``; then
    ``dict(args.override)``): the value read as a Python literal, the key checked against ``IBRL``'s keywords.

    :param item: e.g. ``"train_freq=2"`` or ``"proposal_critic='target'"``
    :return: ``(key, value)``
    :raises argparse.ArgumentTypeError: naming the problem (argparse prints it as a usage error and exits)
    """
    try:
        ((key, value),) = parse_assignments([item], "value").items()
        check_keywords({key: value}, {})
    except ValueError as error:  # argparse names the flag itself: "argument --override: ..."
        raise argparse.ArgumentTypeError(str(error).removeprefix("--override ")) from error
    return key, value


def task_spec(task: str) -> TaskSpec:
    """The paper's settings of a headline task (``PointGoal-pixel-v0``: its calibrated small-ViT settings)."""
    if task == POINT_GOAL_PIXEL:
        base = get_task(POINT_GOAL_ID)
        return TaskSpec(
            task, base.n_demos, base.budget, base.eval_every, dict(POINT_GOAL_PIXEL_IBRL_SETTINGS), base.bc_settings
        )
    return get_task(task, "paper")


def make_task_env(task: str, smoke: bool = False) -> gym.Env:
    """One env of a headline task (``--smoke`` cuts the episodes of the simulated tasks at ``SMOKE_EPISODE_STEPS``)."""
    if task == POINT_GOAL_PIXEL:
        return gym.make(POINT_GOAL_ID, obs_mode="pixel")
    return gym.make(task, **(dict(max_episode_steps=SMOKE_EPISODE_STEPS) if smoke else {}))


def env_factory(task: str, smoke: bool) -> Callable[[], gym.Env]:
    """
    A picklable function that makes one env of the task: ``SubprocVecEnv`` workers unpickle it, which imports
    this module and thereby registers the package's envs.
    """
    return functools.partial(make_task_env, task, smoke)


def record_demos(task: str, n_demos: int, seed: int) -> list[Episode]:
    """The scripted expert's demos, full-length (``PointGoal-pixel-v0``: the PointGoal expert reads ``info["state"]``)."""
    if task == POINT_GOAL_PIXEL:
        from sb3_ibrl.common.evaluation import record_episodes
        from sb3_ibrl.envs import PointGoalExpert

        env = make_task_env(task)
        return record_episodes(env, PointGoalExpert(seed=seed), n_demos, seed=seed, act_fn_input="state")
    return record_task_demos(task, n_demos, seed=seed)


@dataclass
class HeadlineConfig:
    """
    One headline run (see the module docstring). ``None`` picks the default (``--smoke``'s when ``smoke``).

    :param out_dir: output folder (the same folder continues a run)
    :param task: a pixel task id (:func:`headline_task_ids`)
    :param steps: IBRL env steps (Lift 20K, Meta-World 100K)
    :param eval_every: env steps between evaluations (``steps // 10``)
    :param eval_episodes: episodes per evaluation (10)
    :param eval_envs: parallel evaluation envs (up to 10 and the cores but one; the training envs idle meanwhile)
    :param n_envs: parallel training envs (``SubprocVecEnv`` when more than 1)
    :param device: ``"auto"``, ``"cuda"`` or ``"cpu"`` (BC and IBRL)
    :param time_limit: seconds for this call, from its start (``None``: no limit)
    :param bc_seconds: time budget of BC, its probes included (60)
    :param smoke: tiny sizes for a CPU check of the whole path
    :param seed: seed of demos, BC, IBRL and training envs
    :param overrides: IBRL keyword arguments on top of the task's (``policy_kwargs`` are merged)
    :param bc_overrides: :func:`~sb3_ibrl.il.training.train_bc` keyword arguments (``n_batches`` caps the count)
    :param bc_chunk: actions per chunk of an action-chunking BC (1: the paper's plain BC): it predicts the next
        ``bc_chunk`` actions and acts by temporal ensembling, alone and as IBRL's (stateful) IL policy
    :param bc_chunk_decay: temporal ensembling's ``m`` in ``exp(-m i)`` (ACT: 0.01)
    """

    out_dir: str
    task: str = "Lift-pixel-v0"
    steps: Optional[int] = None
    eval_every: Optional[int] = None
    eval_episodes: Optional[int] = None
    eval_envs: Optional[int] = None
    n_envs: int = 1
    device: str = "auto"
    time_limit: Optional[float] = None
    bc_seconds: Optional[float] = None
    smoke: bool = False
    seed: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)
    bc_overrides: dict[str, Any] = field(default_factory=dict)
    bc_chunk: int = 1
    bc_chunk_decay: float = 0.01

    def resolve(self) -> "HeadlineConfig":
        """A copy with every default filled in and checked."""
        if self.task not in headline_task_ids():
            raise ValueError(f"Unknown headline task {self.task!r}: expected one of {headline_task_ids()}")
        smoke = SMOKE if self.smoke else {}

        def pick(value: Any, name: str, default: Any) -> Any:
            return value if value is not None else smoke.get(name, default)

        steps = pick(self.steps, "steps", HEADLINE_STEPS.get(task_name(self.task), 100_000))
        eval_every = pick(self.eval_every, "eval_every", max(steps // 10, 1))
        eval_episodes = pick(self.eval_episodes, "eval_episodes", 10)
        free_cores = max((os.cpu_count() or 2) - 1, 1)  # the training envs never step during an evaluation
        eval_envs = pick(self.eval_envs, "eval_envs", 1 if self.smoke else min(eval_episodes, 10, free_cores))
        counts = dict(steps=steps, eval_every=eval_every, eval_episodes=eval_episodes, n_envs=self.n_envs, eval_envs=eval_envs,
                      bc_chunk=self.bc_chunk)  # fmt: skip
        for name, value in counts.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if not (np.isfinite(self.bc_chunk_decay) and self.bc_chunk_decay >= 0):
            raise ValueError(f"bc_chunk_decay must be a number >= 0, got {self.bc_chunk_decay}")
        check_keywords(self.overrides, self.bc_overrides)
        for name in ("time_limit", "bc_seconds"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        return HeadlineConfig(
            **{
                **self.__dict__,
                "steps": steps,
                "eval_every": eval_every,
                "eval_episodes": eval_episodes,
                "eval_envs": min(eval_envs, eval_episodes),
                "bc_seconds": pick(self.bc_seconds, "bc_seconds", BC_SECONDS),
                "bc_chunk_decay": float(self.bc_chunk_decay) if self.bc_chunk > 1 else 0.0,  # plain BC: none
            }
        )
