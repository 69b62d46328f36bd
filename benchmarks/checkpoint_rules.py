"""
The last checkpoint of ``state_pixel_il.py``'s IBRL runs, evaluated on more episodes and under each way of acting.

A run's curve scores the deployed hybrid on 20 episodes per point: one such point is noisy (its standard error is
about 0.1 at a success of 0.5). This script loads each seed's last checkpoint (``<out>/<task>/seed_<n>/ibrl/model.zip``
and the seed's ``bc_policy.zip``; ``--at N``: the model a run with ``--keep-models`` kept at N env steps, its rows in
``*_at_<N>.csv``) and evaluates it on ``--episodes`` episodes (reset seeds from 1000, the curve's own
episodes first) as

- ``deployed``: the hybrid as the run deploys it (confident until it matched its IL policy, then greedy): the curve;
- ``greedy``: the paper's actor proposal (Eq. 1), ``proposal_confidence = 0``;
- ``confident``: the run's ``proposal_confidence`` (3 for states), whether or not the hybrid matched its IL policy;
- ``sampled``: the paper's actor proposal as while collecting data: each step scores the two actions with one random
  pair of the critics (``predict(deterministic=False)``, torch seeded for each evaluation), without exploration noise;
- ``collecting``: the hybrid exactly as it collects data: ``sampled`` with the run's exploration noise (Gaussian, std
  ``exploration_std``) on the RL action before the proposal, to compare a checkpoint with its training episodes;
- ``rl``: the RL actor alone;
- ``il``: the IL policy alone (the BC policy on its image).

The deployed hybrid is the greedy or the confident one, so its result is that way's, not evaluated again. Each seed's
rows go to ``seed_<n>/checkpoint_rules.csv``, one row per episode to ``seed_<n>/checkpoint_episodes.csv`` (success,
length and, on robosuite tasks, where the object started: ``x``, ``y`` and heading, to see *where* a way fails), and
the task's ``<out>/<task>/checkpoint_rules.csv`` gathers every seed evaluated so far, so the seeds can be evaluated by
one call each, at once; it prints the mean over ``--seeds`` (and the success by the object's start heading). A call
with some ``--ways`` replaces those ways' rows of the same checkpoint (and episodes) and keeps the others.

    OMP_NUM_THREADS=1 MUJOCO_GL=egl python benchmarks/checkpoint_rules.py --task Lift-state-v0 --seeds 0 1 2 \\
        --episodes 100 --out benchmarks/results/state_pixel_il/g1_rerun
"""

import argparse
import importlib.util
import json
import os
import time
from typing import Any, Optional

import numpy as np
import torch as th

from sb3_ibrl import IBRL
from sb3_ibrl.common.evaluation import EpisodeOutcome, evaluate_episodes, success_and_length
from sb3_ibrl.demos.experts import yaw_of
from sb3_ibrl.envs.robosuite_envs import RobosuiteEnv

WAYS = ("deployed", "greedy", "confident", "sampled", "collecting", "rl", "il")
FIELDS = ["task", "seed", "env_steps", "way", "episodes", "success_rate", "mean_episode_length", "eval_seconds"]
EPISODE_FIELDS = ["task", "seed", "env_steps", "way", "episode", "success", "length", "object_x", "object_y", "object_yaw_deg"]


def _state_pixel_il() -> Any:
    """``benchmarks/state_pixel_il.py`` as a module (its env, evaluation seed and BC actor)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "state_pixel_il.py")
    spec = importlib.util.spec_from_file_location("state_pixel_il", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


class CollectingActor:
    """
    The hybrid as it collects data (``IBRL._sample_action`` after the warm-up): the choice configured by
    ``proposal_beta`` with one random critic pair per step, on the RL action plus Gaussian exploration noise of std
    ``std`` (clipped to the action bounds), for one observation at a time. The noise is drawn from torch's generator, so
    that an evaluation seeded with ``th.manual_seed`` repeats.

    :param hybrid: the hybrid's act function with ``deterministic=False`` (``state_pixel_il.HybridActor``)
    :param std: the exploration noise's std (the run's ``exploration_std``)
    """

    def __init__(self, hybrid: Any, std: float):
        self.hybrid, self.std = hybrid, float(std)

    def reset(self) -> None:
        self.hybrid.reset()

    def __call__(self, obs: Any) -> np.ndarray:
        policy = self.hybrid.model.policy
        propose = policy.propose
        n_actions = int(np.prod(policy.action_space.shape))

        def noisy(observation: Any, rl_noise: Optional[th.Tensor] = None, *args: Any, **kwargs: Any) -> Any:
            noise = th.randn(1, n_actions) * self.std  # (1, action_dim): one observation at a time
            return propose(observation, noise.to(policy.device), *args, **kwargs)

        policy.propose = noisy  # type: ignore[method-assign]
        try:
            return self.hybrid(obs)
        finally:
            del policy.propose  # the class's method again


def actors(model: IBRL, bc: Any, key: str, spi: Any, bc_info: dict[str, Any]) -> dict[str, tuple[Optional[float], Any]]:
    """
    Each way of acting: the ``proposal_confidence`` to deploy with (``None``: the run's own) and the act function
    (each tells a stateful IL policy where its episodes start).

    :param model: the loaded IBRL model
    :param bc: the BC policy alone
    :param key: the observation key of the IL's image
    :param spi: ``state_pixel_il.py`` as a module
    :param bc_info: the seed's ``bc.json`` (a chunking BC is acted on with temporal ensembling)
    """
    configured = float(model.proposal_confidence)
    hybrid = spi.HybridActor(model)
    chunk, decay = int(bc_info.get("chunk_size", 1)), float(bc_info.get("chunk_decay", 0.0))
    return {
        "deployed": (None, hybrid),
        "greedy": (0.0, hybrid),
        "confident": (configured, hybrid),
        "sampled": (0.0, spi.HybridActor(model, deterministic=False)),
        "collecting": (0.0, CollectingActor(spi.HybridActor(model, deterministic=False), model.exploration_std)),
        "rl": (None, spi.HybridActor(model, rl_only=True)),
        "il": (None, spi.image_actor(bc, key, chunk, model.action_space, decay)),
    }


def object_start(env: Any, outcome: EpisodeOutcome) -> dict[str, Any]:
    """
    Where the episode's object started: on a robosuite task, its ``x``, ``y`` (m) and heading (degrees, in
    ``[-180, 180)``) from the reset's ``info["state"]`` (object position and ``xyzw`` quaternion first); else blanks.
    """
    state = outcome.start_info.get("state")
    if not isinstance(env.unwrapped, RobosuiteEnv) or state is None:
        return dict(object_x="", object_y="", object_yaw_deg="")
    yaw = (np.degrees(yaw_of(np.asarray(state[3:7]))) + 180.0) % 360.0 - 180.0
    return dict(object_x=round(float(state[0]), 4), object_y=round(float(state[1]), 4), object_yaw_deg=round(float(yaw), 1))


def success_by_heading(rows: list[dict[str, Any]], period: float, bins: int) -> list[tuple[float, int, int]]:
    """
    Success of episode rows by the object's start heading, folded into ``[0, period)`` (90: a cube looks the same turned
    by a quarter), in ``bins`` equal bins: ``(bin start, successes, episodes)`` per bin.
    """
    counts = np.zeros((bins, 2), dtype=int)
    for row in rows:
        if row["object_yaw_deg"] != "":
            index = min(int(float(row["object_yaw_deg"]) % period / period * bins), bins - 1)
            counts[index] += (int(row["success"]), 1)
    return [(i * period / bins, int(won), int(total)) for i, (won, total) in enumerate(counts)]


def evaluate_seed(args: argparse.Namespace, seed: int, spi: Any) -> list[dict[str, Any]]:
    """
    The rows of one seed: each of ``--ways`` on the same ``--episodes`` episodes, beside the other ways' rows of the same
    checkpoint from earlier calls (a row of an older checkpoint is dropped).
    """
    from stable_baselines3.common.policies import ActorCriticPolicy

    folder = os.path.join(args.out, args.task, f"seed_{seed}")
    model_name = "model.zip" if args.at is None else f"model_{args.at}.zip"
    model_path, bc_path = os.path.join(folder, "ibrl", model_name), os.path.join(folder, "bc_policy.zip")
    for path in (model_path, bc_path):
        if not os.path.exists(path):
            keep = " --keep-models" if args.at is not None else ""
            raise FileNotFoundError(f"{path} not found: run benchmarks/state_pixel_il.py with --out {args.out}{keep} first")
    env = spi.make_env(args.task, args.camera, with_il=True)
    model = IBRL.load(model_path, env=env, device="cpu")
    if args.at is not None and model.num_timesteps != args.at:
        raise ValueError(f"{model_path} holds a model at {model.num_timesteps} env steps, not {args.at}")
    bc = ActorCriticPolicy.load(bc_path, device="cpu")
    rows: list[dict[str, Any]] = []
    episodes: dict[str, list[dict[str, Any]]] = {}  # each evaluated way's episode rows
    done: dict[tuple[str, float], dict[str, Any]] = {}  # the hybrid under one confidence acts the same whatever its name
    bc_info: dict[str, Any] = {}  # a folder without bc.json: plain BC
    if os.path.exists(os.path.join(folder, "bc.json")):
        with open(os.path.join(folder, "bc.json")) as file:
            bc_info = json.load(file)
    for way, (confidence, act) in actors(model, bc, spi.il_key(args.task, args.camera), spi, bc_info).items():
        if way not in args.ways:
            continue
        deployed = model.policy.proposal_confidence if confidence is None else confidence
        key = ("hybrid" if way in ("deployed", "greedy", "confident") else way, float(deployed))
        if key in done:  # deterministic acts on the same episodes: the same result, not evaluated again
            rows.append({**done[key], "way": way, "eval_seconds": 0.0})
            episodes[way] = [{**row, "way": way} for row in episodes[done[key]["way"]]]
            print(f"[{args.task} seed {seed}] {way:>9}: as {done[key]['way']} (confidence {deployed:g})")
            continue
        start = time.perf_counter()
        th.manual_seed(spi.EVAL_SEED)  # the random critic pairs (and noise) of sampled and collecting: the same at every call
        with model.policy.deployed_with(deployed):
            outcomes = evaluate_episodes(env, act, args.episodes, seed=spi.EVAL_SEED)
        success, length = success_and_length(outcomes)
        head = dict(task=args.task, seed=seed, env_steps=model.num_timesteps, way=way)
        episodes[way] = [
            {**head, "episode": i, "success": int(o.success), "length": o.length, **object_start(env, o)}
            for i, o in enumerate(outcomes)
        ]
        row = dict(**head, episodes=args.episodes, success_rate=success, mean_episode_length=round(length, 1),
                   eval_seconds=round(time.perf_counter() - start, 1))  # fmt: skip
        print(f"[{args.task} seed {seed} at {model.num_timesteps}] {way:>9}: success {success:.3f} over {args.episodes}")
        rows.append(done.setdefault(key, row))
    rows = _merge(spi, os.path.join(folder, csv_name("checkpoint_rules", args.at)), rows, FIELDS, model.num_timesteps)
    episode_rows = [row for way in episodes for row in episodes[way]]
    episodes_path = os.path.join(folder, csv_name("checkpoint_episodes", args.at))
    _merge(spi, episodes_path, episode_rows, EPISODE_FIELDS, model.num_timesteps)
    return rows


def _merge(spi: Any, path: str, rows: list[dict[str, Any]], fields: list[str], env_steps: int) -> list[dict[str, Any]]:
    """Write ``rows`` beside the other ways' rows of the same checkpoint from earlier calls (in ``WAYS`` order); return all."""
    evaluated = {row["way"] for row in rows}
    kept = [row for row in spi.read_curve(path) if int(row["env_steps"]) == env_steps and row["way"] not in evaluated]
    rows = sorted(kept + rows, key=lambda row: WAYS.index(row["way"]))  # stable: episodes stay in order
    spi.write_curve(path, rows, fields)  # atomic
    return rows


def csv_name(stem: str, at: Optional[int]) -> str:
    """``<stem>.csv`` for the last checkpoint, ``<stem>_at_<N>.csv`` for the model kept at ``N`` env steps (``--at``)."""
    return f"{stem}.csv" if at is None else f"{stem}_at_{at}.csv"


def gather(out: str, task: str, spi: Any, at: Optional[int] = None) -> str:
    """The task's ``checkpoint_rules.csv``: the rows of every seed evaluated so far (one call per seed may run at once)."""
    task_dir, name = os.path.join(out, task), csv_name("checkpoint_rules", at)
    seeds = sorted(int(name[len("seed_") :]) for name in os.listdir(task_dir) if name.startswith("seed_"))
    rows = [row for seed in seeds for row in spi.read_curve(os.path.join(task_dir, f"seed_{seed}", name))]
    path = os.path.join(task_dir, name)
    spi.write_curve(path, rows, FIELDS)
    return path


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="Lift-state-v0")
    parser.add_argument("--camera", default="robot0_eye_in_hand", help="the IL policy's camera (as the run's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS))
    parser.add_argument("--out", default="benchmarks/results/state_pixel_il")
    parser.add_argument("--heading-period", type=float, default=90.0, help="print success by the object's start heading, "
                        "folded into [0, period) degrees (90: Lift's cube)")  # fmt: skip
    parser.add_argument("--heading-bins", type=int, default=6)
    parser.add_argument("--at", type=int, default=None, help="evaluate the model kept at this many env steps "
                        "(state_pixel_il.py --keep-models) instead of the last; rows go to *_at_<N>.csv")  # fmt: skip
    args = parser.parse_args(argv)
    if args.at is not None and args.at < 1:
        parser.error(f"--at must be at least 1, got {args.at}")
    if args.episodes < 1:
        parser.error(f"--episodes must be at least 1, got {args.episodes}")
    if not args.heading_period > 0 or args.heading_bins < 1:
        parser.error(f"--heading-period must be > 0 and --heading-bins >= 1, got {args.heading_period}, {args.heading_bins}")
    return args


def main(argv: Optional[list[str]] = None) -> str:
    """Evaluate every seed's checkpoint; return the path of the CSV."""
    args = parse_args(argv)
    th.set_num_threads(1)
    spi = _state_pixel_il()
    rows = [row for seed in args.seeds for row in evaluate_seed(args, seed, spi)]
    path = gather(args.out, args.task, spi, args.at)
    episodes = [
        row
        for seed in args.seeds
        for row in spi.read_curve(os.path.join(args.out, args.task, f"seed_{seed}", csv_name("checkpoint_episodes", args.at)))
    ]
    for way in args.ways:
        rates = [float(row["success_rate"]) for row in rows if row["way"] == way]
        print(f"{way:>9}: mean {np.mean(rates):.3f} over seeds {args.seeds} ({', '.join(f'{r:.2f}' for r in rates)})")
        mine = [row for row in episodes if row["way"] == way]
        by_heading = success_by_heading(mine, args.heading_period, args.heading_bins)
        if any(total for _, _, total in by_heading):
            print(" " * 11 + "by start heading: " + ", ".join(f"{start:g}+ {won}/{total}" for start, won, total in by_heading))
    return path


if __name__ == "__main__":
    main()
