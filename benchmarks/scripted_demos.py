"""
Success rate and episode length of the scripted experts (:mod:`sb3_ibrl.demos`) on every simulated task, in
state mode: episode ``i`` starts from reset seed ``seed + i``, as ``python -m sb3_ibrl.demos`` records them.

    OMP_NUM_THREADS=1 python benchmarks/scripted_demos.py --episodes 20

Prints a Markdown table and writes JSON (default ``benchmarks/results/scripted_demos.json``).
"""

import argparse
import json
import os
import platform
import time
from typing import Any

import numpy as np

from sb3_ibrl.demos import make_scripted_env, make_scripted_expert
from sb3_ibrl.demos.recording import play_episode
from sb3_ibrl.envs import METAWORLD_TASKS, ROBOMIMIC_TASKS

DEFAULT_IDS = [f"{task}-state-v0" for task in (*ROBOMIMIC_TASKS, *METAWORLD_TASKS)]


def measure(env_id: str, episodes: int, seed: int) -> dict[str, Any]:
    """
    Play the expert of one task.

    :param env_id: the task id
    :param episodes: number of episodes
    :param seed: reset seed of the first episode
    :return: success rate, mean lengths (all episodes, successful ones), time limit, seconds per episode
    """
    env = make_scripted_env(env_id)
    expert = make_scripted_expert(env)
    successes, lengths = [], []
    start = time.perf_counter()
    for i in range(episodes):
        demo, success = play_episode(env, expert, seed + i)
        successes.append(success)
        lengths.append(len(demo.episode))
    elapsed = time.perf_counter() - start
    limit = env.spec.max_episode_steps if env.spec is not None else None
    env.close()
    good = [length for length, success in zip(lengths, successes) if success]
    return {
        "env_id": env_id,
        "episodes": episodes,
        "success_rate": float(np.mean(successes)),
        "mean_length": float(np.mean(lengths)),
        "mean_success_length": float(np.mean(good)) if good else None,
        "max_episode_steps": limit,
        "failed_seeds": [seed + i for i, success in enumerate(successes) if not success],
        "seconds_per_episode": elapsed / episodes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", nargs="+", default=DEFAULT_IDS, help="task ids (default: every task, state mode)")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/scripted_demos.json")
    args = parser.parse_args()

    results = []
    print("| task | success | mean length (successes) | time limit | s / episode |")
    print("|---|---|---|---|---|")
    for env_id in args.ids:
        row = measure(env_id, args.episodes, args.seed)
        results.append(row)
        length = "-" if row["mean_success_length"] is None else f"{row['mean_success_length']:.1f}"
        n_success = round(row["success_rate"] * row["episodes"])
        print(
            f"| {env_id} | {row['success_rate']:.0%} ({n_success}/{row['episodes']}) | {length} "
            f"| {row['max_episode_steps']} | {row['seconds_per_episode']:.2f} |",
            flush=True,
        )
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        f"load average at the end {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}"
    )
    if os.path.dirname(args.out):
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as file:
        json.dump({"args": vars(args), "machine": machine, "results": results}, file, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
