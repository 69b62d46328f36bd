"""
The benchmark runner: methods x tasks x seeds, a success-rate curve per run, resumable.

Layout of the output folder::

    assets/<task>/seed<k>/demos.npz, bc.zip, bc.json     demos and BC policy, shared by the methods of a seed
    runs/<task>/<method>/seed<k>/curve.csv                one row per evaluation (appended as the run goes)
    runs/<task>/<method>/seed<k>/model.zip, buffer.pkl    checkpoint at the last evaluation
    results.csv                                           every curve row of every run, rebuilt after each run

An interrupted run resumes from its last checkpoint, and a finished one is extended by a call with more steps: the
curve keeps its rows up to the checkpoint, the replay buffer ends the interrupted episode as a truncation, and
collection restarts in a freshly reset env.
"""

import csv
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import gymnasium as gym
import numpy as np
import torch as th

from sb3_ibrl.benchmark.methods import METHODS, check_method, make_model
from sb3_ibrl.benchmark.tasks import TaskSpec
from sb3_ibrl.common.evaluation import evaluate_policy_success, record_episodes
from sb3_ibrl.common.files import atomic_path
from sb3_ibrl.data.demo_files import load_episodes, save_episodes
from sb3_ibrl.data.episodes import Episode
from sb3_ibrl.ibrl.diagnostics import proposal_values

# IBRL only (empty for methods without an IL policy): IBRL deployed with the paper's greedy actor proposal, and always
# with the confident one (--greedy-eval), and whether the hybrid had matched its IL policy (then its default deployment
# is the greedy one); what the critics think of the two proposals on the demo states (sb3_ibrl.ibrl.diagnostics), and
# the IL share of the last (up to 1000) actions taken while collecting data
DIAGNOSTIC_FIELDS = [
    "greedy_success",
    "confident_success",
    "il_matched",
    "il_return_mean",
    "il_return_sd",
    "il_episodes",
    "hybrid_return_mean",
    "hybrid_return_sd",
    "hybrid_episodes",
    "il_fraction_train",
    "q_il_demo",
    "q_rl_demo",
    "il_wins_demo",
    "return_demo",
]
CURVE_FIELDS = [
    "task",
    "method",
    "seed",
    "env_steps",
    "success_rate",
    "mean_episode_length",
    "il_fraction",
    "rl_only_success",
    "wall_seconds",
    *DIAGNOSTIC_FIELDS,
]
EVAL_SEED = 10_000  # first reset seed of every evaluation: the same episodes at every checkpoint, for every method


@dataclass
class RunConfig:
    """
    What to run and how to evaluate.

    :param out_dir: the output folder
    :param steps: env steps per run (``None``: each task's budget)
    :param eval_every: evaluate every this many env steps (``None``: each task's)
    :param eval_episodes: episodes per evaluation
    :param rl_only_eval: also evaluate IBRL's RL actor alone (paper Fig. 11)
    :param greedy_eval: also evaluate IBRL's hybrid deployed with the paper's greedy actor proposal
        (``proposal_confidence=0``) and always with the confident one (never switching to greedy): collecting data
        does not read the deployment's choice, so the same run gives every deployed curve
    :param overrides: ``{method: {option: value}}`` on top of the task's settings
    :param checkpoint: save a checkpoint (model + replay buffer) at every evaluation, for resuming
    :param torch_threads: torch threads per run
    """

    out_dir: str
    steps: Optional[int] = None
    eval_every: Optional[int] = None
    eval_episodes: int = 20
    rl_only_eval: bool = False
    greedy_eval: bool = False
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    checkpoint: bool = True
    torch_threads: int = 1


def _task_dir(root: str, kind: str, task: TaskSpec, seed: int, method: Optional[str] = None) -> str:
    parts = [root, kind, task.env_id] + ([method] if method else []) + [f"seed{seed}"]
    return os.path.join(*parts)


def record_task_demos(env_id: str, n_demos: int, seed: int) -> list[Episode]:
    """The task's demos from its scripted expert (``PointGoal-v0``: its expert; Meta-World, robosuite: sb3_ibrl.demos)."""
    if env_id == "PointGoal-v0":
        from sb3_ibrl.envs import PointGoalExpert

        return record_episodes(gym.make(env_id), PointGoalExpert(seed=seed), n_episodes=n_demos, seed=seed)
    from sb3_ibrl.demos import make_scripted_env, record_demos

    env = make_scripted_env(env_id)
    try:
        demos, _ = record_demos(env, n_demos, seed=seed)
    finally:
        env.close()
    return [demo.episode for demo in demos]


def prepare_assets(task: TaskSpec, seed: int, out_dir: str, eval_episodes: int, log: Callable[[str], None] = print) -> dict:
    """
    Record the demos and train the BC policy of one (task, seed), unless already there; evaluate BC once.

    The demos of seed ``k`` start at reset seed ``1000 * k`` (different demos per seed, as different draws of D).

    :return: ``{"demos": path, "bc": path, "bc_success": float, "bc_length": float, "demo_length": float}``
    """
    from sb3_ibrl.il.training import evaluate_bc_policy, save_bc_policy, train_bc

    folder = _task_dir(out_dir, "assets", task, seed)
    os.makedirs(folder, exist_ok=True)
    info_path = os.path.join(folder, "bc.json")
    if os.path.exists(info_path):
        with open(info_path) as file:
            return json.load(file)
    demos_path, bc_path = os.path.join(folder, "demos.npz"), os.path.join(folder, "bc.zip")
    if not os.path.exists(demos_path):
        log(f"[{task.env_id} seed {seed}] recording {task.n_demos} demos")
        save_episodes(demos_path, record_task_demos(task.env_id, task.n_demos, seed=1000 * seed))
    episodes = load_episodes(demos_path)
    env = gym.make(task.env_id)
    try:
        log(f"[{task.env_id} seed {seed}] BC: {task.bc_settings}")
        start = time.perf_counter()
        bc = train_bc(episodes, env.observation_space, env.action_space, seed=seed, **task.bc_settings)
        save_bc_policy(bc, bc_path)
        success, length = evaluate_bc_policy(bc_path, env, eval_episodes, seed=EVAL_SEED)
    finally:
        env.close()
    info = {
        "demos": demos_path,
        "bc": bc_path,
        "bc_success": success,
        "bc_length": length,
        "demo_length": float(np.mean([len(ep) for ep in episodes])),
        "bc_seconds": time.perf_counter() - start,
    }
    with atomic_path(info_path) as temporary, open(temporary, "w") as file:
        json.dump(info, file, indent=1)
    log(f"[{task.env_id} seed {seed}] BC success {success:.2f}, mean episode length {length:.1f}")
    return info


def evaluate_model(model: Any, env: gym.Env, n_episodes: int, rl_only: bool = False) -> tuple[float, float, float]:
    """
    Evaluate the deterministic policy of a model: for IBRL, the hybrid (or, with ``rl_only``, the RL actor alone).

    :return: success rate, mean episode length, and the fraction of executed actions that came from the IL policy
        (``nan`` for a policy without IL)
    """
    policy = model.policy
    policy.set_training_mode(False)
    counts = [0, 0]
    has_il = getattr(policy, "il_policy", None) is not None and not rl_only

    def act(obs: Any) -> np.ndarray:
        obs_tensor, _ = policy.obs_to_tensor(obs)
        with th.no_grad():
            if has_il:
                action, use_il = policy.propose(obs_tensor, deterministic=True)
                counts[0] += int(use_il.sum())
                counts[1] += len(use_il)
            else:
                action = policy.actor(obs_tensor)
        return policy.unscale_action(action.cpu().numpy())[0]

    success, length = evaluate_policy_success(env, act, n_episodes, seed=EVAL_SEED)
    return success, length, counts[0] / counts[1] if counts[1] else float("nan")


def evaluate_deployments(model: Any, env: gym.Env, n_episodes: int, success: float) -> dict[str, float]:
    """
    IBRL's hybrid deployed greedily (``proposal_confidence=0``, the paper) and always confidently (the model's
    ``proposal_confidence``, even after the hybrid matched its IL policy).

    :param success: the success rate of the deployment in effect, reused for the variant it equals
    :return: ``{"greedy_success": ..., "confident_success": ...}``
    """
    results = {}
    for key, confidence in (("greedy_success", 0.0), ("confident_success", model.proposal_confidence)):
        if confidence == model.policy.proposal_confidence:
            results[key] = success
        else:
            with model.policy.deployed_with(confidence):
                results[key] = evaluate_model(model, env, n_episodes)[0]
    return results


def _proposal_diagnostics(model: Any, demos: list[Episode]) -> dict[str, float]:
    """The curve's diagnostic columns: IL share while collecting, and the proposals' Q-values on the demo states."""
    if getattr(model.policy, "il_policy", None) is None or isinstance(demos[0].obs, dict):
        return {}
    values = proposal_values(model, demos)
    return {
        "il_fraction_train": model.il_action_fraction,
        "q_il_demo": values["q_il"],
        "q_rl_demo": values["q_rl"],
        "il_wins_demo": values["il_wins"],
        "return_demo": values["return"],
        "il_matched": float(getattr(model, "il_matched", False)),
        **(model.match_statistics() if hasattr(model, "match_statistics") else {}),
    }


def read_curve(path: str) -> list[dict[str, Any]]:
    """The rows of a curve CSV (``curve.csv`` or ``results.csv``); none when the file does not exist."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def write_curve(path: str, rows: list[dict[str, Any]], fields: Optional[list[str]] = None) -> None:
    """
    Write the rows of a curve CSV atomically (workers may rebuild ``results.csv`` at once; a reader never sees half).

    :param path: the CSV file
    :param rows: its rows
    :param fields: its columns (default: :data:`CURVE_FIELDS`)
    """
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields or CURVE_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def run_one(task: TaskSpec, method: str, seed: int, config: RunConfig, log: Callable[[str], None] = print) -> list[dict]:
    """
    One run of one method on one task and seed (resumed from its checkpoint if it has one; skipped when complete).

    :return: the run's curve rows
    """
    th.set_num_threads(config.torch_threads)
    folder = _task_dir(config.out_dir, "runs", task, seed, method)
    os.makedirs(folder, exist_ok=True)
    curve_path = os.path.join(folder, "curve.csv")
    model_path, buffer_path = os.path.join(folder, "model.zip"), os.path.join(folder, "buffer.pkl")
    steps = config.steps or task.budget
    eval_every = config.eval_every or task.eval_every
    assets = prepare_assets(task, seed, config.out_dir, config.eval_episodes, log)
    base = {"task": task.env_id, "method": method, "seed": seed}

    if method == "bc":  # constant: one row at 0 steps, one at the budget
        rows = [
            {
                **base,
                "env_steps": s,
                "success_rate": assets["bc_success"],
                "mean_episode_length": assets["bc_length"],
                "il_fraction": 1.0,
                "rl_only_success": float("nan"),
                "wall_seconds": assets.get("bc_seconds", 0.0),
            }
            for s in (0, steps)
        ]
        write_curve(curve_path, rows)
        return rows

    rows = read_curve(curve_path)
    if rows and int(rows[-1]["env_steps"]) >= steps:
        log(f"[{task.env_id} {method} seed {seed}] complete, skipped")
        return rows
    env, eval_env = gym.make(task.env_id), gym.make(task.env_id)
    spec = check_method(method, env)
    assert spec.algo is not None
    if os.path.exists(model_path) and os.path.exists(buffer_path):
        model = spec.algo.load(model_path, env=env)
        model.load_replay_buffer(buffer_path)  # ends the interrupted episodes (the envs start new ones)
        rows = [row for row in rows if int(row["env_steps"]) <= model.num_timesteps]
        log(f"[{task.env_id} {method} seed {seed}] resumed at {model.num_timesteps} env steps")
    else:
        model = make_model(
            method,
            env,
            task.rl_settings,
            assets["demos"],
            il_policy=assets["bc"],
            seed=seed,
            ibrl_demo_fraction=task.ibrl_demo_fraction,
            overrides=config.overrides.get(method),
        )
        if rows:
            log(f"[{task.env_id} {method} seed {seed}] no checkpoint: restarting from 0 env steps")
        rows = []
    elapsed = float(rows[-1]["wall_seconds"]) if rows else 0.0
    demos = load_episodes(assets["demos"])
    while model.num_timesteps < steps:
        start = time.perf_counter()
        chunk = min(eval_every - model.num_timesteps % eval_every, steps - model.num_timesteps)
        model.learn(chunk, reset_num_timesteps=False)
        success, length, il_fraction = evaluate_model(model, eval_env, config.eval_episodes)
        diagnostics = _proposal_diagnostics(model, demos)
        rl_only = float("nan")
        if config.rl_only_eval and getattr(model.policy, "il_policy", None) is not None:
            rl_only = evaluate_model(model, eval_env, config.eval_episodes, rl_only=True)[0]
        if config.greedy_eval and diagnostics and model.proposal_confidence > 0:
            diagnostics.update(evaluate_deployments(model, eval_env, config.eval_episodes, success))
        elapsed += time.perf_counter() - start
        rows.append(
            {
                **base,
                "env_steps": model.num_timesteps,
                "success_rate": success,
                "mean_episode_length": length,
                "il_fraction": il_fraction,
                "rl_only_success": rl_only,
                "wall_seconds": round(elapsed, 1),
                **diagnostics,
            }
        )
        if config.checkpoint:  # kept at the end too: a later call with more --steps extends the run
            model.save(model_path)
            model.save_replay_buffer(buffer_path)
        write_curve(curve_path, rows)
        log(
            f"[{task.env_id} {method} seed {seed}] {model.num_timesteps:>7} steps  success {success:.2f}  "
            f"length {length:6.1f}  IL actions {il_fraction:.2f}  {elapsed:6.0f}s"
        )
    env.close()
    eval_env.close()
    return rows


def collect_results(out_dir: str) -> str:
    """Concatenate every run's curve into ``out_dir/results.csv``; return its path."""
    rows = []
    runs = os.path.join(out_dir, "runs")
    for root, _, files in sorted(os.walk(runs)):
        if "curve.csv" in files:
            rows += read_curve(os.path.join(root, "curve.csv"))
    path = os.path.join(out_dir, "results.csv")
    write_curve(path, rows)
    return path


def _run_job(args: tuple) -> str:
    task, method, seed, config = args
    try:
        run_one(task, method, seed, config)
        collect_results(config.out_dir)
        return ""
    except Exception as error:  # one failing run does not stop the others; it is reported at the end
        import traceback

        traceback.print_exc()
        return f"{task.env_id} {method} seed {seed}: {type(error).__name__}: {error}"


def run_all(tasks: list[TaskSpec], methods: list[str], seeds: list[int], config: RunConfig, workers: int = 1) -> list[str]:
    """
    Run every (task, method, seed) not complete yet, ``workers`` at a time; write ``results.csv``.

    Demos and BC policies are prepared first, once per (task, seed).

    :return: the failures (empty when every run completed)
    """
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"Unknown method {method!r}: expected one of {sorted(METHODS)}")
    for task in tasks:
        probe = gym.make(task.env_id)
        for method in methods:
            check_method(method, probe)
        probe.close()
        for seed in seeds:
            prepare_assets(task, seed, config.out_dir, config.eval_episodes)
    jobs = [(task, method, seed, config) for task in tasks for seed in seeds for method in methods]
    if workers <= 1:
        failures = [_run_job(job) for job in jobs]
    else:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            failures = pool.map(_run_job, jobs, chunksize=1)
    collect_results(config.out_dir)
    return [failure for failure in failures if failure]
