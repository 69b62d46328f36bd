"""
A Meta-World task from pixels, as in the paper: 3 scripted demos -> BC (ResNet-18) -> IBRL (ViT encoder, E = 2, G = 1).

    python examples/metaworld_pixels.py                          # Assembly, 100K steps: a GPU job (CPU: days)
    python examples/metaworld_pixels.py --env StickPull-pixel-v0 --device cuda
    python examples/metaworld_pixels.py --steps 60 --learning-starts 30 --bc-batches 5 --batch-size 8 \\
        --resnet-width 8 --encoder drq --eval-episodes 1        # smoke test, ~2 min on 2 CPU cores

96 x 96 images from the ``corner2`` camera, action repeat 2, 100 steps per episode, sparse reward (the env ends on
success). The demos come from Meta-World's scripted policies (``python -m sb3_ibrl.demos``), recorded once into
``demos/<env>.hdf5``. Defaults follow Table 2 of the paper; ``--encoder drq`` is "IBRL Basic" (the DrQ ConvNet,
much cheaper). The same run through rl-zoo3: ``python -m rl_zoo3.train --algo ibrl --env Assembly-pixel-v0``.
Needs ``pip install "sb3_ibrl[metaworld]"``, an offscreen OpenGL library (``apt-get install libegl1 libegl-mesa0``)
and ``pip install --no-deps imitation==1.0.1 tqdm``.
"""

import argparse
import os
import time

import gymnasium as gym
import numpy as np
import torch as th

import sb3_ibrl  # noqa: F401  (registers the tasks)
from sb3_ibrl import IBRL
from sb3_ibrl.common.evaluation import evaluate_policy_success
from sb3_ibrl.data.obs_keys import read_episodes_for_env
from sb3_ibrl.envs import METAWORLD_ENV_IDS
from sb3_ibrl.il.training import evaluate_bc_policy, save_bc_policy, train_bc
from sb3_ibrl.zoo import DEMO_COUNTS, ensure_demos

PIXEL_IDS = [env_id for env_id, (_, mode) in METAWORLD_ENV_IDS.items() if mode == "pixel"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Assembly-pixel-v0", choices=PIXEL_IDS)
    parser.add_argument("--steps", type=int, default=100_000, help="IBRL env steps (paper: 100K)")
    parser.add_argument("--learning-starts", type=int, default=1000, help="env steps of IL warm-up rollouts")
    parser.add_argument("--bc-batches", type=int, default=100_000, help="BC gradient steps (paper: 100K)")
    parser.add_argument("--batch-size", type=int, default=256, help="BC and IBRL minibatch (paper: 256)")
    parser.add_argument("--resnet-width", type=int, default=64, help="ResNet-18 base channels of BC (paper: 64)")
    parser.add_argument("--encoder", choices=["vit", "drq"], default="vit", help="vit: paper; drq: IBRL Basic")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/metaworld_pixels", help="folder for the BC policy and the IBRL model")
    args = parser.parse_args()
    th.manual_seed(args.seed)

    # 1. Three demos from Meta-World's scripted policy, in pixels (recorded once)
    env = gym.make(args.env)
    demos_path = ensure_demos(args.env, os.path.join("demos", f"{args.env}.hdf5"), n=DEMO_COUNTS[args.env])
    demos = read_episodes_for_env(demos_path, env.observation_space)
    print(f"[1/3] {len(demos)} demos from {demos_path}, lengths {[len(ep) for ep in demos]}")

    # 2. BC: ResNet-18 (GroupNorm) with random shift, Adam 1e-4
    start = time.perf_counter()
    bc = train_bc(
        demos,
        env.observation_space,
        env.action_space,
        n_batches=args.bc_batches,
        batch_size=args.batch_size,
        resnet_width=args.resnet_width,
        device=args.device,
        seed=args.seed,
        progress_bar=True,
    )
    bc_path = save_bc_policy(bc, os.path.join(args.out, f"bc_{args.env}.zip"))
    bc_success, _ = evaluate_bc_policy(bc, env, args.eval_episodes, seed=10_000)
    print(f"[2/3] BC in {time.perf_counter() - start:.0f}s: success {bc_success:.0%}; {bc_path}")

    # 3. IBRL from pixels (Table 2: E = 2 critics, G = 1 update per step, dropout 0.5)
    policy_kwargs = dict(encoder=args.encoder, n_critics=2)
    if args.encoder == "drq":
        policy_kwargs["dropout"] = 0.0  # IBRL Basic: no actor dropout
    model = IBRL(
        "CnnPolicy",
        env,
        il_policy=bc_path,
        demonstrations=demos,
        batch_size=args.batch_size,
        learning_starts=args.learning_starts,
        gradient_steps=1,
        policy_delay=1,
        buffer_size=max(args.steps, 1000),
        policy_kwargs=policy_kwargs,
        device=args.device,
        seed=args.seed,
        verbose=1,
    )
    start = time.perf_counter()
    model.learn(args.steps, log_interval=10)
    model.save(os.path.join(args.out, f"ibrl_{args.env}"))

    def act(obs: np.ndarray) -> np.ndarray:
        return model.predict(obs, deterministic=True)[0]

    success, length = evaluate_policy_success(env, act, args.eval_episodes, seed=10_000)
    elapsed = time.perf_counter() - start
    print(f"[3/3] IBRL, {args.steps} steps in {elapsed:.0f}s: success {success:.0%}, mean length {length:.1f}")
    print(f"BC {bc_success:.0%} -> IBRL {success:.0%}")


if __name__ == "__main__":
    main()
