"""
Gradient updates per second from pixels at batch 256 (96 x 96 RGB, E = 2 critics, one actor update per critic
update): IBRL's ViT Q-network (the paper's ViT and the release's conv-stem ViT), IBRL with the DrQ encoder,
and SB3's TD3 ``CnnPolicy`` (NatureCNN) as the yardstick, in one run.

    python benchmarks/pixel_speed.py --updates 5 --device cpu
    python benchmarks/pixel_speed.py --device cuda --updates 200 --encoders paper-vit \
        --speedups baseline device-replay bf16 compile cudagraphs --il free resnet18 --out speed.json

The replay buffers are filled with random images (``PointGoal-v0`` in ``obs_mode="pixel"`` at 96 x 96 gives the
spaces: 2-D actions); no env step is timed. ``--il free`` makes the IL policy a free callable, so the numbers are the
RL update alone; ``--il resnet18`` uses the paper's BC network (ResNet-18, GroupNorm) in the bootstrap proposal, as a
real run does. ``--speedups`` are cumulative, left to right: ``baseline`` (float32, replay in host memory),
``cache-il`` (IL actions computed once per stored transition, not per batch), ``device-replay`` (images stored on
the GPU), ``bf16`` (autocast), ``tf32`` (float32 on TF32 tensor cores; it replaces ``bf16``, and ``bf16`` after it
replaces it), ``compile`` (``torch.compile`` of the updates), ``cudagraphs`` (``mode="reduce-overhead"``),
``channels-last`` (the encoder's convolutions and the random shift's output in the NHWC memory format). A step may
join several with ``+`` (``cudagraphs+tf32``): they are measured together, once, which saves a compilation when the
rows in between are not wanted. The first update after a change (compilation) is not timed.

``--profile FILE`` also profiles ``--profile-updates`` updates of each configuration (torch.profiler) and writes, per
update: the wall time, the time the GPU was busy (its kernels), the kernels launched, the host-device synchronizations
and the torch ops dispatched, with the top ops by host time and by GPU time. A GPU busy for a small share of the wall
time means an update is bound by the host (Python and op dispatch), which ``torch.compile`` and CUDA graphs address.
"""

import argparse
import json
import os
import platform
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import TD3

import sb3_ibrl  # noqa: F401  (registers PointGoal-v0)
from sb3_ibrl import IBRL

ENCODERS: dict[str, tuple[str, dict[str, Any]]] = {
    "paper-vit": ("IBRL ViT (paper: patch 8, depth 3)", dict(encoder="vit")),
    "release-vit": ("IBRL ViT (release: conv stem, depth 1)", dict(encoder="vit", encoder_kwargs=dict(stem="conv", depth=1))),
    "drq": ("IBRL DrQ encoder", dict(encoder="drq")),
}
# Cumulative: each adds its options to the previous ones'
SPEEDUPS: dict[str, dict[str, Any]] = {
    "baseline": dict(replay_buffer_kwargs=dict(storage_device=None), cache_il_actions=False),
    "cache-il": dict(cache_il_actions=True),
    "device-replay": dict(replay_buffer_kwargs=dict(storage_device="auto")),
    "bf16": dict(mixed_precision="bf16"),
    "tf32": dict(mixed_precision="tf32"),  # float32 on TF32 tensor cores; replaces bf16 (one mixed_precision at a time)
    "compile": dict(compile_updates=True),
    "cudagraphs": dict(compile_updates="reduce-overhead"),
    "channels-last": dict(encoder_kwargs=dict(channels_last=True)),  # the encoder's convolutions (policy_kwargs)
}


def speedup_steps(specs: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """
    The configurations to measure, one per step of ``--speedups``: each step's label (the steps so far, joined by
    ``+``) and its options (every step so far, applied left to right).

    :param specs: the steps, each a name of ``SPEEDUPS`` or several joined by ``+`` (measured together)
    :return: ``(label, options)`` per step
    """
    steps: list[tuple[str, dict[str, Any]]] = []
    options: dict[str, Any] = {}
    done: list[str] = []
    for spec in specs:
        names = spec.split("+")
        unknown = [name for name in names if name not in SPEEDUPS]  # "" and "a+" leave an empty name
        if unknown:
            raise ValueError(f"unknown speed-up {unknown} in {spec!r}: choose from {list(SPEEDUPS)}, joined by '+'")
        for name in names:
            options.update(SPEEDUPS[name])
        done += names
        steps.append(("+".join(done), dict(options)))
    return steps


def resnet18_il(env: gym.Env, device: str) -> Any:
    """The paper's BC policy (ResNet-18 with GroupNorm), untrained: the same forward pass per update as a trained one."""
    from sb3_ibrl.il.training import make_bc_policy

    return make_bc_policy(env.observation_space, env.action_space).to(device)


def fill(model: Any, n: int, seed: int = 0, episode_length: int = 50) -> None:
    """
    Write ``n`` transitions of random images into a model's replay buffer, in episodes of ``episode_length`` steps whose
    next observation is the next row's observation, as collection writes them. (Unrelated next observations would make
    every row a break, held apart and written back into each sampled batch row by row: not what a run samples.)
    """
    rng = np.random.default_rng(seed)
    space = model.observation_space
    obs = rng.integers(0, 256, (1, *space.shape), dtype=np.uint8)
    for t in range(n):
        next_obs = rng.integers(0, 256, (1, *space.shape), dtype=np.uint8)
        action = rng.uniform(-1, 1, (1, model.action_space.shape[0])).astype(np.float32)
        done = np.array([t % episode_length == episode_length - 1])
        il = getattr(model, "_il", None)
        if il is not None and il.cache:  # as collection does: the IL action of the next observation, computed once
            model.replay_buffer.set_next_il_actions(il.il(model.policy.obs_to_tensor(next_obs)[0]).cpu().numpy())
        model.replay_buffer.add(obs, next_obs, action, np.zeros(1, np.float32), done, [{"TimeLimit.truncated": False}])
        obs = rng.integers(0, 256, (1, *space.shape), dtype=np.uint8) if done[0] else next_obs  # a reset, or the next step


def updates_per_second(model: Any, updates: int, batch_size: int) -> float:
    model.train(gradient_steps=3, batch_size=batch_size)  # warm-up (and compilation, when asked for)
    if model.device.type == "cuda":
        th.cuda.synchronize()
    start = time.perf_counter()
    model.train(gradient_steps=updates, batch_size=batch_size)
    if model.device.type == "cuda":
        th.cuda.synchronize()
    return updates / (time.perf_counter() - start)


SYNC_EVENTS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")
LAUNCH_EVENTS = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx", "cudaGraphLaunch")


def profile_updates(model: Any, updates: int, batch_size: int) -> tuple[dict[str, float], str]:
    """
    Profile ``updates`` updates: where an update's time goes.

    :return: per update, ``wall_ms``, ``gpu_busy_ms`` (the sum of its kernels' times), ``gpu_busy_share`` (of the wall
        time), ``kernels``, ``launches`` (kernel and graph launches by the host), ``syncs`` (the host waiting for the
        GPU), ``items`` (``.item()`` calls on any device: on a CUDA tensor each waits) and ``torch_ops`` (``aten`` ops
        dispatched); and the tables of the top ops by host time and by GPU time
    """
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = model.device.type == "cuda"
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    model.train(gradient_steps=1, batch_size=batch_size)  # anything lazy happens outside the profile
    if cuda:
        th.cuda.synchronize()
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        model.train(gradient_steps=updates, batch_size=batch_size)
        if cuda:
            th.cuda.synchronize()
    wall_ms = (time.perf_counter() - start) * 1e3 / updates  # with the profiler's own overhead
    events = prof.events()
    kernels = [event for event in events if event.device_type == DeviceType.CUDA]
    busy_ms = sum(event.time_range.elapsed_us() for event in kernels) / 1e3 / updates
    summary = dict(
        wall_ms=wall_ms,
        gpu_busy_ms=busy_ms,
        gpu_busy_share=busy_ms / wall_ms,
        kernels=len(kernels) / updates,
        launches=sum(event.name in LAUNCH_EVENTS for event in events) / updates,
        syncs=sum(event.name in SYNC_EVENTS for event in events) / updates,
        items=sum(event.name == "aten::_local_scalar_dense" for event in events) / updates,
        torch_ops=sum(event.name.startswith("aten::") for event in events) / updates,
    )
    averages = prof.key_averages()
    tables = averages.table(sort_by="self_cpu_time_total", row_limit=15)
    if cuda:
        tables += "\n" + averages.table(sort_by="self_device_time_total", row_limit=15)
    return summary, tables


def ibrl_model(env: gym.Env, device: str, encoder: dict[str, Any], il: str, options: dict[str, Any]) -> IBRL:
    common = dict(buffer_size=2000, learning_starts=0, gradient_steps=1, policy_delay=1, seed=0, device=device)
    il_policy = resnet18_il(env, device) if il == "resnet18" else (lambda obs: th.zeros(len(obs), 2, device=obs.device))
    options = dict(options)
    encoder = {**encoder, "encoder_kwargs": {**encoder.get("encoder_kwargs", {}), **options.pop("encoder_kwargs", {})}}
    model = IBRL(
        "CnnPolicy", env, il_policy=il_policy, n_steps=3, policy_kwargs=dict(n_critics=2, **encoder), **common, **options
    )
    model._setup_learn(1)  # sets the logger that train() writes to
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS), choices=list(ENCODERS))
    parser.add_argument("--speedups", nargs="+", default=["baseline"],
                        help=f"cumulative steps, each one of {list(SPEEDUPS)} or several joined by '+'")  # fmt: skip
    parser.add_argument("--il", nargs="+", default=["free"], choices=["free", "resnet18"])
    parser.add_argument("--no-td3", action="store_true", help="skip SB3's TD3 CnnPolicy")
    parser.add_argument("--out", default=None, help="JSON file for the results")
    parser.add_argument("--profile", default=None, help="text file for the profile of each configuration (see above)")
    parser.add_argument("--profile-updates", type=int, default=20)
    args = parser.parse_args()
    try:
        steps = speedup_steps(args.speedups)
    except ValueError as error:
        parser.error(str(error))
    env = gym.make("PointGoal-v0", obs_mode="pixel", image_size=96)
    results: dict[str, float] = {}
    profiles: dict[str, dict[str, float]] = {}
    if args.profile:
        open(args.profile, "w").close()
    for encoder in args.encoders:
        name, encoder_kwargs = ENCODERS[encoder]
        for il in args.il:
            for step, options in steps:
                label = f"{name} | IL {il} | {step}"
                try:
                    model = ibrl_model(env, args.device, encoder_kwargs, il, options)
                    fill(model, 1000)
                    results[label] = updates_per_second(model, args.updates, args.batch_size)
                    if args.profile:
                        profiles[label], tables = profile_updates(model, args.profile_updates, args.batch_size)
                        with open(args.profile, "a") as file:
                            file.write(f"{label}\n{json.dumps(profiles[label])}\n{tables}\n\n")
                        print("  profile: " + ", ".join(f"{k} {v:.3g}" for k, v in profiles[label].items()), flush=True)
                except Exception as error:  # a speed-up that fails here is reported, the others still run
                    results[label] = float("nan")
                    print(f"{label}: failed: {type(error).__name__}: {error}", flush=True)
                print(f"{label:90s} {results[label]:8.2f} updates/s", flush=True)
                write_results(args, results, profiles)  # after every measurement: a run cut short keeps what it measured
    if not args.no_td3:
        common = dict(buffer_size=2000, learning_starts=0, gradient_steps=1, policy_delay=1, seed=0, device=args.device)
        td3 = TD3("CnnPolicy", env, **common)
        td3._setup_learn(1)
        fill(td3, 1000)
        results["SB3 TD3 CnnPolicy (NatureCNN)"] = updates_per_second(td3, args.updates, args.batch_size)
        print(f"{'SB3 TD3 CnnPolicy (NatureCNN)':90s} {results['SB3 TD3 CnnPolicy (NatureCNN)']:8.2f} updates/s")
    write_results(args, results, profiles)


def write_results(args: argparse.Namespace, results: dict[str, float], profiles: dict[str, dict[str, float]]) -> None:
    """Write the results (and profile summaries) so far to ``args.out`` (when given), with the machine."""
    if not args.out:
        return
    machine = dict(platform=platform.platform(), cpus=os.cpu_count(), torch=th.__version__, threads=th.get_num_threads())
    if args.device.startswith("cuda"):
        machine["gpu"] = th.cuda.get_device_name()
    with open(args.out, "w") as file:
        json.dump(
            dict(
                machine=machine, batch_size=args.batch_size, device=args.device, updates_per_second=results, profile=profiles
            ),
            file,
            indent=2,
        )


if __name__ == "__main__":
    main()
