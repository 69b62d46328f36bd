"""
Plots and tables from a benchmark's ``results.csv``: success rate vs env steps (mean and spread over seeds, paper
Fig. 3 and 5), the IL-action fraction over training (Fig. 12), and Markdown tables of the final success rates and of
the mean episode lengths (Table 1).
"""

import json
import math
import os
import zlib
from typing import Any

import numpy as np

from sb3_ibrl.benchmark.curves import Curves, aligned, kilo_steps, load_curves
from sb3_ibrl.benchmark.hybrid_report import deployment_table, hybrid_figure
from sb3_ibrl.benchmark.methods import METHODS
from sb3_ibrl.benchmark.runner import collect_results
from sb3_ibrl.common.files import atomic_path, save_figure

__all__ = ["Curves", "aligned", "load_curves", "write_report"]

# One colour per method, the same in every panel and figure (matplotlib's "tab" colours; BC: the dashed grey line)
BC_STYLE = dict(color="tab:gray", linestyle="--")
METHOD_COLORS = {
    "ibrl": "tab:blue",
    "rlpd+": "tab:orange",
    "rlpd": "tab:brown",
    "td3+demos": "tab:green",
    "ptft": "tab:red",
    "ptft-sqf": "tab:pink",
    "sqil": "tab:olive",
    "ibrl-actor-only": "tab:purple",
    "ibrl-no-dropout": "tab:cyan",
    "ibrl-drq": "black",
}
# For methods not in the table: a colour derived from the name (the same in every figure)
OTHER_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#386cb0")


def method_color(method: str) -> str:
    """
    The colour of a method in every plot.

    :param method: the method name of the CSV
    :return: a matplotlib colour
    """
    if method == "bc":
        return BC_STYLE["color"]
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    return OTHER_COLORS[zlib.crc32(method.encode()) % len(OTHER_COLORS)]


def final_stats(
    seeds: dict[int, list[tuple[int, dict[str, float]]]], key: str = "success_rate"
) -> tuple[float, float, int, int]:
    """Mean and std over seeds of ``key`` at the last common evaluation; the number of seeds; that env step."""
    steps, values = aligned(seeds, key)
    if len(steps) == 0:
        return math.nan, math.nan, len(seeds), 0
    return float(values[:, -1].mean()), float(values[:, -1].std()), len(seeds), int(steps[-1])


def plot_curves(curves: Curves, path: str, key: str = "success_rate", ylabel: str = "success rate") -> str:
    """One panel per task: ``key`` vs env steps, mean over seeds with a min-max band; BC as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    return save_figure(curves_figure(curves, key, ylabel), path, dpi=110)


def curves_figure(curves: Curves, key: str = "success_rate", ylabel: str = "success rate") -> Any:
    """
    The figure of :func:`plot_curves`: one panel per task, each method in its :func:`method_color`, one legend.

    :return: the matplotlib figure (close it with ``plt.close``)
    """
    import matplotlib.pyplot as plt

    tasks = sorted(curves)
    n_cols = min(3, len(tasks))
    n_rows = math.ceil(len(tasks) / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols + 1.8, 3.4 * n_rows), squeeze=False)
    for ax in axes.flat[len(tasks) :]:
        ax.set_visible(False)
    for ax, task in zip(axes.flat, tasks):
        for method, seeds in sorted(curves[task].items()):
            steps, values = aligned(seeds, key)
            if len(steps) == 0 or np.all(np.isnan(values)):
                continue
            if method == "bc":
                if key == "success_rate":
                    ax.axhline(values.mean(), **BC_STYLE, label=f"BC (n={len(seeds)})")  # type: ignore[arg-type]
                continue
            mean, color = values.mean(axis=0), method_color(method)
            ax.plot(steps, mean, color=color, marker="o", markersize=3, label=f"{method} (n={len(seeds)})")
            ax.fill_between(steps, values.min(axis=0), values.max(axis=0), color=color, alpha=0.1)
        ax.set(title=task, xlabel="env steps", ylabel=ylabel, ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    handles, labels = {}, {}
    for ax in axes.flat:  # one legend for all panels, outside them
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label.split(" (")[0], handle)
            labels.setdefault(label.split(" (")[0], label)
    fig.legend(list(handles.values()), list(labels.values()), fontsize=7, loc="center right")
    fig.tight_layout(rect=(0, 0, 1 - 1.7 / fig.get_figwidth(), 1))
    return fig


def _asset_info(out_dir: str, task: str) -> list[dict[str, Any]]:
    folder = os.path.join(out_dir, "assets", task)
    infos = []
    if os.path.isdir(folder):
        for seed_dir in sorted(os.listdir(folder)):
            path = os.path.join(folder, seed_dir, "bc.json")
            if os.path.exists(path):
                with open(path) as file:
                    infos.append(json.load(file))
    return infos


def success_table(curves: Curves) -> str:
    """Markdown: final success rate (mean ± std over seeds) per task and method, with IBRL / RLPD+."""
    methods = [name for name in METHODS if any(name in curves[task] for task in curves)]
    lines = ["| task | " + " | ".join(methods) + " | IBRL / RLPD+ |", "|---" * (len(methods) + 2) + "|"]
    for task in sorted(curves):
        cells, finals = [], {}
        for method in methods:
            if method not in curves[task]:
                cells.append("")
                continue
            mean, std, n_seeds, step = final_stats(curves[task][method])
            finals[method] = mean
            cells.append(
                f"{mean:.2f} ± {std:.2f} (n={n_seeds}, {kilo_steps(step)})" if method != "bc" else f"{mean:.2f} ± {std:.2f}"
            )
        ratio = ""
        if "ibrl" in finals and "rlpd+" in finals:
            ratio = f"{finals['ibrl'] / finals['rlpd+']:.1f}x" if finals["rlpd+"] > 0 else ("∞" if finals["ibrl"] > 0 else "-")
        lines.append(f"| {task} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


def curve_table(curves: Curves) -> str:
    """Markdown: the mean success curve of every task and method (every evaluation)."""
    lines = [
        "| task | method | seeds | env steps: mean success over seeds | area (mean over the curve) |",
        "|---|---|---|---|---|",
    ]
    for task in sorted(curves):
        for method, seeds in curves[task].items():
            if method == "bc":
                continue
            steps, values = aligned(seeds, "success_rate")
            points = " ".join(f"{kilo_steps(step)}:{value:.2f}" for step, value in zip(steps, values.mean(axis=0)))
            area = values.mean() if values.size else math.nan
            lines.append(f"| {task} | {method} | {len(seeds)} | {points} | {area:.2f} |")
    return "\n".join(lines)


def length_table(curves: Curves, out_dir: str) -> str:
    """Markdown: mean episode length of the demos, BC, and each method's final evaluation (paper Table 1)."""
    methods = [name for name in METHODS if name != "bc" and any(name in curves[task] for task in curves)]
    lines = ["| task | demos | BC | " + " | ".join(methods) + " |", "|---" * (len(methods) + 3) + "|"]
    for task in sorted(curves):
        infos = _asset_info(out_dir, task)
        demo = f"{np.mean([info['demo_length'] for info in infos]):.1f}" if infos else ""
        bc = f"{np.mean([info['bc_length'] for info in infos]):.1f}" if infos else ""
        cells = []
        for method in methods:
            cells.append(
                f"{final_stats(curves[task][method], 'mean_episode_length')[0]:.1f}" if method in curves[task] else ""
            )
        lines.append(f"| {task} | {demo} | {bc} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rl_only_table(curves: Curves) -> str:
    """Markdown: the hybrid policy vs the RL actor alone, for runs evaluated both ways (paper Fig. 11); ``""`` if none."""
    lines = ["| task | method | seeds | hybrid (RL + IL) | RL actor alone |", "|---|---|---|---|---|"]
    for task in sorted(curves):
        for method, seeds in curves[task].items():
            hybrid, rl_only = final_stats(seeds, "success_rate"), final_stats(seeds, "rl_only_success")
            if method != "bc" and not math.isnan(rl_only[0]):
                cells = f"{hybrid[0]:.2f} ± {hybrid[1]:.2f} | {rl_only[0]:.2f} ± {rl_only[1]:.2f}"
                lines.append(f"| {task} | {method} | {len(seeds)} | {cells} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def write_report(out_dir: str) -> list[str]:
    """
    Write ``success.png``, ``il_fraction.png`` (when matplotlib is installed) and ``summary.md`` next to ``results.csv``.

    :return: the files written
    """
    if os.path.isdir(os.path.join(out_dir, "runs")):
        collect_results(out_dir)  # include the runs still going
    curves = load_curves(os.path.join(out_dir, "results.csv"))
    written = []
    summary = os.path.join(out_dir, "summary.md")
    with atomic_path(summary) as temporary, open(temporary, "w") as file:
        file.write("## Final success rate (mean ± std over seeds, at the last evaluation all seeds reached)\n\n")
        file.write(success_table(curves) + "\n\n## Success curves\n\n" + curve_table(curves) + "\n\n")
        file.write("## Mean episode length at the last evaluation (failures count as the time limit)\n\n")
        file.write(length_table(curves, out_dir) + "\n")
        rl_only = rl_only_table(curves)
        if rl_only:
            file.write("\n## The hybrid policy vs the RL actor alone, at the last evaluation\n\n" + rl_only + "\n")
        deployment = deployment_table(curves)
        if deployment:
            file.write(
                "\n## IBRL deployed with the confident and the greedy actor proposal (same runs)\n\n" + deployment + "\n"
            )
    written.append(summary)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print('matplotlib is not installed: wrote the tables only (for the plots: pip install "sb3-ibrl[plot]")')
        return written
    written.append(plot_curves(curves, os.path.join(out_dir, "success.png")))
    il_curves: Curves = {
        task: {m: s for m, s in methods.items() if METHODS.get(m) is not None and METHODS[m].uses_il}  # type: ignore[misc]
        for task, methods in curves.items()
    }
    if any(il_curves.values()):
        written.append(plot_curves(il_curves, os.path.join(out_dir, "il_fraction.png"), "il_fraction", "IL-action fraction"))
    figure = hybrid_figure(curves)
    if figure is not None:
        written.append(save_figure(figure, os.path.join(out_dir, "hybrid.png"), dpi=100))
    return written
