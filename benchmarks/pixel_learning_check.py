"""
IBRL from pixels on ``PointGoal-v0`` (``obs_mode="pixel"``, 32 x 32 images): CnnPolicy with a small ViT or DrQ
encoder, 1 scripted demo, and an IL policy that reads the image (it locates the point and its velocity dot in
the image, then runs a BC policy trained on the demo's states). Success-rate curves over seeds.

    python benchmarks/pixel_learning_check.py --seeds 0 1 --steps 3000 --encoder vit
    python benchmarks/pixel_learning_check.py --seeds 0 1 2 --override demo_fraction=0.5   # any IBRL keyword
"""

import argparse
import time
from typing import Any, Optional

import gymnasium as gym
import torch as th

import sb3_ibrl  # noqa: F401  (registers PointGoal-v0)
from sb3_ibrl import IBRL
from sb3_ibrl.benchmark.headline_tasks import ibrl_override
from sb3_ibrl.common.callbacks import SuccessCurveCallback
from sb3_ibrl.common.evaluation import evaluate_policy_success, record_episodes
from sb3_ibrl.envs import PointGoalExpert
from sb3_ibrl.envs.point_goal_pixels import POINT_GOAL_PIXEL_IBRL_SETTINGS, PixelStateAdapter
from sb3_ibrl.il.training import train_bc

ENCODERS = {
    "vit": POINT_GOAL_PIXEL_IBRL_SETTINGS["policy_kwargs"],
    "drq": {
        **POINT_GOAL_PIXEL_IBRL_SETTINGS["policy_kwargs"],
        "encoder": "drq",
        "encoder_kwargs": dict(feature_dim=32, resize=None),
    },
}


EVAL_SEED = 123  # reset seed of the evaluation episodes (BC's and the curve's: the same episodes)


def make_env() -> gym.Env:
    return gym.make("PointGoal-v0", obs_mode="pixel")


def pixel_model(
    seed: int,
    encoder: str = "vit",
    eval_episodes: int = 20,
    with_il: bool = True,
    overrides: Optional[dict[str, Any]] = None,
) -> tuple[IBRL, list, float]:
    """
    The check's setup: 1 scripted demo (seed 2) in pixels, the pixel-reading IL policy (BC of 1000 batches on the
    demo's states) and its success over ``eval_episodes`` (reset seed ``EVAL_SEED``), and the IBRL model.

    :return: the model, the demos (pixel observations) and the IL policy's success
    """
    th.manual_seed(seed)
    env = make_env()
    demos = record_episodes(env, PointGoalExpert(seed=2), n_episodes=1, seed=2, act_fn_input="state")
    state_env = gym.make("PointGoal-v0")
    state_demos = record_episodes(state_env, PointGoalExpert(seed=2), n_episodes=1, seed=2)
    bc = train_bc(
        state_demos,
        state_env.observation_space,
        state_env.action_space,
        n_batches=1000,
        learning_rate=1e-3,
        net_arch=[64, 64],
        seed=seed,
    )
    il = PixelStateAdapter(bc.policy)
    bc_success = evaluate_policy_success(make_env(), lambda obs: il(obs[None])[0], eval_episodes, EVAL_SEED)[0]
    settings = {**POINT_GOAL_PIXEL_IBRL_SETTINGS, "policy_kwargs": ENCODERS[encoder], **(overrides or {})}
    model = IBRL("CnnPolicy", env, il_policy=il if with_il else None, demonstrations=demos, seed=seed, **settings)
    return model, demos, bc_success


def run(
    seed: int,
    steps: int,
    encoder: str,
    eval_every: int,
    eval_episodes: int,
    with_il: bool = True,
    overrides: Optional[dict[str, Any]] = None,
) -> dict:
    model, _, bc_success = pixel_model(seed, encoder, eval_episodes, with_il, overrides)
    curve = SuccessCurveCallback(make_env(), eval_freq=eval_every, n_eval_episodes=eval_episodes, seed=EVAL_SEED)
    start = time.time()
    model.learn(steps, callback=curve)
    return dict(seed=seed, bc=bc_success, curve=[round(row[1], 2) for row in curve.curve], seconds=time.time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--encoder", choices=sorted(ENCODERS), default="vit")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--no-il", action="store_true", help="TD3 + demos with the same networks (no IL policy)")
    parser.add_argument(
        "--override",
        nargs="*",
        type=ibrl_override,
        default=[],
        metavar="KEY=VALUE",
        help="IBRL keywords, e.g. demo_fraction=0.5",
    )
    args = parser.parse_args()
    overrides = dict(args.override)
    for seed in args.seeds:
        result = run(seed, args.steps, args.encoder, args.eval_every, args.eval_episodes, not args.no_il, overrides)
        print({**result, "overrides": overrides}, flush=True)


if __name__ == "__main__":
    main()
