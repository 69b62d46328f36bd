"""
The paper's state-based robomimic setup (Fig. 3): RL reads the low-dimensional state, the IL policy the wrist camera.

For a robosuite state task (``Lift-state-v0``: 1 demo; ``Can-state-v0``: 10 demos): record the scripted demos in the
env with ``il_camera`` (Dict observations: ``state`` and the camera), train BC with ``imitation`` on the camera images
only (a ResNet-18 of reduced width, see ``--bc-width``; ``--bc-select`` keeps the best of several checkpoints, scored
on start states the reported evaluations do not use, as the paper keeps a top checkpoint), then run

- ``bc``: the BC policy alone (deterministic, ``--eval-episodes`` episodes);
- ``ibrl``: ``IBRL(il_obs_keys=[camera])``: RL on the state, IL on the images, evaluated as the hybrid;
- ``rlpd+``: RLPD+ on the state alone, with the same demos (their state part).

The RL settings are the benchmark's ``cpu`` profile (``CPU_STATE`` of :mod:`sb3_ibrl.benchmark.tasks`); ``PointGoal-v0``
(``obs_mode="state_pixel"``, for a quick smoke run) uses its own calibrated settings. ``--ibrl-option NAME=VALUE`` sets
any other option of IBRL (e.g. ``demo_fraction=0.5``).

Every seed has its folder (``<out>/<task>/seed_<n>``); after each call the task folder gathers the seeds done so far
(``results.csv``, ``summary.json`` with the mean and std per evaluation, ``success.png``).

Resumable: every stage writes its results as it goes (``bc.json``, ``<method>/curve.csv`` after every evaluation, with a
checkpoint of the model and replay buffer); a second call skips what is done and continues a run to ``--steps``.
``bc.json`` also keeps fingerprints of the demos and BC weights and the machine's facts (``fingerprints.py``), so that
``bc_fingerprint_check.py`` can tell on another machine whether it records the same demos and trains the same BC.

The README's run (Lift, 3 seeds, 50K env steps; about 4 minutes of BC and 30-50 minutes of IBRL per seed on one core):

    for seed in 0 1 2; do
        OMP_NUM_THREADS=1 python benchmarks/state_pixel_il.py --task Lift-state-v0 --seed $seed --steps 50000 \\
            --eval-every 5000 --bc-batches 2000 --bc-width 16 --bc-lr 3e-4
    done
"""

import argparse
import ast
import json
import os
import pickle
import shutil
import sys
import time
from typing import Any, Callable, Optional

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces

import sb3_ibrl  # noqa: F401  (registers the tasks)
from sb3_ibrl import IBRL
from sb3_ibrl.baselines.rlpd import RLPD
from sb3_ibrl.benchmark.curves import seed_curves
from sb3_ibrl.benchmark.tasks import CPU_STATE
from sb3_ibrl.common.evaluation import evaluate_policy_success, record_episodes
from sb3_ibrl.data.episodes import Episode
from sb3_ibrl.envs import POINT_GOAL_IBRL_SETTINGS, PointGoalExpert
from sb3_ibrl.il.stateful import ActionChunkingPolicy, chunk_episodes, chunked_bc_data
from sb3_ibrl.il.training import bc_action_error, save_bc_policy, train_bc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fingerprints import demo_fingerprint, machine_facts, policy_fingerprint
from run_files import aggregate, plot_seeds, read_curve, write_curve  # the scripts that read runs use them from here

TASKS = ("Lift-state-v0", "Can-state-v0", "PointGoal-v0")
DEFAULT_DEMOS = {"Lift-state-v0": 1, "Can-state-v0": 10, "PointGoal-v0": 1}
METHODS = ("ibrl", "rlpd+")
EVAL_SEED = 1000  # the demos are recorded from reset seeds 0, 1, ...
SELECT_SEED = 2000  # BC's checkpoint selection (--bc-select) plays other episodes than the reported evaluations


def il_key(task: str, camera: str) -> str:
    """The observation key the IL policy reads."""
    return "image" if task == "PointGoal-v0" else camera


def make_env(task: str, camera: str, with_il: bool) -> gym.Env:
    """The task with both keys (``with_il``: state and the IL's image), or the state alone."""
    if task == "PointGoal-v0":
        return gym.make(task, obs_mode="state_pixel" if with_il else "state")
    return gym.make(task, il_camera=camera) if with_il else gym.make(task)


def rl_settings(task: str, gradient_steps: Optional[int] = None) -> dict[str, Any]:
    """
    Keyword arguments of both RL methods.

    :param task: the task's id
    :param gradient_steps: updates per env step (G), instead of the settings' own
    """
    settings = dict(POINT_GOAL_IBRL_SETTINGS) if task == "PointGoal-v0" else dict(CPU_STATE)
    if gradient_steps is not None:
        settings["gradient_steps"] = gradient_steps
    return settings


def record(task: str, camera: str, n_demos: int, seed: int) -> list[Episode]:
    """Successful scripted demos with Dict observations (``state`` and the IL's image)."""
    env = make_env(task, camera, with_il=True)
    if task == "PointGoal-v0":
        return record_episodes(env, PointGoalExpert(seed=seed), n_episodes=n_demos, seed=seed, act_fn_input="state")
    from sb3_ibrl.demos import record_demos

    demos, _ = record_demos(env, n_demos, seed=seed)
    return [demo.episode for demo in demos]


def part(episodes: list[Episode], key: str) -> list[Episode]:
    """The episodes with one key of their Dict observations."""
    return [Episode(ep.obs[key], ep.acts, ep.rews, ep.terminal) for ep in episodes]  # type: ignore[index]


def load_or_record_demos(args: argparse.Namespace, folder: str) -> list[Episode]:
    path = os.path.join(folder, "demos.pkl")
    if os.path.exists(path):
        with open(path, "rb") as file:
            return pickle.load(file)
    start = time.perf_counter()
    demos = record(args.task, args.camera, args.demos, args.demo_seed)
    with open(path, "wb") as file:
        pickle.dump(demos, file)
    print(f"recorded {len(demos)} demos ({sum(len(ep) for ep in demos)} transitions) in {time.perf_counter() - start:.0f}s")
    return demos


def train_image_bc(
    images: list[Episode],
    env: gym.Env,
    key: str,
    n_batches: int,
    lr: float,
    width: int,
    pad: int,
    seed: int,
    chunk_size: int = 1,
    **kwargs: Any,
) -> Any:
    """
    BC with ``imitation`` on the IL's images alone (a ResNet-18 of ``width``); ``kwargs`` go to ``train_bc``. With
    ``chunk_size > 1`` it learns to predict the next ``chunk_size`` actions (``chunk_episodes``), for action chunking.
    """
    images, action_space = chunked_bc_data(images, env.action_space, chunk_size)  # type: ignore[arg-type]
    return train_bc(images, env.observation_space[key], action_space, n_batches=n_batches,  # type: ignore[index, arg-type]
                    learning_rate=lr, features="resnet18", resnet_width=width, pad=pad, seed=seed, **kwargs)  # fmt: skip


class ChunkedImageActor:
    """
    A chunking BC policy alone (action chunking with temporal ensembling, ``ActionChunkingPolicy``), deterministic, on
    the IL's image ``key`` of a Dict observation: the evaluations' ``act_fn``, whose ``reset()`` starts an episode.
    """

    def __init__(self, policy: Any, key: str, action_space: spaces.Box, chunk_size: int, decay: float):
        self.policy, self.key, self.low, self.high = policy, key, action_space.low, action_space.high
        self.chunking = ActionChunkingPolicy(policy, chunk_size, int(action_space.shape[0]), decay)

    def reset(self) -> None:
        self.policy.set_training_mode(False)
        self.chunking.start_episodes([0], context="predict")

    def __call__(self, obs: Any) -> np.ndarray:
        image = th.as_tensor(obs[self.key][None], device=self.policy.device)
        action = self.chunking.step(image, [0], context="predict")[0].cpu().numpy()
        return np.clip(action, self.low, self.high)


def image_actor(policy: Any, key: str, chunk_size: int = 1, action_space: Optional[spaces.Box] = None,
                decay: float = 0.01) -> Callable[[Any], np.ndarray]:  # fmt: skip
    """The BC policy alone, deterministic, on the IL's image ``key`` of a Dict observation (for evaluations)."""
    if chunk_size > 1:
        assert action_space is not None, "a chunking BC needs the env's action space"
        return ChunkedImageActor(policy, key, action_space, chunk_size, decay)
    return lambda obs: policy.predict(obs[key], deterministic=True)[0]


def bc_stage(args: argparse.Namespace, folder: str, demos: list[Episode]) -> dict[str, Any]:
    """Train BC on the images (or load it) and evaluate it alone; ``bc.json`` holds the numbers."""
    info_path, policy_path = os.path.join(folder, "bc.json"), os.path.join(folder, "bc_policy.zip")
    if os.path.exists(info_path) and os.path.exists(policy_path):
        with open(info_path) as file:
            info = json.load(file)
        chunking = (info.get("chunk_size", 1), info.get("chunk_decay", 0.0))  # files written before chunking: plain BC
        if chunking != (args.bc_chunk, args.bc_chunk_decay):
            raise ValueError(f"{info_path} is a BC of chunk_size, chunk_decay = {chunking}, this call asks for "
                             f"{(args.bc_chunk, args.bc_chunk_decay)}: give the folder's own, or another --out")  # fmt: skip
        return info
    key = il_key(args.task, args.camera)
    env = make_env(args.task, args.camera, with_il=True)
    images = part(demos, key)
    picked: dict[str, Any] = dict(scores={}, best=(-1.0, 0), state=None, seconds=0.0)

    def select(n_done: int, policy: Any) -> None:  # the paper keeps a BC checkpoint by its evaluation score
        if n_done in (args.bc_select or ()):
            start = time.perf_counter()
            actor = image_actor(policy, key, args.bc_chunk, env.action_space, args.bc_chunk_decay)
            success = evaluate_policy_success(env, actor, args.eval_episodes, seed=SELECT_SEED)[0]
            picked["scores"][n_done] = success
            if (success, n_done) > picked["best"]:  # ties: the later checkpoint
                picked.update(best=(success, n_done), state={k: v.clone() for k, v in policy.state_dict().items()})
            policy.set_training_mode(True)
            picked["seconds"] += time.perf_counter() - start

    start = time.perf_counter()
    bc = train_image_bc(images, env, key, args.bc_batches, args.bc_lr, args.bc_width, args.bc_pad, args.seed,
                        chunk_size=args.bc_chunk, progress_bar=args.progress, callback=select)  # fmt: skip
    seconds = time.perf_counter() - start - picked["seconds"]
    if picked["state"] is not None:
        bc.policy.load_state_dict(picked["state"])
    save_bc_policy(bc, policy_path)
    policy = bc.policy
    start = time.perf_counter()
    actor = image_actor(policy, key, args.bc_chunk, env.action_space, args.bc_chunk_decay)
    success, length = evaluate_policy_success(env, actor, args.eval_episodes, seed=EVAL_SEED)
    info = dict(
        task=args.task,
        il_key=key,
        features="resnet18",
        resnet_width=args.bc_width,
        random_shift_pad=args.bc_pad,
        chunk_size=args.bc_chunk,
        chunk_decay=args.bc_chunk_decay,
        n_batches=picked["best"][1] or args.bc_batches,
        selection=dict(scores=picked["scores"], seconds=round(picked["seconds"], 1)) if args.bc_select else None,
        batch_size=min(256, sum(len(ep) for ep in demos)),
        learning_rate=args.bc_lr,
        n_demos=len(demos),
        n_transitions=sum(len(ep) for ep in demos),
        train_seconds=round(seconds, 1),
        action_mse=bc_action_error(policy, chunk_episodes(images, args.bc_chunk) if args.bc_chunk > 1 else images),
        success_rate=success,
        mean_episode_length=length,
        eval_episodes=args.eval_episodes,
        eval_seconds=round(time.perf_counter() - start, 1),
        seed=args.seed,
        demo_seed=args.demo_seed,
        fingerprint=dict(demos=demo_fingerprint(demos, key), bc_weights=policy_fingerprint(policy)),
        machine=dict(machine_facts()),
    )
    with open(info_path, "w") as file:
        json.dump(info, file, indent=1)
    print(f"BC: {seconds:.0f}s training, success {success:.2f} (mean length {length:.1f})")
    return info


def make_method(method: str, args: argparse.Namespace, env: gym.Env, demos: list[Episode], bc_path: str) -> Any:
    """A new IBRL (RL on the state, IL on the image) or RLPD+ (state only) model."""
    settings = dict(rl_settings(args.task, args.gradient_steps), seed=args.seed)
    if method == "ibrl":
        from stable_baselines3.common.policies import ActorCriticPolicy

        il = ActorCriticPolicy.load(bc_path, device="cpu")
        if args.bc_chunk > 1:  # a stateful IL policy: its actions are cached as it acts (IBRL's default)
            il = ActionChunkingPolicy(il, args.bc_chunk, int(env.action_space.shape[0]), args.bc_chunk_decay)  # type: ignore[index]
        key = il_key(args.task, args.camera)
        settings.update(args.ibrl_options)
        return IBRL("MlpPolicy", env, il_policy=il, il_obs_keys=[key], demonstrations=demos, **settings)
    return RLPD("MlpPolicy", env, demonstrations=part(demos, "state"), **settings)


def run_method(method: str, args: argparse.Namespace, folder: str, demos: list[Episode]) -> list[dict[str, Any]]:
    """One run, evaluated every ``--eval-every`` env steps (resumed from its checkpoint)."""
    run_dir = os.path.join(folder, method)
    os.makedirs(run_dir, exist_ok=True)
    curve_path = os.path.join(run_dir, "curve.csv")
    model_path, buffer_path = os.path.join(run_dir, "model.zip"), os.path.join(run_dir, "buffer.pkl")
    rows = read_curve(curve_path)
    if rows and int(rows[-1]["env_steps"]) >= args.steps:
        print(f"{method}: complete ({rows[-1]['env_steps']} steps), skipped")
        return rows
    with_il = method == "ibrl"
    env, eval_env = make_env(args.task, args.camera, with_il), make_env(args.task, args.camera, with_il)
    algo = IBRL if with_il else RLPD
    if os.path.exists(model_path) and os.path.exists(buffer_path):
        model = algo.load(model_path, env=env)
        wanted = dict(gradient_steps=rl_settings(args.task, args.gradient_steps)["gradient_steps"])
        if with_il:
            wanted.update(args.ibrl_options)
        for name, value in wanted.items():  # one curve, one setting
            if getattr(model, name) != value:
                raise ValueError(f"{model_path} was trained with {name}={getattr(model, name)}, this call asks for {value}: "
                                 "continue it with its own options, or give another --out")  # fmt: skip
        model.load_replay_buffer(buffer_path)
        rows = [row for row in rows if int(row["env_steps"]) <= model.num_timesteps]
        print(f"{method}: resumed at {model.num_timesteps} env steps")
    else:
        model, rows = make_method(method, args, env, demos, os.path.join(folder, "bc_policy.zip")), []
    elapsed = float(rows[-1]["wall_seconds"]) if rows else 0.0

    act = HybridActor(model)

    while model.num_timesteps < args.steps:
        start = time.perf_counter()
        chunk = min(args.eval_every - model.num_timesteps % args.eval_every, args.steps - model.num_timesteps)
        model.learn(chunk, reset_num_timesteps=False)
        success, length = evaluate_policy_success(eval_env, act, args.eval_episodes, seed=EVAL_SEED)
        elapsed += time.perf_counter() - start
        rows.append(
            dict(
                task=args.task,
                method=method,
                seed=args.seed,
                env_steps=model.num_timesteps,
                success_rate=success,
                mean_episode_length=length,
                wall_seconds=round(elapsed, 1),
            )
        )
        if not args.no_checkpoint:
            model.save(model_path)
            model.save_replay_buffer(buffer_path)
            if args.keep_models:  # this evaluation's model, beside the latest (not overwritten later)
                shutil.copyfile(model_path, os.path.join(run_dir, f"model_{model.num_timesteps}.zip"))
        write_curve(curve_path, rows)
        print(f"{method}: {model.num_timesteps:>6} steps  success {success:.2f}  length {length:6.1f}  {elapsed:5.0f}s")
    return rows


class HybridActor:
    """
    The deployed hybrid (IBRL's ``predict``, deterministic unless told otherwise) on full observations (state for RL,
    image for IL), as the evaluations' ``act_fn``: ``reset()`` before each episode tells a stateful IL policy (action
    chunking) that its episode starts.

    :param model: the IBRL model
    :param predict_kwargs: more arguments of ``model.predict`` (``deterministic``, ``rl_only``)
    """

    def __init__(self, model: Any, **predict_kwargs: Any):
        self.model, self.starts, self.predict_kwargs = model, True, {"deterministic": True, **predict_kwargs}

    def reset(self) -> None:
        self.starts = True

    def __call__(self, obs: Any) -> np.ndarray:
        episode_start, self.starts = np.array([self.starts]), False
        return self.model.predict(obs, episode_start=episode_start, **self.predict_kwargs)[0]


def done_curves(folder: str) -> dict[str, list[dict[str, Any]]]:
    """The curves of the seed's runs so far (also those of earlier calls with other ``--methods``)."""
    curves = {method: read_curve(os.path.join(folder, method, "curve.csv")) for method in METHODS}
    return {method: rows for method, rows in curves.items() if rows}


def summarize(
    folder: str, bc_info: Optional[dict[str, Any]], curves: dict[str, list[dict[str, Any]]], args: argparse.Namespace
) -> None:
    """``results.csv`` (BC as a constant row at 0 steps, then every evaluation), ``summary.json`` and the PNG."""
    rows = []
    if bc_info is not None:
        rows.append(
            dict(task=args.task, method="bc", seed=args.seed, env_steps=0, success_rate=bc_info["success_rate"],
                 mean_episode_length=bc_info["mean_episode_length"], wall_seconds=bc_info["train_seconds"])
        )  # fmt: skip
    for method_rows in curves.values():
        rows += method_rows
    write_curve(os.path.join(folder, "results.csv"), rows)
    summary = dict(
        task=args.task,
        seed=args.seed,
        steps=args.steps,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        rl_settings=rl_settings(args.task, args.gradient_steps),
        ibrl_options=args.ibrl_options,
        bc=bc_info,
        curves={m: {int(r["env_steps"]): float(r["success_rate"]) for r in method_rows} for m, method_rows in curves.items()},
        load_average=os.getloadavg(),
    )
    with open(os.path.join(folder, "summary.json"), "w") as file:
        json.dump(summary, file, indent=1, default=str)
    if not args.no_plot:
        plot_seeds(os.path.join(folder, "success.png"), seed_curves(rows), args.task, 1)


def ibrl_option(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` of ``--ibrl-option``: the value as a Python literal (``0.5``, ``True``, ``None``), else a string."""
    name, equals, value = text.partition("=")
    if not equals or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (e.g. demo_fraction=0.5), got {text!r}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=TASKS, default="Lift-state-v0")
    parser.add_argument("--camera", default="robot0_eye_in_hand", help="the IL policy's camera (robosuite tasks)")
    parser.add_argument("--demos", type=int, default=None, help="scripted demos (default: the paper's, Lift 1, Can 10)")
    parser.add_argument("--demo-seed", type=int, default=0, help="reset seed of the first demo attempt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--steps", type=int, default=10_000, help="env steps of each RL run")
    parser.add_argument("--eval-every", type=int, default=2500)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--gradient-steps", type=int, default=None, help="updates per env step, G (default: the settings')")
    parser.add_argument("--bc-batches", type=int, default=2000)
    parser.add_argument("--bc-select", type=int, nargs="+", default=None, help="keep the best BC of these batch counts")
    parser.add_argument("--bc-width", type=int, default=16, help="base channels of the BC ResNet-18 (paper: 64)")
    parser.add_argument("--bc-lr", type=float, default=3e-4)
    parser.add_argument("--bc-pad", type=int, default=4, help="random shift padding of BC's images, in pixels (paper: 4)")
    parser.add_argument("--bc-chunk", type=int, default=1,
                        help="actions per chunk: BC predicts the next N, acted on with temporal ensembling")  # fmt: skip
    parser.add_argument("--bc-chunk-decay", type=float, default=0.01, help="temporal ensembling's m in exp(-m i) (ACT: 0.01)")
    parser.add_argument("--ibrl-option", dest="ibrl_options", type=ibrl_option, action="append", default=[],
                        metavar="NAME=VALUE", help="an IBRL option (Python literal): demo_fraction=0.5")  # fmt: skip
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/state_pixel_il")
    parser.add_argument("--no-checkpoint", action="store_true", help="do not save the model and buffer after evaluations")
    parser.add_argument("--keep-models", action="store_true",
                        help="keep each evaluation's model as ibrl/model_<env steps>.zip (checkpoint_rules --at)")  # fmt: skip
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--progress", action="store_true", help="progress bar of BC")
    args = parser.parse_args(argv)
    args.ibrl_options = dict(args.ibrl_options)
    args.demos = DEFAULT_DEMOS[args.task] if args.demos is None else args.demos
    if args.bc_chunk == 1:
        args.bc_chunk_decay = 0.0  # plain BC
    if not (np.isfinite(args.bc_chunk_decay) and args.bc_chunk_decay >= 0):
        parser.error(f"--bc-chunk-decay must be a number >= 0, got {args.bc_chunk_decay}")
    for name in ("steps", "eval_every", "eval_episodes", "bc_batches", "bc_width", "demos", "gradient_steps", "bc_chunk"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.keep_models and args.no_checkpoint:
        parser.error("--keep-models keeps the checkpoints that --no-checkpoint turns off: give one of them")
    if args.bc_select and (min(args.bc_select) < 1 or max(args.bc_select) != args.bc_batches):
        parser.error(f"--bc-select counts must be at least 1 and end at --bc-batches ({args.bc_batches}): {args.bc_select}")
    return args


def main(argv: Optional[list[str]] = None) -> str:
    """Run every stage that is not done yet; return the task's result folder."""
    args = parse_args(argv)
    th.set_num_threads(args.torch_threads)
    machine_facts()  # before any env renders (see its docstring); bc.json keeps them
    folder = os.path.join(args.out, args.task, f"seed_{args.seed}")
    os.makedirs(folder, exist_ok=True)
    demos = load_or_record_demos(args, folder)
    needs_bc = "ibrl" in args.methods or os.path.exists(os.path.join(folder, "bc.json"))
    bc_info = bc_stage(args, folder, demos) if needs_bc else None  # (RLPD+ alone needs no BC policy)
    for method in args.methods:
        run_method(method, args, folder, demos)
        summarize(folder, bc_info, done_curves(folder), args)  # partial results after each method
    aggregate(os.path.join(args.out, args.task), no_plot=args.no_plot)
    return folder


if __name__ == "__main__":
    main()
