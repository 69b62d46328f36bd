"""IBRL on SB3: acting, training, IL policy handling, save/load and bad input."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from ibrl_helpers import SMALL, FlattenEncoder, small_ibrl
from stable_baselines3.common.env_util import make_vec_env
from torch import nn

from sb3_ibrl import IBRL
from sb3_ibrl.data.episodes import Episode
from sb3_ibrl.il.frozen import FrozenILPolicy
from sb3_ibrl.networks.q_networks import Encoded


class LinearIL(nn.Module):
    """A torch IL policy: obs (3,) -> action (1,) in env units (Pendulum's torque in [-2, 2])."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def forward(self, obs: th.Tensor) -> th.Tensor:
        return 4.0 * th.tanh(self.linear(obs))  # can exceed the bounds: IBRL clips


class DistanceCritics(nn.Module):
    """Critics with Q(s, a) = -|a - goal|: the action closest to ``goal`` (in [-1, 1] units) wins."""

    def __init__(self, goal: th.Tensor, n_critics: int = 5):
        super().__init__()
        self.goal, self.n_critics = goal, n_critics
        self.encoder = FlattenEncoder()

    def q_values(self, encoded: Encoded, actions: th.Tensor, members=None) -> th.Tensor:
        q_values = -(actions - self.goal).abs().sum(dim=-1, keepdim=True)  # ([K,] batch, 1)
        return q_values.expand(self.n_critics, *q_values.shape)

    def set_training_mode(self, mode: bool) -> None:
        self.train(mode)


def test_actor_proposal_picks_higher_q_row_by_row():
    il = lambda obs: th.full((len(obs), 1), 1.0)  # noqa: E731  scaled: 0.5 (Pendulum's bounds are [-2, 2])
    model = small_ibrl(il_policy=il, proposal_confidence=0.0)  # deployed greedily, as in the paper
    obs = th.as_tensor(np.stack([model.observation_space.sample() for _ in range(4)]))
    model.policy.set_training_mode(False)  # acting: dropout off
    rl_action = model.actor(obs).detach()
    # Rows 0-1 want the IL action (goal 0.5), rows 2-3 want the RL action itself
    goal = th.cat([th.full((2, 1), 0.5), rl_action[2:]])
    model.policy.critic = DistanceCritics(goal)
    actions, use_il = model.policy.propose(obs)
    assert use_il.tolist() == [True, True, False, False]
    assert th.allclose(actions[:2], th.full((2, 1), 0.5))
    assert th.allclose(actions[2:], rl_action[2:])
    # predict returns the hybrid action in env units; rl_only bypasses the IL policy
    hybrid, _ = model.predict(obs.numpy(), deterministic=True)
    np.testing.assert_allclose(hybrid, np.r_[1.0, 1.0, 2 * rl_action[2:, 0].numpy()][:, None], rtol=1e-5, atol=1e-6)
    rl_only, _ = model.predict(obs.numpy(), deterministic=True, rl_only=True)
    np.testing.assert_allclose(rl_only, 2 * rl_action.numpy(), rtol=1e-5, atol=1e-6)
    assert model.policy.act_with_il  # the switch is restored
    with model.policy.deployed_with(float("inf")):  # the default until the hybrid has matched its IL policy
        np.testing.assert_allclose(model.predict(obs.numpy(), deterministic=True)[0], np.ones((4, 1)))


def test_target_critics_score_the_proposal_when_asked():
    il = lambda obs: th.full((len(obs), 1), 1.0)  # noqa: E731
    model = small_ibrl(il_policy=il, proposal_critic="target")
    obs = th.zeros(2, 3)
    model.policy.critic = DistanceCritics(th.full((2, 1), -0.9))  # would pick RL
    model.policy.critic_target = DistanceCritics(th.full((2, 1), 0.5))  # picks IL
    assert model.policy.propose(obs)[1].all()


def test_exploration_noise_only_on_rl_action():
    il = lambda obs: th.full((len(obs), 1), 1.0)  # noqa: E731
    model = small_ibrl(il_policy=il)
    model.policy.critic = DistanceCritics(th.full((1, 1), 0.5))
    model.num_timesteps = model.learning_starts  # past warm-up
    model._last_obs = np.zeros((1, 3), dtype=np.float32)
    action, buffer_action = model._sample_action(model.learning_starts, model.action_noise, 1)
    np.testing.assert_allclose(buffer_action, [[0.5]])  # the IL action, noise-free
    np.testing.assert_allclose(action, [[1.0]])
    assert model.il_action_fraction == 1.0


def test_n_envs_row_by_row():
    env = make_vec_env("Pendulum-v1", n_envs=3, seed=0)
    il = lambda obs: th.full((len(obs), 1), 1.0)  # noqa: E731
    model = small_ibrl(env=env, il_policy=il, learning_starts=30)
    model.learn(90)
    assert model.num_timesteps == 90
    assert model.replay_buffer.size() == 30  # 30 rows of 3 envs
    actions, _ = model.predict(env.reset(), deterministic=True)
    assert actions.shape == (3, 1)


def test_warmup_uses_il_policy():
    il = lambda obs: th.full((len(obs), 1), 1.0)  # noqa: E731
    model = small_ibrl(il_policy=il, learning_starts=40)
    model.learn(40)
    assert np.allclose(model.replay_buffer.actions[:40], 0.5)
    random_model = small_ibrl(il_policy=il, learning_starts=40, warmup="random")
    random_model.learn(40)
    assert not np.allclose(random_model.replay_buffer.actions[:40], 0.5)


def test_dropout_on_in_training_off_in_predict():
    model = small_ibrl(policy_kwargs=dict(net_arch=[256, 256], dropout=0.5))
    obs = th.randn(8, 3)
    model.policy.set_training_mode(True)
    assert not th.allclose(model.actor(obs), model.actor(obs))  # dropout active
    a1, _ = model.predict(obs.numpy(), deterministic=True)
    assert not model.actor.training
    a2, _ = model.predict(obs.numpy(), deterministic=True)
    assert np.array_equal(a1, a2)
    n_dropout = sum(isinstance(m, nn.Dropout) for m in model.actor.modules())
    assert n_dropout == 2


@pytest.mark.parametrize("target_actor_dropout", [True, False])
def test_target_actor_dropout_while_bootstrapping(target_actor_dropout):
    model = small_ibrl(target_actor_dropout=target_actor_dropout, learning_starts=40)
    model.learn(45)
    assert model.actor_target.training is target_actor_dropout
    assert not model.critic_target.training


def test_ensemble_is_batched_and_layer_normed():
    model = small_ibrl(policy_kwargs=dict(net_arch=[16], n_critics=5))
    q = model.critic(th.zeros(7, 3), th.zeros(7, 1))
    assert q.shape == (5, 7, 1)
    assert len(list(model.critic.parameters())) == 6  # 2 batched linears + 1 batched LayerNorm, weights + biases
    assert not th.allclose(q[0], q[1])  # members are initialized independently


def test_il_policy_frozen_and_unchanged_by_learn():
    il = LinearIL()
    before = {k: v.clone() for k, v in il.state_dict().items()}
    model = small_ibrl(il_policy=il, learning_starts=40)
    model.learn(120)
    assert all(th.equal(before[k], v) for k, v in il.state_dict().items())
    assert not any(p.requires_grad for p in il.parameters())
    assert not il.training
    il_params = {id(p) for p in il.parameters()}
    for optimizer in (model.actor.optimizer, model.critic.optimizer):
        assert not il_params & {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert not any(k.startswith("il") for k in model.policy.state_dict())


def test_il_actions_are_clipped_and_scaled():
    il = lambda obs: th.tensor([[5.0], [-1.0]])  # noqa: E731  env units, bounds [-2, 2]
    model = small_ibrl(il_policy=il)
    assert model.il_policy(th.zeros(2, 3)).flatten().tolist() == [1.0, -0.5]


def test_il_actions_reach_a_unit_box_env_bit_for_bit():
    # [-1, 1] bounds (robosuite, Meta-World): scaling is the identity and must not round. The affine map in float32
    # moved IL actions by up to 6e-8, enough to turn one Lift-pixel BC episode in 10 from success to failure.
    from sb3_ibrl.envs.point_goal import PointGoalEnv

    values = np.array([[1e-9, 0.3 + 1e-8], [-0.7000001, 0.123456789]], dtype=np.float32)
    il = lambda obs: th.as_tensor(values[: len(obs)])  # noqa: E731
    model = small_ibrl(env=PointGoalEnv(), il_policy=il, proposal_confidence=1e9)  # deployed: the IL action
    scaled = model.il_policy(th.zeros(2, *model.observation_space.shape))
    assert np.array_equal(scaled.numpy(), values)  # not 0.0 and 0.30000001 (the float32 round trip through 2 (a + 1) / 2 - 1)
    assert np.array_equal(model.policy.unscale_action(values), values)
    assert np.array_equal(model.policy.scale_action(values), values)
    actions, _ = model.predict(np.zeros((1, *model.observation_space.shape), dtype=np.float32), deterministic=True)
    assert np.array_equal(actions, values[:1])
    # other bounds keep SB3's affine map
    pendulum = small_ibrl()
    assert pendulum.policy.unscale_action(np.array([0.5], dtype=np.float32)).tolist() == [1.0]


def test_logs_il_fraction_and_q_values():
    il = lambda obs: th.full((len(obs), 1), 1.0)  # noqa: E731
    model = small_ibrl(il_policy=il, learning_starts=40)
    model.learn(60)
    values = model.logger.name_to_value
    for key in ("rollout/il_action_fraction", "train/q_values", "train/target_q_values", "train/bootstrap_il_fraction"):
        assert key in values, key
    assert 0.0 <= values["rollout/il_action_fraction"] <= 1.0


def test_save_load_identical_predictions(tmp_path):
    obs = np.stack([gym.make("Pendulum-v1").observation_space.sample() for _ in range(16)])
    for il in (None, LinearIL()):
        model = small_ibrl(il_policy=il, learning_starts=40)
        model.learn(80)
        model.save(tmp_path / "model.zip")
        loaded = IBRL.load(tmp_path / "model.zip")
        assert (loaded.il_policy is None) == (il is None)
        expected, _ = model.predict(obs, deterministic=True)
        actual, _ = loaded.predict(obs, deterministic=True)
        np.testing.assert_array_equal(expected, actual)
    # Override the saved IL policy at load time
    other = lambda obs: th.full((len(obs), 1), -2.0)  # noqa: E731
    loaded = IBRL.load(tmp_path / "model.zip", il_policy=other)
    assert loaded.il_policy(th.zeros(1, 3)).item() == -1.0


def test_replay_buffer_round_trip_keeps_demos(tmp_path):
    episodes = [Episode(obs=np.full((6, 3), 7.0), acts=np.full((5, 1), 2.0), rews=[0, 0, 0, 0, 1.0])]
    model = small_ibrl(demonstrations=episodes, learning_starts=20)
    model.learn(30)
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    fresh = small_ibrl()
    fresh.load_replay_buffer(tmp_path / "buffer.pkl")
    assert fresh.replay_buffer.n_demo_transitions == 5
    assert fresh.replay_buffer.size() == 30
    np.testing.assert_array_equal(fresh.replay_buffer.demos.actions[:5, 0], np.ones((5, 1)))  # scaled to [-1, 1]


def test_demos_prefill_and_are_sampled():
    episodes = [Episode(obs=np.full((11, 3), 7.0), acts=np.zeros((10, 1)), rews=np.r_[np.zeros(9), 1.0])]
    model = small_ibrl(demonstrations=episodes, learning_starts=0)
    assert model.replay_buffer.n_demo_transitions == 10
    batch = model.replay_buffer.sample(64)  # nothing online yet: all from the demos
    assert th.all(batch.observations == 7.0)
    assert th.all(batch.rewards <= 1.0) and batch.rewards.max().item() == 1.0


# ---------------------------------------------------------------- bad input


def test_bad_input_errors(tmp_path):
    with pytest.raises(ValueError, match="returned actions of shape"):
        small_ibrl(il_policy=lambda obs: th.zeros(len(obs), 3))
    with pytest.raises(ValueError, match="failed on a batch of observations"):
        small_ibrl(il_policy=nn.Linear(5, 1))
    with pytest.raises(FileNotFoundError, match="IL policy file not found"):
        small_ibrl(il_policy=str(tmp_path / "missing.zip"))
    with pytest.raises(TypeError, match="Unsupported il_policy"):
        small_ibrl(il_policy=42)
    with pytest.raises(ValueError, match="observations of shape"):
        small_ibrl(demonstrations=[Episode(obs=np.zeros((3, 4)), acts=np.zeros((2, 1)), rews=np.zeros(2))])
    with pytest.raises(ValueError, match="actions of shape"):
        small_ibrl(demonstrations=[Episode(obs=np.zeros((3, 3)), acts=np.zeros((2, 2)), rews=np.zeros(2))])
    with pytest.raises(ValueError, match="empty"):
        small_ibrl(demonstrations=[])
    with pytest.raises(ValueError, match="at least one step"):
        Episode(obs=np.zeros((1, 3)), acts=np.zeros((0, 1)), rews=np.zeros(0))
    with pytest.raises(ValueError, match="Unknown proposal_critic"):
        small_ibrl(proposal_critic="both")
    with pytest.raises(ValueError, match="demo_fraction"):
        small_ibrl(demo_fraction=1.5)


def test_non_box_action_space_rejected():
    with pytest.raises(AssertionError, match="only supports"):
        IBRL("MlpPolicy", "CartPole-v1")


def test_il_policy_with_wrong_spaces_rejected(tmp_path):
    from stable_baselines3 import TD3

    other = TD3("MlpPolicy", "MountainCarContinuous-v0", policy_kwargs=SMALL)  # obs (2,), action (1,) in [-1, 1]
    with pytest.raises(ValueError, match="observation space"):
        small_ibrl(il_policy=_sb3_policy_for((2,), (1,), 2.0))
    with pytest.raises(ValueError, match="action bounds"):
        small_ibrl(il_policy=other.policy)  # bounds [-1, 1] vs Pendulum's [-2, 2] (and obs shape)
    with pytest.raises(ValueError, match="different shape"):
        small_ibrl(il_policy=_sb3_policy_for((3,), (2,), 2.0))


def _sb3_policy_for(obs_shape, action_shape, bound):
    from stable_baselines3.common.policies import ActorCriticPolicy

    obs_space = gym.spaces.Box(-np.inf, np.inf, obs_shape, np.float32)
    action_space = gym.spaces.Box(-bound, bound, action_shape, np.float32)
    return ActorCriticPolicy(obs_space, action_space, lambda _: 1e-3, net_arch=[8])


def test_sb3_policy_and_saved_files_as_il_policy(tmp_path):
    policy = _sb3_policy_for((3,), (1,), 2.0)
    model = small_ibrl(il_policy=policy)
    obs = th.randn(5, 3)
    expected = (policy._predict(obs, deterministic=True).clamp(-2, 2) / 2).detach()
    assert th.allclose(model.il_policy(obs), expected, atol=1e-6)
    policy.save(tmp_path / "policy.pth")
    from_file = small_ibrl(il_policy=str(tmp_path / "policy.pth"))
    assert th.allclose(from_file.il_policy(obs), expected, atol=1e-6)
    assert isinstance(from_file.il_policy, FrozenILPolicy)
    # A whole SB3 model zip works as well (here: another IBRL model's hybrid... its RL actor)
    donor = small_ibrl()
    donor.save(tmp_path / "donor.zip")
    donor.policy.set_training_mode(False)
    from_zip = small_ibrl(il_policy=str(tmp_path / "donor.zip"))
    assert th.allclose(from_zip.il_policy(obs), donor.actor(obs).detach(), atol=1e-6)
    (tmp_path / "garbage.pth").write_bytes(b"not a policy")
    with pytest.raises(ValueError, match="Could not load"):
        small_ibrl(il_policy=str(tmp_path / "garbage.pth"))


def test_success_from_info_reaches_sb3_logging():
    import sb3_ibrl.envs  # noqa: F401
    from sb3_ibrl.envs import PointGoalExpert

    expert = PointGoalExpert(seed=0)
    il = lambda obs: th.as_tensor(expert(obs.cpu().numpy()), dtype=th.float32)  # noqa: E731
    # Warm-up rolls out the IL policy (here: the scripted expert), whose episodes succeed
    model = small_ibrl(env="PointGoal-v0", il_policy=il, learning_starts=400)
    model.learn(400)
    assert len(model.ep_success_buffer) >= 3
    assert np.mean(model.ep_success_buffer) >= 0.75
    assert model.il_action_fraction == 1.0


def test_load_without_the_il_policy(tmp_path):
    model = small_ibrl(il_policy=LinearIL(), learning_starts=40)
    model.learn(60)
    model.save(tmp_path / "model.zip")
    # Where the IL policy's code is not at hand, skip it: the model loads as its RL actor
    loaded = IBRL.load(tmp_path / "model.zip", custom_objects={"il_policy": None})
    assert loaded.il_policy is None and loaded.policy.il_policy is None
    obs = np.stack([model.observation_space.sample() for _ in range(8)])
    expected, _ = model.predict(obs, deterministic=True, rl_only=True)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], expected)


def test_vec_normalize_with_il_policy_warns():
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    env = VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]), norm_obs=True)
    with pytest.warns(UserWarning, match="normalized"):
        small_ibrl(env=env, il_policy=LinearIL())
