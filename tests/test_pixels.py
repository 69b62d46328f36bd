"""IBRL from pixels: ViT Q-network, gradient routing of the shared encoder, CnnPolicy / MultiInputPolicy, memory."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from torch.nn import functional as F

import sb3_ibrl  # noqa: F401  (registers PointGoal-v0)
from sb3_ibrl import IBRL
from sb3_ibrl.common.evaluation import record_episodes
from sb3_ibrl.data.buffer_memory import check_buffer_memory, transition_bytes
from sb3_ibrl.data.replay_buffer import IBRLReplayBuffer
from sb3_ibrl.envs import PointGoalExpert
from sb3_ibrl.ibrl.losses import actor_loss
from sb3_ibrl.networks.q_networks import Encoded, ObservationEncoder, ViTQHead

TINY_VIT = dict(encoder="vit", encoder_kwargs=dict(embed_dim=16, depth=1, num_heads=2), q_hidden_dim=32, net_arch=[32, 32])
TINY_DRQ = dict(encoder="drq", encoder_kwargs=dict(feature_dim=16, resize=None), net_arch=[32, 32])


def zero_il(obs):
    image = obs["image"] if isinstance(obs, dict) else obs
    return th.zeros(len(image), 2)


def pixel_ibrl(obs_mode="pixel", policy="CnnPolicy", policy_kwargs=None, **kwargs) -> IBRL:
    env = gym.make("PointGoal-v0", obs_mode=obs_mode)
    params = dict(learning_starts=20, batch_size=16, gradient_steps=1, policy_delay=1, buffer_size=1000, seed=0)
    params.update(kwargs)
    return IBRL(policy, env, il_policy=zero_il, policy_kwargs={**TINY_VIT, "n_critics": 2, **(policy_kwargs or {})}, **params)


def test_vit_q_head_shapes_candidates_and_members():
    th.manual_seed(0)
    head = ViTQHead(n_critics=3, n_patches=16, embed_dim=8, proprio_dim=4, action_dim=2, hidden_dim=32, net_arch=[32])
    encoded = Encoded(th.randn(5, 16, 8), th.randn(5, 4))
    first, second = th.rand(5, 2), th.rand(5, 2)
    assert head(encoded, first).shape == (3, 5, 1)
    both = head(encoded, th.stack([first, second]))  # (3, 2, 5, 1): two candidate actions, encoded once
    assert both.shape == (3, 2, 5, 1)
    th.testing.assert_close(both[:, 0], head(encoded, first))
    th.testing.assert_close(both[:, 1], head(encoded, second))
    members = th.tensor([2, 0])
    th.testing.assert_close(head(encoded, first, members), head(encoded, first)[members])
    # The action reaches every channel: changing it changes Q
    assert not th.allclose(head(encoded, first), head(encoded, first + 0.5))


def test_softmax_pooling_weights_sum_to_one_and_release_pooling():
    th.manual_seed(0)
    head = ViTQHead(n_critics=2, n_patches=16, embed_dim=8, proprio_dim=0, action_dim=2, hidden_dim=32, net_arch=[32])
    encoded = Encoded(th.randn(5, 16, 8), None)
    weights = head.pooling_weights(encoded)
    assert weights.shape == (2, 5, 8, 1)  # (members, batch, channels, 1)
    th.testing.assert_close(weights.sum(dim=2), th.ones(2, 5, 1))
    assert (weights > 0).all() and weights.std(dim=2).min() > 0  # a real weighting, not uniform
    # Fig. 2 by hand: append the action to every channel, project with LayerNorm + ReLU, pool, append it again, MLP
    action = th.rand(5, 2)
    channels = th.cat([encoded.features.transpose(1, 2), action[:, None].expand(-1, 8, -1)], dim=2)  # (5, 8, 18)
    hidden = channels[None] @ head.projection.weight[:, None] + head.projection.bias[:, None]  # (2, 5, 8, 32)
    norm = head.projection_norm
    hidden = th.relu(F.layer_norm(hidden, (32,)) * norm.weight[:, None] + norm.bias[:, None])
    pooled = (hidden * weights).sum(dim=2)  # (2, 5, 32)
    expected = head.q_networks(th.cat([pooled, action.expand(2, -1, -1)], dim=2))  # (2, 5, 1)
    th.testing.assert_close(head(encoded, action), expected, rtol=1e-4, atol=1e-5)
    release = ViTQHead(n_critics=2, n_patches=16, embed_dim=8, proprio_dim=0, action_dim=2, hidden_dim=32, pooling="weights")
    assert release.pool_weights.shape == (2, 8, 32) and not hasattr(release, "pool_logits")
    assert release(Encoded(th.randn(5, 16, 8), None), th.rand(5, 2)).shape == (2, 5, 1)
    with pytest.raises(ValueError, match="pooling"):
        ViTQHead(2, 16, 8, 0, 2, pooling="max")


def test_paper_vit_sizes():
    space = spaces.Box(0, 255, (3, 96, 96), np.uint8)
    encoder = ObservationEncoder(space, "vit")  # paper defaults: patch 8, embed 128, depth 3
    assert encoder.features_shape == (144, 128) and len(encoder.net.blocks) == 3
    release = ObservationEncoder(space, "vit", dict(stem="conv", depth=1))
    assert release.features_shape == (121, 128) and len(release.net.blocks) == 1


def test_encoder_is_trained_by_the_critic_only():
    model = pixel_ibrl()
    policy = model.policy
    encoder = policy.critic.encoder
    # One encoder: the targets and the actor hold the online one, and only the critic's optimizer has its weights
    assert (
        policy.critic_target.encoder is encoder and policy.actor.encoder is encoder and policy.actor_target.encoder is encoder
    )
    encoder_ids = {id(p) for p in encoder.parameters()}
    critic_ids = {id(p) for group in policy.critic.optimizer.param_groups for p in group["params"]}
    actor_ids = {id(p) for group in policy.actor.optimizer.param_groups for p in group["params"]}
    assert encoder_ids <= critic_ids and not encoder_ids & actor_ids
    assert not encoder_ids & {id(p) for p in policy.critic_target.target_parameters()}

    model.learn(40)  # fills the buffer and trains
    before = [p.detach().clone() for p in encoder.parameters()]
    actor_before = [p.detach().clone() for p in policy.actor.parameters()]
    data = model.replay_buffer.sample(16)
    policy.critic.optimizer.zero_grad()  # drop the gradients left by the last critic update
    encoded = policy.encode(policy.augment(data.observations))  # with gradients, as in the critic update
    loss = actor_loss(policy.actor, policy.critic, encoded)
    policy.actor.optimizer.zero_grad()
    loss.backward()
    policy.actor.optimizer.step()
    assert all(p.grad is None for p in encoder.parameters())  # no gradient reached the encoder
    assert all(th.equal(a, b) for a, b in zip(before, encoder.parameters()))  # the actor update left it unchanged
    assert any(not th.equal(a, b) for a, b in zip(actor_before, policy.actor.parameters()))
    model.train(gradient_steps=1, batch_size=16)  # a critic update does change it
    assert any(not th.equal(a, b) for a, b in zip(before, encoder.parameters()))


def test_random_shift_on_observations_and_next_observations(monkeypatch):
    model = pixel_ibrl()
    model.learn(30)
    calls = []
    augment = model.policy.critic.encoder.augment
    monkeypatch.setattr(model.policy.critic.encoder, "augment", lambda obs: calls.append(obs) or augment(obs))
    model.train(gradient_steps=1, batch_size=16)
    assert len(calls) == 2  # observations and next observations of the critic update
    images = calls[0]
    shifted = augment(images)
    assert shifted.shape == images.shape and shifted.dtype == th.float32
    assert not th.equal(shifted, images.float())
    state_encoder = ObservationEncoder(spaces.Box(-1, 1, (4,)), "flatten")
    obs = th.randn(3, 4)
    assert state_encoder.augment(obs) is obs


@pytest.mark.parametrize("policy_kwargs", [TINY_VIT, TINY_DRQ, {**TINY_VIT, "pooling": "weights"}])
def test_cnn_policy_learns_saves_and_loads(tmp_path, policy_kwargs):
    model = pixel_ibrl(policy_kwargs=policy_kwargs)
    model.learn(40)
    obs = np.stack([model.observation_space.sample() for _ in range(4)])
    actions, _ = model.predict(obs, deterministic=True, rl_only=True)
    model.save(tmp_path / "model.zip")
    loaded = IBRL.load(tmp_path / "model.zip")
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True, rl_only=True)[0], actions, rtol=1e-5, atol=1e-6)
    assert loaded.policy.encoder_name == policy_kwargs["encoder"]
    assert loaded.policy.critic_target.encoder is loaded.policy.critic.encoder


@pytest.mark.parametrize("obs_mode, policy", [("pixel", "CnnPolicy"), ("pixel_proprio", "MultiInputPolicy")])
def test_channels_last_encoder_trains_like_the_default_and_keeps_its_layout(tmp_path, obs_mode, policy):
    kwargs = {**TINY_VIT, "encoder_kwargs": {**TINY_VIT["encoder_kwargs"], "channels_last": True}}
    nhwc = pixel_ibrl(obs_mode, policy, policy_kwargs=kwargs).learn(40)  # 20 updates
    default = pixel_ibrl(obs_mode, policy).learn(40)  # the same seed: the same data, shifts and dropout
    encoder = nhwc.policy.critic.encoder

    def conv_weights(model: IBRL) -> list[th.Tensor]:
        return [p for p in model.policy.critic.encoder.parameters() if p.ndim == 4]

    assert all(p.is_contiguous(memory_format=th.channels_last) for p in conv_weights(nhwc))  # still, after Adam's steps
    for p, q in zip(conv_weights(default), conv_weights(nhwc)):
        assert not th.equal(p, th.zeros_like(p)) and th.allclose(p, q, atol=1e-4)  # trained alike
    batch = nhwc.replay_buffer.sample(4)
    images = batch.observations if policy == "CnnPolicy" else batch.observations["image"]
    shifted = encoder.augment(batch.observations)
    shifted = shifted if policy == "CnnPolicy" else shifted["image"]
    assert shifted.is_contiguous(memory_format=th.channels_last) and not th.equal(shifted, images.float())
    obs = nhwc.observation_space.sample()
    action = nhwc.predict(obs, deterministic=True, rl_only=True)[0]
    np.testing.assert_allclose(action, default.predict(obs, deterministic=True, rl_only=True)[0], atol=1e-3)
    nhwc.save(tmp_path / "model.zip")
    loaded = IBRL.load(tmp_path / "model.zip")
    assert all(p.is_contiguous(memory_format=th.channels_last) for p in conv_weights(loaded))
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True, rl_only=True)[0], action, rtol=1e-5, atol=1e-6)


def test_channel_last_images_are_transposed_like_sb3():
    env = gym.make("PointGoal-v0", obs_mode="pixel")
    hwc = spaces.Box(0, 255, (32, 32, 3), np.uint8)
    env = gym.wrappers.TransformObservation(env, lambda obs: obs.transpose(1, 2, 0), hwc)
    model = IBRL("CnnPolicy", env, policy_kwargs={**TINY_VIT, "n_critics": 2}, learning_starts=10, batch_size=8, seed=0)
    assert model.observation_space.shape == (3, 32, 32)  # SB3's VecTransposeImage
    model.learn(20)
    action, _ = model.predict(hwc.sample(), deterministic=True)
    assert action.shape == (2,)


def test_multi_input_policy_with_dict_demos():
    env = gym.make("PointGoal-v0", obs_mode="pixel_proprio")
    demos = record_episodes(env, PointGoalExpert(seed=0), 1, seed=0, act_fn_input="state")
    model = pixel_ibrl("pixel_proprio", "MultiInputPolicy", demonstrations=demos)
    assert model.policy.critic.encoder.image_key == "image" and model.policy.critic.encoder.proprio_dim == 2
    buffer = model.replay_buffer
    assert buffer.n_demo_transitions == len(demos[0])
    batch = buffer.demos.sample(8)
    assert batch.observations["image"].dtype == th.uint8 and batch.observations["proprio"].shape == (8, 2)
    model.learn(40)
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (2,)


def test_images_are_stored_once_as_uint8():
    space = spaces.Box(0, 255, (3, 96, 96), np.uint8)
    actions = spaces.Box(-1, 1, (7,), np.float32)
    assert transition_bytes(space, actions) == 3 * 96 * 96 + 4 * 7 + 4 + 3  # + done, timeout and break flags
    buffer = IBRLReplayBuffer(100, space, actions, device="cpu", n_steps=3)
    assert buffer.observations.dtype == np.uint8 and not hasattr(buffer, "next_observations")
    # The default buffer of pixel tasks (300K transitions) takes about 7.7 GiB: it fits a 24 GiB machine
    assert 300_000 * transition_bytes(space, actions) < 8 * 2**30
    frames = [np.full((1, 3, 96, 96), i, np.uint8) for i in range(6)]
    for t in range(5):  # one episode of 5 steps
        buffer.add(frames[t], frames[t + 1], np.zeros((1, 7)), np.zeros(1), np.array([t == 4]), [{}])
    assert len(buffer.final_observations) == 1  # only the episode's last next observation is kept apart
    batch = buffer.sample(64)
    first = batch.observations[:, 0, 0, 0].long()
    expected_next = th.clamp(first + 3, max=5)  # n = 3, cut at the episode's end
    assert th.equal(batch.next_observations[:, 0, 0, 0].long(), expected_next)


def test_too_large_buffer_fails_early():
    space = spaces.Box(0, 255, (3, 96, 96), np.uint8)
    actions = spaces.Box(-1, 1, (7,), np.float32)
    with pytest.raises(MemoryError, match="Lower buffer_size to at most"):
        check_buffer_memory(1_000_000, space, actions, available=24 * 2**30)
    assert check_buffer_memory(300_000, space, actions, available=24 * 2**30) < 24 * 2**30
    with pytest.raises(MemoryError, match="GiB"):
        pixel_ibrl(buffer_size=10**9)


def test_pixel_option_errors():
    with pytest.raises(ValueError, match="encoder"):
        pixel_ibrl(policy_kwargs=dict(encoder="resnet"))
    with pytest.raises(ValueError, match="vector observation"):
        IBRL("MlpPolicy", gym.make("PointGoal-v0", obs_mode="pixel"), buffer_size=100)
    with pytest.raises(ValueError, match="uint8 images"):
        IBRL("CnnPolicy", gym.make("PointGoal-v0"), buffer_size=100)
    with pytest.raises(ValueError, match="exactly one image"):
        ObservationEncoder(spaces.Dict(a=spaces.Box(-1, 1, (2,)), b=spaces.Box(-1, 1, (3,))), "vit")
