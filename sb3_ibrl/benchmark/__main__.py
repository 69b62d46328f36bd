"""
Command line of the benchmark runner.

    python -m sb3_ibrl.benchmark run --tasks CoffeePush-state-v0 Lift-state-v0 --methods ibrl rlpd+ bc \\
        --seeds 0 1 2 --profile cpu --steps 20000 --out runs/bench --workers 2
    python -m sb3_ibrl.benchmark report --out runs/bench        # plots and Markdown tables from results.csv
    python -m sb3_ibrl.benchmark headline --task Lift-pixel-v0 --out runs/headline-lift --time-limit 420

Interrupt ``run`` at any time and start the same command again: finished runs are skipped and the others resume
from their last evaluation.
"""

import argparse
import os
import sys
from typing import Any, Optional, Sequence

from sb3_ibrl.benchmark.methods import METHODS, parse_overrides
from sb3_ibrl.benchmark.tasks import PROFILES, get_task, known_task_ids


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sb3_ibrl.benchmark", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run methods x tasks x seeds (resumable)")
    run.add_argument("--tasks", nargs="+", default=["PointGoal-v0"], help=f"env ids, among: {' '.join(known_task_ids())}")
    # argparse formats help texts with %: the descriptions' "50%" must be escaped
    methods_help = "; ".join(f"{name}: {spec.description}" for name, spec in METHODS.items()).replace("%", "%%")
    run.add_argument("--methods", nargs="+", default=["ibrl", "rlpd+", "bc"], help=methods_help)
    run.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    run.add_argument("--profile", choices=PROFILES, default="paper", help="settings profile (see sb3_ibrl.benchmark.tasks)")
    run.add_argument("--steps", type=int, default=None, help="env steps per run (default: the task's paper budget)")
    run.add_argument("--eval-every", type=int, default=None, help="evaluate every this many env steps (default: budget / 20)")
    run.add_argument("--eval-episodes", type=int, default=20)
    run.add_argument("--rl-only-eval", action="store_true", help="also evaluate IBRL's RL actor alone (paper Fig. 11)")
    run.add_argument(
        "--greedy-eval",
        action="store_true",
        help="also evaluate IBRL deployed with the paper's greedy actor proposal (proposal_confidence=0): same run",
    )
    run.add_argument(
        "--set", nargs="*", default=[], metavar="METHOD:KEY=VALUE", help="method options, e.g. ptft:bc_weight=0.1"
    )
    run.add_argument("--no-checkpoint", action="store_true", help="do not checkpoint (runs then restart from scratch)")
    run.add_argument("--workers", type=int, default=1, help="runs in parallel processes")
    run.add_argument("--threads", type=int, default=1, help="torch threads per run")
    run.add_argument("--out", default="benchmark_runs", help="output folder")
    report = commands.add_parser("report", help="plots and tables from OUT/results.csv")
    report.add_argument("--out", default="benchmark_runs", help="the folder of a run")
    add_headline_parser(commands)
    return parser


def add_headline_parser(commands: Any) -> None:
    """The ``headline`` subcommand (see :mod:`sb3_ibrl.benchmark.headline`)."""
    from sb3_ibrl.benchmark.headline_tasks import headline_task_ids

    headline = commands.add_parser(
        "headline", help="the paper's pixel pipeline in one go: demos, BC, IBRL, evaluations, JSON + PNG (resumable)"
    )
    headline.add_argument("--task", default="Lift-pixel-v0", help=f"one of: {' '.join(headline_task_ids())}")
    headline.add_argument("--out", required=True, help="output folder; the same folder continues a run")
    headline.add_argument("--steps", type=int, default=None, help="IBRL env steps (Lift 20000, Meta-World 100000)")
    headline.add_argument("--smoke", action="store_true", help="tiny sizes: the same code path on a CPU in under 2 minutes")
    headline.add_argument("--time-limit", type=float, default=None, help="seconds for this call; stops in time, resumable")
    headline.add_argument("--n-envs", type=int, default=1, help="parallel training envs (SubprocVecEnv when more than 1)")
    headline.add_argument("--device", default="auto", help="auto, cuda or cpu")
    headline.add_argument("--eval-every", type=int, default=None, help="env steps between evaluations (steps / 10)")
    headline.add_argument("--eval-episodes", type=int, default=None, help="episodes per evaluation (10)")
    headline.add_argument("--eval-envs", type=int, default=None, help="parallel evaluation envs (up to 10)")
    headline.add_argument("--bc-seconds", type=float, default=None, help="BC time budget, probes included (60)")
    headline.add_argument("--seed", type=int, default=0)
    headline.add_argument(
        "--override", nargs="*", default=[], metavar="KEY=VALUE", help="IBRL keywords (Python literals), e.g. train_freq=2"
    )
    headline.add_argument("--bc", nargs="*", default=[], metavar="KEY=VALUE", help="train_bc keywords, e.g. resnet_width=32")
    headline.add_argument("--bc-chunk", type=int, default=1,
                          help="BC predicts the next N actions, acts by temporal ensembling (1: the paper's BC)")  # fmt: skip
    headline.add_argument("--bc-chunk-decay", type=float, default=0.01, help="temporal ensembling's m in exp(-m i) (0.01)")


def run_headline_command(args: argparse.Namespace) -> int:
    """Run ``headline`` from parsed arguments."""
    from sb3_ibrl.benchmark.headline import HeadlineConfig, run_headline
    from sb3_ibrl.benchmark.headline_tools import parse_assignments

    config = HeadlineConfig(
        out_dir=args.out,
        task=args.task,
        steps=args.steps,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        eval_envs=args.eval_envs,
        n_envs=args.n_envs,
        device=args.device,
        time_limit=args.time_limit,
        bc_seconds=args.bc_seconds,
        smoke=args.smoke,
        seed=args.seed,
        overrides=parse_assignments(args.override, "--override"),
        bc_overrides=parse_assignments(args.bc, "--bc"),
        bc_chunk=args.bc_chunk,
        bc_chunk_decay=args.bc_chunk_decay,
    )
    result = run_headline(config)
    print(f"headline: {os.path.join(args.out, 'headline.json')} ({'partial' if result.get('partial') else 'complete'})")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        if args.command == "headline":
            return run_headline_command(args)
        if args.command == "run":
            from sb3_ibrl.benchmark.runner import RunConfig, run_all

            tasks = [get_task(env_id, args.profile) for env_id in args.tasks]
            config = RunConfig(
                out_dir=args.out,
                steps=args.steps,
                eval_every=args.eval_every,
                eval_episodes=args.eval_episodes,
                rl_only_eval=args.rl_only_eval,
                greedy_eval=args.greedy_eval,
                overrides=parse_overrides(args.set),
                checkpoint=not args.no_checkpoint,
                torch_threads=args.threads,
            )
            failures = run_all(tasks, args.methods, args.seeds, config, workers=args.workers)
            for failure in failures:
                print(f"FAILED: {failure}", file=sys.stderr)
            print(f"results: {os.path.join(args.out, 'results.csv')}")
            return 1 if failures else 0
        from sb3_ibrl.benchmark.report import write_report

        for path in write_report(args.out):
            print(path)
        return 0
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
