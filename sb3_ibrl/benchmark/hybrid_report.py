"""
The hybrid against its IL policy (issue 14), from a benchmark's ``results.csv``: IBRL deployed as by default
(with its ``proposal_confidence`` until the hybrid matched its IL policy, then greedy), always with that confidence
(the default, inf: the IL policy alone), and with the paper's greedy one (``--greedy-eval``, the same runs), BC, the
IL share of the actions (paper Fig. 12: while evaluating and while collecting data), and the critics' Q-values of
the two proposals on the demo states next to the demos' discounted return.
"""

import math
from typing import Any

import numpy as np

from sb3_ibrl.benchmark.curves import Curves, aligned, kilo_steps


def _has(seeds: dict[int, list[tuple[int, dict[str, float]]]], key: str) -> bool:
    return any(not math.isnan(values.get(key, math.nan)) for rows in seeds.values() for _, values in rows)


def _bc_by_seed(curves: Curves, task: str) -> dict[int, float]:
    return {seed: rows[0][1]["success_rate"] for seed, rows in curves[task].get("bc", {}).items()}


def worst_gap_to_bc(seeds: dict[int, list[tuple[int, dict[str, float]]]], bc: dict[int, float], key: str, after: int) -> float:
    """
    The lowest ``success - BC`` over the seeds and the evaluations after ``after`` env steps (each seed against its own
    BC policy); ``nan`` without BC or evaluations.
    """
    gaps = [
        values[key] - bc[seed]
        for seed, rows in seeds.items()
        if seed in bc
        for step, values in rows
        if step > after and not math.isnan(values.get(key, math.nan))
    ]
    return min(gaps) if gaps else math.nan


def deployment_table(curves: Curves, after_fraction: float = 0.25) -> str:
    """
    Markdown: per task and IBRL method evaluated both ways, the mean curves of the confident and the greedy deployment,
    their areas, BC, and the worst gap to BC after the first ``after_fraction`` of the run; ``""`` if no run has both.
    """
    lines = [
        "| task | method | seeds | deployed | mean success at each evaluation | area | final | worst vs BC after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task in sorted(curves):
        bc = _bc_by_seed(curves, task)
        for method, seeds in sorted(curves[task].items()):
            if method == "bc" or not _has(seeds, "greedy_success"):
                continue
            steps, _ = aligned(seeds, "success_rate")
            after = int(after_fraction * steps[-1]) if len(steps) else 0
            deployments = (
                ("default", "success_rate"),
                ("always confident", "confident_success"),
                ("greedy (paper)", "greedy_success"),
            )
            for label, key in deployments:
                if not _has(seeds, key):
                    continue
                _, values = aligned(seeds, key)
                mean = values.mean(axis=0)
                points = " ".join(f"{value:.2f}" for value in mean)
                gap = worst_gap_to_bc(seeds, bc, key, after)
                cells = f"{points} | {values.mean():.2f} | {mean[-1]:.2f} | {gap:+.2f} ({kilo_steps(after)})"
                lines.append(f"| {task} | {method} | {len(seeds)} | {label} | {cells} |")
        if bc and len(lines) > 2 and lines[-1].startswith(f"| {task} "):
            lines.append(f"| {task} | bc | {len(bc)} | | {np.mean(list(bc.values())):.2f} (per seed: "
                         + " ".join(f"{bc[seed]:.2f}" for seed in sorted(bc)) + ") | | | |")  # fmt: skip
    return "\n".join(lines) if len(lines) > 2 else ""


def hybrid_figure(curves: Curves) -> Any:
    """
    One row per task with IBRL diagnostics: success (confident, greedy, BC), the IL share (evaluating, collecting), and
    the Q-values of the IL and RL actions on the demo states with the demos' discounted return.

    :return: the matplotlib figure, or ``None`` when no run has the diagnostics
    """
    import matplotlib.pyplot as plt

    rows = [
        (task, method, seeds)
        for task in sorted(curves)
        for method, seeds in sorted(curves[task].items())
        if method != "bc" and _has(seeds, "q_il_demo")
    ]
    if not rows:
        return None
    fig, axes = plt.subplots(len(rows), 3, figsize=(14, 3.2 * len(rows)), squeeze=False)
    success = (
        ("success_rate", "deployed (default)", "-"),
        ("confident_success", "always confident", "--"),
        ("greedy_success", "greedy (paper)", ":"),
    )
    il_share = (
        ("il_fraction", "evaluating (deployed)", "-"),
        ("il_fraction_train", "collecting", ":"),
        ("il_matched", "matched its IL policy (share of seeds)", "--"),
    )
    q_values = (("q_il_demo", "Q(s, a_IL)", "-"), ("q_rl_demo", "Q(s, a_RL)", ":"), ("return_demo", "demo return", "--"))
    panels = (("success rate", success), ("IL share of the actions", il_share), ("Q on the demo states", q_values))
    for (task, method, seeds), axes_row in zip(rows, axes):
        bc = _bc_by_seed(curves, task)
        for ax, (ylabel, lines) in zip(axes_row, panels):
            for key, label, style in lines:
                if not _has(seeds, key):
                    continue
                steps, values = aligned(seeds, key)
                ax.plot(steps, np.nanmean(values, axis=0), style, marker="o", markersize=3, label=label)
                ax.fill_between(steps, np.nanmin(values, axis=0), np.nanmax(values, axis=0), alpha=0.1)
            if ylabel == "success rate" and bc:
                ax.axhline(np.mean(list(bc.values())), color="tab:gray", linestyle="--", label="BC")
            ax.set(title=f"{task} {method} (n={len(seeds)})", xlabel="env steps", ylabel=ylabel)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
