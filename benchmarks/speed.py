"""
Time per 1K env steps of IBRL vs SB3's TD3 with the same network sizes, ensemble size E and UTD,
on the same task, in one run (interleaved, so both see the same machine load).

    python benchmarks/speed.py --env PointGoal-v0 --n-critics 2 5 --steps 2000 --repeats 3

TD3 gets ``n_critics=E`` (SB3 evaluates its critics one module at a time); IBRL evaluates its E
critics in one batched forward and, in addition, runs the IL policy when acting and in every TD target.
IBRL's policy uses fused Adam by default; TD3 is timed as shipped and with fused Adam too.
"""

import argparse
import json
import os
import platform
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import TD3
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.policies import ActorCriticPolicy

import sb3_ibrl  # noqa: F401  (registers the built-in env)
from sb3_ibrl import IBRL


def make_models(env_id: str, n_critics: int, net_arch: list[int], utd: int, batch_size: int, seed: int) -> dict[str, Any]:
    env = gym.make(env_id)
    action_dim = env.action_space.shape[0]
    common = dict(
        learning_rate=1e-4,
        batch_size=batch_size,
        learning_starts=batch_size,
        gradient_steps=utd,
        policy_delay=utd,
        train_freq=1,
        tau=0.01,
        seed=seed,
        device="cpu",
    )
    # A BC-sized IL policy (SB3 ActorCriticPolicy, as imitation's BC trains), random weights: only its cost matters
    il_policy = ActorCriticPolicy(env.observation_space, env.action_space, lambda _: 1e-4, net_arch=[256, 256])
    ibrl = IBRL(
        "MlpPolicy", env, il_policy=il_policy, n_steps=1, policy_kwargs=dict(net_arch=net_arch, n_critics=n_critics), **common
    )
    noise = NormalActionNoise(np.zeros(action_dim), 0.1 * np.ones(action_dim))
    td3_kwargs = dict(net_arch=net_arch, n_critics=n_critics)
    td3 = TD3("MlpPolicy", gym.make(env_id), action_noise=noise, policy_kwargs=td3_kwargs, **common)
    td3_fused_kwargs = dict(td3_kwargs, optimizer_kwargs=dict(fused=True))
    td3_fused = TD3("MlpPolicy", gym.make(env_id), action_noise=noise, policy_kwargs=td3_fused_kwargs, **common)
    return {"IBRL": ibrl, "TD3": td3, "TD3 fused Adam": td3_fused}


def time_per_1k_steps(model: Any, steps: int) -> float:
    model.learn(model.learning_starts)  # warm-up: fill the buffer, build everything
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return 1000.0 * (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="PointGoal-v0")
    parser.add_argument("--n-critics", type=int, nargs="+", default=[2, 5])
    parser.add_argument("--net-arch", type=int, nargs="+", default=[512, 512, 512])
    parser.add_argument(
        "--utd", type=int, default=None, help="critic updates per env step, G (default: 1 for E=2, 5 otherwise)"
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    th.set_num_threads(args.threads)

    results = []
    print("| config | IBRL s / 1K steps | TD3 s / 1K steps | TD3 (fused Adam) | IBRL / TD3 | IBRL / TD3 fused |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n_critics in args.n_critics:
        utd = args.utd if args.utd is not None else (1 if n_critics == 2 else 5)
        times: dict[str, list[float]] = {"IBRL": [], "TD3": [], "TD3 fused Adam": []}
        for repeat in range(args.repeats):
            models = make_models(args.env, n_critics, args.net_arch, utd, args.batch_size, seed=repeat)
            order = list(models.items()) if repeat % 2 == 0 else list(models.items())[::-1]  # no order bias
            for name, model in order:
                times[name].append(time_per_1k_steps(model, args.steps))
        ibrl, td3, td3_fused = (float(np.median(times[name])) for name in ("IBRL", "TD3", "TD3 fused Adam"))
        row = dict(
            n_critics=n_critics,
            utd=utd,
            ibrl_s_per_1k=ibrl,
            td3_s_per_1k=td3,
            td3_fused_s_per_1k=td3_fused,
            ratio=ibrl / td3,
            ratio_fused=ibrl / td3_fused,
        )
        results.append(row)
        print(
            f"| E={n_critics}, G={utd} | {ibrl:.1f} | {td3:.1f} | {td3_fused:.1f} "
            f"| {ibrl / td3:.2f} | {ibrl / td3_fused:.2f} |",
            flush=True,
        )
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {th.__version__}, {args.threads} threads"
    )
    print(f"machine: {machine}")
    if args.out:
        with open(args.out, "w") as file:
            json.dump(dict(args=vars(args), machine=machine, results=results), file, indent=2)


if __name__ == "__main__":
    main()
