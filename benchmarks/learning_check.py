"""
IBRL vs TD3 with the same demos in its buffer (same networks: IBRL without an IL policy) on PointGoal-v0,
over several seeds: the learning test of ``tests/test_learning.py``, swept.

    python benchmarks/learning_check.py --seeds 0 1 2 3 --demos 1 --steps 2000
"""

import argparse
import time

import gymnasium as gym
import numpy as np
import torch as th

import sb3_ibrl  # noqa: F401
from sb3_ibrl import IBRL
from sb3_ibrl.common.bc import train_bc
from sb3_ibrl.common.rollouts import evaluate_policy_success, record_episodes
from sb3_ibrl.envs import POINT_GOAL_IBRL_SETTINGS, PointGoalExpert


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--demos", type=int, default=1)
    parser.add_argument("--demo-seed", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--eval-episodes", type=int, default=50)
    args = parser.parse_args()
    th.set_num_threads(1)

    env = gym.make("PointGoal-v0")
    demos = record_episodes(env, PointGoalExpert(seed=args.demo_seed), n_episodes=args.demos, seed=args.demo_seed)
    rows = []
    for seed in args.seeds:
        start = time.perf_counter()
        bc = train_bc(
            demos, env.observation_space, env.action_space, n_batches=1000, learning_rate=1e-3, net_arch=[64, 64], seed=seed
        )
        bc_act = lambda obs, bc=bc: bc.policy.predict(obs, deterministic=True)[0]  # noqa: E731
        row = {"BC": evaluate_policy_success(env, bc_act, args.eval_episodes, seed=123)[0]}
        for name, il_policy in (("IBRL", bc), ("TD3 + demos", None)):
            model = IBRL(
                "MlpPolicy",
                gym.make("PointGoal-v0"),
                il_policy=il_policy,
                demonstrations=demos,
                seed=seed,
                **POINT_GOAL_IBRL_SETTINGS,
            )
            model.learn(args.steps)
            act = lambda obs, model=model: model.predict(obs, deterministic=True)[0]  # noqa: E731
            row[name] = evaluate_policy_success(env, act, args.eval_episodes, seed=123)[0]
        rows.append(row)
        print(
            f"seed {seed}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()) + f" ({time.perf_counter() - start:.0f}s)",
            flush=True,
        )
    print("mean: " + ", ".join(f"{k} {np.mean([r[k] for r in rows]):.2f}" for k in rows[0]))


if __name__ == "__main__":
    main()
