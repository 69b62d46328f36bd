"""
The deployed hybrid under other match rules, recomputed from runs that recorded the match test's inputs.

Before the hybrid has matched its IL policy, IBRL deploys it as the IL policy alone (``proposal_confidence`` k = inf,
the default) or confidently (k = 3: the state default before 2026-12-07); after, greedily. Whether it has matched is
decided from the returns of its last ``match_il_episodes`` training episodes and of the IL warm-up's
(``match_il_confidence`` z: the hybrid's mean must lead by z standard errors; 0 compares the means). None of this
changes the training (collecting data does not read it), so one run that evaluated each deployment at every
checkpoint, and recorded the match statistics (``IBRL.match_statistics``), tells what any (k, z) would have deployed:

- the benchmark runner's ``results.csv`` with ``--greedy-eval`` (``confident_success``: k = the model's,
  ``greedy_success``; the seed's BC row is what k = inf deploys: the IL policy alone, on the same reset seeds);
- ``benchmarks/confidence_sweep.py``'s CSVs (a column per k; ``k0`` is greedy, ``kinf`` the IL policy alone).

    python benchmarks/match_rules.py benchmarks/results/match_rules/state/results.csv --model-confidence 3
    python benchmarks/match_rules.py benchmarks/results/match_rules/pixel/sweep_*.csv --confidences 0 1 2

It prints, per task and rule, the mean success over the seeds at each checkpoint, its area (mean over the
checkpoints), the final value, the worst success minus the seed's own BC, and how many (seed, checkpoint) pairs were
more than 0.1 below BC; and checks that z = 0 reproduces each row's recorded ``il_matched``.
"""

import argparse
import csv
import math
import os
import sys
from collections import defaultdict
from typing import Optional

import numpy as np

from sb3_ibrl.ibrl.acting import matched

STAT_KEYS = ("il_return_mean", "il_return_sd", "il_episodes", "hybrid_return_mean", "hybrid_return_sd", "hybrid_episodes")
Checkpoint = dict[str, float]  # env_steps, bc, before_<label> ..., after, the match statistics, il_matched


def _float(value: Optional[str]) -> float:
    return float(value) if value not in (None, "") else math.nan


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _statistics(row: dict[str, str]) -> Checkpoint:
    """The match statistics and the recorded ``il_matched`` of a CSV row."""
    return {key: _float(row[key]) for key in (*STAT_KEYS, "il_matched")}


def read_checkpoints(path: str, model_confidence: float = float("inf")) -> dict[tuple[str, int], list[Checkpoint]]:
    """
    The checkpoints of a runner ``results.csv`` or a confidence sweep CSV, per (task, seed), sorted by env steps.

    :param path: the CSV file
    :param model_confidence: the runs' ``proposal_confidence``, naming the runner's ``confident_success`` column
    :return: per (task, seed), the checkpoints: ``bc``, ``before_k<k>`` (the deployment before the match, per k),
        ``after`` (greedy), the match statistics and the recorded ``il_matched``
    """
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    if not rows:
        raise ValueError(f"{path} has no rows")
    missing = [key for key in STAT_KEYS if key not in rows[0]]
    if missing:
        raise ValueError(f"{path} lacks the match statistics {missing}: runs from before IBRL.match_statistics")
    checkpoints: dict[tuple[str, int], list[Checkpoint]] = defaultdict(list)
    if "method" in rows[0]:  # the benchmark runner's results.csv
        bc = {(row["task"], int(row["seed"])): float(row["success_rate"]) for row in rows if row["method"] == "bc"}
        for row in rows:
            if row["method"] != "ibrl" or not row.get("greedy_success"):
                continue
            key = (row["task"], int(row["seed"]))
            if key not in bc:
                raise ValueError(f"{path}: no BC row for {key[0]} seed {key[1]} (run --methods ibrl bc)")
            checkpoint = {"env_steps": float(row["env_steps"]), "bc": bc[key], "after": float(row["greedy_success"])}
            checkpoint["before_kinf"] = bc[key]  # measured instead where the runs' own k is inf
            checkpoint[f"before_k{model_confidence:g}"] = float(row["confident_success"])
            checkpoints[key].append({**checkpoint, **_statistics(row)})
    else:  # a confidence sweep: a column per k
        task = os.path.basename(path).removeprefix("sweep_").rsplit("_seed", 1)[0]
        if "k0" not in rows[0]:
            raise ValueError(f"{path} has no greedy column (k0): sweep with --confidences 0 ...")
        for row in rows:
            checkpoint = {"env_steps": float(row["env_steps"]), "bc": float(row["bc"]), "after": float(row["k0"])}
            for column, value in row.items():
                if column.startswith("k") and column != "k0" and _is_number(column[1:]):  # k1 ... kinf
                    checkpoint[f"before_{column}"] = float(value)
            checkpoints[(task, int(row["seed"]))].append({**checkpoint, **_statistics(row)})
    for points in checkpoints.values():
        points.sort(key=lambda point: point["env_steps"])
    return dict(checkpoints)


def rule_matched(checkpoint: Checkpoint, confidence: float, window: int) -> bool:
    """Whether the hybrid had matched its IL policy at the checkpoint under ``match_il_confidence=confidence``."""
    if checkpoint["hybrid_episodes"] < window or not checkpoint["il_episodes"] > 0:
        return False
    return matched(checkpoint, confidence)


def deployed(points: list[Checkpoint], before: str, confidence: float, window: int) -> np.ndarray:
    """The success of the deployed hybrid at each checkpoint: ``before_<before>`` until matched, then greedy."""
    return np.array(
        [point["after"] if rule_matched(point, confidence, window) else point[f"before_{before}"] for point in points]
    )


def rule_table(checkpoints: dict[tuple[str, int], list[Checkpoint]], confidences: list[float], window: int) -> str:
    """
    Markdown: per task and rule (k before the match, z), the mean curve over seeds, area, final, worst vs own BC and
    the count of (seed, checkpoint) more than 0.1 below BC, over the env steps that every seed of the task reached.
    """
    lines = ["| task | before the match | z | mean success at each checkpoint | area | final | worst vs BC | > 0.1 below BC |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for task in sorted({task for task, _ in checkpoints}):
        seeds = {seed: points for (name, seed), points in checkpoints.items() if name == task}
        common = set.intersection(*({point["env_steps"] for point in points} for points in seeds.values()))
        seeds = {seed: [point for point in points if point["env_steps"] in common] for seed, points in seeds.items()}
        befores = sorted(
            set.intersection(*({key[7:] for key in points[0] if key.startswith("before_")} for points in seeds.values()))
        )
        bc = np.array([[point["bc"] for point in points] for points in seeds.values()])  # (n_seeds, n_points)
        lines.append(f"| {task} ({len(seeds)} seeds) | BC alone | | {' '.join(f'{v:.2f}' for v in bc.mean(0))} | "
                     f"{bc.mean():.2f} | {bc.mean(0)[-1]:.2f} | | |")  # fmt: skip
        for before in befores:
            for confidence in confidences:
                success = np.array([deployed(points, before, confidence, window) for points in seeds.values()])
                gaps = success - bc
                mean = success.mean(0)
                lines.append(f"| | {before} | {confidence:g} | {' '.join(f'{v:.2f}' for v in mean)} | {success.mean():.2f} | "
                             f"{mean[-1]:.2f} | {gaps.min():+.2f} | {int((np.round(gaps, 6) < -0.1).sum())} |")  # fmt: skip
    return "\n".join(lines)


def check_recorded(checkpoints: dict[tuple[str, int], list[Checkpoint]], window: int) -> int:
    """Raise unless z = 0 gives each checkpoint's recorded ``il_matched`` (runs at the default, z = 0); the count."""
    count = 0
    for (task, seed), points in checkpoints.items():
        for point in points:
            if math.isnan(point["il_matched"]):
                continue
            if rule_matched(point, 0.0, window) != bool(point["il_matched"]):
                raise ValueError(f"{task} seed {seed} at {point['env_steps']:g} steps: z = 0 does not give the recorded "
                                 f"il_matched={point['il_matched']:g} (window {window}?)")  # fmt: skip
            count += 1
    return count


def main(argv: Optional[list[str]] = None) -> str:
    """
    Print the table.

    :param argv: the command line (``None``: ``sys.argv``)
    :return: the table
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", nargs="+", help="runner results.csv files or confidence sweep CSVs")
    parser.add_argument("--confidences", type=float, nargs="+", default=[0.0, 1.0, 2.0], help="match_il_confidence z")
    parser.add_argument("--window", type=int, default=20, help="the runs' match_il_episodes")
    parser.add_argument("--model-confidence", type=float, default=float("inf"),
                        help="the runner's runs' proposal_confidence: their confident_success column")  # fmt: skip
    args = parser.parse_args(argv)
    checkpoints: dict[tuple[str, int], list[Checkpoint]] = {}
    for path in args.csv:
        checkpoints.update(read_checkpoints(path, args.model_confidence))
    checked = check_recorded(checkpoints, args.window)
    table = rule_table(checkpoints, args.confidences, args.window)
    print(table)
    print(f"\n{checked} checkpoints: z = 0 gives the recorded il_matched at every one")
    return table


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
