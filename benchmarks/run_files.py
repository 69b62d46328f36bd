"""
The result files of ``state_pixel_il.py`` (and the scripts that read its runs): curves as CSV, written atomically, and
the seeds of a task gathered into one ``results.csv``, ``summary.json`` and ``success.png``.
"""

import json
import os
from typing import Any, Optional

import numpy as np

from sb3_ibrl.benchmark import runner
from sb3_ibrl.benchmark.curves import seed_curves
from sb3_ibrl.benchmark.runner import read_curve
from sb3_ibrl.common.files import atomic_path, save_figure

CURVE_FIELDS = ["task", "method", "seed", "env_steps", "success_rate", "mean_episode_length", "wall_seconds"]


def write_curve(path: str, rows: list[dict[str, Any]], fields: Optional[list[str]] = None) -> None:
    """Write the rows (columns: ``fields``, default this script family's :data:`CURVE_FIELDS`) atomically."""
    runner.write_curve(path, rows, fields or CURVE_FIELDS)


def aggregate(task_folder: str, no_plot: bool = False) -> dict[str, Any]:
    """
    Gather every ``seed_*`` folder of a task: ``results.csv`` (all rows), ``summary.json`` (per method and step: the
    mean, std and per-seed success) and ``success.png`` (mean and std over seeds, BC's mean as a line).

    :param task_folder: ``<out>/<task>``
    :param no_plot: skip the PNG
    :return: the summary
    """
    seeds = sorted(  # a seed whose run has not written its results yet (e.g. stopped midway) is not counted
        name
        for name in os.listdir(task_folder)
        if name.startswith("seed_") and os.path.exists(os.path.join(task_folder, name, "results.csv"))
    )
    rows = [row for name in seeds for row in read_curve(os.path.join(task_folder, name, "results.csv"))]
    if not rows:
        return {}
    write_curve(os.path.join(task_folder, "results.csv"), rows)
    curves = seed_curves(rows)
    summary = dict(task=rows[0]["task"], seeds=[name[len("seed_") :] for name in seeds], curves=curves)
    with atomic_path(os.path.join(task_folder, "summary.json")) as temporary, open(temporary, "w") as file:
        json.dump(summary, file, indent=1)
    if not no_plot:
        plot_seeds(os.path.join(task_folder, "success.png"), curves, summary["task"], len(seeds))
    return summary


def plot_seeds(path: str, curves: dict[str, dict[int, dict[str, Any]]], task: str, n_seeds: int) -> None:
    """Mean success over seeds with a band of one std; BC as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    for method, points in curves.items():
        steps = np.array(sorted(points))
        mean = np.array([points[step]["mean"] for step in steps])
        std = np.array([points[step]["std"] for step in steps])
        if method == "bc":
            ax.axhline(mean[0], color="gray", linestyle="--", label="BC (wrist camera) alone")
            continue
        ax.plot(steps, mean, marker="o", label=method)
        ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    title = f"{task}: state RL, pixel IL ({n_seeds} seed{'s' if n_seeds > 1 else ''})"
    ax.set(xlabel="env steps", ylabel="success rate", ylim=(-0.03, 1.03), title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
