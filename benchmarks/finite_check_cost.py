"""
Cost of the finiteness check of the IL actions (``FrozenILPolicy._check_finite``, one per IL call: per batch in the TD
target, per step when acting), against the IL call itself and one IBRL gradient step, on the CPU.

    OMP_NUM_THREADS=1 python benchmarks/finite_check_cost.py --batch-size 256 --repeats 2000
"""

import argparse
import platform
import time
from typing import Callable

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.policies import ActorCriticPolicy

import sb3_ibrl  # noqa: F401  (registers PointGoal-v0)
from sb3_ibrl import IBRL
from sb3_ibrl.il.frozen import FrozenILPolicy


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    """The median wall time of ``function`` over ``repeats`` calls (after 20 warm-up calls)."""
    for _ in range(20):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="PointGoal-v0")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--train-steps", type=int, default=30, help="gradient steps timed for the comparison")
    args = parser.parse_args()
    th.set_num_threads(1)
    env = gym.make(args.env)
    # A BC-sized IL policy, as imitation's BC trains it (random weights: only its cost matters)
    policy = ActorCriticPolicy(env.observation_space, env.action_space, lambda _: 1e-4, net_arch=[256, 256])
    frozen = FrozenILPolicy(policy, env.action_space, "benchmark")  # type: ignore[arg-type]
    obs = th.as_tensor(np.stack([env.observation_space.sample() for _ in range(args.batch_size)]))
    actions = frozen(obs)

    check = median_seconds(lambda: frozen._check_finite(actions, obs), args.repeats)
    with_check = median_seconds(lambda: frozen(obs), args.repeats)
    frozen._check_finite = lambda *_: None  # type: ignore[method-assign]
    without_check = median_seconds(lambda: frozen(obs), args.repeats)

    model = IBRL("MlpPolicy", env, il_policy=policy, batch_size=args.batch_size, learning_starts=args.batch_size, seed=0)
    model.learn(args.batch_size + 1)  # fill the buffer
    start = time.perf_counter()
    model.train(gradient_steps=args.train_steps, batch_size=args.batch_size)
    step = (time.perf_counter() - start) / args.train_steps

    print(f"machine: {platform.machine()}, torch {th.__version__}, 1 thread; batch {args.batch_size}")
    print(f"finiteness check alone:       {check * 1e6:8.1f} us")
    print(f"IL call with the check:       {with_check * 1e6:8.1f} us")
    print(f"IL call without the check:    {without_check * 1e6:8.1f} us")
    print(f"one IBRL gradient step:       {step * 1e6:8.1f} us (default settings: 3 x 512, E = 5)")
    print(f"check / gradient step:        {check / step:8.2%}")


if __name__ == "__main__":
    main()
