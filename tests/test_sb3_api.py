"""SB3's API as SB3 users write it, with IBRL: custom features extractors, saving / loading the policy alone."""

import threading

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import TD3
from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback, EvalCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
from torch import nn

import sb3_ibrl  # noqa: F401  (registers PointGoal-v0)
from sb3_ibrl import IBRL
from sb3_ibrl.ibrl.losses import actor_loss, critic_loss
from sb3_ibrl.ibrl.policies import IBRLActor, IBRLPolicy

TINY = dict(learning_starts=20, batch_size=8, gradient_steps=1, policy_delay=1, buffer_size=500, seed=0)
TINY_VIT = dict(encoder_kwargs=dict(embed_dim=16, depth=1, num_heads=2), q_hidden_dim=16, net_arch=[16], n_critics=2)


class MLPExtractor(BaseFeaturesExtractor):
    """A custom extractor for vectors."""

    def __init__(self, observation_space: spaces.Box, features_dim: int = 8):
        super().__init__(observation_space, features_dim)
        self.net = nn.Sequential(nn.Linear(int(np.prod(observation_space.shape)), features_dim), nn.ReLU())

    def forward(self, obs: th.Tensor) -> th.Tensor:
        return self.net(obs.flatten(1))


class SmallCNN(BaseFeaturesExtractor):
    """A custom extractor for (3, 32, 32) images that records what it reads."""

    def __init__(self, observation_space: spaces.Box, features_dim: int = 8):
        super().__init__(observation_space, features_dim)
        self.conv = nn.Sequential(nn.Conv2d(3, 4, 8, stride=8), nn.ReLU(), nn.Flatten(), nn.Linear(64, features_dim))
        self.last_input = th.zeros(0)

    def forward(self, obs: th.Tensor) -> th.Tensor:
        self.last_input = obs.detach().clone()
        return self.conv(obs)


class WrongShape(MLPExtractor):
    def forward(self, obs: th.Tensor) -> th.Tensor:
        return super().forward(obs)[:, None]  # (batch, 1, features_dim)


def il_policy(obs):
    """A plain callable IL policy (pickled by cloudpickle): pushes towards +x."""
    image = obs["image"] if isinstance(obs, dict) else obs
    return th.tensor([[0.9, -0.3]]).repeat(len(image), 1)


def make_model(kind: str, **kwargs):
    state_env = lambda: gym.make("PointGoal-v0")  # noqa: E731
    if kind == "td3":
        return TD3("MlpPolicy", state_env(), policy_kwargs=dict(net_arch=[16]), **TINY)
    if kind == "mlp":
        return IBRL("MlpPolicy", state_env(), il_policy=il_policy, policy_kwargs=dict(net_arch=[16]), **TINY, **kwargs)
    if kind == "custom":
        policy_kwargs = dict(features_extractor_class=MLPExtractor, features_extractor_kwargs=dict(features_dim=6))
        policy_kwargs.update(net_arch=[16])
        return IBRL("MlpPolicy", state_env(), il_policy=il_policy, policy_kwargs=policy_kwargs, **TINY, **kwargs)
    env = gym.make("PointGoal-v0", obs_mode="pixel")
    return IBRL("CnnPolicy", env, il_policy=il_policy, policy_kwargs=TINY_VIT, **TINY, **kwargs)


def sample_obs(model, n: int = 64):
    space = model.observation_space
    space.seed(0)
    return np.stack([space.sample() for _ in range(n)])


def test_custom_extractor_is_the_encoder_the_critic_loss_trains():
    model = make_model("custom")
    extractor = model.policy.critic.encoder.net
    assert isinstance(extractor, MLPExtractor) and model.policy.critic.encoder.kind == "custom"
    assert model.actor.mu[0].in_features == 6 and model.actor.encoder is model.critic.encoder
    params = {id(p) for p in extractor.parameters()}
    assert params <= {id(p) for group in model.critic.optimizer.param_groups for p in group["params"]}
    assert not params & {id(p) for group in model.actor.optimizer.param_groups for p in group["params"]}
    obs = th.as_tensor(sample_obs(model))
    # The actor loss reads the features detached; the critic loss trains the extractor
    actor_loss(model.actor, model.critic, model.policy.encode(obs)).backward()
    assert all(p.grad is None for p in extractor.parameters())
    target = th.zeros(len(obs), 1)
    critic_loss(model.critic, model.policy.encode(obs), th.zeros(len(obs), 2), target)[0].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in extractor.parameters())
    before = [p.detach().clone() for p in extractor.parameters()]
    model.learn(60)
    assert all(not th.equal(b, p) for b, p in zip(before, extractor.parameters()))


@pytest.mark.parametrize("normalize_images", [True, False])
def test_custom_image_extractor_reads_what_td3_gives_it(normalize_images: bool):
    """SB3's normalize_images: uint8 images are divided by 255 before the extractor (or not), as TD3 does."""
    env = gym.make("PointGoal-v0", obs_mode="pixel")
    policy_kwargs = dict(features_extractor_class=SmallCNN, normalize_images=normalize_images, net_arch=[16])
    ibrl = IBRL("CnnPolicy", env, policy_kwargs=policy_kwargs, **TINY)
    td3 = TD3("CnnPolicy", env, policy_kwargs=policy_kwargs, **TINY)
    obs = th.as_tensor(sample_obs(ibrl, 4))
    ibrl.policy.encode(obs)
    td3.actor.extract_features(obs, td3.actor.features_extractor)
    seen, expected = ibrl.critic.encoder.net.last_input, td3.actor.features_extractor.last_input
    assert th.equal(seen, expected) and seen.dtype == th.float32
    assert bool(seen.max() <= 1.0) is normalize_images
    augmented = ibrl.policy.augment(obs)  # IBRL's random shift (augmentation_pad) applies to a custom extractor's images
    assert augmented.shape == obs.shape and not th.equal(augmented, obs.float())
    ibrl.learn(30)  # trains with random-shift augmentation of the images before the extractor
    assert ibrl.critic.encoder.net.last_input.shape == (TINY["batch_size"], 3, 32, 32)


def test_custom_extractor_on_dict_observations():
    env = gym.make("PointGoal-v0", obs_mode="pixel_proprio", image_size=48)
    policy_kwargs = dict(features_extractor_class=CombinedExtractor, features_extractor_kwargs=dict(cnn_output_dim=8))
    model = IBRL("MultiInputPolicy", env, il_policy=il_policy, policy_kwargs={**policy_kwargs, "net_arch": [16]}, **TINY)
    assert model.critic.encoder.flat_dim == 8 + 2  # image features + proprio
    model.learn(30)
    obs = env.observation_space.sample()
    assert model.predict(obs, deterministic=True)[0].shape == (2,)


class VectorDict(gym.ObservationWrapper):
    """PointGoal's state as a Dict of two vectors (no image)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = spaces.Dict(pos=spaces.Box(-1, 1, (2,), np.float32), vel=spaces.Box(-2, 2, (2,), np.float32))

    def observation(self, obs: np.ndarray) -> dict:
        return {"pos": obs[:2], "vel": obs[2:]}


def test_dict_without_image_needs_an_extractor():
    env = VectorDict(gym.make("PointGoal-v0"))
    with pytest.raises(ValueError, match=r"exactly one image.*features_extractor_class=CombinedExtractor"):
        IBRL("MultiInputPolicy", env, **TINY)
    model = IBRL("MultiInputPolicy", env, policy_kwargs=dict(features_extractor_class=CombinedExtractor), **TINY)
    assert model.critic.encoder.flat_dim == 4
    model.learn(30)


@pytest.mark.parametrize(
    "policy_kwargs, error, match",
    [
        (dict(share_features_extractor=False), ValueError, "one observation encoder"),
        (dict(features_extractor_kwargs=dict(features_dim=4)), ValueError, "needs features_extractor_class"),
        (dict(features_extractor_class=MLPExtractor, encoder="flatten"), ValueError, "not both"),
        (dict(features_extractor_class=MLPExtractor, encoder_kwargs=dict(depth=1)), ValueError, "not both"),
        (dict(features_extractor_class=nn.Linear), TypeError, "BaseFeaturesExtractor"),
    ],
)
def test_extractor_options_that_cannot_apply_fail_clearly(policy_kwargs, error, match):
    with pytest.raises(error, match=match):
        IBRL("MlpPolicy", "PointGoal-v0", policy_kwargs=policy_kwargs, **TINY)


def test_extractor_of_the_wrong_output_shape_fails_clearly():
    model = IBRL("MlpPolicy", "PointGoal-v0", policy_kwargs=dict(features_extractor_class=WrongShape), **TINY)
    with pytest.raises(ValueError, match=r"WrongShape returned features of shape \(2, 1, 8\).*features_dim=8"):
        model.predict(sample_obs(model, 2))


@pytest.mark.parametrize("kind", ["td3", "mlp", "custom", "vit"])
def test_policy_save_and_load_alone_predict_the_same(kind: str, tmp_path):
    """``model.policy.save`` / ``Policy.load``, as with SB3's TD3 (the reference): same predictions, IL policy kept."""
    model = make_model(kind)
    model.learn(40)
    obs = sample_obs(model)
    model.policy.save(tmp_path / "policy.pt")
    loaded = type(model.policy).load(tmp_path / "policy.pt")
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    if kind == "td3":
        return
    hybrid = model.predict(obs, deterministic=True)[0]
    assert (hybrid != model.predict(obs, deterministic=True, rl_only=True)[0]).any()  # the IL policy matters here
    assert loaded.il_policy is not None and loaded.proposal_critic == model.policy.proposal_critic
    # The actor alone (the RL actor; SB3's actor.save / Actor.load)
    model.actor.save(tmp_path / "actor.pt")
    actor = IBRLActor.load(tmp_path / "actor.pt")
    np.testing.assert_allclose(actor.predict(obs)[0], model.predict(obs, deterministic=True, rl_only=True)[0], atol=1e-6)


def test_model_with_custom_extractor_saves_and_loads(tmp_path):
    model = make_model("custom")
    model.learn(30)
    model.save(tmp_path / "model.zip")
    loaded = IBRL.load(tmp_path / "model.zip")
    assert isinstance(loaded.critic.encoder.net, MLPExtractor)
    obs = sample_obs(model)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])


def test_policy_saved_or_loaded_without_its_il_policy_acts_with_the_rl_actor(tmp_path):
    model = make_model("mlp")
    obs = sample_obs(model)
    rl_actions = model.predict(obs, deterministic=True, rl_only=True)[0]
    model.policy.save(tmp_path / "no_il.pt", include_il_policy=False)
    with pytest.warns(UserWarning, match="saved without its IL policy"):
        loaded = IBRLPolicy.load(tmp_path / "no_il.pt")
    assert loaded.il_policy is None
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], rl_actions)
    model.policy.save(tmp_path / "il.pt")
    skipped = IBRLPolicy.load(tmp_path / "il.pt", load_il_policy=False)
    assert skipped.il_policy is None
    np.testing.assert_array_equal(skipped.predict(obs, deterministic=True)[0], rl_actions)


def test_il_policy_that_cannot_be_saved_or_loaded_fails_clearly(tmp_path):
    lock = threading.Lock()
    model = make_model("mlp")
    model.policy.il_policy.policy = lambda obs: (lock, th.zeros(len(obs), 2))[1]  # holds a lock: not picklable
    with pytest.raises(ValueError, match=r"cannot be pickled.*include_il_policy=False"):
        model.policy.save(tmp_path / "policy.pt")
    model = make_model("mlp")
    model.policy.save(tmp_path / "policy.pt")
    saved = th.load(tmp_path / "policy.pt", weights_only=False)
    saved["acting"]["il_policy"] = b"\x80\x04\x95not a pickle"  # as if its code were gone
    th.save(saved, tmp_path / "policy.pt")
    with pytest.raises(ValueError, match=r"cannot be loaded.*load_il_policy=False"):
        IBRLPolicy.load(tmp_path / "policy.pt")


def test_vec_normalize_callbacks_and_evaluate_policy(tmp_path):
    """The README's list: VecNormalize, SB3's callbacks and evaluate_policy work with IBRL as with TD3."""
    make_env = lambda: gym.make("PointGoal-v0")  # noqa: E731
    venv = VecNormalize(DummyVecEnv([make_env]), norm_obs=True, norm_reward=True)
    eval_env = VecNormalize(DummyVecEnv([lambda: Monitor(make_env())]), training=False, norm_reward=False)
    model = IBRL("MlpPolicy", venv, policy_kwargs=dict(net_arch=[16]), n_steps=1, **TINY)
    evaluation = EvalCallback(eval_env, eval_freq=50, n_eval_episodes=2, log_path=str(tmp_path), verbose=0)
    checkpoints = CheckpointCallback(
        save_freq=50, save_path=str(tmp_path), name_prefix="ibrl", save_replay_buffer=True, save_vecnormalize=True
    )
    model.learn(120, callback=CallbackList([evaluation, checkpoints]))
    assert len(evaluation.evaluations_results) == 2 and np.isfinite(evaluation.last_mean_reward)
    assert (tmp_path / "ibrl_vecnormalize_100_steps.pkl").exists()
    loaded = IBRL.load(tmp_path / "ibrl_100_steps.zip")
    loaded.load_replay_buffer(tmp_path / "ibrl_replay_buffer_100_steps.pkl")
    assert loaded.num_timesteps == 100 and loaded.replay_buffer.size() == 99  # (SB3 stores the step after callbacks)
    # The buffer keeps raw observations and rewards; sampling normalizes them with the VecNormalize statistics
    np.random.seed(0)
    raw = model.replay_buffer.sample(16)
    np.random.seed(0)
    normalized = model.replay_buffer.sample(16, env=venv)
    np.testing.assert_allclose(normalized.observations.numpy(), venv.normalize_obs(raw.observations.numpy()), rtol=1e-5)
    np.testing.assert_allclose(normalized.rewards.numpy(), venv.normalize_reward(raw.rewards.numpy()), rtol=1e-5)
    assert not np.allclose(normalized.observations.numpy(), raw.observations.numpy())
    mean_reward, _ = evaluate_policy(model, eval_env, n_eval_episodes=2, deterministic=True)
    assert np.isfinite(mean_reward)


def test_what_does_not_apply():
    """The README's "not supported" list: discrete actions fail (as for TD3); optimize_memory_usage changes nothing."""
    with pytest.raises(AssertionError, match="only supports"):  # SB3's check, as for TD3
        IBRL("MlpPolicy", "CartPole-v1", **TINY)
    model = IBRL("MlpPolicy", "PointGoal-v0", optimize_memory_usage=True, **TINY)
    assert not hasattr(model.replay_buffer, "next_observations")  # every frame stored once anyway
