"""
The deployed hybrid under several confidences, on the same training run (issue 14).

Collecting data does not read the deployment's choice, so one IBRL run is evaluated at every checkpoint with each
``proposal_confidence`` k (0 is the paper's greedy actor proposal), always confident (the switch to greedy once the
hybrid matched its IL policy is not applied). Per checkpoint it also records the IL share of the executed actions and
the critics' Q-values of the two proposals on the demo states.

    python benchmarks/confidence_sweep.py --task Assembly-state-v0 --seeds 0 2 --steps 10000 --eval-every 1000
    python benchmarks/confidence_sweep.py --task PointGoal-v0 --seeds 0 1 2 3 4 5 --steps 3000 --eval-every 500
    python benchmarks/confidence_sweep.py --task PointGoal-pixel-v0 --seeds 0 1 2 --override proposal_critic='target'

Meta-World and robomimic tasks use the benchmark runner's ``cpu`` profile (demos, BC, settings); ``PointGoal-v0`` uses
the learning test's setup (``benchmarks/learning_check.py``: 1 demo, ``POINT_GOAL_IBRL_SETTINGS``), and
``PointGoal-pixel-v0`` (``PointGoal-v0`` from 32 x 32 images) the pixel check's (``benchmarks/pixel_learning_check.py``:
1 demo, a small ViT, an IL policy that reads the images). ``--override key=value`` passes IBRL keywords to any task.
"""

import argparse
import csv
import os
import sys
import time
from typing import Any, Optional

import gymnasium as gym
import numpy as np
import torch as th

import sb3_ibrl  # noqa: F401  (registers the tasks)
from sb3_ibrl import IBRL
from sb3_ibrl.benchmark.headline_tasks import ibrl_override
from sb3_ibrl.benchmark.methods import make_model
from sb3_ibrl.benchmark.runner import _proposal_diagnostics, evaluate_model, prepare_assets
from sb3_ibrl.benchmark.tasks import get_task
from sb3_ibrl.common.evaluation import evaluate_policy_success, record_episodes
from sb3_ibrl.data.demo_files import load_episodes

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pixel_learning_check import EVAL_SEED as PIXEL_EVAL_SEED
from pixel_learning_check import make_env as make_pixel_env
from pixel_learning_check import pixel_model

POINT_GOAL_PIXEL = "PointGoal-pixel-v0"  # PointGoal-v0 with obs_mode="pixel"


def point_goal_model(seed: int, overrides: dict[str, Any]) -> tuple[IBRL, list, float, int]:
    """The learning test's setup: 1 scripted demo (seed 2), BC of 1000 batches; evaluation reset seed 123."""
    from sb3_ibrl.envs import POINT_GOAL_IBRL_SETTINGS, PointGoalExpert
    from sb3_ibrl.il.training import train_bc

    env = gym.make("PointGoal-v0")
    demos = record_episodes(env, PointGoalExpert(seed=2), n_episodes=1, seed=2)
    bc = train_bc(demos, env.observation_space, env.action_space, n_batches=1000, learning_rate=1e-3, net_arch=[64, 64],
                  seed=seed)  # fmt: skip
    bc_success = evaluate_policy_success(env, lambda obs: bc.policy.predict(obs, deterministic=True)[0], 20, 123)[0]
    settings = {**POINT_GOAL_IBRL_SETTINGS, **overrides}
    model = IBRL("MlpPolicy", env, il_policy=bc, demonstrations=demos, seed=seed, **settings)
    return model, demos, bc_success, 123


def runner_model(task_id: str, seed: int, out: str, overrides: dict[str, Any]) -> tuple[IBRL, list, float, int]:
    """The benchmark runner's ``cpu`` profile: its demos and BC policy (shared with ``--out``), its settings."""
    from sb3_ibrl.benchmark.runner import EVAL_SEED

    task = get_task(task_id, "cpu")
    assets = prepare_assets(task, seed, out, 20)
    settings = {**task.rl_settings, **overrides}
    model = make_model("ibrl", gym.make(task.env_id), settings, assets["demos"], il_policy=assets["bc"], seed=seed)
    return model, load_episodes(assets["demos"]), assets["bc_success"], EVAL_SEED


def main(argv: Optional[list[str]] = None) -> list[str]:
    """
    Run the sweep.

    :param argv: the command line (``None``: ``sys.argv``)
    :return: the paths of the CSV files written, one per seed
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="PointGoal-v0")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--confidences", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0, 4.0],
                        help="the k to deploy with; inf keeps the IL action everywhere (the IL policy alone)")  # fmt: skip
    parser.add_argument("--out", default="benchmarks/results/hybrid_il")
    parser.add_argument(
        "--override", nargs="*", type=ibrl_override, default=[], metavar="KEY=VALUE", help="IBRL keywords, e.g. train_freq=2"
    )
    args = parser.parse_args(argv)
    overrides = dict(args.override)
    th.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    paths = []
    for seed in args.seeds:
        if args.task == "PointGoal-v0":
            model, demos, bc_success, eval_seed = point_goal_model(seed, overrides)
        elif args.task == POINT_GOAL_PIXEL:
            model, demos, bc_success = pixel_model(seed, eval_episodes=args.eval_episodes, overrides=overrides)
            eval_seed = PIXEL_EVAL_SEED
        else:
            model, demos, bc_success, eval_seed = runner_model(args.task, seed, args.out, overrides)
        env = make_pixel_env() if args.task == POINT_GOAL_PIXEL else gym.make(args.task)
        rows, start = [], time.perf_counter()
        path = os.path.join(args.out, f"sweep_{args.task}_seed{seed}.csv")
        while model.num_timesteps < args.steps:
            model.learn(args.eval_every, reset_num_timesteps=model.num_timesteps == 0)
            row = {"seed": seed, "env_steps": model.num_timesteps, "bc": bc_success, **_proposal_diagnostics(model, demos)}
            for k in args.confidences:
                with model.policy.deployed_with(k):
                    if args.task in ("PointGoal-v0", POINT_GOAL_PIXEL):
                        act = lambda obs, model=model: model.predict(obs, deterministic=True)[0]  # noqa: E731
                        success, il_share = evaluate_policy_success(env, act, args.eval_episodes, eval_seed)[0], np.nan
                    else:
                        success, _, il_share = evaluate_model(model, env, args.eval_episodes)
                row[f"k{k:g}"], row[f"il_share_k{k:g}"] = success, il_share
            # the model's own rule: its proposal_confidence until the hybrid matched its IL policy, then greedy
            row["deployed_k"] = model.deployed_confidence
            row["deployed"] = row.get(f"k{model.deployed_confidence:g}", np.nan)
            rows.append(row)
            print(f"[{args.task} seed {seed}] {model.num_timesteps} steps, BC {bc_success:.2f}, success by k: "
                  + " ".join(f"{k:g}:{row[f'k{k:g}']:.2f}" for k in args.confidences)
                  + f"  {time.perf_counter() - start:.0f}s", flush=True)  # fmt: skip
            with open(path, "w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=list(rows[-1]))
                writer.writeheader()
                writer.writerows(rows)
        areas = {k: np.mean([row[f"k{k:g}"] for row in rows]) for k in args.confidences}
        print(f"[{args.task} seed {seed}] area by k: " + " ".join(f"{k:g}:{area:.3f}" for k, area in areas.items()))
        paths.append(path)
    return paths


if __name__ == "__main__":
    main()
