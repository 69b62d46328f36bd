"""
Command line behaviour cloning: train the IL policy that IBRL bootstraps from.

Usage::

    python -m sb3_ibrl.bc --demos demos.hdf5 --env PointGoal-v0 --out bc_policy.zip --eval-episodes 20

Reads the demos (an sb3-ibrl ``.npz`` file or a robomimic ``.hdf5`` file), checks them against the env's
spaces, trains BC with ``imitation`` (see :func:`sb3_ibrl.il.training.train_bc`: ResNet-18 + random shift for
pixels, MLP for states), saves the SB3 policy (usable as ``IBRL(il_policy="bc_policy.zip")``) and
optionally reports its success rate. The library code lives in :mod:`sb3_ibrl.il.training`.
"""

import argparse
import contextlib
import importlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any, Optional

import gymnasium as gym
import numpy as np
import torch as th

import sb3_ibrl.envs  # noqa: F401  (registers PointGoal-v0)
from sb3_ibrl.data.demo_files import load_episodes
from sb3_ibrl.data.episodes import Episode, check_episodes
from sb3_ibrl.il.sizing import BC_EPOCHS, BC_MAX_BATCHES, BC_MIN_BATCHES, bc_batches
from sb3_ibrl.il.training import FEATURES, bc_action_error, evaluate_bc_policy, resolve_features, save_bc_policy, train_bc

HDF5_SUFFIXES = (".hdf5", ".h5")


def make_parser() -> argparse.ArgumentParser:
    """The command line parser of ``python -m sb3_ibrl.bc``."""
    parser = argparse.ArgumentParser(
        prog="python -m sb3_ibrl.bc",
        description="Train a behaviour cloning policy (imitation's BC) from demos and save it as an SB3 policy file.",
    )
    parser.add_argument("--demos", required=True, help="demo file: sb3-ibrl .npz or robomimic .hdf5")
    parser.add_argument("--env", required=True, help="gymnasium env id whose spaces the demos must match")
    parser.add_argument("--out", required=True, help="policy file to write (load it with IBRL(il_policy=OUT))")
    parser.add_argument("--n-demos", type=int, default=None, help="use only the first N demos (default: all)")
    parser.add_argument("--obs-keys", nargs="+", default=None, help="robomimic HDF5 observation keys, in env order")
    parser.add_argument(
        "--n-batches",
        type=int,
        default=None,
        help=f"gradient steps (default: sized to the demos, {BC_EPOCHS} passes over their transitions, at least "
        f"{BC_MIN_BATCHES} and at most the paper's {BC_MAX_BATCHES})",
    )
    parser.add_argument("--batch-size", type=int, default=256, help="minibatch size (default: 256, as the paper)")
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default: 1e-4, as the paper)")
    parser.add_argument("--features", choices=FEATURES, default="auto", help="network (auto: ResNet-18 for pixels)")
    parser.add_argument("--resnet-width", type=int, default=64, help="ResNet-18 base channels (default: 64)")
    parser.add_argument("--no-augment", action="store_true", help="disable the random shift of the images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=0, help="episodes to measure the success rate (default: 0)")
    parser.add_argument("--device", default="auto", help="torch device (default: auto)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default: 1, which cannot slow down on a busy machine as more threads do: 22-35x for the "
        "MLP, 2-3x for the ResNet on a shared 2-core machine; give more on an idle many-core machine)",
    )
    parser.add_argument("--env-kwargs", default=None, help="JSON dict of keyword arguments for gym.make, e.g. '{\"a\": 1}'")
    parser.add_argument("--gym-packages", nargs="+", default=(), help="modules to import first (they register envs)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _recorded_obs_keys(path: str) -> Optional[list[str]]:
    """The observation keys recorded in an HDF5 file written by sb3-ibrl, or ``None``."""
    import h5py

    from sb3_ibrl.data.robomimic_hdf5 import OBS_KEYS_ATTR

    with h5py.File(path, "r") as file:
        raw = file["data"].attrs.get(OBS_KEYS_ATTR)
    if raw is None:
        return None
    return json.loads(raw.decode("utf-8") if isinstance(raw, (bytes, np.bytes_)) else str(raw))


def load_demos(path: str, n_demos: Optional[int] = None, obs_keys: Optional[Sequence[str]] = None) -> list[Episode]:
    """
    Load the demos of the command line.

    :param path: an ``.npz`` file of sb3-ibrl or a robomimic ``.hdf5`` / ``.h5`` file
    :param n_demos: keep only the first ``n_demos`` demos
    :param obs_keys: HDF5 observation keys (default: the keys recorded in the file)
    :return: the episodes
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"Demo file not found: {path}")
    if n_demos is not None and n_demos < 1:
        raise ValueError(f"--n-demos must be at least 1, got {n_demos}")
    if not path.endswith(HDF5_SUFFIXES):
        if obs_keys:
            raise ValueError("--obs-keys applies to robomimic .hdf5 files only")
        episodes = load_episodes(path)
        if n_demos is not None and n_demos > len(episodes):
            raise ValueError(f"--n-demos {n_demos} is larger than the {len(episodes)} demos in {path}")
        return episodes[:n_demos]
    from sb3_ibrl.data.robomimic_hdf5 import read_robomimic_episodes, robomimic_obs_keys

    available = robomimic_obs_keys(path)  # also checks that the file is a readable robomimic file
    keys = list(obs_keys) if obs_keys else _recorded_obs_keys(path)
    if keys is None:
        raise ValueError(
            f"{path} does not record which observation keys to use: pass them, in the env's observation order, "
            f"with --obs-keys (available keys: {', '.join(available)})"
        )
    return read_robomimic_episodes(path, obs_keys=keys, n_demos=n_demos)


def match_image_layout(episodes: list[Episode], observation_space: gym.Space) -> list[Episode]:
    """
    Transpose channel-last image demos (robomimic stores ``(H, W, C)``) when the env gives channel-first ``(C, H, W)``.

    :param episodes: the demos
    :param observation_space: the env's observation space
    :return: the demos, transposed where that makes them match
    """
    shape = getattr(observation_space, "shape", None)
    if isinstance(episodes[0].obs, dict) or shape is None or len(shape) != 3:
        return episodes
    channel_last = (shape[1], shape[2], shape[0])
    if tuple(episodes[0].obs.shape[1:]) == channel_last and channel_last != tuple(shape):
        return [
            Episode(obs=np.ascontiguousarray(ep.obs.transpose(0, 3, 1, 2)), acts=ep.acts, rews=ep.rews, terminal=ep.terminal)
            for ep in episodes
        ]
    return episodes


def _make_env(args: argparse.Namespace) -> gym.Env:
    for module in args.gym_packages:
        importlib.import_module(module)
    try:
        env_kwargs = json.loads(args.env_kwargs) if args.env_kwargs else {}
    except json.JSONDecodeError as error:
        raise ValueError(f"--env-kwargs is not valid JSON: {error}") from error
    if not isinstance(env_kwargs, dict):
        raise ValueError(f"--env-kwargs must be a JSON object (a dict), got {args.env_kwargs}")
    try:
        return gym.make(args.env, **env_kwargs)
    except gym.error.Error as error:
        raise ValueError(f"Could not make env {args.env!r}: {error}") from error


def run(args: argparse.Namespace) -> dict[str, Any]:
    """
    Train, save and (optionally) evaluate, printing a short report.

    :param args: parsed command line
    :return: a summary (``path``, ``n_demos``, ``n_transitions``, ``features``, ``n_batches``, ``train_mse``,
        ``success_rate``, ``mean_length``)
    """
    for name in ("n_batches", "batch_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.eval_episodes < 0:
        raise ValueError(f"--eval-episodes must be non-negative, got {args.eval_episodes}")
    if args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    episodes = load_demos(args.demos, args.n_demos, args.obs_keys)
    env = _make_env(args)
    episodes = match_image_layout(episodes, env.observation_space)
    try:
        check_episodes(episodes, env.observation_space, env.action_space)  # type: ignore[arg-type]
    except ValueError as error:
        raise ValueError(f"The demos in {args.demos} do not match env {args.env}: {error}") from error
    features = resolve_features(args.features, env.observation_space)
    with torch_threads(args.threads):
        return _train_save_evaluate(args, episodes, env, features)


@contextlib.contextmanager
def torch_threads(n_threads: Optional[int]) -> Iterator[None]:
    """
    Run with ``n_threads`` torch CPU threads (``None``: as they are), then restore the previous number.

    :param n_threads: the number of threads
    """
    previous = th.get_num_threads()
    if n_threads is not None:
        th.set_num_threads(n_threads)
    try:
        yield
    finally:
        th.set_num_threads(previous)


def _train_save_evaluate(args: argparse.Namespace, episodes: list[Episode], env: gym.Env, features: str) -> dict[str, Any]:
    n_transitions = sum(len(ep) for ep in episodes)
    n_batches, sized = args.n_batches, ""
    if n_batches is None:
        n_batches = bc_batches(n_transitions, args.batch_size)
        sized = f", sized to the demos ({BC_EPOCHS} passes, {BC_MIN_BATCHES} to {BC_MAX_BATCHES}; --n-batches N to choose)"
    print(
        f"{len(episodes)} demos, {n_transitions} transitions; training BC ({features}) for {n_batches} batches{sized} "
        f"(torch threads: {th.get_num_threads()})"
    )
    start = time.perf_counter()
    trainer = train_bc(
        episodes,
        env.observation_space,
        env.action_space,  # type: ignore[arg-type]
        n_batches=n_batches,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        seed=args.seed,
        device=args.device,
        features=features,
        augment=not args.no_augment,
        resnet_width=args.resnet_width,
        progress_bar=not args.no_progress,
        print_estimate=True,
    )
    summary: dict[str, Any] = dict(n_demos=len(episodes), n_transitions=n_transitions, features=features, n_batches=n_batches)
    summary["train_mse"] = bc_action_error(trainer, episodes)
    summary["path"] = save_bc_policy(trainer, args.out)
    print(f"Trained in {time.perf_counter() - start:.1f}s; action MSE on the demos {summary['train_mse']:.4g}")
    print(f"Saved the policy to {summary['path']} (use it with IBRL(il_policy={summary['path']!r}))")
    if args.eval_episodes > 0:
        success, length = evaluate_bc_policy(trainer, env, args.eval_episodes, seed=args.seed)
        summary.update(success_rate=success, mean_length=length)
        print(f"Success rate over {args.eval_episodes} episodes: {success:.1%} (mean episode length {length:.1f})")
    env.close()
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    """
    Entry point of ``python -m sb3_ibrl.bc``; user errors exit with status 2 and a one-line message.

    :param argv: command line arguments (default: ``sys.argv[1:]``)
    :return: the exit status (0)
    """
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        run(args)
    except (FileNotFoundError, ValueError, ImportError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
