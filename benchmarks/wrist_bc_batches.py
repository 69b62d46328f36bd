"""
The wrist-camera BC of ``state_pixel_il.py`` as it trains: its success at several batch counts, per seed and width
(``bc_batches.py`` does the same for the state MLP BC of the zoo defaults).

Does BC from one demo (Lift: 42 transitions) overfit, its success in the env falling while its action error on the
demo keeps falling? (On Lift, 3 seeds: no; the mean stays at 0.20-0.23 from 250 to 2000 batches, see the README.) This
script trains one BC per seed and ``--width`` up to the largest of ``--checks`` and
evaluates it alone (deterministic, ``--eval-episodes`` episodes from reset seed 1000, as ``state_pixel_il.py``) after
each of them. The evaluation does not change the training (it uses no torch random numbers and puts the policy back
in training mode), so the row at ``n`` batches is the BC that ``state_pixel_il.py --bc-batches n`` trains (tested).

Rows go to ``<out>/<task>/wrist_bc_batches.csv`` (one per seed, width and check); a configuration whose rows are all there
is skipped. The README's table:

    OMP_NUM_THREADS=1 python benchmarks/wrist_bc_batches.py --task Lift-state-v0 --seeds 0 1 2 --width 16 \\
        --checks 250 500 1000 2000
"""

import argparse
import os
import sys
import time
from typing import Any, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import state_pixel_il as spi

from sb3_ibrl.common.evaluation import evaluate_policy_success
from sb3_ibrl.il.training import bc_action_error

FIELDS = ["task", "seed", "width", "learning_rate", "pad", "chunk_size", "chunk_decay", "batches", "success_rate",
          "mean_episode_length", "action_mse", "train_seconds"]  # fmt: skip
KEY = ("seed", "width", "learning_rate", "pad", "chunk_size", "chunk_decay", "batches")
FLOATS = ("learning_rate", "chunk_decay")
DEFAULTS = dict(chunk_size=1, chunk_decay=0.0)  # rows written before chunking was an option


def key_of(row: dict[str, Any]) -> tuple[str, ...]:
    values = {k: row.get(k) if row.get(k) not in (None, "") else DEFAULTS.get(k) for k in KEY}
    return tuple(str(float(values[k])) if k in FLOATS else str(int(values[k])) for k in KEY)  # type: ignore[arg-type]


def train_and_check(args: argparse.Namespace, seed: int, demos: list) -> list[dict[str, Any]]:
    """One BC (``seed``, ``--width``), trained to the largest check and evaluated alone at every check."""
    key = spi.il_key(args.task, args.camera)
    env = spi.make_env(args.task, args.camera, with_il=True)
    images = spi.part(demos, key)
    chunked = spi.chunk_episodes(images, args.chunk_size) if args.chunk_size > 1 else images
    checks, rows = set(args.checks), []
    clock = dict(start=time.perf_counter(), eval=0.0)

    def check(n_done: int, policy: Any) -> None:
        if n_done not in checks:
            return
        start = time.perf_counter()
        train_seconds = start - clock["start"] - clock["eval"]
        actor = spi.image_actor(policy, key, args.chunk_size, env.action_space, args.chunk_decay)
        success, length = evaluate_policy_success(env, actor, args.eval_episodes, seed=spi.EVAL_SEED)
        row = dict(task=args.task, seed=seed, width=args.width, learning_rate=args.lr, pad=args.pad,
                   chunk_size=args.chunk_size, chunk_decay=args.chunk_decay, batches=n_done, success_rate=success,
                   mean_episode_length=length, action_mse=bc_action_error(policy, chunked),
                   train_seconds=round(train_seconds, 3))  # fmt: skip
        policy.set_training_mode(True)  # predict() left it in evaluation mode
        clock["eval"] += time.perf_counter() - start
        rows.append(row)
        print(f"seed {seed} width {args.width}: {n_done:>6} batches  success {success:.2f}  mse {row['action_mse']:.2e}")

    spi.train_image_bc(images, env, key, max(args.checks), args.lr, args.width, args.pad, seed, chunk_size=args.chunk_size,
                       callback=check)  # fmt: skip
    env.close()
    return rows


def main(argv: Optional[list[str]] = None) -> str:
    """Run the checks; return the CSV's path."""
    args = parse_args(argv)
    folder = os.path.join(args.out, args.task)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "wrist_bc_batches.csv")
    demos = spi.load_or_record_demos(args, folder)  # recorded once per task folder
    for seed in args.seeds:
        rows = spi.read_curve(path)
        config = dict(seed=seed, width=args.width, learning_rate=args.lr, pad=args.pad, chunk_size=args.chunk_size,
                      chunk_decay=args.chunk_decay)  # fmt: skip
        wanted = {key_of(dict(config, batches=n)) for n in args.checks}
        if wanted <= {key_of(row) for row in rows}:
            print(f"seed {seed} width {args.width}: done, skipped")
            continue
        new = train_and_check(args, seed, demos)
        replaced = {key_of(row) for row in new}
        rows = spi.read_curve(path)  # again: another call may have added rows meanwhile
        spi.write_curve(path, [row for row in rows if key_of(row) not in replaced] + new, FIELDS)
    return path


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=spi.TASKS, default="Lift-state-v0")
    parser.add_argument("--camera", default="robot0_eye_in_hand", help="the IL policy's camera (robosuite tasks)")
    parser.add_argument("--demos", type=int, default=None, help="scripted demos (default: the paper's, Lift 1, Can 10)")
    parser.add_argument("--demo-seed", type=int, default=0, help="reset seed of the first demo attempt")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--width", type=int, default=16, help="base channels of the BC ResNet-18 (paper: 64)")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--pad", type=int, default=4, help="random shift padding of BC's images, in pixels")
    parser.add_argument("--chunk-size", type=int, default=1, help="actions per predicted chunk (1: plain BC)")
    parser.add_argument("--chunk-decay", type=float, default=0.0,
                        help="temporal ensembling's m in exp(-m i) (ACT: 0.01); not used with --chunk-size 1")  # fmt: skip
    parser.add_argument("--checks", type=int, nargs="+", default=[500, 1000, 2000], help="batch counts to evaluate at")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/state_pixel_il/wrist_bc_batches")
    args = parser.parse_args(argv)
    if args.demos is None:
        args.demos = spi.DEFAULT_DEMOS[args.task]
    if args.chunk_size == 1:
        args.chunk_decay = 0.0  # plain BC: one row key, whatever --chunk-decay says
    if not (np.isfinite(args.chunk_decay) and args.chunk_decay >= 0):
        parser.error(f"--chunk-decay must be a number >= 0, got {args.chunk_decay}")
    for name in ("demos", "width", "eval_episodes", "torch_threads", "chunk_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if min(args.checks) < 1:
        parser.error(f"--checks must be batch counts of at least 1, got {args.checks}")
    if not (np.isfinite(args.lr) and args.lr > 0):
        parser.error(f"--lr must be a positive number, got {args.lr}")
    import torch as th

    th.set_num_threads(args.torch_threads)
    return args


if __name__ == "__main__":
    main()
