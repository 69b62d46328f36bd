"""
Cost of ``add`` (and ``sample``) of IBRL's buffers for the usual case of consecutive transitions, next to SB3's
``ReplayBuffer``: 10K steps of a 39-dim state (Meta-World) and of 3x96x96 uint8 images, one env, episodes of
``--episode-length`` steps. ``--baseline`` times another version of ``nstep_buffer.py`` in the same run, e.g. the
one before ``add`` checked that transitions follow each other (issue 15)::

    git show f29b9eb:sb3_ibrl/data/nstep_buffer.py > /tmp/nstep_before.py
    OMP_NUM_THREADS=1 python benchmarks/buffer_add.py --baseline /tmp/nstep_before.py \
        --out benchmarks/results/buffer_add_cpu.json

Buffers are timed in turn, repeat after repeat (so that all see the same machine load); the median over repeats is
reported in microseconds per ``add`` call (and the minimum, less sensitive to a shared machine's load) and per
``sample(256)`` call. ``compare_us`` is the cost of the check alone: comparing an observation with the previous next
observation.
"""

import argparse
import importlib.util
import json
import os
import platform
import time
import timeit
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer

from sb3_ibrl.data import nstep_buffer
from sb3_ibrl.data.replay_buffer import IBRLReplayBuffer

CASES = {
    "state39": spaces.Box(-np.inf, np.inf, (39,), np.float32),
    "image3x96x96": spaces.Box(0, 255, (3, 96, 96), np.uint8),
}


def make_steps(space: spaces.Box, n_steps: int, episode_length: int, rng: np.random.Generator) -> list[tuple[Any, ...]]:
    """Consecutive transitions (``obs`` of a step is the ``next_obs`` of the step before), episodes of fixed length."""
    steps, obs = [], rng.integers(0, 255, (1, *space.shape)).astype(space.dtype)
    for t in range(n_steps):
        next_obs = rng.integers(0, 255, (1, *space.shape)).astype(space.dtype)
        done = (t + 1) % episode_length == 0
        info = {"TimeLimit.truncated": done}
        steps.append((obs, next_obs, rng.uniform(-1, 1, (1, 4)), rng.uniform(size=1), np.array([done]), [info]))
        obs = rng.integers(0, 255, (1, *space.shape)).astype(space.dtype) if done else next_obs
    return steps


def time_fill(buffer_class: type, space: spaces.Box, steps: list[tuple[Any, ...]]) -> tuple[float, float]:
    """Microseconds per ``add`` while filling a fresh buffer with ``steps``, then per ``sample(256)``."""
    buffer = buffer_class(len(steps), space, spaces.Box(-1, 1, (4,), np.float32), device="cpu")
    start = time.perf_counter()
    for step in steps:
        buffer.add(*step)
    add_us = (time.perf_counter() - start) / len(steps) * 1e6
    start = time.perf_counter()
    for _ in range(100):
        buffer.sample(256)
    return add_us, (time.perf_counter() - start) / 100 * 1e6


def load_baseline(path: str) -> type:
    """The ``NStepBuffer`` class of another version of ``nstep_buffer.py``."""
    spec = importlib.util.spec_from_file_location("nstep_buffer_baseline", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.NStepBuffer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--episode-length", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", default=None, help="another nstep_buffer.py whose NStepBuffer is timed too")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    buffers: dict[str, type] = {"NStepBuffer": nstep_buffer.NStepBuffer}
    if args.baseline:
        buffers["NStepBuffer (baseline)"] = load_baseline(args.baseline)
    buffers.update({"IBRLReplayBuffer": IBRLReplayBuffer, "SB3 ReplayBuffer": ReplayBuffer})
    results: dict[str, Any] = {
        "steps": args.steps,
        "episode_length": args.episode_length,
        "repeats": args.repeats,
        "baseline": args.baseline,
        "machine": platform.processor() or platform.machine(),
        "load_average_1min_before": os.getloadavg()[0],
    }
    for case, space in CASES.items():
        steps = make_steps(space, args.steps, args.episode_length, rng)
        timings: dict[str, list[tuple[float, float]]] = {name: [] for name in buffers}
        for _ in range(args.repeats):
            for name, buffer_class in buffers.items():
                timings[name].append(time_fill(buffer_class, space, steps))
        first, second = steps[0][1], steps[1][0]  # equal arrays: the check's worst case (it reads them all)
        compare_us = min(timeit.repeat(lambda a=first, b=second: nstep_buffer._equal(a, b), number=1000, repeat=5)) * 1e3
        results[case] = {"compare_us": compare_us}
        print(f"{case}: comparing obs with the previous next_obs takes {compare_us:.2f} us")
        for name, values in timings.items():
            add_us, sample_us = (float(np.median(column)) for column in zip(*values))
            add_min_us = float(min(add for add, _ in values))
            results[case][name] = {"add_us": add_us, "add_min_us": add_min_us, "sample256_us": sample_us}
            print(f"  {name:24s} add {add_us:7.1f} us (min {add_min_us:6.1f})   sample(256) {sample_us:8.1f} us")
    results["load_average_1min_after"] = os.getloadavg()[0]
    if args.out:
        with open(args.out, "w") as file:
            json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()
