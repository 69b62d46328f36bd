"""Demo files and the imitation route: Trajectory / Transitions inputs, BC trained by imitation as the IL policy."""

import numpy as np
import pytest
import torch as th

from sb3_ibrl import IBRL
from sb3_ibrl.data.demo_files import load_episodes, save_episodes, to_episodes
from sb3_ibrl.data.episodes import Episode


def pendulum_episodes(n=2, length=30, seed=0):
    rng = np.random.default_rng(seed)
    episodes = []
    for _ in range(n):
        obs = rng.uniform(-1, 1, size=(length + 1, 3)).astype(np.float32)
        acts = np.clip(-2.0 * obs[:-1, 2:3], -2, 2)  # a simple, learnable mapping
        episodes.append(Episode(obs=obs, acts=acts, rews=np.r_[np.zeros(length - 1), 1.0]))
    return episodes


def test_npz_round_trip(tmp_path):
    episodes = pendulum_episodes()
    episodes[1].terminal = False
    save_episodes(tmp_path / "demos.npz", episodes)
    loaded = load_episodes(tmp_path / "demos.npz")
    assert len(loaded) == 2
    for a, b in zip(episodes, loaded):
        np.testing.assert_array_equal(a.obs, b.obs)
        np.testing.assert_array_equal(a.acts, b.acts)
        np.testing.assert_array_equal(a.rews, b.rews)
        assert a.terminal == b.terminal
    model = IBRL("MlpPolicy", "Pendulum-v1", demonstrations=str(tmp_path / "demos.npz"), policy_kwargs=dict(net_arch=[8]))
    assert model.replay_buffer.n_demo_transitions == 60


def test_bad_demo_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="Demo file not found"):
        load_episodes(tmp_path / "missing.npz")
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(ValueError, match="Could not read demo file"):
        load_episodes(tmp_path / "corrupt.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not an sb3-ibrl demo file"):
        load_episodes(tmp_path / "other.npz")
    episodes = pendulum_episodes()
    save_episodes(tmp_path / "good.npz", episodes)
    data = dict(np.load(tmp_path / "good.npz"))
    data["acts"] = data["acts"][:-5]  # truncated
    np.savez(tmp_path / "truncated.npz", **data)
    with pytest.raises(ValueError, match="corrupt or truncated: 'acts'"):
        load_episodes(tmp_path / "truncated.npz")
    with pytest.raises(ValueError, match="empty"):
        save_episodes(tmp_path / "empty.npz", [])
    with pytest.raises(TypeError, match="Unsupported demonstrations"):
        to_episodes(3.5)


def test_imitation_trajectories_and_transitions():
    types = pytest.importorskip("imitation.data.types")
    from imitation.data import rollout

    episodes = pendulum_episodes()
    trajs = [types.Trajectory(obs=ep.obs, acts=ep.acts, infos=None, terminal=True) for ep in episodes]
    from_trajs = to_episodes(trajs)
    assert [len(ep) for ep in from_trajs] == [30, 30]
    # No rewards in a plain Trajectory: sparse, 1 on the last step of a terminal episode
    assert from_trajs[0].rews.sum() == 1.0 and from_trajs[0].rews[-1] == 1.0
    transitions = rollout.flatten_trajectories(trajs)
    from_transitions = to_episodes(transitions)
    assert [len(ep) for ep in from_transitions] == [30, 30]
    np.testing.assert_array_equal(from_transitions[1].obs, episodes[1].obs)
    model = IBRL("MlpPolicy", "Pendulum-v1", demonstrations=transitions, policy_kwargs=dict(net_arch=[8]))
    assert model.replay_buffer.n_demo_transitions == 60


def test_bc_trained_with_imitation_as_il_policy(tmp_path):
    pytest.importorskip("imitation.algorithms.bc")
    from sb3_ibrl.il.training import train_bc

    episodes = pendulum_episodes(n=3)
    model = IBRL("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8]))
    bc = train_bc(episodes, model.observation_space, model.action_space, n_batches=300, learning_rate=1e-3, net_arch=[32])
    # The BC trainer itself is accepted, and so is the policy file it saves
    ibrl = IBRL("MlpPolicy", "Pendulum-v1", il_policy=bc, policy_kwargs=dict(net_arch=[8]), learning_starts=20, batch_size=16)
    obs = th.as_tensor(episodes[0].obs)
    expected = bc.policy._predict(obs, deterministic=True).clamp(-2, 2) / 2
    assert th.allclose(ibrl.il_policy(obs), expected, atol=1e-6)
    # BC learned the demonstrator's mapping (a = -2 * obs[2]) reasonably
    demo_actions = th.as_tensor(-2.0 * episodes[0].obs[:, 2:3])
    assert th.mean((2 * ibrl.il_policy(obs) - demo_actions) ** 2).item() < 0.2
    before = {k: v.clone() for k, v in bc.policy.state_dict().items()}
    ibrl.learn(60)
    assert all(th.equal(before[k], v) for k, v in bc.policy.state_dict().items())
    bc.policy.save(tmp_path / "bc_policy.pth")
    from_file = IBRL("MlpPolicy", "Pendulum-v1", il_policy=str(tmp_path / "bc_policy.pth"), policy_kwargs=dict(net_arch=[8]))
    assert th.allclose(from_file.il_policy(obs), expected, atol=1e-6)


def test_evaluation_episodes_add_up_to_the_success_rate():
    import gymnasium as gym

    from sb3_ibrl.common.evaluation import evaluate_episodes, evaluate_policy_success
    from sb3_ibrl.envs.point_goal import PointGoalExpert

    env = gym.make("PointGoal-v0", obs_mode="state_pixel")

    def act_fn():  # a new expert each time: its noise starts over
        expert = PointGoalExpert(seed=0)
        return lambda obs: expert(obs["state"])

    outcomes = evaluate_episodes(env, act_fn(), 6, seed=5)
    rate, length = evaluate_policy_success(env, act_fn(), 6, seed=5)
    assert rate == np.mean([o.success for o in outcomes]) and length == np.mean([o.length for o in outcomes])
    assert 0 < rate <= 1 and all(o.length >= 1 for o in outcomes)
    # each episode's reset info: the first one is the seeded reset's, the others differ
    first, _ = env.reset(seed=5)
    np.testing.assert_array_equal(outcomes[0].start_info["state"], first["state"])
    assert not np.array_equal(outcomes[1].start_info["state"], outcomes[0].start_info["state"])
    with pytest.raises(ValueError, match="n_episodes"):
        evaluate_episodes(env, act_fn(), 0)
