"""
The main job on Meta-World from states: 3 scripted demos -> BC with imitation -> IBRL, printing the success curve
and saving it (PNG with matplotlib, always CSV). 9 minutes with the defaults on 2 idle CPU cores, 22-24 minutes when
other jobs shared them.

    python examples/metaworld_quickstart.py                                  # CoffeePush, 24000 env steps
    python examples/metaworld_quickstart.py --task Assembly --steps 12000 --seed 1 --out runs/assembly

Settings of this example, tuned for a short run on a CPU rather than the paper's state defaults (Table 2: 3 x 512
networks, G = 5 critic updates per actor update, learning rate 1e-4, batch 256, n-step 3, target EMA 0.99): actor
and critics ``[256, 256]`` with LayerNorm (dropout 0.5 in the actor), E = 5 critics (REDQ pairs), one critic and one
actor update per env step, learning rate 1e-3, batch 128, 10-step returns, target EMA 0.95 (``tau=0.05``), 1000
warm-up steps of the BC policy, and IBRL's default deployment for states (the hybrid keeps the IL action unless the
critics agree the RL action is better, until it has matched its BC policy; then the paper's greedy choice). The demos
come from Meta-World's scripted experts; episodes are 100 steps (action repeat 2) with a sparse reward; the success
rate is that of the deterministic hybrid policy.
"""

import argparse
import csv
import os
import time
import warnings

import gymnasium as gym
import numpy as np
import torch as th

import sb3_ibrl
from sb3_ibrl import IBRL
from sb3_ibrl.common.callbacks import SuccessCurveCallback
from sb3_ibrl.common.evaluation import evaluate_policy_success
from sb3_ibrl.demos import make_scripted_env, record_demos, save_demos
from sb3_ibrl.envs import METAWORLD_TASKS
from sb3_ibrl.il.training import save_bc_policy, train_bc

# See the module docstring: short-run settings, not the paper's
IBRL_SETTINGS = dict(
    learning_rate=1e-3,
    batch_size=128,
    learning_starts=1000,
    gradient_steps=1,
    policy_delay=1,
    n_steps=10,
    tau=0.05,
    policy_kwargs=dict(net_arch=[256, 256], n_critics=5),
)


def save_curve(curve: list[tuple[int, float, float]], bc_success: float, title: str, out_dir: str) -> list[str]:
    """
    Write the success curve as CSV, and as a PNG when matplotlib is installed.

    :param curve: ``(env steps, success rate, mean episode length)`` rows
    :param bc_success: success rate of the BC policy alone (drawn as a reference line)
    :param title: plot title
    :param out_dir: output folder
    :return: the files written
    """
    csv_path = os.path.join(out_dir, "success_curve.csv")
    with open(csv_path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["env_steps", "success_rate", "mean_episode_length"])
        writer.writerows(curve)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print('matplotlib is not installed: wrote the curve as CSV only (for the plot: pip install "sb3-ibrl[plot]")')
        return [csv_path]
    png_path = os.path.join(out_dir, "success_curve.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    steps, success = [row[0] for row in curve], [row[1] for row in curve]
    ax.plot(steps, success, marker="o", label="IBRL (hybrid policy)")
    ax.axhline(bc_success, color="gray", linestyle="--", label="BC alone")
    ax.set(xlabel="env steps", ylabel="success rate", ylim=(-0.02, 1.02), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return [csv_path, png_path]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="CoffeePush", choices=sorted(METAWORLD_TASKS), help="Meta-World task")
    parser.add_argument("--steps", type=int, default=24_000, help="IBRL env steps")
    parser.add_argument("--seed", type=int, default=0, help="seed of BC and IBRL (the demos use --demo-seed)")
    parser.add_argument("--out", default="metaworld_quickstart", help="output folder (demos, policies, curve)")
    parser.add_argument("--demos", type=int, default=3, help="scripted demos (paper: 3)")
    parser.add_argument("--demo-seed", type=int, default=0, help="reset seed of the first demo")
    parser.add_argument("--bc-batches", type=int, default=5000, help="BC gradient steps")
    parser.add_argument("--eval-every", type=int, default=3000, help="evaluate every this many env steps")
    parser.add_argument("--eval-episodes", type=int, default=20, help="episodes per evaluation")
    args = parser.parse_args()
    if args.steps < 1 or args.demos < 1:
        parser.error("--steps and --demos must be positive")
    start = time.perf_counter()
    th.manual_seed(args.seed)
    th.set_num_threads(1)  # small networks: one thread is about as fast on a busy 2-core machine, and reproducible
    warnings.filterwarnings("ignore", message=".*Box observation space maximum and minimum values are equal")
    os.makedirs(args.out, exist_ok=True)
    env_id = f"{args.task}-state-v0"
    print(f"sb3-ibrl {sb3_ibrl.__version__}: IBRL on Meta-World {env_id}, outputs in {args.out}/")

    # 1. Demonstrations from Meta-World's scripted expert, recorded into a robomimic HDF5 file
    env = make_scripted_env(env_id)
    demos, attempts = record_demos(env, args.demos, seed=args.demo_seed)
    demo_path = save_demos(os.path.join(args.out, "demos.hdf5"), env, demos)
    lengths = [len(demo.episode) for demo in demos]
    print(f"[1/3] {len(demos)} scripted demos ({attempts} episodes played), lengths {lengths} -> {demo_path}")

    # 2. Behaviour cloning with imitation's BC (MLP)
    bc_start = time.perf_counter()
    bc = train_bc(demo_path, env.observation_space, env.action_space, n_batches=args.bc_batches, seed=args.seed)
    save_bc_policy(bc, os.path.join(args.out, "bc_policy.zip"))

    def bc_act(obs: np.ndarray) -> np.ndarray:
        return bc.policy.predict(obs, deterministic=True)[0]

    bc_success, bc_length = evaluate_policy_success(gym.make(env_id), bc_act, args.eval_episodes, seed=10_000)
    print(f"[2/3] BC ({time.perf_counter() - bc_start:.0f}s): success {bc_success:.0%}, mean episode length {bc_length:.1f}")

    # 3. IBRL: the frozen BC policy proposes actions next to the RL actor's; the demos prefill the replay buffer
    model = IBRL("MlpPolicy", env, il_policy=bc, demonstrations=demo_path, seed=args.seed, **IBRL_SETTINGS)
    callback = SuccessCurveCallback(gym.make(env_id), args.eval_every, args.eval_episodes, print_curve=True)
    print(f"[3/3] IBRL for {args.steps} env steps, evaluating every {args.eval_every} (hybrid policy, deterministic)")
    print(callback.header())
    model.learn(args.steps, callback=callback)
    model.save(os.path.join(args.out, "ibrl_model.zip"))

    files = save_curve(callback.curve, bc_success, f"IBRL on {env_id}, {len(demos)} demos", args.out)
    final = callback.curve[-1][1] if callback.curve else float("nan")
    print(
        f"Done in {time.perf_counter() - start:.0f}s: BC {bc_success:.0%} -> IBRL {final:.0%} after {args.steps} env steps; "
        f"wrote {', '.join(files)} and ibrl_model.zip"
    )


if __name__ == "__main__":
    main()
