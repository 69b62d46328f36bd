"""
Behaviour cloning with the ``imitation`` library: the IL policy that IBRL bootstraps from.

``imitation`` is an optional dependency that must be installed without its pins (they downgrade
SB3 and gymnasium): ``pip install --no-deps imitation==1.0.1 tqdm``.
"""

import warnings
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy

from sb3_ibrl.common.demos import DemoSource, Episode, check_episodes, to_episodes

IMITATION_INSTALL = "pip install --no-deps imitation==1.0.1 tqdm"


def import_bc() -> Any:
    """Import ``imitation.algorithms.bc`` or fail with the command that installs it safely."""
    try:
        from imitation.algorithms import bc
    except ImportError as error:
        raise ImportError(
            f"Behaviour cloning needs the `imitation` library. Install it without its pins (they would "
            f"downgrade stable-baselines3 and gymnasium): `{IMITATION_INSTALL}`"
        ) from error
    return bc


def to_imitation_trajectories(episodes: Sequence[Episode]) -> list[Any]:
    """
    Convert episodes to ``imitation.data.types.Trajectory`` objects.

    :param episodes: the demonstrations
    :return: the trajectories
    """
    import_bc()
    from imitation.data.types import TrajectoryWithRew

    return [TrajectoryWithRew(obs=ep.obs, acts=ep.acts, infos=None, terminal=ep.terminal, rews=ep.rews) for ep in episodes]


def train_bc(
    demonstrations: DemoSource,
    observation_space: spaces.Space,
    action_space: spaces.Box,
    n_batches: int = 2000,
    batch_size: int = 256,
    learning_rate: float = 1e-4,
    net_arch: Optional[list[int]] = None,
    seed: int = 0,
    device: str = "auto",
    verbose: int = 0,
) -> Any:
    """
    Train a BC policy with ``imitation``'s ``bc.BC`` (Gaussian NLL; its mean action is the IL action).

    :param demonstrations: demo file path, imitation trajectories or ``Episode`` objects
    :param observation_space: the env's observation space
    :param action_space: the env's action space
    :param n_batches: number of gradient steps
    :param batch_size: minibatch size (paper: 256)
    :param learning_rate: Adam learning rate (paper: 1e-4)
    :param net_arch: hidden sizes of the MLP (default ``[256, 256]``)
    :param seed: random seed
    :param device: torch device
    :param verbose: 0 for silence, 1 to print imitation's training log
    :return: the trained ``imitation.algorithms.bc.BC`` trainer (``trainer.policy`` is an SB3 ``ActorCriticPolicy``)
    """
    bc = import_bc()
    from imitation.util import logger as imitation_logger

    episodes = to_episodes(demonstrations)
    check_episodes(episodes, observation_space, action_space)
    th.manual_seed(seed)
    policy = ActorCriticPolicy(
        observation_space, action_space, lambda _: learning_rate, net_arch=[256, 256] if net_arch is None else net_arch
    )
    trainer = bc.BC(
        observation_space=observation_space,
        action_space=action_space,
        rng=np.random.default_rng(seed),
        policy=policy,
        demonstrations=to_imitation_trajectories(episodes),
        batch_size=min(batch_size, sum(len(ep) for ep in episodes)),  # imitation refuses batches larger than the data
        optimizer_kwargs=dict(lr=learning_rate),
        device=device,
        custom_logger=imitation_logger.configure(format_strs=[] if verbose == 0 else ["stdout"]),
    )
    with warnings.catch_warnings():
        # imitation 1.0.1 logs a tensor that requires grad; harmless
        warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True to a scalar")
        trainer.train(n_batches=n_batches, progress_bar=False, log_interval=max(n_batches // 10, 1))
    return trainer
