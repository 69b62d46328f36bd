"""
The IL policy's own observations: from a Dict observation, the RL networks read some keys and the IL policy others,
e.g. RL from the low-dimensional state and IL from the wrist camera (the paper's state-based robomimic runs use a
pixel BC policy), or RL from one camera and IL from another.

:class:`ILObservationSplit` wraps the vectorized env that ``IBRL(il_obs_keys=[...])`` learns from: its observation
space is the RL part (a Box when one key is left, else a Dict), and it keeps the IL part of the latest observations
(``il_observations``; ``infos[i]["terminal_il_observation"]`` at episode ends) for the IL policy, whose actions are
cached with the transitions: the IL observations never enter the replay buffer.
"""

from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

Obs = Union[np.ndarray, dict[str, np.ndarray]]


def split_spaces(
    observation_space: spaces.Space, il_keys: Sequence[str], rl_keys: Optional[Sequence[str]] = None
) -> tuple[list[str], list[str], spaces.Space, spaces.Space]:
    """
    Check the keys against a Dict space and give the RL and IL parts.

    :param observation_space: the env's observation space (a Dict)
    :param il_keys: the keys the IL policy reads
    :param rl_keys: the keys the RL networks read (default: every key that is not an IL key)
    :return: the RL keys, the IL keys, the RL space and the IL space (a key alone: its Box; several: a Dict)
    """
    if not isinstance(observation_space, spaces.Dict):
        raise ValueError(f"il_obs_keys needs a Dict observation space (the keys each side reads), got {observation_space}")
    il_keys = list(il_keys)
    available = sorted(observation_space.spaces)
    if not il_keys or any(key not in observation_space.spaces for key in il_keys):
        raise ValueError(f"il_obs_keys={il_keys} must name keys of the observation space, which has {available}")
    rl_keys = [key for key in available if key not in il_keys] if rl_keys is None else list(rl_keys)
    if not rl_keys or any(key not in observation_space.spaces for key in rl_keys):
        raise ValueError(f"The RL networks need keys of the observation space {available}, got {rl_keys}")

    def part(keys: list[str]) -> spaces.Space:
        return observation_space[keys[0]] if len(keys) == 1 else spaces.Dict({key: observation_space[key] for key in keys})

    return rl_keys, il_keys, part(rl_keys), part(il_keys)


def take(obs: Any, keys: Sequence[str]) -> Any:
    """The part of a Dict observation (or batch) with these keys: the array of a key alone, else a dict."""
    return obs[keys[0]] if len(keys) == 1 else {key: obs[key] for key in keys}


class ILObservationSplit(VecEnvWrapper):
    """
    A vectorized env whose observations are the RL part of a Dict observation; the IL part of the latest observations
    is ``il_observations`` (and ``infos[i]["terminal_il_observation"]`` where an episode ended).

    :param venv: the vectorized env (Dict observations)
    :param il_keys: the keys the IL policy reads
    :param rl_keys: the keys the RL networks read (default: the others)
    """

    def __init__(self, venv: VecEnv, il_keys: Sequence[str], rl_keys: Optional[Sequence[str]] = None):
        self.rl_keys, self.il_keys, rl_space, self.il_observation_space = split_spaces(
            venv.observation_space, il_keys, rl_keys
        )
        super().__init__(venv, observation_space=rl_space)
        self.il_observations: Optional[Obs] = None

    def reset(self) -> Any:
        obs = self.venv.reset()
        self.il_observations = take(obs, self.il_keys)
        return take(obs, self.rl_keys)

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        for info in infos:
            if info.get("terminal_observation") is not None:
                terminal = info["terminal_observation"]
                info["terminal_il_observation"] = take(terminal, self.il_keys)
                info["terminal_observation"] = take(terminal, self.rl_keys)
        self.il_observations = take(obs, self.il_keys)
        return take(obs, self.rl_keys), rewards, dones, infos


def split_env(env: Any, il_keys: Sequence[str], verbose: int = 0) -> ILObservationSplit:
    """An env (id, gym env or VecEnv) as SB3 would wrap it, then split: what ``IBRL(il_obs_keys=...)`` learns from."""
    from stable_baselines3.common.base_class import BaseAlgorithm, maybe_make_env

    found = find_split(env)
    if found is not None:
        if list(found.il_keys) != list(il_keys):
            raise ValueError(f"The env already gives the IL policy {found.il_keys}, not il_obs_keys={list(il_keys)}")
        return env
    return ILObservationSplit(BaseAlgorithm._wrap_env(maybe_make_env(env, verbose), verbose), il_keys)


def find_split(env: Any) -> Optional[ILObservationSplit]:
    """The :class:`ILObservationSplit` in a chain of VecEnv wrappers, or ``None``."""
    while env is not None:
        if isinstance(env, ILObservationSplit):
            return env
        env = getattr(env, "venv", None)
    return None
