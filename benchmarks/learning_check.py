"""
IBRL vs TD3 with the same demos in its buffer (same networks: IBRL without an IL policy) on PointGoal-v0,
over several seeds: success-rate curves, the learning test of ``tests/test_learning.py`` swept. IBRL is evaluated as
deployed by default (confident until the hybrid matched its IL policy, then greedy), and also deployed always with the
paper's greedy actor proposal ("IBRL greedy", ``proposal_confidence=0``) and always confidently ("IBRL confident"):
the same run, since collecting data does not read the deployment's choice.

    python benchmarks/learning_check.py --seeds 0 1 2 3 4 5 --steps 3000 --eval-every 500 --workers 2
"""

import argparse
import multiprocessing
import time

import gymnasium as gym
import numpy as np
import torch as th

import sb3_ibrl  # noqa: F401
from sb3_ibrl import IBRL
from sb3_ibrl.common.evaluation import evaluate_policy_success, record_episodes
from sb3_ibrl.envs import POINT_GOAL_IBRL_SETTINGS, PointGoalExpert
from sb3_ibrl.il.training import train_bc


def run_seed(seed: int, n_demos: int, demo_seed: int, steps: int, eval_every: int, eval_episodes: int) -> dict:
    """BC success, then the success curves of IBRL and TD3 + demos, for one seed."""
    th.set_num_threads(1)
    start = time.perf_counter()
    env = gym.make("PointGoal-v0")
    demos = record_episodes(env, PointGoalExpert(seed=demo_seed), n_episodes=n_demos, seed=demo_seed)
    bc = train_bc(
        demos, env.observation_space, env.action_space, n_batches=1000, learning_rate=1e-3, net_arch=[64, 64], seed=seed
    )
    row: dict = {"seed": seed}
    row["BC"] = evaluate_policy_success(env, lambda obs: bc.policy.predict(obs, deterministic=True)[0], eval_episodes, 123)[0]
    for name, il_policy in (("IBRL", bc), ("TD3 + demos", None)):
        model = IBRL(
            "MlpPolicy",
            gym.make("PointGoal-v0"),
            il_policy=il_policy,
            demonstrations=demos,
            seed=seed,
            **POINT_GOAL_IBRL_SETTINGS,
        )
        curves: dict[str, list[float]] = {name: [], "IBRL greedy": [], "IBRL confident": []}
        for k in range(steps // eval_every):
            model.learn(eval_every, reset_num_timesteps=k == 0)
            act = lambda obs, model=model: model.predict(obs, deterministic=True)[0]  # noqa: E731
            curves[name].append(evaluate_policy_success(env, act, eval_episodes, seed=123)[0])
            if il_policy is not None:
                for variant, confidence in (("IBRL greedy", 0.0), ("IBRL confident", model.proposal_confidence)):
                    with model.policy.deployed_with(confidence):
                        curves[variant].append(evaluate_policy_success(env, act, eval_episodes, seed=123)[0])
        row.update({key: value for key, value in curves.items() if value})
    row["seconds"] = time.perf_counter() - start
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--demos", type=int, default=1)
    parser.add_argument("--demo-seed", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-episodes", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2, help="seeds run in parallel processes (1 thread each)")
    args = parser.parse_args()

    jobs = [(seed, args.demos, args.demo_seed, args.steps, args.eval_every, args.eval_episodes) for seed in args.seeds]
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        rows = pool.starmap(run_seed, jobs)
    checkpoints = list(range(args.eval_every, args.steps + 1, args.eval_every))
    print(f"success over {args.eval_episodes} episodes at env steps {checkpoints}")
    names = ("IBRL", "IBRL greedy", "IBRL confident", "TD3 + demos")
    print("| seed | BC | " + " | ".join(names) + " |")
    print("| --- " * (len(names) + 2) + "|")
    for row in rows:
        curves = [" ".join(f"{v:.2f}" for v in row[name]) for name in names]
        print(f"| {row['seed']} | {row['BC']:.2f} | " + " | ".join(curves) + " |")
    means = {name: np.mean([row[name] for row in rows], axis=0) for name in names}
    mean_curves = [" ".join(f"{v:.2f}" for v in means[name]) for name in names]
    print(f"| mean | {np.mean([row['BC'] for row in rows]):.2f} | " + " | ".join(mean_curves) + " |")
    print(
        "area under the curve (mean success over the checkpoints): " + ", ".join(f"{n} {means[n].mean():.2f}" for n in names)
    )


if __name__ == "__main__":
    main()
