"""
Successful training episodes per window of env steps, read from the replay buffer a ``state_pixel_il.py`` run saved.

How often the collecting policy (the hybrid with exploration noise, and the IL warm-up) succeeds tells whether the
critics see any reward at all; the README gives these counts per 5K steps beside each Lift curve. An episode counts
as successful when it earned a positive reward (the sparse tasks pay only on success); it is placed in the window of
its last step. One row per seed and window goes to ``<out>/<task>/training_successes.csv``; the rows of seeds (and
methods) not counted by this call stay, so seeds whose buffers are gone keep their counts:

    python benchmarks/training_successes.py --out benchmarks/results/state_pixel_il/g2_soft_bc3 --task Lift-state-v0 \\
        --seeds 0 1 2 --window 5000
"""

import argparse
import os
import sys
from typing import Any, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_files import read_curve, write_curve

FIELDS = ["task", "method", "seed", "first_step", "last_step", "episodes", "successes"]


def episode_ends(buffer: Any) -> list[tuple[int, bool]]:
    """
    The complete episodes of a one-env buffer (:meth:`~sb3_ibrl.data.nstep_buffer.NStepBuffer.episode_rows`), in the
    order they were collected.

    :return: per episode, the row of its last transition and whether it earned a positive reward
    """
    return [(int(rows[-1]), bool((buffer.rewards[rows, 0] > 0).any())) for rows in buffer.episode_rows()]


def check_buffer(buffer: Any, path: str) -> None:
    """Refuse what the counts cannot read: another kind of buffer, one of several envs, or one that wrapped around."""
    if not hasattr(buffer, "episode_rows"):
        raise ValueError(f"{path} holds a {type(buffer).__name__}, not an sb3-ibrl replay buffer (NStepBuffer)")
    if buffer.n_envs != 1:
        raise ValueError(f"{path}: the buffer holds {buffer.n_envs} envs; this script reads one-env runs")
    if buffer.full:
        raise ValueError(f"{path}: the buffer wrapped around ({buffer.buffer_size} transitions), so its oldest episodes "
                         "are gone and the counts would miss them")  # fmt: skip


def window_counts(ends: list[tuple[int, bool]], n_steps: int, window: int) -> list[dict[str, int]]:
    """
    Episodes and successes per window of env steps.

    :param ends: :func:`episode_ends` (rows of a buffer that never wrapped around: the row is the env step)
    :param n_steps: the env steps of the run (the last window may be shorter)
    :param window: env steps per window
    """
    rows = []
    for start in range(0, n_steps, window):
        inside = [success for index, success in ends if start <= index < start + window]
        rows.append(dict(first_step=start, last_step=min(start + window, n_steps) - 1, episodes=len(inside),
                         successes=sum(inside)))  # fmt: skip
    return rows


def seed_rows(folder: str, method: str, window: int) -> list[dict[str, Any]]:
    """The rows of one seed folder's run (``<folder>/<method>/buffer.pkl``)."""
    from stable_baselines3.common.save_util import load_from_pkl

    path = os.path.join(folder, method, "buffer.pkl")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: the run saves its buffer at each evaluation unless --no-checkpoint")
    buffer = load_from_pkl(path)
    check_buffer(buffer, path)
    return window_counts(episode_ends(buffer), buffer.pos, window)


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
        counts = seed_rows(os.path.join(args.out, args.task, f"seed_{seed}"), args.method, args.window)
        rows += [dict(task=args.task, method=args.method, seed=seed, **row) for row in counts]
        successes = ", ".join(str(row["successes"]) for row in counts)
        print(f"seed {seed}: {successes} ({sum(r['successes'] for r in counts)} of {sum(r['episodes'] for r in counts)})")
    path = os.path.join(args.out, args.task, "training_successes.csv")
    counted = {(args.method, str(seed)) for seed in args.seeds}
    kept = [row for row in read_curve(path) if (row["method"], row["seed"]) not in counted]
    write_curve(path, sorted(kept + rows, key=lambda row: (row["method"], int(row["seed"]), int(row["first_step"]))), FIELDS)
    return rows


if __name__ == "__main__":
    main()
