"""The IBRL replay buffer: n-step returns, truncation vs termination, permanent demos, oversampling."""

import numpy as np
import pytest
import torch as th
from gymnasium import spaces

from sb3_ibrl.data.episodes import Episode
from sb3_ibrl.data.replay_buffer import IBRLReplayBuffer

OBS = spaces.Box(-np.inf, np.inf, (1,), np.float32)
ACT = spaces.Box(-1, 1, (1,), np.float32)


def make_buffer(**kwargs) -> IBRLReplayBuffer:
    params = dict(buffer_size=100, observation_space=OBS, action_space=ACT, device="cpu", n_steps=3, gamma=0.5)
    params.update(kwargs)
    return IBRLReplayBuffer(**params)


def add_episode(buffer, start, length, truncated=False, success=False, reward_last=1.0):
    for t in range(length):
        last = t == length - 1
        info = {"TimeLimit.truncated": last and truncated, "is_success": last and success}
        buffer.add(
            np.array([[start + t]], dtype=np.float32),
            np.array([[start + t + 1]], dtype=np.float32),
            np.zeros((1, 1)),
            np.array([reward_last if last else 0.0]),
            np.array([last]),
            [info],
        )


def sample_rows(buffer, obs_values):
    """Sample every transition whose observation is in ``obs_values`` and index the result by observation."""
    batch = buffer.sample(2000)
    rows = {}
    for i, obs in enumerate(batch.observations.flatten().tolist()):
        rows[obs] = (
            batch.rewards[i].item(),
            batch.dones[i].item(),
            batch.discounts[i].item(),
            batch.next_observations[i].item(),
        )
    return {k: rows[k] for k in obs_values}


def test_n_step_return_terminal_and_truncated():
    np.random.seed(0)
    buffer = make_buffer()
    add_episode(buffer, start=0, length=5)  # terminal, reward 1 on the last step (obs 4)
    add_episode(buffer, start=100, length=4, truncated=True, reward_last=0.0)  # time limit
    rows = sample_rows(buffer, [0.0, 2.0, 3.0, 4.0, 101.0, 102.0, 103.0])
    # Mid-episode: 3 steps of zero reward, bootstrap gamma^3 from obs 3
    assert rows[0.0] == (0.0, 0.0, 0.125, 3.0)
    # Steps 2, 3, 4: r = 0 + 0.5 * 0 + 0.25 * 1, terminal (no bootstrap)
    assert rows[2.0] == (0.25, 1.0, 0.125, 5.0)
    assert rows[3.0] == (0.5, 1.0, 0.25, 5.0)
    assert rows[4.0] == (1.0, 1.0, 0.5, 5.0)
    # Truncated episode: stops at the cut but keeps bootstrapping (done = 0)
    assert rows[102.0] == (0.0, 0.0, 0.25, 104.0)
    assert rows[103.0] == (0.0, 0.0, 0.5, 104.0)
    assert rows[101.0] == (0.0, 0.0, 0.125, 104.0)


def test_demos_are_permanent_and_uniform_with_online_data():
    np.random.seed(0)
    buffer = make_buffer(buffer_size=10, n_steps=1)
    demo = Episode(obs=np.full((11, 1), -5.0), acts=np.zeros((10, 1)), rews=np.r_[np.zeros(9), 1.0])
    buffer.add_demonstrations([demo], scale_action=lambda a: a)
    for _ in range(5):  # 50 online transitions through a buffer of 10: the demos must survive
        add_episode(buffer, start=0, length=10, reward_last=0.0)
    assert buffer.n_demo_transitions == 10 and buffer.size() == 10
    batch = buffer.sample(4000)
    demo_share = (batch.observations == -5.0).float().mean().item()
    assert demo_share == pytest.approx(0.5, abs=0.04)  # 10 demo vs 10 online transitions


def test_demo_episode_truncation_kept():
    buffer = make_buffer(n_steps=1)
    truncated = Episode(obs=np.arange(4.0)[:, None], acts=np.zeros((3, 1)), rews=np.zeros(3), terminal=False)
    terminal = Episode(obs=np.arange(10.0, 13.0)[:, None], acts=np.zeros((2, 1)), rews=[0.0, 1.0], terminal=True)
    buffer.add_demonstrations([truncated, terminal], scale_action=lambda a: a)
    batch = buffer.demos.sample(500)
    done_by_obs = dict(zip(batch.observations.flatten().tolist(), batch.dones.flatten().tolist()))
    assert done_by_obs[2.0] == 0.0  # last step of a truncated demo: bootstrapped
    assert done_by_obs[11.0] == 1.0  # last step of a successful demo: terminal
    # Adding more demos keeps the earlier ones
    buffer.add_demonstrations([terminal], scale_action=lambda a: a)
    assert buffer.n_demo_transitions == 7


def test_oversampling_demos_and_successful_episodes():
    np.random.seed(0)
    buffer = make_buffer(n_steps=1, demo_fraction=0.5)
    demo = Episode(obs=np.full((3, 1), -5.0), acts=np.zeros((2, 1)), rews=[0.0, 1.0])
    buffer.add_demonstrations([demo], scale_action=lambda a: a)
    add_episode(buffer, start=0, length=20, success=False, reward_last=0.0)
    add_episode(buffer, start=1000, length=4, success=True)
    assert buffer.n_success_transitions == 4  # only the successful episode is copied
    batch = buffer.sample(256)
    obs = batch.observations.flatten()
    from_prior = ((obs == -5.0) | (obs >= 1000)).sum().item()
    # Half the batch from demos + successes (last); the online half may also draw the success episode rows
    assert 128 <= from_prior < 128 + 40
    assert th.all((batch.observations[128:] == -5.0) | (batch.observations[128:] >= 1000))


def test_sampling_empty_buffer_fails_clearly():
    with pytest.raises(RuntimeError, match="empty replay buffer"):
        make_buffer().sample(4)
