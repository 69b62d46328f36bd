"""
Parts of the headline run (:mod:`sb3_ibrl.benchmark.headline`): wall-clock accounting, evaluation on a vectorized
env (every episode of an evaluation runs in parallel), option parsing, the machine's description, and the plot.
"""

import ast
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable, Optional

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from sb3_ibrl.common.files import atomic_path, save_figure
from sb3_ibrl.data.episodes import Episode

# Parts of the wall-clock split, in the order of the pipeline
TIME_PARTS = ("setup", "demos", "bc", "env_steps", "updates", "evaluation", "checkpoint", "report")
# (observations, episode_start) -> (actions in env units, mask of IL actions or None); episode_start marks the envs
# whose episode starts at this step, for a policy with memory (an action-chunking IL policy)
VecActFn = Callable[[Any, np.ndarray], tuple[np.ndarray, Optional[np.ndarray]]]


class Stopwatch:
    """
    Seconds spent per part of a run (:data:`TIME_PARTS`), accumulated across calls of a resumed run.

    :param seconds: the split of the earlier calls (``None``: a new run)
    """

    def __init__(self, seconds: Optional[dict[str, float]] = None):
        self.seconds = {part: 0.0 for part in TIME_PARTS}
        for part, value in (seconds or {}).items():
            if part in self.seconds:
                self.seconds[part] = float(value)

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        """Count the time spent in the ``with`` block towards ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start


@contextmanager
def timed_updates(model: Any, stopwatch: Stopwatch) -> Iterator[None]:
    """
    Count the time of the model's gradient updates (its ``train`` calls) as ``"updates"`` while the block runs.

    The bound method is wrapped on the instance and unwrapped at the end (so that the model still saves). On CUDA
    the wrapper synchronizes before it stops the clock, so that queued GPU work is counted as updates, not env steps.
    """
    original, previous = model.train, model.__dict__.get("train")
    cuda = th.device(model.device).type == "cuda"

    def train(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            if cuda:
                th.cuda.synchronize()
            stopwatch.seconds["updates"] += time.perf_counter() - start

    model.train = train
    try:
        yield
    finally:
        if previous is None:
            del model.train  # the class's method again
        else:
            model.train = previous


def evaluate_vec(vec_env: VecEnv, act: VecActFn, n_episodes: int, seed: int) -> dict[str, float]:
    """
    Evaluate a policy on a vectorized env: ``num_envs`` episodes at a time, each from its own reset seed
    (``seed``, ``seed + 1``, ...: the same episodes at every evaluation).

    :param vec_env: the evaluation envs (their episodes end on their time limit)
    :param act: maps a batch of observations and the mask of envs whose episode starts at this step (all of them
        at each reset of the evaluation, then none) to ``(actions in env units, mask of IL actions or None)``
    :param n_episodes: episodes to play
    :param seed: reset seed of the first episode
    :return: ``success`` (rate), ``length`` (mean episode length), ``il_fraction`` (of the executed actions; ``nan``
        without IL), ``seconds``
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {n_episodes}")
    start = time.perf_counter()
    n_envs = vec_env.num_envs
    successes: list[bool] = []
    lengths: list[int] = []
    il_counts = [0, 0]
    while len(successes) < n_episodes:
        active = np.arange(n_envs) < min(n_envs, n_episodes - len(successes))
        vec_env.seed(seed + len(successes))  # env i resets with seed + done + i
        obs = vec_env.reset()
        steps = np.zeros(n_envs, dtype=np.int64)
        while active.any():
            actions, use_il = act(obs, active & (steps == 0))  # (a finished env plays no more until the next reset)
            if use_il is not None:
                il_counts[0] += int(np.sum(use_il[active]))
                il_counts[1] += int(active.sum())
            obs, _, dones, infos = vec_env.step(actions)
            steps[active] += 1
            for i in np.flatnonzero(dones & active):
                successes.append(bool(infos[i].get("is_success", False)))
                lengths.append(int(steps[i]))
                active[i] = False
    return {
        "success": float(np.mean(successes)),
        "length": float(np.mean(lengths)),
        "il_fraction": il_counts[0] / il_counts[1] if il_counts[1] else float("nan"),
        "seconds": time.perf_counter() - start,
    }


def model_act_fn(model: Any, rl_only: bool = False) -> VecActFn:
    """The deterministic policy of an IBRL model for :func:`evaluate_vec`: the hybrid, or the RL actor alone."""
    policy = model.policy
    has_il = getattr(policy, "il_policy", None) is not None and not rl_only

    def act(obs: Any, episode_start: np.ndarray) -> tuple[np.ndarray, Optional[np.ndarray]]:
        policy.set_training_mode(False)
        obs_tensor, _ = policy.obs_to_tensor(obs)
        with th.no_grad():
            if has_il:
                policy.il_policy.start_episodes(np.flatnonzero(episode_start), context="predict")  # (stateful IL only)
                action, use_il = policy.propose(obs_tensor, deterministic=True)
                mask: Optional[np.ndarray] = use_il.cpu().numpy()
            else:
                action, mask = policy.actor(obs_tensor), None
        return policy.unscale_action(action.float().cpu().numpy()), mask

    return act


def policy_act_fn(
    policy: Any, chunking: Optional[tuple[int, float]] = None, action_space: Optional[gym.Space] = None
) -> VecActFn:
    """
    The deterministic actions of an SB3 policy (e.g. the BC policy) for :func:`evaluate_vec`.

    :param policy: the policy
    :param chunking: ``(chunk_size, decay)`` of a BC policy that predicts chunks of actions: act with temporal
        ensembling (:class:`~sb3_ibrl.il.stateful.ActionChunkingPolicy`), each env's memory emptied where its episode
        starts
    :param action_space: the env's action space (for ``chunking``: the size of one action, and the clip of the
        ensembled action)
    """
    if chunking is None or chunking[0] == 1:
        return lambda obs, episode_start: (policy.predict(obs, deterministic=True)[0], None)
    from sb3_ibrl.il.stateful import ActionChunkingPolicy

    if not isinstance(action_space, gym.spaces.Box):
        raise ValueError(f"An action-chunking policy needs the env's Box action space, got {action_space}")
    chunked = ActionChunkingPolicy(policy, chunking[0], int(np.prod(action_space.shape)), chunking[1])

    def act(obs: Any, episode_start: np.ndarray) -> tuple[np.ndarray, Optional[np.ndarray]]:
        policy.set_training_mode(False)
        chunked.start_episodes(np.flatnonzero(episode_start), context="predict")
        obs_tensor, _ = policy.obs_to_tensor(obs)
        actions = chunked.step(obs_tensor, range(len(episode_start)), context="predict").cpu().numpy()
        return np.clip(actions, action_space.low, action_space.high), None

    return act


def parse_literal(text: str) -> Any:
    """
    A command-line value as a Python literal (``2``, ``'bf16'``, ``True``, ``{'storage_device': 'cuda'}``, also
    ``dict(storage_device='cuda')``); a bare word (``bf16``) stays a string.

    :raises ValueError: for anything else (e.g. an expression), naming the value
    """
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        node = None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {kw.arg: parse_literal(ast.unparse(kw.value)) for kw in node.keywords if kw.arg is not None}
    if text.replace("_", "").replace("-", "").replace(".", "").isalnum():
        return text
    raise ValueError(f"Cannot read {text!r} as a Python literal: write e.g. 2, 'bf16', True or {{'key': 'value'}}")


def parse_assignments(items: list[str], what: str = "--override") -> dict[str, Any]:
    """Parse ``key=value`` items (values: :func:`parse_literal`) into a dict."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.isidentifier():
            raise ValueError(f"Bad {what} {item!r}: expected key=value, e.g. train_freq=2 or mixed_precision='bf16'")
        parsed[key] = parse_literal(value)
    return parsed


def jsonable(value: Any) -> Any:
    """A JSON-friendly copy of settings (classes and other objects become their names / reprs)."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, type):
        return value.__name__
    return repr(value)


def machine_info(device: th.device) -> dict[str, Any]:
    """The device and the versions that matter for the numbers."""
    info: dict[str, Any] = {"device": str(device), "platform": platform.platform(), "cpus": os.cpu_count()}
    info["device_name"] = th.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    if device.type == "cuda":
        props = th.cuda.get_device_properties(device)
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
    versions = {"python": sys.version.split()[0], "torch": th.__version__, "cuda": th.version.cuda}
    versions["cudnn"] = th.backends.cudnn.version() if th.backends.cudnn.is_available() else None
    versions["sb3_ibrl"] = importlib.import_module("sb3_ibrl").__version__  # this tree's, not an installed copy's
    for name in ("stable_baselines3", "gymnasium", "numpy", "mujoco", "robosuite", "metaworld", "imitation"):
        try:  # without importing the simulators
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            module = sys.modules.get(name)
            versions[name] = getattr(module, "__version__", None)
    try:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        commit = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        versions["git_commit"] = commit.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        versions["git_commit"] = None
    info["versions"] = versions
    return fill_versions(info)


def fill_versions(info: dict[str, Any]) -> dict[str, Any]:
    """Add the versions of packages imported since :func:`machine_info` (e.g. a simulator unpacked without metadata)."""
    for name, version in info["versions"].items():
        if version is None and name in sys.modules:
            info["versions"][name] = getattr(sys.modules[name], "__version__", None)
    info["mujoco_gl"] = os.environ.get("MUJOCO_GL")
    return info


def plot_headline(result: dict[str, Any], path: str) -> Optional[str]:
    """
    Plot the success curve (hybrid, RL actor alone, BC dashed) with the wall-clock split in a side panel.

    :return: the path written, or ``None`` when matplotlib is not installed
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)", file=sys.stderr)
        return None
    curve = result["curve"]
    fig, (ax, side) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw=dict(width_ratios=[2.2, 1]))
    steps = [row["env_steps"] for row in curve]
    ax.plot(steps, [row["rl_only_success"] for row in curve], "s:", color="C1", label="IBRL RL actor alone")
    hybrid = [row["hybrid_success"] for row in curve]
    ax.plot(steps, hybrid, "o-", color="C0", label="IBRL (hybrid: RL + IL, deployed)")
    greedy = [row.get("greedy_success", success) for row, success in zip(curve, hybrid)]  # (older files have none)
    if greedy != hybrid:  # the deployed hybrid was its IL policy at some evaluation: the paper's greedy one too
        ax.plot(steps, greedy, "^--", color="C4", label="IBRL hybrid, greedy choice (the paper's deployment)")
    bc = result.get("bc", {}).get("success")
    if bc is not None:
        ax.axhline(bc, color="C2", linestyle="--", label=f"BC alone ({result['bc'].get('n_batches', '?')} batches)")
    ax.set_xlim(0, max([result["settings"]["steps"], *steps]))
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("env steps")
    ax.set_ylabel(f"success rate ({result['settings']['eval_episodes']} episodes)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    timing = result["timing"]
    parts = [part for part in TIME_PARTS if timing.get(part, 0.0) > 0] + ["other"]
    values = [timing.get(part, 0.0) for part in parts]
    side.barh(parts[::-1], values[::-1], color="C7")
    for y, value in enumerate(values[::-1]):
        side.text(value, y, f" {value:.0f}s", va="center", fontsize=8)
    side.set_xlim(0, max([*values, 1.0]) * 1.35)
    side.set_xlabel("wall-clock seconds")
    rates = [
        f"{result[key]:.1f} {unit}/s"
        for key, unit in (("updates_per_second", "updates"), ("env_steps_per_second", "steps"))
        if result.get(key)
    ]
    side.set_title(", ".join([f"total {timing['total']:.0f} s", *rates]), fontsize=8)
    machine = result["machine"]
    state = "partial, " if result["partial"] else ""
    fig.suptitle(
        f"{result['task']}: IBRL from pixels, {result['settings']['n_demos']} demo(s), {state}"
        f"{result['env_steps']} env steps on {machine['device_name']}" + (" [smoke]" if result["settings"]["smoke"] else ""),
        fontsize=10,
    )
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def make_envs(factory: Callable[[], gym.Env], n_envs: int, seed: int) -> VecEnv:
    """``n_envs`` envs from ``factory``, each in its own process when more than one (each renders its own images)."""
    return make_vec_env(factory, n_envs=n_envs, seed=seed, vec_env_cls=SubprocVecEnv if n_envs > 1 else DummyVecEnv)


def train_bc_in_budget(
    episodes: list[Episode],
    env: VecEnv,
    settings: dict[str, Any],
    budget: float,
    probe: int = 20,
    seed: int = 0,
    chunk_size: int = 1,
) -> tuple[Any, dict[str, Any]]:
    """
    Train a BC policy for as many batches as fit a time budget: after a warm-up run of 1 batch (imports, kernel
    selection), a run of 2 batches and one of ``2 + probe`` give the seconds per batch (their start-up costs cancel);
    the rest of the budget sets the batch count of the final run. With ``chunk_size > 1`` the policy learns to predict
    the next ``chunk_size`` actions (:func:`~sb3_ibrl.il.stateful.chunk_episodes`), for action chunking.

    :param episodes: the demos
    :param env: the env (its spaces)
    :param settings: keyword arguments of :func:`~sb3_ibrl.il.training.train_bc`; ``n_batches`` caps the count
    :param budget: seconds for the probes and the final run together
    :param probe: batches of the second probe beyond the first's
    :param seed: the seed of every run
    :param chunk_size: actions per predicted chunk (1: plain BC)
    :return: the ``imitation`` trainer of the final run, and a dict that says what was done
    """
    from sb3_ibrl.il.stateful import chunked_bc_data
    from sb3_ibrl.il.training import resolve_features, train_bc

    settings = dict(settings)
    max_batches = int(settings.pop("n_batches", 100_000))
    episodes, action_space = chunked_bc_data(episodes, env.action_space, chunk_size)  # type: ignore[arg-type]

    def run(n_batches: int) -> tuple[Any, float]:
        start = time.perf_counter()
        trainer = train_bc(episodes, env.observation_space, action_space, n_batches=n_batches, seed=seed, **settings)
        return trainer, time.perf_counter() - start

    info: dict[str, Any] = dict(budget_seconds=budget, max_batches=max_batches, probe_batches=[1, 2, 2 + probe])
    if max_batches <= 2 + probe:
        n_batches, info["chosen_by"] = max_batches, "max_batches"
    else:
        warm_up, short, long_ = run(1)[1], run(2)[1], run(2 + probe)[1]
        per_batch = max((long_ - short) / probe, 1e-5)
        fit = int((budget - warm_up - short - long_) / per_batch)
        n_batches = max(1, min(max_batches, fit))
        info.update(probe_seconds=[warm_up, short, long_], seconds_per_batch=per_batch)
        info["chosen_by"] = "max_batches" if fit >= max_batches else "time_budget"
    trainer, seconds = run(n_batches)
    info.update(
        n_batches=n_batches,
        train_seconds=seconds,
        features=resolve_features(settings.get("features", "auto"), env.observation_space),
        batch_size=min(int(settings.get("batch_size", 256)), sum(len(ep) for ep in episodes)),
        chunk_size=chunk_size,
        settings=jsonable(settings),
    )
    return trainer, info


def write_json(path: str, content: dict[str, Any]) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    with atomic_path(path) as temporary, open(temporary, "w") as file:
        json.dump(jsonable(content), file, indent=1)
