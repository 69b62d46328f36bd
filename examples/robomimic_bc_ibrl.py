"""
A robomimic task end to end: demos -> behaviour cloning with imitation -> IBRL, then the success rates of both.

    python examples/robomimic_bc_ibrl.py                                  # Lift from states, 1 scripted demo
    python examples/robomimic_bc_ibrl.py --env Can-state-v0 --steps 100000 --bc-batches 100000
    python examples/robomimic_bc_ibrl.py --demos lift/ph/low_dim_v15.hdf5  # robomimic's human demos (first --n-demos)
    python examples/robomimic_bc_ibrl.py --steps 200 --bc-batches 200 --eval-episodes 2   # smoke test, ~2 min

Without ``--demos``, the scripted expert records them (``python -m sb3_ibrl.demos``, the paper's count: Lift 1, Can
10, Square 50) into ``demos/<env>.hdf5``, kept for the next run. A robomimic file's observation keys are mapped to
the env's observations by name and shape. IBRL runs with its defaults, which are Table 2 of the paper for states
(E = 5, G = 5, 3 x 512 MLPs; use ``--net-arch 1024 1024 1024 --demo-fraction 0.5`` for Square); pixel ids set
E = 2, G = 1. The same run through rl-zoo3: ``python -m rl_zoo3.train --algo ibrl --env Lift-state-v0``.
Needs ``pip install "sb3_ibrl[robosuite]"`` and ``pip install --no-deps imitation==1.0.1 tqdm``.
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
from sb3_ibrl.envs import ROBOSUITE_ENV_IDS
from sb3_ibrl.il.training import evaluate_bc_policy, save_bc_policy, train_bc
from sb3_ibrl.zoo import DEMO_COUNTS, ensure_demos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Lift-state-v0", choices=list(ROBOSUITE_ENV_IDS))
    parser.add_argument("--demos", default=None, help="robomimic HDF5 file (default: record scripted demos)")
    parser.add_argument("--n-demos", type=int, default=None, help="demos to use (default: the paper's count)")
    parser.add_argument("--bc-batches", type=int, default=5000, help="BC gradient steps (paper: 100K)")
    parser.add_argument("--steps", type=int, default=20_000, help="IBRL env steps (Lift from pixels: ~20K in the paper)")
    parser.add_argument("--learning-starts", type=int, default=1000, help="env steps of IL warm-up rollouts")
    parser.add_argument("--net-arch", type=int, nargs="+", default=None, help="state MLPs (default: 3 x 512)")
    parser.add_argument("--demo-fraction", type=float, default=0.0, help="paper: 0.5 for Square")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/robomimic_bc_ibrl", help="folder for the BC policy and the IBRL model")
    args = parser.parse_args()
    th.manual_seed(args.seed)
    n_demos = args.n_demos or DEMO_COUNTS[args.env]
    pixels = "pixel" in args.env

    # 1. Demonstrations: a robomimic file, or the scripted expert's (recorded once)
    env = gym.make(args.env)
    demos_path = args.demos or ensure_demos(args.env, os.path.join("demos", f"{args.env}.hdf5"), n=n_demos)
    demos = read_episodes_for_env(demos_path, env.observation_space, n_demos=n_demos)
    print(f"[1/3] {len(demos)} demos from {demos_path}, lengths {[len(ep) for ep in demos]}")

    # 2. Behaviour cloning (imitation's BC; ResNet-18 + random shift for pixels, an MLP for states)
    start = time.perf_counter()
    bc = train_bc(demos, env.observation_space, env.action_space, n_batches=args.bc_batches, seed=args.seed, progress_bar=True)
    bc_path = save_bc_policy(bc, os.path.join(args.out, f"bc_{args.env}.zip"))
    bc_success, bc_length = evaluate_bc_policy(bc, env, args.eval_episodes, seed=10_000)
    print(f"[2/3] BC in {time.perf_counter() - start:.0f}s: success {bc_success:.0%}, mean length {bc_length:.1f}; {bc_path}")

    # 3. IBRL: the frozen BC policy proposes actions; the demos prefill the replay buffer
    pixel_settings = dict(gradient_steps=1, policy_delay=1, policy_kwargs=dict(n_critics=2)) if pixels else {}
    if args.net_arch:
        pixel_settings.setdefault("policy_kwargs", {})["net_arch"] = args.net_arch  # type: ignore[index]
    policy = "MultiInputPolicy" if args.env.endswith("pixelproprio-v0") else "CnnPolicy" if pixels else "MlpPolicy"
    model = IBRL(
        policy,
        env,
        il_policy=bc_path,
        demonstrations=demos,
        learning_starts=args.learning_starts,
        demo_fraction=args.demo_fraction,
        buffer_size=max(args.steps, 1000),
        seed=args.seed,
        verbose=1,
        **pixel_settings,  # type: ignore[arg-type]
    )
    start = time.perf_counter()
    model.learn(args.steps, log_interval=10)
    model.save(os.path.join(args.out, f"ibrl_{args.env}"))

    def act(obs: np.ndarray) -> np.ndarray:
        return model.predict(obs, deterministic=True)[0]

    success, length = evaluate_policy_success(env, act, args.eval_episodes, seed=10_000)
    elapsed = time.perf_counter() - start
    print(f"[3/3] IBRL, {args.steps} steps in {elapsed:.0f}s: success {success:.0%}, mean length {length:.1f}")
    print(f"BC {bc_success:.0%} -> IBRL {success:.0%} (IL actions executed: {model.il_action_fraction:.0%} of the last 1000)")


if __name__ == "__main__":
    main()
