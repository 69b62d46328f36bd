"""The paper's baselines (RLPD+, SQIL, Pt-Ft) and IBRL's ablations: each does what the paper describes."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from torch import nn

import sb3_ibrl.ibrl.ibrl as ibrl_module
from sb3_ibrl import IBRL, RLPD, SQIL, PtFt
from sb3_ibrl.baselines.ptft import bc_regularizer, soft_q_filter
from sb3_ibrl.baselines.sqil import SQILReplayBuffer
from sb3_ibrl.common.evaluation import record_episodes
from sb3_ibrl.data.episodes import Episode
from sb3_ibrl.data.replay_buffer import IBRLReplayBuffer
from sb3_ibrl.envs import PointGoalExpert
from sb3_ibrl.networks.q_networks import Encoded

SMALL = dict(
    policy_kwargs=dict(net_arch=[32, 32], n_critics=2), learning_starts=50, batch_size=32, gradient_steps=1, policy_delay=1
)


@pytest.fixture(scope="module")
def demos() -> list[Episode]:
    return record_episodes(gym.make("PointGoal-v0"), PointGoalExpert(seed=2), n_episodes=2, seed=2)


def marked_buffer(buffer_class=IBRLReplayBuffer, **kwargs) -> IBRLReplayBuffer:
    """A buffer of 1-dim observations: online ones are -1, demo ones +1, so a batch's origin can be counted."""
    obs_space, act_space = spaces.Box(-2, 2, (1,)), spaces.Box(-1, 1, (1,))
    buffer = buffer_class(1000, obs_space, act_space, device="cpu", n_steps=1, **kwargs)
    demo = Episode(np.ones((11, 1), np.float32), np.zeros((10, 1), np.float32), np.full(10, 0.5, np.float32), True)
    buffer.add_demonstrations([demo], lambda a: a)
    for t in range(200):
        buffer.add(-np.ones((1, 1)), -np.ones((1, 1)), np.zeros((1, 1)), np.ones(1), np.array([t % 50 == 49]), [{}])
    return buffer


def test_rlpd_oversamples_demos_half_of_each_batch_and_has_no_il(demos):
    model = RLPD("MlpPolicy", "PointGoal-v0", demonstrations=demos, seed=0, **SMALL)
    assert model.il_policy is None and model.demo_fraction == 0.5 and model.warmup == "random"
    assert model.replay_buffer.successes is not None  # RLPD+: grows with successful online episodes
    assert any(isinstance(m, nn.Dropout) and m.p == 0.5 for m in model.actor.modules())  # actor dropout, as IBRL
    vanilla = RLPD("MlpPolicy", "PointGoal-v0", demonstrations=demos, oversample_successes=False, **SMALL)
    assert vanilla.replay_buffer.successes is None
    buffer = marked_buffer(demo_fraction=0.5)
    batch = buffer.sample(256)
    assert (batch.observations[:, 0] > 0).sum().item() == 128  # exactly half from the demos
    uniform = marked_buffer(demo_fraction=0.0).sample(2000)
    assert (uniform.observations[:, 0] > 0).float().mean().item() < 0.15  # 10 demo steps among 210: ~5%


def test_rlpd_rejects_il_options_and_zero_fraction(demos):
    with pytest.raises(TypeError, match="no IL policy"):
        RLPD("MlpPolicy", "PointGoal-v0", demonstrations=demos, il_policy=lambda obs: obs[:, :2])
    with pytest.raises(ValueError, match="demo_fraction"):
        RLPD("MlpPolicy", "PointGoal-v0", demonstrations=demos, demo_fraction=0.0)


def test_sqil_rewards_demos_one_and_online_zero():
    buffer = marked_buffer(SQILReplayBuffer, demo_fraction=0.5)
    assert buffer.successes is None  # demos only are oversampled
    assert np.all(buffer.demos.rewards[: buffer.demos.size()] == 1.0)  # relabeled from 0.5
    assert np.all(buffer.rewards[: buffer.size()] == 0.0)  # the env gave 1.0
    batch = buffer.sample(256)
    from_demos = batch.observations[:, 0] > 0
    assert from_demos.sum().item() == 128
    assert th.all(batch.rewards[from_demos] == 1.0) and th.all(batch.rewards[~from_demos] == 0.0)


def test_sqil_model_needs_demos(demos, tmp_path):
    model = SQIL("MlpPolicy", "PointGoal-v0", demonstrations=demos, seed=0, **SMALL)
    assert isinstance(model.replay_buffer, SQILReplayBuffer) and model.il_policy is None
    model.learn(120)
    assert np.all(model.replay_buffer.rewards[: model.replay_buffer.size()] == 0.0)
    with pytest.raises(ValueError, match="demonstrations"):
        SQIL("MlpPolicy", "PointGoal-v0", **SMALL).learn(10)
    with pytest.raises(TypeError, match="replay_buffer_class"):
        SQIL("MlpPolicy", "PointGoal-v0", demonstrations=demos, replay_buffer_class=IBRLReplayBuffer)


def test_bc_regularizer_and_soft_q_filter_values():
    class Actor(nn.Module):
        def act(self, encoded: Encoded, detach: bool = True) -> th.Tensor:
            return encoded.features[:, :2]

    encoded = Encoded(th.tensor([[0.0, 0.0], [1.0, 1.0]]), None)
    demo_actions = th.tensor([[1.0, 0.0], [1.0, -1.0]])
    # ||a - pi(s)||^2 per row: 1 and 4 -> mean 2.5
    assert bc_regularizer(Actor(), encoded, demo_actions).item() == pytest.approx(2.5)

    class Critics:  # Q(s, a) = sum(a) for critic 0, sum(a) - 1 for critic 1: the min is sum(a) - 1
        def q_values(self, encoded: Encoded, actions: th.Tensor) -> th.Tensor:
            q = actions.sum(dim=-1, keepdim=True)
            return th.stack([q, q - 1.0])

    bc_action = th.tensor([[1.0], [0.0], [0.5], [-1.0]])
    rl_action = th.tensor([[0.0], [0.0], [0.9], [-2.0]])
    # Q(pi_BC) > Q(pi_RL) on rows 0 and 3 (ties go to RL): lambda = 0.5
    assert soft_q_filter(Critics(), Encoded(th.zeros(4, 1), None), bc_action, rl_action).item() == pytest.approx(0.5)


def test_ptft_pretrains_the_actor_on_the_demos(demos):
    model = PtFt(
        "MlpPolicy", "PointGoal-v0", demonstrations=demos, pretrain_steps=600, pretrain_learning_rate=1e-3, seed=0, **SMALL
    )
    obs = th.as_tensor(np.concatenate([ep.obs[:-1] for ep in demos]))
    target = th.as_tensor(model.policy.scale_action(np.concatenate([ep.acts for ep in demos])))
    model.policy.set_training_mode(False)
    before = ((model.actor(obs) - target) ** 2).mean().item()
    losses = model.pretrain()
    model.policy.set_training_mode(False)
    after = ((model.actor(obs) - target) ** 2).mean().item()
    assert len(losses) == 600 and after < before / 4, (before, after)
    assert all(th.equal(p, q) for p, q in zip(model.actor.parameters(), model.actor_target.parameters()))
    assert all(th.equal(p, q) for p, q in zip(model.actor.parameters(), model.bc_actor.parameters()))
    assert not any(p.requires_grad for p in model.bc_actor.parameters())
    # It acts with the pretrained actor from the first step (no random warm-up): the action is the actor's + noise 0.1
    model._last_obs = obs[:1].numpy()
    _, buffer_action = model._sample_action(learning_starts=10_000, action_noise=model.action_noise)
    assert np.abs(buffer_action - model.actor(obs[:1]).detach().numpy()).max() < 0.6


@pytest.mark.parametrize("schedule", ["fixed", "soft_q_filter"])
def test_ptft_actor_objective_adds_weighted_bc_term(demos, schedule):
    model = PtFt(
        "MlpPolicy",
        "PointGoal-v0",
        demonstrations=demos,
        bc_weight=3.0,
        bc_schedule=schedule,
        pretrain_steps=50,
        seed=0,
        **SMALL,
    )
    model.pretrain()
    model.learn(100)  # some RL updates: pi and pi_BC differ
    data = model.replay_buffer.sample(32)
    demo_batch = model.replay_buffer.demos.sample(32)
    model._demo_batch = lambda batch_size: demo_batch
    model.policy.set_training_mode(False)  # no dropout: the actor is deterministic for the comparison
    encoded = model.policy.encode(data.observations)
    total = model._actor_objective(encoded, data).item()
    rl = ibrl_module.actor_loss(model.actor, model.critic, encoded).item()
    bc = bc_regularizer(model.actor, model.policy.encode(demo_batch.observations), demo_batch.actions).item()
    weight = 1.0
    if schedule == "soft_q_filter":
        bc_action = model.bc_actor(data.observations)
        weight = soft_q_filter(model.critic, encoded, bc_action, model.actor.act(encoded)).item()
    assert total == pytest.approx(rl + 3.0 * weight * bc, rel=1e-5)


def test_ptft_save_load_does_not_pretrain_again(demos, tmp_path):
    model = PtFt("MlpPolicy", "PointGoal-v0", demonstrations=demos, pretrain_steps=20, seed=0, **SMALL)
    model.learn(60)
    model.save(tmp_path / "ptft.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    loaded = PtFt.load(tmp_path / "ptft.zip", env=gym.make("PointGoal-v0"))
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    assert loaded.pretrained and loaded.bc_actor is not None
    loaded.pretrain = lambda *args: pytest.fail("pretrained twice")
    loaded.learn(20, reset_num_timesteps=False)
    with pytest.raises(ValueError, match="bc_schedule"):
        PtFt("MlpPolicy", "PointGoal-v0", demonstrations=demos, bc_schedule="linear")


@pytest.mark.parametrize("bootstrap", [True, False])
def test_actor_proposal_only_ablation_drops_il_from_the_target(demos, monkeypatch, bootstrap):
    seen = []
    original = ibrl_module.td_target

    def spy(next_encoded, next_il_action, *args, **kwargs):
        seen.append(next_il_action)
        return original(next_encoded, next_il_action, *args, **kwargs)

    monkeypatch.setattr(ibrl_module, "td_target", spy)
    il = lambda obs: obs[:, 2:4] * 0.0 + 0.3  # noqa: E731
    model = IBRL(
        "MlpPolicy", "PointGoal-v0", il_policy=il, demonstrations=demos, bootstrap_proposal=bootstrap, seed=0, **SMALL
    )
    model.learn(80)
    assert seen and all((action is not None) == bootstrap for action in seen)
    assert model.il_action_fraction >= 0  # the actor proposal still uses the IL policy
    assert len(model._il_choices) > 0
