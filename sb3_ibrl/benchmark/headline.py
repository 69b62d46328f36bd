"""
The paper's headline pixel run in one command, sized for one GPU: scripted demos, pixel BC (ResNet-18), IBRL with
the paper's pixel settings, evaluations, a JSON and a PNG.

    python -m sb3_ibrl.benchmark headline --task Lift-pixel-v0 --out runs/headline-lift --time-limit 420
    python -m sb3_ibrl.benchmark headline --task Lift-pixel-v0 --out /tmp/smoke --smoke      # CPU, under 2 minutes

Steps: (1) the scripted expert's demos (Lift 1, Meta-World 3: the paper's counts); (2) BC with the paper's ResNet-18
for as many batches as fit a time budget (``--bc-seconds``: two short probes time a batch, then one run of the
batch count that fits), evaluated once; (3) IBRL (``PAPER_PIXEL`` settings, the BC policy as IL policy, the demos in
the replay buffer), evaluated every ``--eval-every`` env steps as the hybrid (RL + IL, what IBRL deploys) and as
its RL actor alone. Every evaluation plays its episodes in parallel envs (``--eval-envs``).

OUT holds ``headline.json`` (settings, machine, versions, BC, the curve, the wall-clock split: setup / demos / BC /
env steps / updates / evaluation / checkpoint / report; updates are the model's ``train`` calls, timed by wrapping
them, env steps the rest of collection), ``headline.png``, ``demos.npz``, ``bc.zip`` and, once a call ends,
``checkpoint/`` (model + replay buffer). ``--time-limit`` ends the call in time: it checks the clock at every env
step and stops training once an evaluation and the checkpoint would no longer fit (:class:`StopAtDeadline`, which
keeps that step), evaluates there and saves (``partial: true``). The same command again continues from the
checkpoint (demos and BC are reused; the interrupted episode ends as a truncation). A call killed from outside before
it saved restarts IBRL from 0.
"""

import json
import os
import time
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np
import torch as th
from stable_baselines3.common.utils import get_device

from sb3_ibrl.benchmark.deadline import StopAtDeadline
from sb3_ibrl.benchmark.headline_tasks import (
    POINT_GOAL_PIXEL,
    SMOKE_BC,
    SMOKE_IBRL,
    HeadlineConfig,
    env_factory,
    record_demos,
    task_spec,
)
from sb3_ibrl.benchmark.headline_tools import (
    Stopwatch,
    evaluate_vec,
    fill_versions,
    machine_info,
    make_envs,
    model_act_fn,
    plot_headline,
    policy_act_fn,
    timed_updates,
    train_bc_in_budget,
    write_json,
)
from sb3_ibrl.benchmark.methods import make_model
from sb3_ibrl.benchmark.runner import EVAL_SEED
from sb3_ibrl.data.buffer_memory import observation_bytes
from sb3_ibrl.data.demo_files import load_episodes, save_episodes


class HeadlineRun:
    """
    One call of the headline pipeline (a new run, or the continuation of the run in ``config.out_dir``).

    :param config: the run's options
    :param log: where progress lines go
    """

    def __init__(self, config: HeadlineConfig, log: Callable[[str], None] = print):
        self.t0 = time.perf_counter()
        self.cfg = cfg = config.resolve()
        self.log = log
        self.spec = task_spec(cfg.task)
        os.makedirs(cfg.out_dir, exist_ok=True)
        self.paths = {
            name: os.path.join(cfg.out_dir, name) for name in ("headline.json", "headline.png", "demos.npz", "bc.zip")
        }
        self.paths.update(model=os.path.join(cfg.out_dir, "checkpoint", "model.zip"))
        self.paths.update(buffer=os.path.join(cfg.out_dir, "checkpoint", "buffer.pkl"))
        self.previous = self._read_previous()
        self.watch = Stopwatch(self.previous.get("timing"))
        self.calls = list(self.previous.get("calls", []))
        self.deadline = self.t0 + cfg.time_limit if cfg.time_limit else float("inf")
        if cfg.device.startswith("cuda") and not th.cuda.is_available():
            raise ValueError(
                f"--device {cfg.device}, but torch {th.__version__} sees no CUDA device: check the driver, or use cpu"
            )
        self.device = get_device(cfg.device)
        self.curve: list[dict[str, Any]] = []
        self.call = dict(started=datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def _read_previous(self) -> dict[str, Any]:
        cfg, path = self.cfg, self.paths["headline.json"]
        if not os.path.exists(path):
            return {}
        with open(path) as file:
            previous = json.load(file)
        if previous.get("task") != cfg.task:
            raise ValueError(
                f"{cfg.out_dir} holds a headline run of {previous.get('task')}, not {cfg.task}: use another --out"
            )
        if previous.get("settings", {}).get("n_envs", cfg.n_envs) != cfg.n_envs:
            raise ValueError(
                f"{cfg.out_dir} was run with --n-envs {previous['settings']['n_envs']}: continue it with the same"
            )
        settings = previous.get("settings", {})
        chunking = [settings.get("bc_chunk", 1), settings.get("bc_chunk_decay", 0.0)]
        if chunking != [cfg.bc_chunk, cfg.bc_chunk_decay]:  # runs from before chunking: plain BC
            raise ValueError(
                f"{cfg.out_dir} holds a BC of --bc-chunk {chunking[0]} --bc-chunk-decay {chunking[1]:g}, this call asks "
                f"for {cfg.bc_chunk} and {cfg.bc_chunk_decay:g}: continue it with its own, or use another --out"
            )
        self.resuming = os.path.exists(self.paths["model"]) and os.path.exists(self.paths["buffer"])
        if not self.resuming:
            self.log(f"[headline] {cfg.out_dir}: no checkpoint; IBRL starts from 0 env steps (demos and BC are reused)")
            # The split restarts too (demos and BC then cost 0 s here; bc["train_seconds"] keeps what BC took)
            return {"bc": previous.get("bc"), "demos": previous.get("demos")}
        return previous

    resuming = False

    @property
    def complete(self) -> bool:
        """Whether the folder holds a finished run of at least ``steps`` env steps."""
        previous = self.previous
        return self.resuming and previous.get("env_steps", 0) >= self.cfg.steps and not previous.get("partial", True)

    def setup(self) -> None:
        """Envs (training and evaluation), the machine's description."""
        cfg = self.cfg
        with self.watch.part("setup"):
            factory = env_factory(cfg.task, cfg.smoke)
            if cfg.task != POINT_GOAL_PIXEL:
                from sb3_ibrl.envs.rendering import select_gl_backend

                select_gl_backend()  # before any subprocess starts: they inherit MUJOCO_GL
            self.machine = machine_info(self.device)
            self.train_env = make_envs(factory, cfg.n_envs, cfg.seed)
            self.eval_env = make_envs(factory, cfg.eval_envs, EVAL_SEED)  # type: ignore[arg-type]
        self.log(f"[headline] {cfg.task} on {self.machine['device_name']} ({self.device}); {cfg.steps} steps -> {cfg.out_dir}")

    def close(self) -> None:
        """Close the envs (their worker processes)."""
        for env in (getattr(self, "train_env", None), getattr(self, "eval_env", None)):
            if env is not None:
                env.close()

    def demos_and_bc(self) -> None:
        """Record the demos and train + evaluate BC, unless an earlier call did."""
        cfg, paths = self.cfg, self.paths
        self.demos_info = self.previous.get("demos")
        if self.demos_info and os.path.exists(paths["demos.npz"]):
            self.episodes = load_episodes(paths["demos.npz"])
        else:
            with self.watch.part("demos"):
                self.episodes = record_demos(cfg.task, self.spec.n_demos, cfg.seed)
                save_episodes(paths["demos.npz"], self.episodes)
            lengths = [len(ep) for ep in self.episodes]
            self.demos_info = dict(n=len(lengths), mean_length=float(np.mean(lengths)), transitions=int(sum(lengths)))
            self.log(f"[headline] {len(lengths)} demo(s), {self.demos_info['mean_length']:.0f} steps on average")
        self.bc_info = self.previous.get("bc")
        if self.bc_info and os.path.exists(paths["bc.zip"]):
            return
        from sb3_ibrl.il.training import save_bc_policy

        with self.watch.part("bc"):
            settings = {"device": cfg.device, **self.spec.bc_settings, **(SMOKE_BC if cfg.smoke else {}), **cfg.bc_overrides}
            budget, probe = float(cfg.bc_seconds), 3 if cfg.smoke else 20  # type: ignore[arg-type]
            trainer, self.bc_info = train_bc_in_budget(
                self.episodes, self.train_env, settings, budget, probe, cfg.seed, chunk_size=cfg.bc_chunk
            )
            save_bc_policy(trainer, paths["bc.zip"])
        with self.watch.part("evaluation"):
            act = policy_act_fn(trainer.policy, (cfg.bc_chunk, cfg.bc_chunk_decay), self.eval_env.action_space)
            bc = evaluate_vec(self.eval_env, act, cfg.eval_episodes, EVAL_SEED)  # type: ignore[arg-type]
        self.bc_info.update(success=bc["success"], mean_episode_length=bc["length"], eval_seconds=bc["seconds"])
        info = self.bc_info
        self.log(f"[headline] BC: {info['n_batches']} batches, {info['train_seconds']:.0f} s, success {info['success']:.2f}")

    def build_model(self) -> None:
        """IBRL from the checkpoint, or a new one with the task's settings, the smoke sizes and the overrides."""
        cfg = self.cfg
        with self.watch.part("setup"):
            if self.resuming:
                from sb3_ibrl.ibrl import IBRL

                self.model = IBRL.load(self.paths["model"], env=self.train_env, device=self.device)
                self.model.load_replay_buffer(self.paths["buffer"])
                self.model.replay_buffer.truncate_open_episodes()  # type: ignore[union-attr]
                self.log(f"[headline] resumed at {self.model.num_timesteps} env steps")
            else:
                options: dict[str, Any] = {"device": cfg.device, "buffer_size": -(-cfg.steps // cfg.n_envs) + 1}  # type: ignore
                options.update(SMOKE_IBRL if cfg.smoke else {})
                policy_kwargs = {**options.get("policy_kwargs", {}), **cfg.overrides.get("policy_kwargs", {})}
                overrides = {**options, **cfg.overrides, "policy_kwargs": policy_kwargs}
                settings, il_policy = self.spec.rl_settings, self.paths["bc.zip"]
                if cfg.bc_chunk > 1:  # a stateful IL policy: IBRL caches its actions as it acts (its default)
                    from stable_baselines3.common.policies import ActorCriticPolicy

                    from sb3_ibrl.il.stateful import ActionChunkingPolicy

                    action_dim = int(np.prod(self.train_env.action_space.shape))  # type: ignore[arg-type]
                    bc = ActorCriticPolicy.load(il_policy, device=self.device)
                    il_policy = ActionChunkingPolicy(bc, cfg.bc_chunk, action_dim, cfg.bc_chunk_decay)
                self.model = make_model(
                    "ibrl", self.train_env, settings, self.episodes, il_policy, cfg.seed, overrides=overrides
                )
        self.curve = [row for row in self.previous.get("curve", []) if row["env_steps"] <= self.model.num_timesteps]
        self.call["from_steps"] = int(self.model.num_timesteps)

    def result(self, stopped: str) -> dict[str, Any]:
        """The JSON content now (``stopped``: ``"running"``, ``"time_limit"`` or ``"complete"``)."""
        cfg, model = self.cfg, self.model
        timing = dict(self.watch.seconds)
        seconds = time.perf_counter() - self.t0
        timing["total"] = sum(call["seconds"] for call in self.calls) + seconds
        timing["other"] = timing["total"] - sum(self.watch.seconds.values())
        updates, steps = int(model._n_updates), int(model.num_timesteps)
        return dict(
            task=cfg.task,
            partial=stopped != "complete",
            stopped=stopped,
            env_steps=steps,
            updates=updates,
            updates_per_env_step=updates / max(steps, 1),
            updates_per_second=updates / timing["updates"] if timing["updates"] > 0 else None,
            env_steps_per_second=steps / timing["env_steps"] if timing["env_steps"] > 0 else None,
            settings=dict(cfg.__dict__, n_demos=self.spec.n_demos, rl_settings=self.spec.rl_settings),
            machine=self.machine,
            demos=self.demos_info,
            bc=self.bc_info,
            curve=self.curve,
            timing=timing,
            calls=[*self.calls, dict(self.call, to_steps=steps, seconds=seconds, stopped=stopped)],
        )

    def evaluate(self) -> None:
        """Evaluate the hybrid as deployed, as the paper deploys it (greedy), and the RL actor alone; add a curve row."""
        cfg, model = self.cfg, self.model
        with self.watch.part("evaluation"):
            hybrid = evaluate_vec(self.eval_env, model_act_fn(model), cfg.eval_episodes, EVAL_SEED)  # type: ignore[arg-type]
            greedy = hybrid
            if model.deployed_confidence > 0:  # deployed with the IL policy until the hybrid has matched it
                with model.policy.deployed_with(0.0):
                    greedy = evaluate_vec(self.eval_env, model_act_fn(model), cfg.eval_episodes, EVAL_SEED)  # type: ignore[arg-type]
            rl = evaluate_vec(self.eval_env, model_act_fn(model, True), cfg.eval_episodes, EVAL_SEED)  # type: ignore[arg-type]
        row = dict(
            env_steps=int(model.num_timesteps),
            updates=int(model._n_updates),
            hybrid_success=hybrid["success"],
            hybrid_length=hybrid["length"],
            il_fraction=hybrid["il_fraction"],
            il_matched=bool(model.il_matched),
            greedy_success=greedy["success"],
            rl_only_success=rl["success"],
            rl_only_length=rl["length"],
            eval_seconds=hybrid["seconds"] + rl["seconds"] + (greedy["seconds"] if greedy is not hybrid else 0.0),
            # the match test's inputs (benchmarks/match_rules.py reads them); JSON has no NaN: null before any episode
            **{key: None if np.isnan(value) else value for key, value in model.match_statistics().items()},
        )
        self.curve.append(row)
        row["wall_seconds"] = self.result("running")["timing"]["total"]
        write_json(self.paths["headline.json"], self.result("running"))
        self.log(
            f"[headline] {row['env_steps']:>7} steps  hybrid {row['hybrid_success']:.2f}  greedy {row['greedy_success']:.2f}  "
            f"RL alone {row['rl_only_success']:.2f}  IL actions {row['il_fraction']:.2f}  {row['wall_seconds']:.0f} s"
        )

    def train(self) -> str:
        """
        Learn up to ``steps`` env steps, evaluating at every ``eval_every``; stop at the first env step after which
        an evaluation and the checkpoint would overrun the time limit.

        :return: ``"complete"`` or ``"time_limit"``
        """
        cfg, model, watch = self.cfg, self.model, self.watch
        # Before the first evaluation: BC's (one policy) times 3 (the hybrid as deployed, greedy, the RL actor alone)
        eval_seconds = self.curve[-1]["eval_seconds"] if self.curve else 3 * self.bc_info.get("eval_seconds", 0.0)
        checkpoint_seconds = 3.0 + observation_bytes(self.train_env.observation_space) * (cfg.steps + 1000) / 2e8  # type: ignore
        stop = StopAtDeadline(self.deadline)
        while model.num_timesteps < cfg.steps:  # type: ignore[operator]
            next_eval = min((model.num_timesteps // cfg.eval_every + 1) * cfg.eval_every, cfg.steps)  # type: ignore
            stop.reserve = 1.2 * eval_seconds + checkpoint_seconds + 5.0
            if stop.due:  # (after an evaluation) not even one more step fits
                return "time_limit"
            before, updates_before = time.perf_counter(), watch.seconds["updates"]
            with timed_updates(model, watch):
                model.learn(next_eval - model.num_timesteps, callback=stop, reset_num_timesteps=False)  # type: ignore
            watch.seconds["env_steps"] += time.perf_counter() - before - (watch.seconds["updates"] - updates_before)
            if stop.stopped:
                return "time_limit"
            self.evaluate()
            eval_seconds = self.curve[-1]["eval_seconds"]
        return "complete"

    def finish(self, stopped: str) -> dict[str, Any]:
        """Evaluate where training stopped (if not done), save the checkpoint, write the JSON and the PNG."""
        if not self.curve or self.curve[-1]["env_steps"] != self.model.num_timesteps:
            self.evaluate()
        with self.watch.part("checkpoint"):
            os.makedirs(os.path.dirname(self.paths["model"]), exist_ok=True)
            self.model.save(self.paths["model"])
            self.model.save_replay_buffer(self.paths["buffer"])
        fill_versions(self.machine)
        with self.watch.part("report"):
            plot_headline(self.result(stopped), self.paths["headline.png"])
        final = self.result(stopped)
        write_json(self.paths["headline.json"], final)
        self.log(f"[headline] {stopped} at {final['env_steps']} env steps, {final['timing']['total']:.0f} s in all")
        return final


def run_headline(config: HeadlineConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """
    Run (or continue) the headline pipeline; write ``headline.json`` and ``headline.png`` into ``config.out_dir``.

    :return: the JSON's content
    """
    run = HeadlineRun(config, log)
    if run.complete:
        log(f"[headline] {config.out_dir}: complete at {run.previous['env_steps']} env steps (more with a larger --steps)")
        return run.previous
    try:
        run.setup()
        run.demos_and_bc()
        run.build_model()
        return run.finish(run.train())
    finally:
        run.close()
