"""Issue 14's options: the confident actor proposal, the soft bootstrap, IL warm-up episodes, and the diagnostics."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from ibrl_helpers import FlattenEncoder, small_ibrl
from torch import nn

from sb3_ibrl import IBRL
from sb3_ibrl.data.episodes import Episode
from sb3_ibrl.ibrl.acting import matched
from sb3_ibrl.ibrl.diagnostics import discounted_returns, proposal_values
from sb3_ibrl.ibrl.proposals import confident_proposal
from sb3_ibrl.networks.q_networks import Encoded


def constant_il(value: float = 1.0):
    return lambda obs: th.full((len(obs), 1), value)  # Pendulum's torque, env units: scaled value / 2


class SpreadCritics(nn.Module):
    """E critics with Q_e(s, a) = a * slope_e (actions in [-1, 1]): their spread is set by the slopes."""

    def __init__(self, slopes: list[float]):
        super().__init__()
        self.slopes = th.tensor(slopes).view(-1, 1, 1)
        self.n_critics = len(slopes)
        self.encoder = FlattenEncoder()

    def q_values(self, encoded: Encoded, actions: th.Tensor, members=None) -> th.Tensor:
        slopes = self.slopes if actions.dim() == 2 else self.slopes.unsqueeze(1)
        q_values = slopes * actions[None, ..., :1]  # (n_critics, [2,] batch, 1)
        return q_values if members is None else q_values[members]

    def set_training_mode(self, mode: bool) -> None:
        self.train(mode)


def test_confident_proposal_by_hand():
    # advantages of the RL action by 3 critics: row 0 mean 1.0 std 0.1 (confident), row 1 mean 1.0 std 1.0 (not at k=2),
    # row 2 negative (IL); with one critic there is no spread: any positive advantage
    q_il = th.zeros(3, 3)
    q_rl = th.tensor([[0.9, 0.0, -1.0], [1.0, 1.0, -1.0], [1.1, 2.0, -1.0]])
    assert confident_proposal(q_rl, q_il, 2.0).tolist() == [False, True, True]
    assert confident_proposal(q_rl, q_il, 0.5).tolist() == [False, False, True]
    assert confident_proposal(q_rl, q_il, 0.0).tolist() == [False, False, True]
    assert confident_proposal(q_rl[:1], q_il[:1], 5.0).tolist() == [False, True, True]
    # k = inf: the IL action everywhere, with or without a spread
    assert confident_proposal(q_rl, q_il, float("inf")).tolist() == [True, True, True]
    assert confident_proposal(q_rl[:1], q_il[:1], float("inf")).tolist() == [True, True, True]


def test_deployed_policy_keeps_il_unless_the_critics_agree():
    obs = th.zeros(1, 3)
    # RL action 1.0 (scaled) vs IL 0.5: advantages 0.5 * slope; slopes 1, 1.2, 0.8 -> mean 0.5, std 0.1: confident
    model = small_ibrl(il_policy=constant_il(1.0), proposal_confidence=2.0)
    model.policy.set_training_mode(False)
    model.policy.actor.act = lambda encoded, detach=True: th.ones(len(encoded.features), 1)
    model.policy.critic = SpreadCritics([1.0, 1.2, 0.8])
    assert model.policy.propose(obs, deterministic=True)[1].tolist() == [False]  # the RL action
    # slopes 2, -0.5, 0.5: mean advantage 0.33 > 0, but the critics disagree (std 1.26): the IL action
    model.policy.critic = SpreadCritics([2.0, -0.5, 0.5])
    action, use_il = model.policy.propose(obs, deterministic=True)
    assert use_il.tolist() == [True] and action.tolist() == [[0.5]]
    hybrid, _ = model.predict(obs.numpy(), deterministic=True)
    assert hybrid.tolist() == [[1.0]]  # the IL action, env units
    # The paper's greedy choice scores with the min over pairs of critics (mean over the 3 pairs when deterministic):
    # RL 1.0 * slopes -> pair minima -0.5, 0.5, -0.5; IL 0.5 * slopes -> -0.25, 0.25, -0.25: the IL action is higher
    model.policy.proposal_confidence = 0.0
    assert model.policy.propose(obs, deterministic=True)[1].tolist() == [True]
    model.policy.critic = SpreadCritics([2.0, 1.0, 0.5])  # RL pair minima 1, 0.5, 0.5 beat IL's 0.5, 0.25, 0.25
    assert model.policy.propose(obs, deterministic=True)[1].tolist() == [False]
    model.policy.proposal_confidence = 2.0  # advantages 1, 0.5, 0.25: mean 0.58 < 2 * std 0.76: the IL action
    assert model.policy.propose(obs, deterministic=True)[1].tolist() == [True]


def test_collecting_data_keeps_the_papers_choice():
    # The confidence is for the deployed (deterministic) hybrid; while collecting, the greedy pair-min choice acts
    model = small_ibrl(il_policy=constant_il(1.0), proposal_confidence=100.0)
    model.policy.set_training_mode(False)
    model.policy.actor.act = lambda encoded, detach=True: th.ones(len(encoded.features), 1)
    model.policy.critic = SpreadCritics([2.0, 1.0, 0.5])  # E = 3: every pair favours the RL action
    model.num_timesteps = model.learning_starts
    model._last_obs = np.zeros((1, 3), dtype=np.float32)
    model.action_noise = None
    _, buffer_action = model._sample_action(model.learning_starts, None, 1)
    assert buffer_action.tolist() == [[1.0]] and model.il_action_fraction == 0.0  # the RL action
    assert model.predict(np.zeros((1, 3), dtype=np.float32), deterministic=True)[0].tolist() == [[1.0]]  # deployed: IL


def test_collect_confidently_collects_as_deployed(tmp_path):
    # With collect_confidently, collecting data applies the confidence too (with noise on the RL action) until the
    # hybrid has matched its IL policy; then the paper's greedy choice collects
    model = small_ibrl(il_policy=constant_il(1.0), proposal_confidence=100.0, collect_confidently=True, match_il_episodes=1)
    model.policy.set_training_mode(False)
    model.policy.actor.act = lambda encoded, detach=True: th.ones(len(encoded.features), 1)
    model.policy.critic = SpreadCritics([2.0, 1.0, 0.5])  # E = 3: every pair favours the RL action, not by 100 std
    model.num_timesteps = model.learning_starts
    model._last_obs = np.zeros((1, 3), dtype=np.float32)
    model.action_noise = lambda: np.array([-0.25])  # the noisy RL action 0.75 is still better by every critic
    _, buffer_action = model._sample_action(model.learning_starts, model.action_noise, 1)
    assert buffer_action.tolist() == [[0.5]] and model.il_action_fraction == 1.0  # the IL action
    model._il_returns.append(1.0)
    model.num_timesteps += 1  # after the warm-up
    model._record_returns(np.array([1.0]), np.array([True]))  # a hybrid episode as good as the IL's: matched
    assert model.il_matched and model.policy.proposal_confidence == 0.0
    _, buffer_action = model._sample_action(model.learning_starts, model.action_noise, 1)
    assert buffer_action.tolist() == [[0.75]]  # the noisy RL action
    small_ibrl(il_policy=constant_il(1.0), collect_confidently=True).save(tmp_path / "model.zip")
    assert IBRL.load(tmp_path / "model.zip").collect_confidently is True


def test_default_confidence_is_the_il_policy_until_matched():
    assert small_ibrl(il_policy=constant_il()).proposal_confidence == float("inf")
    assert small_ibrl(il_policy=constant_il(), proposal_beta=10.0).policy.proposal_confidence == float("inf")
    assert small_ibrl(il_policy=constant_il(), proposal_confidence=0.5).policy.proposal_confidence == 0.5


def test_confidence_saved_and_loaded(tmp_path):
    model = small_ibrl(il_policy=constant_il(), proposal_confidence=1.5)
    model.save(tmp_path / "model.zip")
    assert IBRL.load(tmp_path / "model.zip").policy.proposal_confidence == 1.5
    model.policy.save(tmp_path / "policy.pt")
    assert type(model.policy).load(tmp_path / "policy.pt").proposal_confidence == 1.5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(proposal_confidence=-1.0), "proposal_confidence must be a number >= 0"),
        (dict(proposal_confidence="high"), "proposal_confidence must be a number"),
        (dict(bootstrap_beta=0.0), "bootstrap_beta must be a positive number"),
        (dict(il_warmup_episodes=-1), "il_warmup_episodes must be an integer >= 0"),
        (dict(il_warmup_episodes=2.5), "il_warmup_episodes must be an integer >= 0"),
        (dict(match_il_episodes=-1), "match_il_episodes must be an integer >= 0"),
        (dict(match_il_confidence=-0.5), r"match_il_confidence must be a number in \[0, 10\]"),
        (dict(match_il_confidence=float("nan")), "match_il_confidence must be a number"),
        (dict(collect_confidently="yes"), "collect_confidently must be True or False"),
        (dict(il_warmup_episodes=2, warmup="random"), "needs an il_policy and warmup='il'"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        small_ibrl(il_policy=constant_il(), **kwargs)


def test_il_warmup_episodes_need_an_il_policy():
    with pytest.raises(ValueError, match="needs an il_policy"):
        small_ibrl(il_warmup_episodes=1)


def test_il_warmup_episodes_roll_out_il_without_updates():
    # Pendulum episodes last 200 steps: 2 warm-up episodes = 400 IL steps, far past learning_starts=50
    model = small_ibrl(il_policy=constant_il(1.0), il_warmup_episodes=2, learning_starts=50)
    model.learn(399)
    assert model._episode_num == 1 and model._n_updates == 0  # no update during the warm-up
    model.learn(11, reset_num_timesteps=False)  # the step that ends episode 2, then 10 more
    assert np.allclose(model.replay_buffer.actions[:400], 0.5)  # every warm-up action the IL policy's
    assert model._n_updates == 11 * model.gradient_steps  # learning starts as the warm-up ends
    assert model.num_timesteps == 410  # the warm-up steps count as env steps


def test_soft_bootstrap_changes_the_target():
    # With bootstrap_beta the TD target sometimes takes the lower proposal: the mean target drops below the max
    from sb3_ibrl.ibrl.losses import td_target

    class ConstActor(nn.Module):
        def act(self, encoded):
            return th.full((len(encoded.features), 1), 1.0)

    critics = SpreadCritics([1.0, 1.0])
    encoded = Encoded(th.zeros(2000, 3), None)
    il_action = th.full((2000, 1), 0.9)  # Q 0.9 vs the RL action's 1.0
    args = (th.zeros(2000, 1), th.zeros(2000, 1), 1.0, ConstActor(), critics, 0.0, 0.3)
    th.manual_seed(0)
    greedy, used_greedy = td_target(encoded, il_action, *args)
    soft, used_soft = td_target(encoded, il_action, *args, bootstrap_beta=10.0)
    assert th.allclose(greedy, th.ones_like(greedy)) and not used_greedy.any()
    # IL sampled with probability sigmoid(10 * (0.9 - 1.0)) = 0.269
    assert used_soft.float().mean().item() == pytest.approx(0.269, abs=0.03)
    assert soft.mean().item() == pytest.approx(1.0 - 0.1 * 0.269, abs=0.005)


def test_discounted_returns_by_hand():
    np.testing.assert_allclose(discounted_returns(np.array([0.0, 0.0, 1.0]), 0.5), [0.25, 0.5, 1.0])


def test_proposal_values_match_the_critics():
    model = small_ibrl(il_policy=constant_il(1.0), gamma=0.5)
    model.policy.actor.act = lambda encoded, detach=True: th.ones(len(encoded.features), 1)
    model.policy.critic = SpreadCritics([1.0, 3.0])  # E = 2: the min, i.e. slope 1
    episode = Episode(obs=np.zeros((4, 3), dtype=np.float32), acts=np.zeros((3, 1)), rews=np.array([0.0, 0.0, 1.0]))
    values = proposal_values(model, [episode])
    assert values["q_rl"] == pytest.approx(1.0) and values["q_il"] == pytest.approx(0.5)
    assert values["q_rl_minus_il"] == pytest.approx(0.5) and values["il_wins"] == 0.0
    assert values["return"] == pytest.approx((0.25 + 0.5 + 1.0) / 3)
    with pytest.raises(ValueError, match="needs a model with an IL policy"):
        proposal_values(small_ibrl(), [episode])


def test_episode_returns_are_filed_as_monitor_counts_them():
    # learning_starts 400 = 2 Pendulum episodes of the IL policy, then 3 episodes of the hybrid
    model = small_ibrl(il_policy=constant_il(1.0), learning_starts=400, match_il_episodes=2)
    model.learn(1000)
    monitored = [info["r"] for info in model.ep_info_buffer]  # SB3's Monitor: every episode's return, in order
    assert len(monitored) == 5
    np.testing.assert_allclose(list(model._il_returns), monitored[:2], rtol=1e-5)
    np.testing.assert_allclose(list(model._hybrid_returns), monitored[3:], rtol=1e-5)  # the last 2 (maxlen)


def test_deployed_confidence_drops_once_the_hybrid_matches_il(tmp_path):
    model = small_ibrl(il_policy=constant_il(1.0), learning_starts=10, proposal_confidence=3.0, match_il_episodes=2)
    model.num_timesteps = 5  # in the warm-up: two IL episodes of one env (the first began in the warm-up too)
    model._record_returns(np.array([1.0]), np.array([True]))
    model._record_returns(np.array([0.5]), np.array([True]))
    assert list(model._il_returns) == [1.0, 0.5] and model.deployed_confidence == 3.0
    model.num_timesteps = 10  # the last warm-up step: an episode that goes on after the warm-up, played by the IL policy
    model._record_returns(np.array([0.5]), np.array([False]))
    assert model._finishing_il_episodes(1).tolist() == [True]
    model.num_timesteps = 11
    model._record_returns(np.array([0.25]), np.array([True]))  # it ends: an IL return (0.75), whole
    assert list(model._il_returns) == [1.0, 0.5, 0.75] and not model._hybrid_returns
    assert model._finishing_il_episodes(1).tolist() == [False]  # the next episode is the hybrid's
    model.num_timesteps = 12  # hybrid episodes: mean 0.5 < IL's 0.75, then 1.0 >= 0.75
    model._record_returns(np.array([0.0]), np.array([True]))
    model._record_returns(np.array([1.0]), np.array([True]))
    assert not model.il_matched and model.policy.proposal_confidence == 3.0
    model._record_returns(np.array([1.0]), np.array([True]))
    assert model.il_matched and model.deployed_confidence == model.policy.proposal_confidence == 0.0
    model.save(tmp_path / "model.zip")  # the returns are kept: the loaded model deploys the same choice
    loaded = IBRL.load(tmp_path / "model.zip")
    assert list(loaded._il_returns) == [1.0, 0.5, 0.75] and loaded.policy.proposal_confidence == 0.0
    model._record_returns(np.array([0.0]), np.array([True]))  # back below the IL's returns: confident again
    assert model.policy.proposal_confidence == 3.0
    never = small_ibrl(il_policy=constant_il(1.0), proposal_confidence=3.0, match_il_episodes=0)
    never._il_returns.append(0.0)
    never._record_returns(np.array([9.0]), np.array([True]))
    assert not never.il_matched and never.policy.proposal_confidence == 3.0


def test_match_il_confidence_asks_for_a_margin_of_standard_errors(tmp_path):
    # IL warm-up returns 0, 1, 0, 1 (mean 0.5, sd 0.577); hybrid windows of 4 episodes
    model = small_ibrl(il_policy=constant_il(1.0), proposal_confidence=3.0, match_il_episodes=4, match_il_confidence=1.0)
    model._il_returns.extend([0.0, 1.0, 0.0, 1.0])
    model._hybrid_returns.extend([1.0, 0.0, 1.0, 1.0])  # mean 0.75, sd 0.5: 0.25 above the IL's
    stats = model.match_statistics()
    assert stats["il_return_mean"] == 0.5 and stats["il_episodes"] == 4 and stats["hybrid_episodes"] == 4
    assert stats["il_return_sd"] == pytest.approx(np.sqrt(1 / 3)) and stats["hybrid_return_sd"] == pytest.approx(0.5)
    standard_error = np.sqrt(1 / 3 / 4 + 0.25 / 4)  # 0.382: a 0.25 lead is 0.65 standard errors
    assert matched(stats, 0.0) and matched(stats, 0.25 / standard_error - 1e-6)
    assert not matched(stats, 0.25 / standard_error + 1e-6) and not model.il_matched  # needs 1.0
    model.match_il_confidence = 0.0  # the means alone
    assert model.il_matched
    model.match_il_confidence = 1.0
    model.num_timesteps = model.learning_starts + 1  # after the warm-up: the episodes are the hybrid's
    model._record_returns(np.array([1.0]), np.array([True]))  # window 0, 1, 1, 1: a lead of 0.25 + 0.25 / 0.382 sd
    assert model.match_statistics()["hybrid_return_mean"] == 0.75 and not model.il_matched
    for _ in range(2):
        model._record_returns(np.array([1.0]), np.array([True]))  # window 1, 1, 1, 1: mean 1.0, sd 0
    assert model.il_matched and model.policy.proposal_confidence == 0.0  # 0.5 >= 1.0 x 0.289
    model.save(tmp_path / "model.zip")
    assert IBRL.load(tmp_path / "model.zip").match_il_confidence == 1.0
    empty = small_ibrl(il_policy=constant_il(1.0)).match_statistics()
    assert np.isnan(empty["il_return_mean"]) and empty["hybrid_episodes"] == 0 and not matched(empty, 0.0)


@pytest.mark.parametrize("learning_starts", [100, 1])  # 1: only the first step of the 2 envs is the warm-up's
def test_il_warmup_episodes_are_played_to_their_end_by_the_il_policy(learning_starts):
    # 2 envs, Pendulum's 200-step episodes, a warm-up of 100 env steps (50 per env): no episode ends in the warm-up
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    model = small_ibrl(env=env, il_policy=constant_il(1.0), learning_starts=learning_starts, match_il_episodes=2)
    model.learn(800)  # 400 steps per env: the 2 warm-up episodes, then one hybrid episode per env
    choices = np.array(model._il_choices).reshape(-1, 2)  # (steps per env, env): True where the IL action was taken
    assert choices[:200].all()  # the IL policy played each env's first episode to its end, well after the warm-up
    monitored = [info["r"] for info in model.ep_info_buffer]  # SB3's Monitor: the episodes in the order they ended
    assert len(monitored) == 4
    np.testing.assert_allclose(sorted(model._il_returns), sorted(monitored[:2]), rtol=1e-5)  # whole IL episodes
    np.testing.assert_allclose(sorted(model._hybrid_returns), sorted(monitored[2:]), rtol=1e-5)
    assert not choices[200:].all()  # then the actor proposal, with the RL action in some steps


def test_episode_returns_in_env_units_under_vec_normalize():
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    env = VecNormalize(DummyVecEnv([lambda: Monitor(gym.make("Pendulum-v1"))]), norm_obs=False, norm_reward=True)
    model = small_ibrl(env=env, il_policy=constant_il(1.0), learning_starts=200)
    model.learn(400)
    monitored = [info["r"] for info in model.ep_info_buffer]  # the env's own returns, before normalization
    np.testing.assert_allclose([*model._il_returns, *model._hybrid_returns], monitored, rtol=1e-5)
