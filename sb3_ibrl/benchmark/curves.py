"""
A benchmark's ``results.csv`` read back as curves: ``{task: {method: {seed: [(env_steps, values), ...]}}}``.
"""

import os
from collections import defaultdict
from typing import Any

import numpy as np

from sb3_ibrl.benchmark.runner import DIAGNOSTIC_FIELDS, read_curve

Curves = dict[str, dict[str, dict[int, list[tuple[int, dict[str, float]]]]]]  # task -> method -> seed -> rows


def load_curves(results_csv: str) -> Curves:
    """Read ``results.csv`` into ``{task: {method: {seed: [(env_steps, row), ...]}}}``, rows sorted by env steps."""
    if not os.path.exists(results_csv):
        raise FileNotFoundError(f"No results file at {results_csv}: run `python -m sb3_ibrl.benchmark run --out ...` first")
    curves: Curves = defaultdict(lambda: defaultdict(dict))
    for row in read_curve(results_csv):
        values = {key: float(row[key]) for key in ("success_rate", "mean_episode_length", "il_fraction", "rl_only_success")}
        values.update({key: float(row.get(key) or "nan") for key in DIAGNOSTIC_FIELDS})  # IBRL only; older files lack them
        curves[row["task"]][row["method"]].setdefault(int(row["seed"]), []).append((int(row["env_steps"]), values))
    for methods in curves.values():
        for seeds in methods.values():
            for rows in seeds.values():
                rows.sort(key=lambda item: item[0])
    return curves


def aligned(seeds: dict[int, list[tuple[int, dict[str, float]]]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """
    The values of ``key`` at the env steps every seed has reached.

    :return: env steps ``(n_points,)`` and values ``(n_seeds, n_points)``
    """
    common = sorted(set.intersection(*(set(step for step, _ in rows) for rows in seeds.values())))
    values = [[dict(rows)[step][key] for step in common] for rows in seeds.values()]
    return np.array(common), np.array(values)


def kilo_steps(step: int) -> str:
    """Env steps as a short label: 2500 -> "2.5K"."""
    return f"{step / 1000:g}K"


def seed_curves(rows: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    """Per method and evaluation step: the mean, std and per-seed success of the rows (one or several seeds)."""
    per_step: dict[str, dict[int, dict[str, float]]] = {}
    for row in rows:
        by_seed = per_step.setdefault(row["method"], {}).setdefault(int(row["env_steps"]), {})
        by_seed[str(row["seed"])] = float(row["success_rate"])
    return {
        method: {
            step: dict(mean=float(np.mean(list(by_seed.values()))), std=float(np.std(list(by_seed.values()))),
                       seeds=by_seed)
            for step, by_seed in sorted(steps.items())
        }
        for method, steps in per_step.items()
    }  # fmt: skip
