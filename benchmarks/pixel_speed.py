"""
Gradient updates per second from pixels at batch 256 (96 x 96 RGB, E = 2 critics, one actor update per critic
update): IBRL's ViT Q-network (the paper's ViT and the release's conv-stem ViT), IBRL with the DrQ encoder,
and SB3's TD3 ``CnnPolicy`` (NatureCNN) as the yardstick, in one run.

    python benchmarks/pixel_speed.py --updates 5 --device cpu

The replay buffers are filled with random images (``PointGoal-v0`` in ``obs_mode="pixel"`` at 96 x 96 gives the
spaces: 2-D actions); no env step is timed. IBRL's IL policy is a free callable here, so the numbers are the RL
update alone (a BC ResNet-18 on the next observations adds its own forward pass per update).
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

import sb3_ibrl  # noqa: F401  (registers PointGoal-v0)
from sb3_ibrl import IBRL

VARIANTS: dict[str, dict[str, Any]] = {
    "IBRL ViT (paper: patch 8, depth 3)": dict(encoder="vit"),
    "IBRL ViT (release: conv stem, depth 1)": dict(encoder="vit", encoder_kwargs=dict(stem="conv", depth=1)),
    "IBRL DrQ encoder": dict(encoder="drq"),
}


def fill(model: Any, n: int, seed: int = 0) -> None:
    """Write ``n`` random transitions into a model's replay buffer."""
    rng = np.random.default_rng(seed)
    space = model.observation_space
    for t in range(n):
        obs = rng.integers(0, 256, (1, *space.shape), dtype=np.uint8)
        next_obs = rng.integers(0, 256, (1, *space.shape), dtype=np.uint8)
        action = rng.uniform(-1, 1, (1, model.action_space.shape[0])).astype(np.float32)
        done = np.array([t % 50 == 49])
        model.replay_buffer.add(obs, next_obs, action, np.zeros(1, np.float32), done, [{"TimeLimit.truncated": False}])


def updates_per_second(model: Any, updates: int, batch_size: int) -> float:
    model.train(gradient_steps=1, batch_size=batch_size)  # warm-up
    start = time.perf_counter()
    model.train(gradient_steps=updates, batch_size=batch_size)
    if model.device.type == "cuda":
        th.cuda.synchronize()
    return updates / (time.perf_counter() - start)


def make_models(device: str) -> dict[str, Any]:
    env = gym.make("PointGoal-v0", obs_mode="pixel", image_size=96)
    common = dict(buffer_size=2000, learning_starts=0, gradient_steps=1, policy_delay=1, seed=0, device=device)
    models: dict[str, Any] = {}
    for name, policy_kwargs in VARIANTS.items():
        models[name] = IBRL(
            "CnnPolicy",
            env,
            il_policy=lambda obs: th.zeros(len(obs), 2),
            n_steps=3,
            policy_kwargs=dict(n_critics=2, **policy_kwargs),
            **common,
        )
    models["SB3 TD3 CnnPolicy (NatureCNN)"] = TD3("CnnPolicy", env, **common)
    for model in models.values():
        model._setup_learn(1)  # sets the logger that train() writes to
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="JSON file for the results")
    args = parser.parse_args()
    models = make_models(args.device)
    results = {}
    for name, model in models.items():
        fill(model, 1000)
        results[name] = updates_per_second(model, args.updates, args.batch_size)
        print(f"{name:45s} {results[name]:8.2f} updates/s", flush=True)
    if args.out:
        machine = dict(platform=platform.platform(), cpus=os.cpu_count(), torch=th.__version__, threads=th.get_num_threads())
        if args.device.startswith("cuda"):
            machine["gpu"] = th.cuda.get_device_name()
        with open(args.out, "w") as file:
            json.dump(
                dict(machine=machine, batch_size=args.batch_size, device=args.device, updates_per_second=results),
                file,
                indent=2,
            )


if __name__ == "__main__":
    main()
