"""``replay_buffer.add`` as SB3 users call it: any sequence of transitions, compared with SB3's own buffers."""

import pickle

import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer

from sb3_ibrl.data.nstep_buffer import NStepBuffer
from sb3_ibrl.data.replay_buffer import IBRLReplayBuffer

ACT = spaces.Box(-1, 1, (2,), np.float32)
SPACES = {
    "vector": spaces.Box(-10, 10, (2,), np.float32),
    "image": spaces.Box(0, 255, (1, 3, 3), np.uint8),
    "dict": spaces.Dict(image=spaces.Box(0, 255, (1, 3, 3), np.uint8), state=spaces.Box(-10, 10, (2,), np.float32)),
}


def random_obs(space: spaces.Space, n_envs: int, rng: np.random.Generator):
    """Observations from a small set of values, so that unrelated transitions sometimes share an observation."""
    if isinstance(space, spaces.Dict):
        return {key: random_obs(sub, n_envs, rng) for key, sub in space.spaces.items()}
    return rng.integers(0, 3, (n_envs, *space.shape)).astype(space.dtype)


def pick(obs, mask: np.ndarray, new):
    """``obs`` with the rows of envs in ``mask`` taken from ``new``."""
    if isinstance(obs, dict):
        return {key: pick(obs[key], mask, new[key]) for key in obs}
    return np.where(mask.reshape(-1, *[1] * (obs.ndim - 1)), new, obs)


def random_transitions(space: spaces.Space, n_envs: int, n_steps: int, seed: int) -> list[tuple]:
    """
    Transitions as ``add`` receives them: runs of consecutive steps, broken at random (a new ``obs`` that is not
    the previous ``next_obs``), episode ends (terminal or time limit) and "TimeLimit.truncated" without an end.
    """
    rng = np.random.default_rng(seed)
    obs, steps = random_obs(space, n_envs, rng), []
    for t in range(n_steps):
        next_obs = random_obs(space, n_envs, rng)
        action = rng.uniform(-1, 1, (n_envs, 2)).astype(np.float32)  # unique: identifies the transition
        reward = rng.normal(size=n_envs).astype(np.float32)
        done = (rng.random(n_envs) < 0.1) | (np.arange(n_envs) == t % 5)
        infos = [{"TimeLimit.truncated": bool(truncated)} for truncated in rng.random(n_envs) < 0.4]
        steps.append((obs, next_obs, action, reward, done, infos))
        broken = (rng.random(n_envs) < 0.3) | (t % 4 == 1)
        obs = pick(next_obs, done | broken, random_obs(space, n_envs, rng))
    return steps


def key_of(obs, i: int) -> tuple:
    if isinstance(obs, dict):
        return tuple(key_of(obs[key], i) for key in sorted(obs))
    return tuple(np.asarray(obs[i], dtype=np.float64).ravel().round(5).tolist())


def transition_set(batch) -> set:
    """The distinct (obs, action, reward, next_obs, done) of a batch of samples."""
    to_np = lambda x: {k: v.cpu().numpy() for k, v in x.items()} if isinstance(x, dict) else x.cpu().numpy()  # noqa: E731
    obs, next_obs = to_np(batch.observations), to_np(batch.next_observations)
    actions, rewards, dones = (to_np(x) for x in (batch.actions, batch.rewards, batch.dones))
    return {
        (key_of(obs, i), key_of(actions, i), round(float(rewards[i, 0]), 5), key_of(next_obs, i), float(dones[i, 0]))
        for i in range(len(actions))
    }


@pytest.mark.parametrize("kind", sorted(SPACES))
@pytest.mark.parametrize("n_envs", [1, 3])
def test_any_sequence_of_transitions_samples_as_sb3(kind: str, n_envs: int):
    """n_steps=1: the set of transitions sampled is exactly SB3's, also after the buffers wrap around."""
    space = SPACES[kind]
    sb3_class = DictReplayBuffer if kind == "dict" else ReplayBuffer
    ours = IBRLReplayBuffer(9 * n_envs, space, ACT, device="cpu", n_envs=n_envs, n_steps=1)
    # As many rows per env as ours (SB3's buffer_size is the total over envs)
    sb3 = sb3_class(ours.buffer_size * n_envs, space, ACT, device="cpu", n_envs=n_envs, handle_timeout_termination=True)
    for length, seed in ((5, 1), (40, 101)):  # not full, then wrapped around
        for step in random_transitions(space, n_envs, length, seed):
            ours.add(*step)
            sb3.add(*step)
        assert ours.breaks.any() and ours.dones.any()  # the case of the issue is there
        np.random.seed(seed)
        expected = transition_set(sb3.sample(3000))
        assert len(expected) == sb3.size() * n_envs == ours.size() * n_envs  # every transition, each once
        assert transition_set(ours.sample(3000)) == expected


def n_step_reference(steps: list[tuple], n: int, gamma: float) -> dict[tuple, tuple]:
    """n-step (return, discount, done, next obs) of every transition of one env, computed from the added sequence."""
    out = {}
    for i, (_, _, action, _, _, _) in enumerate(steps):
        ret, j = 0.0, i
        while True:
            _, next_obs, _, reward, done, infos = steps[j]
            ret += gamma ** (j - i) * float(reward[0])
            linked = j + 1 < len(steps) and key_of(steps[j + 1][0], 0) == key_of(next_obs, 0)
            if done[0] or not linked or j - i + 1 == n:
                terminal = float(done[0] and not infos[0]["TimeLimit.truncated"])
                out[key_of(action, 0)] = (round(ret, 4), round(gamma ** (j - i + 1), 4), terminal, key_of(next_obs, 0))
                break
            j += 1
    return out


def test_n_step_returns_stop_at_breaks_without_terminal():
    steps = random_transitions(SPACES["vector"], 1, 60, seed=3)
    buffer = IBRLReplayBuffer(100, SPACES["vector"], ACT, device="cpu", n_steps=3, gamma=0.5)
    for step in steps:
        buffer.add(*step)
    assert buffer.breaks.any() and buffer.dones.any()
    batch = buffer.sample(4000)
    got = {
        key_of(batch.actions.numpy(), i): (
            round(batch.rewards[i, 0].item(), 4),
            round(batch.discounts[i, 0].item(), 4),
            batch.dones[i, 0].item(),
            key_of(batch.next_observations.numpy(), i),
        )
        for i in range(len(batch.actions))
    }
    assert got == n_step_reference(steps, 3, 0.5)


def add(buffer, obs, next_obs, done=False, reward=1.0, **info):
    buffer.add(np.array([[obs]], np.float32), np.array([[next_obs]], np.float32), np.zeros((1, 1)), [reward], [done], [info])


def test_unrelated_transitions_keep_their_next_observation():
    """The issue's example: A -> B then C -> D (neither done) used to be sampled as (A, D), (C, D)."""
    buffer = IBRLReplayBuffer(10, spaces.Box(-10, 10, (1,)), spaces.Box(-1, 1, (1,)), device="cpu", n_steps=3, gamma=0.5)
    add(buffer, 1.0, 2.0)
    add(buffer, 3.0, 4.0)
    add(buffer, 4.0, 5.0)  # consecutive: no break
    batch = buffer._get_samples(np.array([0, 1, 2]))
    assert batch.next_observations.flatten().tolist() == [2.0, 5.0, 5.0]
    assert batch.rewards.flatten().tolist() == [1.0, 1.5, 1.0]  # A -> B stops at B; C -> D -> E runs on
    assert batch.dones.flatten().tolist() == [0.0, 0.0, 0.0]  # a break is not terminal
    assert buffer.breaks[:3, 0].tolist() == [True, False, False]


def test_break_splits_episodes_and_successes():
    buffer = IBRLReplayBuffer(
        20, spaces.Box(-10, 10, (1,)), spaces.Box(-1, 1, (1,)), device="cpu", demo_fraction=0.5, n_steps=1
    )
    add(buffer, 0.0, 1.0)
    add(buffer, 1.0, 2.0)
    add(buffer, 5.0, 6.0)  # a new run: the two rows before belong to no complete episode
    add(buffer, 6.0, 7.0, done=True, is_success=True)
    (episode,) = buffer.episodes()
    assert episode.obs.flatten().tolist() == [5.0, 6.0, 7.0]
    (success,) = buffer.successes.episodes()  # the successful episode is the run after the break alone
    assert success.obs.flatten().tolist() == [5.0, 6.0, 7.0]


def test_overwritten_break_is_cleared():
    buffer = NStepBuffer(2, spaces.Box(-10, 10, (1,)), spaces.Box(-1, 1, (1,)), device="cpu")
    add(buffer, 1.0, 2.0)
    add(buffer, 3.0, 4.0)  # row 0 gets a break
    add(buffer, 4.0, 5.0)  # overwrites row 0
    assert not buffer.breaks.any() and (0, 0) not in buffer.final_observations
    assert transition_set(buffer.sample(200)) == {((3.0,), (0.0,), 1.0, (4.0,), 0.0), ((4.0,), (0.0,), 1.0, (5.0,), 0.0)}


def test_buffer_pickled_before_breaks_loads():
    buffer = NStepBuffer(5, spaces.Box(-10, 10, (1,)), spaces.Box(-1, 1, (1,)), device="cpu")
    add(buffer, 1.0, 2.0)
    del buffer.breaks
    loaded = pickle.loads(pickle.dumps(buffer))
    add(loaded, 2.0, 3.0)
    assert loaded.breaks.shape == loaded.dones.shape and not loaded.breaks.any()


@pytest.mark.parametrize("n_envs", [1, 2])
@pytest.mark.parametrize("flag", [np.array(True), np.array([True]), np.array(False), True, np.bool_(True)])
def test_time_limit_flag_as_numpy_array(n_envs: int, flag):
    space = spaces.Box(-10, 10, (1,), np.float32)
    buffers = [IBRLReplayBuffer(5, space, ACT, device="cpu", n_envs=n_envs, demo_fraction=0.5)]
    if n_envs == 1 or np.ndim(flag) == 0:  # SB3 does not take a 1-element array per env with several envs
        buffers.append(ReplayBuffer(5, space, ACT, device="cpu", n_envs=n_envs))
    for buffer in buffers:
        buffer.add(
            np.zeros((n_envs, 1)), np.ones((n_envs, 1)), np.zeros((n_envs, 2)), np.zeros(n_envs), np.ones(n_envs, bool),
            [{"TimeLimit.truncated": flag, "is_success": True}] * n_envs,
        )  # fmt: skip
        assert buffer.timeouts[0].tolist() == [bool(np.asarray(flag).item())] * n_envs
    assert buffers[0].successes.episodes()[0].terminal is not bool(np.asarray(flag).item())


def test_time_limit_flag_of_several_values_fails_clearly():
    buffer = IBRLReplayBuffer(5, spaces.Box(-10, 10, (1,), np.float32), ACT, device="cpu")
    with pytest.raises(ValueError, match=r"TimeLimit\.truncated"):
        buffer.add(np.zeros((1, 1)), np.ones((1, 1)), np.zeros((1, 2)), [0.0], [True], [{"TimeLimit.truncated": [1, 0]}])
