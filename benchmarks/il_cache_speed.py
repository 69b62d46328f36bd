"""
Update speed with and without cached IL actions, from states: IBRL's train() at batch 256 with the paper's state
networks (3 x 512, E = 5) and a BC policy as the IL policy (imitation's MLP, 2 x 256), on ``PointGoal-v0``.

    OMP_NUM_THREADS=1 python benchmarks/il_cache_speed.py --updates 200 --repeats 3 --out il_cache_state.json

Without the cache, every update runs the BC policy on the 256 next observations of its batch (the bootstrap
proposal); with it, the batch carries the IL actions computed when the transitions were stored. The replay buffer
is filled the same way for both (IL actions cached as collection would); the updates are timed, interleaved.
"""

import argparse
import json
import os
import platform
import time

import gymnasium as gym
import numpy as np
import torch as th

import sb3_ibrl  # noqa: F401  (registers PointGoal-v0)
from sb3_ibrl import IBRL
from sb3_ibrl.il.training import make_bc_policy


def make_model(cache: bool, env: gym.Env, bc) -> IBRL:
    model = IBRL("MlpPolicy", env, il_policy=bc, cache_il_actions=cache, buffer_size=20_000, learning_starts=0, seed=0,
                 policy_kwargs=dict(net_arch=[512, 512, 512], n_critics=5))  # fmt: skip
    model._setup_learn(1)
    rng = np.random.default_rng(0)
    for t in range(5000):
        obs, next_obs = rng.normal(size=(2, 1, *env.observation_space.shape)).astype(np.float32)
        if cache:
            model.replay_buffer.set_next_il_actions(model.il_policy(th.as_tensor(next_obs)).numpy())
        done = np.array([t % 100 == 99])
        model.replay_buffer.add(obs, next_obs, rng.uniform(-1, 1, (1, 2)), np.zeros(1), done, [{}])
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    env = gym.make("PointGoal-v0")
    bc = make_bc_policy(env.observation_space, env.action_space, net_arch=[256, 256])
    models = {"uncached": make_model(False, env, bc), "cached": make_model(True, env, bc)}
    rates: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.repeats):
        for name, model in models.items():
            model.train(gradient_steps=5, batch_size=256)
            start = time.perf_counter()
            model.train(gradient_steps=args.updates, batch_size=256)
            rates[name].append(args.updates / (time.perf_counter() - start))
    for name, values in rates.items():
        print(f"{name:9s} {np.median(values):7.1f} updates/s (median of {values})")
    if args.out:
        machine = dict(platform=platform.platform(), cpus=os.cpu_count(), torch=th.__version__, threads=th.get_num_threads())
        with open(args.out, "w") as file:
            json.dump(dict(machine=machine, updates_per_second=rates, loadavg=os.getloadavg()), file, indent=2)


if __name__ == "__main__":
    main()
