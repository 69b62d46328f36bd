"""
Successful training episodes per window of env steps, read from the replay buffer a ``state_pixel_il.py`` run saved.

How often the collecting policy (the hybrid with exploration noise, and the IL warm-up) succeeds tells whether the
critics see any reward at all; the README gives these counts per 5K steps beside each Lift curve. An episode counts
as successful when it earned a positive reward (the sparse tasks pay only on success); it is placed in the window of
its last step. One row per seed and window goes to ``<out>/<task>/training_successes.csv``:

    python benchmarks/training_successes.py --out benchmarks/results/state_pixel_il/g2_soft_bc3 --task Lift-state-v0 \\
        --seeds 0 1 2 --window 5000
"""

import argparse
import os
import sys
from typing import Any, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_files import write_curve

FIELDS = ["task", "method", "seed", "first_step", "last_step", "episodes", "successes"]


def episode_ends(rewards: np.ndarray, dones: np.ndarray) -> list[tuple[int, bool]]:
    """
    The episodes of one env's transitions, in the order they were collected.

    :param rewards: shape ``(n,)``
    :param dones: shape ``(n,)``, 1 where an episode ended (terminal or time limit)
    :return: per finished episode, the index of its last transition and whether it earned a positive reward
    """
    ends, start = [], 0
    for index in np.flatnonzero(dones):
        ends.append((int(index), bool((rewards[start : index + 1] > 0).any())))
        start = index + 1
    return ends


def stored_transitions(buffer: Any, path: str) -> tuple[np.ndarray, np.ndarray]:
    """Rewards and dones of a one-env buffer that never wrapped around, in the order they were collected."""
    if buffer.n_envs != 1:
        raise ValueError(f"{path}: the buffer holds {buffer.n_envs} envs; this script reads one-env runs")
    if buffer.full:
        raise ValueError(f"{path}: the buffer wrapped around ({buffer.buffer_size} transitions), so its oldest episodes "
                         "are gone and the counts would miss them")  # fmt: skip
    return buffer.rewards[: buffer.pos, 0], buffer.dones[: buffer.pos, 0]


def window_counts(ends: list[tuple[int, bool]], first_step: int, n_steps: int, window: int) -> list[dict[str, int]]:
    """
    Episodes and successes per window of env steps.

    :param ends: :func:`episode_ends` (indices into the stored transitions)
    :param first_step: the env step of the first stored transition (steps count from 0)
    :param n_steps: the env steps of the run (the last window may be shorter)
    :param window: env steps per window
    """
    rows = []
    for start in range(0, n_steps, window):
        inside = [success for index, success in ends if start <= first_step + index < start + window]
        rows.append(dict(first_step=start, last_step=min(start + window, n_steps) - 1, episodes=len(inside),
                         successes=sum(inside)))  # fmt: skip
    return rows


def seed_rows(folder: str, method: str, window: int) -> list[dict[str, Any]]:
    """The rows of one seed folder's run (``<folder>/<method>/buffer.pkl``)."""
    from stable_baselines3.common.save_util import load_from_pkl

    path = os.path.join(folder, method, "buffer.pkl")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: the run saves its buffer at each evaluation unless --no-checkpoint")
    rewards, dones = stored_transitions(load_from_pkl(path), path)
    return window_counts(episode_ends(rewards, dones), 0, len(rewards), window)


def main(argv: Optional[list[str]] = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the --out of state_pixel_il.py")
    parser.add_argument("--task", default="Lift-state-v0")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--method", default="ibrl", choices=("ibrl", "rlpd+"))
    parser.add_argument("--window", type=int, default=5000, help="env steps per window")
    args = parser.parse_args(argv)
    if args.window < 1:
        parser.error(f"--window must be at least 1, got {args.window}")
    rows = []
    for seed in args.seeds:
        for row in seed_rows(os.path.join(args.out, args.task, f"seed_{seed}"), args.method, args.window):
            rows.append(dict(task=args.task, method=args.method, seed=seed, **row))
        seed_total = [row for row in rows if row["seed"] == seed]
        counts = ", ".join(str(row["successes"]) for row in seed_total)
        print(f"seed {seed}: {counts} ({sum(r['successes'] for r in seed_total)} of {sum(r['episodes'] for r in seed_total)})")
    write_curve(os.path.join(args.out, args.task, "training_successes.csv"), rows, FIELDS)
    return rows


if __name__ == "__main__":
    main()
