"""The two IBRL ideas and the TD target, computed by hand on tiny batches with critics whose answer is known."""

import itertools

import pytest
import torch as th
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from torch import nn

from sb3_ibrl.ibrl.losses import actor_loss, critic_loss
from sb3_ibrl.ibrl.losses import td_target as ibrl_td_target
from sb3_ibrl.ibrl.proposals import actor_proposal, bootstrap_proposal, min_over_random_subset
from sb3_ibrl.networks.q_networks import Encoded


class LinearCritics(nn.Module):
    """E critics with Q_i(s, a) = scale_i * sum(a) + s[0]: their answer is known in closed form."""

    def __init__(self, scales: list[float]):
        super().__init__()
        self.scales = th.tensor(scales).view(-1, 1, 1)
        self.n_critics = len(scales)
        self.evaluated: list[int] = []

    def q_values(self, encoded: Encoded, actions: th.Tensor, members=None) -> th.Tensor:
        scales = self.scales if members is None else self.scales[members]
        self.evaluated.append(len(scales))
        scales = scales.view(-1, *([1] * actions.ndim))  # (k, [K,] 1, 1)
        return scales * actions.sum(dim=-1, keepdim=True)[None] + encoded.features[:, :1]  # (k, [K,] batch, 1)


class ConstantActor(nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def act(self, encoded: Encoded) -> th.Tensor:
        return th.full((len(encoded.features), 1), self.value)


def td_target(data, actor, critics, il, discounts, target_policy_noise, target_noise_clip):
    """The TD target of a batch whose next observations are their own encoding."""
    next_il = None if il is None else il(data.next_observations)
    encoded = Encoded(data.next_observations, None)
    return ibrl_td_target(
        encoded, next_il, data.rewards, data.dones, discounts, actor, critics, target_policy_noise, target_noise_clip
    )


def test_actor_proposal_greedy_row_by_row():
    q_rl = th.tensor([1.0, 3.0, 2.0])
    q_il = th.tensor([2.0, 2.0, 2.0])
    assert actor_proposal(q_rl, q_il).tolist() == [True, False, False]  # a tie goes to the RL action


def test_actor_proposal_soft():
    th.manual_seed(0)
    q_rl, q_il = th.zeros(4000), th.full((4000,), 0.1)
    # softmax(10 * [0, 0.1]) = [1 / (1 + e), e / (1 + e)]: IL chosen with probability 0.731
    frac = actor_proposal(q_rl, q_il, beta=10.0).float().mean().item()
    assert frac == pytest.approx(th.sigmoid(th.tensor(1.0)).item(), abs=0.03)
    assert actor_proposal(q_rl, q_il, beta=1e4).all()  # a large beta is greedy


def test_bootstrap_proposal_is_max():
    value, use_il = bootstrap_proposal(th.tensor([[1.0], [5.0]]), th.tensor([[2.0], [4.0]]))
    assert value.flatten().tolist() == [2.0, 5.0]
    assert use_il.tolist() == [True, False]


def test_bootstrap_proposal_soft():
    th.manual_seed(0)
    next_q_rl, next_q_il = th.zeros(4000, 1), th.full((4000, 1), 0.1)
    value, use_il = bootstrap_proposal(next_q_rl, next_q_il, beta=10.0)
    # the IL value with probability sigmoid(10 * 0.1) = 0.731, else the RL one: the values follow the mask
    assert use_il.float().mean().item() == pytest.approx(th.sigmoid(th.tensor(1.0)).item(), abs=0.03)
    assert th.equal(value[:, 0], th.where(use_il, 0.1, 0.0))
    assert value.mean().item() < 0.1  # below the max: a soft choice sometimes bootstraps from the lower value


def test_min_over_random_subset_draws_pairs():
    th.manual_seed(0)
    q = th.tensor([3.0, 1.0, 4.0, 1.5, 9.0]).view(5, 1, 1)
    pair_mins = {min(a, b) for a, b in itertools.combinations(q.flatten().tolist(), 2)}
    draws = {min_over_random_subset(q).item() for _ in range(300)}
    assert draws == pair_mins  # every draw is the min of a pair of distinct critics, and all pairs occur
    expected = sum(min(a, b) for a, b in itertools.combinations(q.flatten().tolist(), 2)) / 10
    assert min_over_random_subset(q, deterministic=True).item() == pytest.approx(expected)
    two = th.tensor([2.0, -1.0]).view(2, 1)
    assert min_over_random_subset(two).item() == -1.0 == min_over_random_subset(two, deterministic=True).item()


def _batch(rewards, dones, next_first):
    n = len(rewards)
    return ReplayBufferSamples(
        observations=th.zeros(n, 2),
        actions=th.zeros(n, 1),
        next_observations=th.tensor([[v, 0.0] for v in next_first]),
        dones=th.tensor(dones).view(-1, 1),
        rewards=th.tensor(rewards).view(-1, 1),
    )


def test_td_target_with_bootstrap_proposal_by_hand():
    # Two critics: Q1 = 2 * a + s0, Q2 = 1 * a + s0; min = a + s0 for a > 0, 2a + s0 for a < 0.
    critics = LinearCritics([2.0, 1.0])
    data = _batch(rewards=[0.0, 1.0, 0.0], dones=[0.0, 1.0, 0.0], next_first=[0.5, 0.0, -1.0])
    actor = ConstantActor(-0.5)  # target actor proposes -0.5: min Q = 2 * -0.5 + s0 = s0 - 1
    il = lambda obs: th.full((len(obs), 1), 0.25)  # noqa: E731  IL proposes 0.25: min Q = 0.25 + s0
    target, used_il = td_target(data, actor, critics, il, 0.9, target_policy_noise=0.0, target_noise_clip=0.3)
    # y = r + (1 - d) * 0.9 * max(s0 - 1, s0 + 0.25) = r + (1 - d) * 0.9 * (s0 + 0.25)
    assert target.flatten().tolist() == pytest.approx([0.9 * 0.75, 1.0, 0.9 * -0.75])
    assert used_il.tolist() == [True, True, True]

    # Without the IL policy (the "actor proposal only" ablation), TD3's target: y = r + (1 - d) * 0.9 * (s0 - 1)
    target, used_il = td_target(data, actor, critics, None, 0.9, target_policy_noise=0.0, target_noise_clip=0.3)
    assert target.flatten().tolist() == pytest.approx([0.9 * -0.5, 1.0, 0.9 * -2.0])
    assert not used_il.any()


def test_td_target_evaluates_a_random_pair_of_five():
    th.manual_seed(0)
    critics = LinearCritics([1.0, 2.0, 3.0, 4.0, 5.0])
    data = _batch(rewards=[0.0], dones=[0.0], next_first=[0.0])
    il = lambda obs: th.full((len(obs), 1), -1.0)  # noqa: E731  Q_i = -scale_i: min over a pair = -max(pair)
    targets = set()
    for _ in range(200):
        target, _ = td_target(data, ConstantActor(-1.0), critics, il, 1.0, target_policy_noise=0.0, target_noise_clip=0.3)
        targets.add(target.item())
    assert set(critics.evaluated) == {2}  # only the two drawn critics are computed
    assert targets == {-2.0, -3.0, -4.0, -5.0}  # -max of a pair of distinct scales: never -1


def test_td_target_noise_is_clipped_and_action_bounded():
    th.manual_seed(0)
    critics = LinearCritics([1.0, 1.0])
    data = _batch(rewards=[0.0] * 256, dones=[0.0] * 256, next_first=[0.0] * 256)
    # Target actor at 0.9 plus noise clipped to 0.3, then clamped to 1: next action in [0.6, 1.0]
    target, _ = td_target(data, ConstantActor(0.9), critics, None, 1.0, target_policy_noise=10.0, target_noise_clip=0.3)
    assert target.min().item() == pytest.approx(0.6) and target.max().item() == pytest.approx(1.0)


def test_critic_and_actor_losses_by_hand():
    critics = LinearCritics([2.0, 1.0])
    data = _batch(rewards=[0.0], dones=[0.0], next_first=[0.0])
    data = data._replace(actions=th.tensor([[1.0]]))  # Q = (2, 1)
    loss, current_q = critic_loss(critics, Encoded(data.observations, None), data.actions, th.tensor([[0.0]]))
    assert current_q.flatten().tolist() == [2.0, 1.0]
    assert loss.item() == pytest.approx(4.0 + 1.0)  # sum over critics of the squared error
    # Actor loss: - min_i Q_i(s, pi(s)) with pi(s) = 0.5 -> -min(1.0, 0.5); mean over critics: -0.75
    obs = Encoded(th.zeros(1, 2), None)
    assert actor_loss(ConstantActor(0.5), critics, obs, "min").item() == pytest.approx(-0.5)
    assert actor_loss(ConstantActor(0.5), critics, obs, "mean").item() == pytest.approx(-0.75)
