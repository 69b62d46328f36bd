"""
The main job on the built-in task: scripted demos -> BC with imitation -> IBRL, printing the success curve.

    python examples/quickstart.py                      # PointGoal-v0, 1 demo, 3000 env steps, 31-76 s (see below)
    python examples/quickstart.py --demos 3 --steps 5000 --save ibrl_point_goal.zip

31 s with the defaults on 2 idle CPU cores, 76 s when other jobs shared them.
"""

import argparse
import time

import gymnasium as gym
import numpy as np
import torch as th

import sb3_ibrl
from sb3_ibrl import IBRL
from sb3_ibrl.common.callbacks import SuccessCurveCallback
from sb3_ibrl.common.evaluation import evaluate_policy_success, record_episodes
from sb3_ibrl.envs import POINT_GOAL_IBRL_SETTINGS, PointGoalExpert
from sb3_ibrl.il.training import train_bc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demos", type=int, default=1, help="number of scripted demonstrations")
    parser.add_argument("--steps", type=int, default=3000, help="IBRL env steps")
    parser.add_argument("--demo-seed", type=int, default=2)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-episodes", type=int, default=30)
    parser.add_argument("--bc-batches", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--save", default=None, help="save the trained IBRL model to this .zip")
    args = parser.parse_args()
    th.manual_seed(args.seed)
    print(f"sb3-ibrl {sb3_ibrl.__version__}: IBRL on PointGoal-v0")
    th.set_num_threads(1)  # small networks: one thread is as fast, and runs are reproducible

    # 1. Demonstrations from the scripted, imperfect demonstrator (successful episodes only)
    env = gym.make("PointGoal-v0")
    demos = record_episodes(env, PointGoalExpert(seed=args.demo_seed), n_episodes=args.demos, seed=args.demo_seed)
    print(f"[1/3] {len(demos)} scripted demos, lengths {[len(ep) for ep in demos]}")

    # 2. Behaviour cloning with imitation's BC
    start = time.perf_counter()
    bc = train_bc(
        demos, env.observation_space, env.action_space, n_batches=args.bc_batches, learning_rate=1e-3, seed=args.seed
    )

    def bc_act(obs: np.ndarray) -> np.ndarray:
        return bc.policy.predict(obs, deterministic=True)[0]

    bc_success, bc_length = evaluate_policy_success(gym.make("PointGoal-v0"), bc_act, args.eval_episodes, seed=10_000)
    print(f"[2/3] BC ({time.perf_counter() - start:.0f}s): success {bc_success:.0%}, mean episode length {bc_length:.1f}")

    # 3. IBRL: the frozen BC policy proposes actions next to the RL actor; demos prefill the replay buffer
    model = IBRL("MlpPolicy", env, il_policy=bc, demonstrations=demos, seed=args.seed, **POINT_GOAL_IBRL_SETTINGS)
    callback = SuccessCurveCallback(gym.make("PointGoal-v0"), args.eval_every, args.eval_episodes, print_curve=True)
    print(f"[3/3] IBRL for {args.steps} env steps, evaluating every {args.eval_every} (hybrid policy, deterministic)")
    print(callback.header())
    model.learn(args.steps, callback=callback)
    if args.save:
        model.save(args.save)
        print(f"saved to {args.save} (IBRL.load restores the hybrid, IL policy included)")


if __name__ == "__main__":
    main()
