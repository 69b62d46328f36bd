"""
Calibration of the built-in ``PointGoal-v0`` task: it should be easy to learn from a few demos and
hard to discover from scratch with a sparse reward.

Prints:

(a) the scripted expert's success rate and mean episode length,
(b) the success rate of a small MLP trained by plain behaviour cloning (MSE regression) on 1, 2 and
    3 expert demos (for a few demo seeds),
(c) the success rate of SB3 TD3 (``MlpPolicy``, default settings) trained from scratch for a few
    thousand steps, and of a random policy.

Run: ``python benchmarks/point_goal_calibration.py [--td3-steps 5000] [--skip-td3]``
"""

import argparse
import os
import sys
import time
from typing import Callable

import gymnasium as gym
import numpy as np
import torch as th
from torch import nn

try:
    import sb3_ibrl  # noqa: F401
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sb3_ibrl.common.evaluation import evaluate_policy_success, record_episodes
from sb3_ibrl.data.episodes import Episode
from sb3_ibrl.envs import POINT_GOAL_ID, PointGoalExpert


def train_bc(
    episodes: list[Episode], hidden: int = 256, n_steps: int = 2000, seed: int = 0
) -> Callable[[np.ndarray], np.ndarray]:
    """
    Fit an MLP (2 hidden layers, tanh output) to the demos' actions by full-batch MSE regression.

    :param episodes: the demonstrations
    :param hidden: width of the hidden layers
    :param n_steps: Adam steps
    :param seed: torch seed
    :return: a deterministic policy mapping one observation to one action
    """
    th.manual_seed(seed)
    obs = th.as_tensor(np.concatenate([ep.obs[:-1] for ep in episodes]), dtype=th.float32)
    acts = th.as_tensor(np.concatenate([ep.acts for ep in episodes]), dtype=th.float32)
    net = nn.Sequential(
        nn.Linear(obs.shape[1], hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, acts.shape[1]),
        nn.Tanh(),
    )
    optimizer = th.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(n_steps):
        loss = nn.functional.mse_loss(net(obs), acts)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.eval()

    def act(observation: np.ndarray) -> np.ndarray:
        with th.no_grad():
            return net(th.as_tensor(observation, dtype=th.float32)[None])[0].numpy()

    return act


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--td3-steps", type=int, default=5000)
    parser.add_argument("--skip-td3", action="store_true")
    parser.add_argument("--demo-seeds", type=int, default=3, help="number of demo sets per demo count")
    args = parser.parse_args()
    th.set_num_threads(1)
    env = gym.make(POINT_GOAL_ID)
    print(f"env: {POINT_GOAL_ID}, max_episode_steps={env.spec.max_episode_steps}, kwargs of the unwrapped env:")
    unwrapped = env.unwrapped
    for name in ("goal_radius", "hold_steps", "hold_speed", "wall", "start_x_max", "dt", "max_accel", "drag", "max_speed"):
        print(f"  {name} = {getattr(unwrapped, name)}")
    print(f"  goal = {tuple(unwrapped.fixed_goal)}, random_goal = {unwrapped.random_goal}")

    # (a) expert
    start = time.time()
    rate, length = evaluate_policy_success(env, PointGoalExpert(seed=0), 200, seed=1000)
    print(f"(a) expert: success {rate:.3f}, mean length {length:.1f} over 200 episodes ({time.time() - start:.1f}s)")
    rng = np.random.default_rng(0)
    rate, length = evaluate_policy_success(env, lambda _: rng.uniform(-1, 1, 2).astype(np.float32), 200, seed=2000)
    print(f"    random policy: success {rate:.3f} over 200 episodes")

    # (b) BC on 1, 2, 3 demos
    for n_demos in (1, 2, 3):
        rates = []
        for demo_seed in range(args.demo_seeds):
            demos = record_episodes(env, PointGoalExpert(seed=demo_seed), n_demos, seed=demo_seed)
            policy = train_bc(demos, seed=demo_seed)
            rate, length = evaluate_policy_success(env, policy, 100, seed=3000)
            rates.append(rate)
            print(
                f"(b) BC on {n_demos} demo(s), demo seed {demo_seed} (lengths {[len(ep) for ep in demos]}): "
                f"success {rate:.2f}, mean length {length:.1f}"
            )
        print(f"(b) BC on {n_demos} demo(s): mean success {np.mean(rates):.2f}")

    # (c) TD3 from scratch
    if not args.skip_td3:
        from stable_baselines3 import TD3

        start = time.time()
        model = TD3("MlpPolicy", gym.make(POINT_GOAL_ID), learning_starts=100, seed=0, verbose=0)
        model.learn(args.td3_steps)
        elapsed = time.time() - start
        rate, length = evaluate_policy_success(env, lambda o: model.predict(o, deterministic=True)[0], 50, seed=4000)
        print(f"(c) TD3 from scratch, {args.td3_steps} steps ({elapsed:.0f}s): success {rate:.2f}, mean length {length:.1f}")


if __name__ == "__main__":
    main()
