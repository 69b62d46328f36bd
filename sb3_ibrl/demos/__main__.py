"""
Command line of the scripted demonstrations: record successful demos into a robomimic HDF5 file, or replay one.

Usage::

    python -m sb3_ibrl.demos --env Assembly-state-v0 --n 3 --out assembly_demos.hdf5
    python -m sb3_ibrl.demos replay --file assembly_demos.hdf5 [--env Assembly-state-v0]
    python -m sb3_ibrl.demos --list

User errors (unknown env id, missing or foreign file, bad numbers) exit with status 2 and a one-line message.
"""

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Optional

from sb3_ibrl.demos.recording import SCRIPTED_ENV_IDS, make_scripted_env, record_demos, replay_demos, save_demos

PROG = "python -m sb3_ibrl.demos"


def make_record_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m sb3_ibrl.demos [record]``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Record successful demos of a simulated task's scripted expert into a robomimic HDF5 file.",
        epilog=(
            f"Replay a file's actions from its recorded reset seeds and count the demos that still succeed: "
            f"`{PROG} replay --file FILE [--env ID]` (see `{PROG} replay --help`)."
        ),
    )
    parser.add_argument("--env", help="task id, e.g. Assembly-state-v0 or Lift-pixelproprio-v0 (--list shows all)")
    parser.add_argument("--n", type=int, default=10, help="successful demos to record (default: 10)")
    parser.add_argument("--out", help="HDF5 file to write (overwritten)")
    parser.add_argument("--seed", type=int, default=0, help="reset seed of the first episode; episode i uses seed + i")
    parser.add_argument("--max-attempts", type=int, default=None, help="most episodes to play (default: max(10, 2 n))")
    parser.add_argument("--list", action="store_true", help="list the task ids that have a scripted expert and exit")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def make_replay_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m sb3_ibrl.demos replay``."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG} replay",
        description=(
            "Re-execute the actions of a demo file in its env, each demo from its recorded reset seed, and report how "
            "many still succeed (a check that the file reproduces)."
        ),
    )
    parser.add_argument("--file", required=True, help="demo file written by python -m sb3_ibrl.demos")
    parser.add_argument(
        "--env", default=None, help="env to replay in (default: the file's; another observation mode of the task is allowed)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def record(args: argparse.Namespace) -> str:
    """
    Record and save the demos of the command line, printing a short report.

    :param args: parsed ``record`` arguments
    :return: the path written
    """
    if args.env is None or args.out is None:
        raise ValueError("--env and --out are required (or --list)")
    if args.n < 1:
        raise ValueError(f"--n must be at least 1, got {args.n}")
    if args.max_attempts is not None and args.max_attempts < args.n:
        raise ValueError(f"--max-attempts ({args.max_attempts}) must be at least --n ({args.n})")
    env = make_scripted_env(args.env)
    start = time.perf_counter()
    try:
        demos, attempts = record_demos(
            env, args.n, seed=args.seed, max_attempts=args.max_attempts, progress=not args.no_progress
        )
    except RuntimeError as error:
        raise ValueError(str(error)) from error
    path = save_demos(args.out, env, demos)
    env.close()
    lengths = [len(demo.episode) for demo in demos]
    print(
        f"{args.env}: {len(demos)} successful demos in {attempts} episodes ({len(demos) / attempts:.0%}), "
        f"mean length {sum(lengths) / len(lengths):.1f}, {time.perf_counter() - start:.1f}s; wrote {path}"
    )
    return path


def replay(args: argparse.Namespace) -> bool:
    """
    Replay a file and print the report.

    :param args: parsed ``replay`` arguments
    :return: whether every demo still succeeds
    """
    report = replay_demos(args.file, args.env, progress=not args.no_progress)
    n_demos = len(report.successes)
    failed = [i for i, success in enumerate(report.successes) if not success]
    changed = sum(recorded != replayed for recorded, replayed in report.lengths)
    print(
        f"{report.env_id}: {report.n_success}/{n_demos} demos still succeed when replayed"
        + (f" (failed: {', '.join(f'demo_{i}' for i in failed)})" if failed else "")
        + f"; {changed} end at another step; largest state difference {max(report.max_state_error):.2g}"
    )
    return not failed


def main(argv: Optional[Sequence[str]] = None) -> int:
    """
    Entry point of ``python -m sb3_ibrl.demos``.

    :param argv: command line arguments (default: ``sys.argv[1:]``)
    :return: the exit status: 0, or 1 when a replay has a demo that fails
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "replay":
        parser = make_replay_parser()
        args = parser.parse_args(argv[1:])
    else:
        parser = make_record_parser()
        args = parser.parse_args(argv[1:] if argv and argv[0] == "record" else argv)
    try:
        if parser.prog.endswith("replay"):
            return 0 if replay(args) else 1
        if args.list:
            print("\n".join(SCRIPTED_ENV_IDS))
            return 0
        record(args)
    except (FileNotFoundError, ValueError, ImportError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
