"""
Env steps per second of every simulated task id (robosuite and Meta-World, every observation mode) with
random actions, on this machine (wall clock, and CPU time per step, which a busy machine distorts less);
for pixel modes also the time of one camera image, with and without frustum culling. With ``--baselines``,
the simulators' own image pipelines for comparison (robosuite's camera observations, Meta-World's
``render()``, both with their default shadows and multisampling).

    OMP_NUM_THREADS=1 python benchmarks/env_speed.py --steps 300 --baselines

Episodes that end are reset within the timed steps (the resets count). Prints a Markdown table and
writes JSON (default ``benchmarks/results/env_speed_cpu.json``).
"""

import argparse
import json
import os
import platform
import time
import warnings
from typing import Any

import gymnasium as gym
import numpy as np

import sb3_ibrl  # noqa: F401  (registers the ids)
from sb3_ibrl.envs import METAWORLD_ENV_IDS, ROBOMIMIC_TASKS, ROBOSUITE_ENV_IDS
from sb3_ibrl.envs.rendering import CameraRenderer, select_gl_backend


def steps_per_second(env: gym.Env, steps: int, warmup: int, seed: int) -> tuple[float, float]:
    """Random-action steps per second (resets included when episodes end), and CPU milliseconds per step."""
    env.action_space.seed(seed)
    env.reset(seed=seed)
    start = cpu_start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start, cpu_start = time.perf_counter(), time.process_time()
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start), 1000.0 * (time.process_time() - cpu_start) / steps


def render_ms(renderer: CameraRenderer, repeats: int = 100) -> float:
    """Milliseconds per image of a renderer at the env's current state."""
    renderer.render_chw()
    start = time.perf_counter()
    for _ in range(repeats):
        renderer.render_chw()
    return 1000.0 * (time.perf_counter() - start) / repeats


def baseline_robosuite(task: str, steps: int, warmup: int, size: int) -> float:
    """Steps per second of robosuite's own camera observations (task camera only, default render settings)."""
    import robosuite

    from sb3_ibrl.envs.robosuite_envs import osc_pose_controller_config

    spec = ROBOMIMIC_TASKS[task]
    env = robosuite.make(
        spec.robosuite_name,
        robots="Panda",
        controller_configs=osc_pose_controller_config(robosuite),
        has_renderer=False,
        has_offscreen_renderer=True,
        use_camera_obs=True,
        camera_names=[spec.camera],
        camera_heights=size,
        camera_widths=size,
        reward_shaping=False,
        control_freq=20,
        ignore_done=True,
        hard_reset=False,
    )
    env.reset()
    rng = np.random.default_rng(0)
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        env.step(rng.uniform(-1, 1, env.action_dim))
    result = steps / (time.perf_counter() - start)
    env.close()
    return result


def baseline_metaworld(task: str, steps: int, warmup: int, size: int) -> float:
    """Steps per second (action repeat 2) of Meta-World's own ``render()`` (gymnasium's renderer, default settings)."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

    env = ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f"{task}-goal-observable"](seed=0, render_mode="rgb_array")
    renderer = env.mujoco_renderer
    renderer.camera_id, renderer.camera_name, renderer.width, renderer.height = None, "corner2", size, size
    env.model.vis.global_.offwidth, env.model.vis.global_.offheight = max(size, 640), max(size, 480)
    env.reset()
    rng = np.random.default_rng(0)
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        action = rng.uniform(-1, 1, 4)
        for _ in range(2):
            env.step(action)
        env.render()
        if env.curr_path_length >= 400:
            env.reset()
    result = steps / (time.perf_counter() - start)
    env.close()
    return result


def measure(env_id: str, args: argparse.Namespace) -> dict[str, Any]:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make(env_id)
    row: dict[str, Any] = {"id": env_id, "make_s": time.perf_counter() - start}
    row["steps_per_s"], row["cpu_ms_per_step"] = steps_per_second(env, args.steps, args.warmup, args.seed)
    renderer = getattr(env.unwrapped, "_renderer", None)
    if renderer is not None:
        row["render_ms"] = render_ms(renderer)
        unculled = CameraRenderer(
            renderer.model,
            renderer.data,
            env.unwrapped.camera,
            renderer.width,
            renderer.height,
            geom_groups=tuple(i for i, shown in enumerate(renderer._option.geomgroup) if shown),
            rotate_180=renderer.rotate_180,
            cull=False,
        )
        row["render_ms_no_culling"] = render_ms(unculled)
        unculled.close()
    env.close()
    if args.baselines and "pixel-" in env_id:
        name = env_id.split("-")[0]
        if env_id in ROBOSUITE_ENV_IDS:
            row["baseline_steps_per_s"] = baseline_robosuite(name, args.steps // 2, args.warmup, 96)
        else:
            row["baseline_steps_per_s"] = baseline_metaworld(METAWORLD_ENV_IDS[env_id][0], args.steps // 2, args.warmup, 96)
    return row


def _cell(row: dict[str, Any], key: str, digits: int = 1) -> str:
    return f"{row[key]:.{digits}f}" if key in row else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", nargs="+", default=[*ROBOSUITE_ENV_IDS, *METAWORLD_ENV_IDS])
    parser.add_argument("--steps", type=int, default=300, help="timed steps per id")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baselines", action="store_true", help="also time the simulators' own image pipelines")
    parser.add_argument("--out", default="benchmarks/results/env_speed_cpu.json", help="JSON output ('' for none)")
    args = parser.parse_args()

    backend = select_gl_backend() if any("pixel" in env_id for env_id in args.ids) else os.environ.get("MUJOCO_GL", "")
    rows = []
    print("| id | steps/s | CPU ms/step | image ms | image ms, no culling | simulator's own pipeline, steps/s | make s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for env_id in args.ids:
        row = measure(env_id, args)
        rows.append(row)
        cells = [_cell(row, "steps_per_s", 0), _cell(row, "cpu_ms_per_step"), _cell(row, "render_ms")]
        cells += [_cell(row, "render_ms_no_culling")]
        cells += [_cell(row, "baseline_steps_per_s", 0), _cell(row, "make_s")]
        print(f"| {env_id} | " + " | ".join(cells) + " |", flush=True)
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, MUJOCO_GL={backend}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load average at the end "
        + "/".join(f"{load:.1f}" for load in os.getloadavg())
    )
    print(f"machine: {machine}")
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as file:
            json.dump(dict(args=vars(args), machine=machine, results=rows), file, indent=2)


if __name__ == "__main__":
    main()
