"""
How many BC batches a few demos need: the success rate of the BC policy (imitation's BC, the default state MLP, lr
1e-4, batches of min(256, transitions)) after each number of batches, on the scripted demos of state tasks. This
sets the defaults of :func:`sb3_ibrl.il.sizing.bc_batches` (``python -m sb3_ibrl.bc`` and rl-zoo3 without
``n_batches``).

    python benchmarks/bc_batches.py --tasks CoffeePush-state-v0 Assembly-state-v0 --seeds 0 1 \
        --checkpoints 250 500 1000 2000 4000 8000 --episodes 20 --out benchmarks/results/bc_batches.json
"""

import argparse
import json
import os
import tempfile
import time

import gymnasium as gym
import numpy as np
import torch as th

import sb3_ibrl.envs  # noqa: F401  (registers the tasks)
from sb3_ibrl.data.obs_keys import read_episodes_for_env
from sb3_ibrl.il.training import bc_action_error, evaluate_bc_policy, train_bc
from sb3_ibrl.zoo.assets import DEMO_COUNTS, ensure_demos


def run(env_id: str, seed: int, checkpoints: list[int], episodes: int, demo_dir: str) -> dict:
    """Train BC once up to the last checkpoint, evaluating at every checkpoint."""
    th.set_num_threads(1)
    path = ensure_demos(env_id, os.path.join(demo_dir, f"{env_id}.hdf5"))
    env = gym.make(env_id)
    demos = read_episodes_for_env(path, env.observation_space)
    row: dict = dict(env_id=env_id, seed=seed, n_demos=len(demos), n_transitions=sum(len(ep) for ep in demos), points=[])
    start = time.perf_counter()
    train_seconds = [0.0]

    def evaluate(done: int, policy: th.nn.Module) -> None:
        if done not in checkpoints:
            return
        train_seconds[0] = time.perf_counter() - start - sum(p["eval_seconds"] for p in row["points"])
        eval_start = time.perf_counter()
        success, length = evaluate_bc_policy(policy, env, episodes, seed=1000 + seed)
        policy.set_training_mode(True)
        point = dict(n_batches=done, success=success, mean_length=length, train_mse=bc_action_error(policy, demos))
        point.update(train_seconds=train_seconds[0], eval_seconds=time.perf_counter() - eval_start)
        row["points"].append(point)
        print(env_id, seed, {k: round(v, 4) if isinstance(v, float) else v for k, v in point.items()}, flush=True)

    train_bc(demos, env.observation_space, env.action_space, n_batches=max(checkpoints), seed=seed, callback=evaluate)
    env.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--tasks", nargs="+", default=["CoffeePush-state-v0", "Assembly-state-v0"], choices=sorted(DEMO_COUNTS)
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[250, 500, 1000, 2000, 4000, 8000])
    parser.add_argument("--episodes", type=int, default=20, help="evaluation episodes per checkpoint")
    parser.add_argument("--demo-dir", default=None, help="where the scripted demos are (made if missing)")
    parser.add_argument("--out", default="benchmarks/results/bc_batches.json")
    args = parser.parse_args()
    demo_dir = args.demo_dir or tempfile.mkdtemp(prefix="bc_batches_")
    rows = [run(task, seed, sorted(args.checkpoints), args.episodes, demo_dir) for task in args.tasks for seed in args.seeds]
    summary = {}
    for task in args.tasks:
        by_batches: dict[int, list[float]] = {}
        for row in rows:
            if row["env_id"] == task:
                for point in row["points"]:
                    by_batches.setdefault(point["n_batches"], []).append(point["success"])
        summary[task] = {str(n): float(np.mean(values)) for n, values in sorted(by_batches.items())}
    print(json.dumps(summary, indent=1))
    with open(args.out, "w") as file:
        json.dump(dict(command=vars(args), threads=1, summary=summary, runs=rows), file, indent=1)


if __name__ == "__main__":
    main()
