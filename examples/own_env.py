"""
IBRL on your own gymnasium env with your own demonstrations: a tiny env, a scripted demonstrator, BC, IBRL.

    python examples/own_env.py                    # ~1 min on 2 CPU cores
    python examples/own_env.py --steps 500        # smoke test

Replace ``ReachEnv`` and ``demonstrator`` with yours. What IBRL needs: a bounded continuous (Box) action space, and
demos as episodes (observations including the final one, actions in env units, rewards), here written to an
``.npz`` file with ``save_episodes``. Sparse rewards work best with ``terminated=True`` on success and
``info["is_success"]`` (logged as the success rate).

The same with rl-zoo3: register the env in a module of yours (``gym.register("Reach-v0", entry_point=...)``), write
``my.yml`` with an entry ``Reach-v0:`` holding ``policy: MlpPolicy``, ``n_timesteps``, the IBRL options and the
paths ``demonstrations: demos/reach.npz`` and ``il_policy: il/reach.zip`` (both made by this script), then
``python -m rl_zoo3.train --algo ibrl --env Reach-v0 --gym-packages my_module -conf my.yml``.
"""

import argparse
import os
import time
from typing import Any, Optional

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces

from sb3_ibrl import IBRL
from sb3_ibrl.common.evaluation import evaluate_policy_success, record_episodes
from sb3_ibrl.data.demo_files import save_episodes
from sb3_ibrl.il.training import evaluate_bc_policy, save_bc_policy, train_bc


class ReachEnv(gym.Env):
    """
    A cart on a rail ``[-1, 1]`` must stop on a target (within 0.03, speed below 0.02). Observation ``[x, v, target]``,
    action: a force in ``[-1, 1]``; reward 1 on success, which ends the episode, else 0; 60 steps at most.
    """

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-2.0, 2.0, (3,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.x = self.v = self.target = 0.0
        self.steps = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.x, self.v, self.target], dtype=np.float32)

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict[str, Any]] = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.x, self.v, self.steps = float(self.np_random.uniform(-1, 1)), 0.0, 0
        self.target = float(self.np_random.uniform(-0.9, 0.9))
        return self._obs(), {"is_success": False}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        force = float(np.clip(action, -1, 1)[0])
        self.v = float(np.clip(0.9 * self.v + 0.05 * force, -0.3, 0.3))
        self.x = float(np.clip(self.x + self.v, -1, 1))
        self.steps += 1
        success = abs(self.x - self.target) < 0.03 and abs(self.v) < 0.02
        return self._obs(), float(success), success, self.steps >= 60, {"is_success": success}


def demonstrator(seed: int) -> Any:
    """A noisy, sluggish PD controller: your teleoperator or scripted policy."""
    rng = np.random.default_rng(seed)

    def act(obs: np.ndarray) -> np.ndarray:
        x, v, target = obs
        return np.clip([4.0 * (target - x) - 6.0 * v + rng.normal(0, 0.5)], -1, 1).astype(np.float32)

    return act


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demos", type=int, default=1, help="number of demonstrations")
    parser.add_argument("--steps", type=int, default=3000, help="IBRL env steps")
    parser.add_argument("--eval-episodes", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    th.manual_seed(args.seed)
    th.set_num_threads(1)  # small networks

    # 1. Your demonstrations, saved as an .npz demo file (a robomimic .hdf5 file works too)
    env = gym.wrappers.TimeLimit(ReachEnv(), max_episode_steps=60)
    demos = record_episodes(env, demonstrator(args.seed), n_episodes=args.demos, seed=args.seed)
    os.makedirs("demos", exist_ok=True)
    save_episodes("demos/reach.npz", demos)
    print(f"[1/3] {len(demos)} demos, lengths {[len(ep) for ep in demos]} -> demos/reach.npz")

    # 2. The IL policy: behaviour cloning with imitation, saved as an SB3 policy file
    bc = train_bc("demos/reach.npz", env.observation_space, env.action_space, n_batches=1000, learning_rate=1e-3)
    bc_path = save_bc_policy(bc, "il/reach.zip")
    bc_success, _ = evaluate_bc_policy(bc, env, args.eval_episodes, seed=10_000)
    print(f"[2/3] BC: success {bc_success:.0%} -> {bc_path}")

    # 3. IBRL: small networks and one update per step suit a small task (the paper's defaults are for robots)
    model = IBRL(
        "MlpPolicy",
        env,
        il_policy=bc_path,
        demonstrations="demos/reach.npz",
        learning_rate=1e-3,
        batch_size=128,
        learning_starts=300,
        gradient_steps=1,
        policy_delay=1,
        tau=0.05,
        policy_kwargs=dict(net_arch=[64, 64]),
        seed=args.seed,
    )
    start = time.perf_counter()
    model.learn(args.steps)

    def act(obs: np.ndarray) -> np.ndarray:
        return model.predict(obs, deterministic=True)[0]

    success, length = evaluate_policy_success(env, act, args.eval_episodes, seed=10_000)
    elapsed = time.perf_counter() - start
    print(f"[3/3] IBRL, {args.steps} steps in {elapsed:.0f}s: success {success:.0%}, mean length {length:.1f}")
    print(f"BC {bc_success:.0%} -> IBRL {success:.0%}")


if __name__ == "__main__":
    main()
