"""
The idea proven on the built-in task: with 1 scripted demo and 3000 env steps, IBRL (BC from imitation as
the IL policy) learns faster than TD3 with the same demo in its replay buffer (and the same networks: IBRL
without an IL policy), and ends at a high success rate, at least its IL policy's. Success is measured every
500 steps (20 episodes); "faster" compares the area under these curves (their mean). Two fixed seeds,
asserted on means, about 2-3 minutes on 2 CPU cores.

Over seeds 0-5 (``python benchmarks/learning_check.py``) IBRL's mean area is 0.78 (default deployment; 0.63 deployed
greedily as in the paper) vs 0.35 for TD3 + demos, and IBRL ends at 0.92 on average (1.00 on 4 of 6 seeds), while TD3
+ demos solves the task on 4 of 6 seeds by then (see the README's results). A test on the final success alone would
be fragile: on this small task TD3 + demos catches up on some seeds, and which ones changes with floating-point details.
"""

import gymnasium as gym
import numpy as np
import pytest
import torch as th

import sb3_ibrl  # noqa: F401  (registers PointGoal-v0)
from sb3_ibrl import IBRL
from sb3_ibrl.common.callbacks import SuccessCurveCallback
from sb3_ibrl.common.evaluation import evaluate_policy_success, record_episodes
from sb3_ibrl.envs import POINT_GOAL_IBRL_SETTINGS, PointGoalExpert
from sb3_ibrl.ibrl.diagnostics import discounted_returns

STEPS, EVAL_EVERY, EVAL_EPISODES, SEEDS = 3000, 500, 20, (3, 4)


def success_rate(act) -> float:
    return evaluate_policy_success(gym.make("PointGoal-v0"), act, EVAL_EPISODES, seed=123)[0]


@pytest.mark.slow
def test_ibrl_learns_faster_than_td3_with_demos_on_point_goal():
    pytest.importorskip("imitation.algorithms.bc")
    from sb3_ibrl.il.training import train_bc

    th.set_num_threads(1)  # deterministic, and as fast as 2 threads for these small nets
    env = gym.make("PointGoal-v0")
    demos = record_episodes(env, PointGoalExpert(seed=2), n_episodes=1, seed=2)
    bc_success, curves = [], {"IBRL": [], "TD3 + demos": []}
    for seed in SEEDS:
        bc = train_bc(
            demos, env.observation_space, env.action_space, n_batches=1000, learning_rate=1e-3, net_arch=[64, 64], seed=seed
        )
        bc_success.append(success_rate(lambda obs, bc=bc: bc.policy.predict(obs, deterministic=True)[0]))
        for name, il_policy in (("IBRL", bc), ("TD3 + demos", None)):
            model = IBRL(
                "MlpPolicy",
                gym.make("PointGoal-v0"),
                il_policy=il_policy,
                demonstrations=demos,
                seed=seed,
                **POINT_GOAL_IBRL_SETTINGS,
            )
            curve = SuccessCurveCallback(gym.make("PointGoal-v0"), EVAL_EVERY, EVAL_EPISODES, seed=123)
            model.learn(STEPS, callback=curve)
            curves[name].append([row[1] for row in curve.curve])
    print(f"BC {bc_success}, success every {EVAL_EVERY} steps, seeds {SEEDS}: {curves}")
    area = {name: float(np.mean(values)) for name, values in curves.items()}  # mean over seeds and checkpoints
    final = {name: float(np.mean([curve[-1] for curve in values])) for name, values in curves.items()}
    assert all(len(curve) == STEPS // EVAL_EVERY for curve in curves["IBRL"])
    # measured on these seeds (2026-12-07): 0.75 vs 0.33 with the default deployment (the IL policy until the hybrid
    # has matched it, then greedy: 0.65 / 0.45 until 2000 / 1500 steps, then 1.00); earlier, 0.73 vs 0.49 with
    # k = 3 until matched (issue 14), 0.59 vs 0.49 deployed greedily as in the paper (IL actions cached: the same
    # algorithm, but the float rounding of the BC network on one observation instead of a batch changes the
    # trajectories; 0.77 vs 0.49 before); benchmarks/learning_check.py sweeps seeds 0-5 (README, results)
    assert area["IBRL"] >= area["TD3 + demos"] + 0.05
    assert final["IBRL"] >= 0.8
    assert final["IBRL"] >= float(np.mean(bc_success))  # the hybrid ends at least as good as its IL policy


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_pixel_critic_learns_values_from_images(seed):
    """
    From 32 x 32 images of ``PointGoal-v0``, 3 demos and 400 IBRL updates (n-step targets, bootstrap proposal with an
    IL policy that reads the images), the ViT critic learns the value of a held-out demo: its Q-values follow the
    discounted return to go of that episode (about 20 s). Before training they do not.
    """
    from sb3_ibrl.envs.point_goal_pixels import POINT_GOAL_PIXEL_IBRL_SETTINGS, PixelStateAdapter

    th.set_num_threads(1)
    env = gym.make("PointGoal-v0", obs_mode="pixel")
    demos = record_episodes(env, PointGoalExpert(seed=0), 4, seed=0, act_fn_input="state")
    expert = PointGoalExpert(seed=0)
    il_policy = PixelStateAdapter(lambda states: np.stack([expert(state) for state in states]))
    settings = {**POINT_GOAL_PIXEL_IBRL_SETTINGS, "learning_starts": 0}
    model = IBRL("CnnPolicy", env, il_policy=il_policy, demonstrations=demos[:3], seed=seed, **settings)
    model._setup_learn(1)  # the logger that train() writes to
    held_out = demos[3]
    returns = discounted_returns(held_out.rews, 0.99)  # sparse reward 1 at the end
    obs = th.as_tensor(held_out.obs[:-1])
    actions = th.as_tensor(model.policy.scale_action(held_out.acts))

    def q_values() -> np.ndarray:
        with th.no_grad():
            return model.policy.critic(obs, actions).min(dim=0).values.squeeze(-1).numpy()

    before = q_values()
    model.train(gradient_steps=400, batch_size=64)
    after = q_values()
    print(f"seed {seed}: corr(Q, return) {np.corrcoef(before, returns)[0, 1]:.2f} -> {np.corrcoef(after, returns)[0, 1]:.2f}")
    assert np.corrcoef(after, returns)[0, 1] >= 0.5  # measured 0.72-0.74 on seeds 0-2
    assert np.abs(after - returns).mean() < 0.5 * np.abs(before - returns).mean()
