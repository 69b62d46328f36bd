"""
The demonstrations as ``imitation``'s behaviour cloning reads them: trajectories, and batches with a fresh DrQ random
shift of their images (:class:`DemoBatches`, on the host or kept on the training device).
"""

from collections.abc import Iterator, Sequence
from typing import Any, Optional, Union

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space

from sb3_ibrl.data.episodes import Episode, Obs, obs_index
from sb3_ibrl.networks.augmentation import random_shift

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


class DemoBatches:
    """
    Iterable of imitation-style BC batches (``{"obs": ..., "acts": ...}``, numpy arrays; Dict observations as
    ``imitation``'s ``DictObs``), for ``imitation``'s ``BC.demonstrations``.

    Every pass (epoch) shuffles the transitions and yields ``len(self)`` batches of exactly ``batch_size``
    (the last, incomplete one is dropped: imitation only steps its optimizer on full batches). The image
    part of the observations (a uint8 image Box, or the image keys of a Dict) gets a fresh DrQ random shift
    in every batch; the other keys (e.g. proprio) and the actions are returned untouched.

    :param episodes: the demonstrations (the final observation of each episode is not used)
    :param observation_space: the env's observation space (tells which parts are images)
    :param batch_size: transitions per batch, at most the number of transitions
    :param augment: apply the random shift to the images
    :param pad: random shift padding in pixels (paper: 4)
    :param shuffle: shuffle the transitions at every epoch (``False``: dataset order, for tests)
    :param seed: seed of the shuffling (the shift uses torch's global generator)
    :param device: ``None``: numpy batches (imitation copies each one to its device). A torch device, for image
        observations (not a Dict): the images are put there once, and each batch's images are indexed and shifted
        there, as uint8 tensors, with no host work or copy per batch (:func:`train_bc` does this on CUDA). On the CPU
        the batches equal the numpy ones
    """

    def __init__(
        self,
        episodes: Sequence[Episode],
        observation_space: spaces.Space,
        batch_size: int,
        augment: bool = True,
        pad: int = 4,
        shuffle: bool = True,
        seed: int = 0,
        device: Optional[Union[str, th.device]] = None,
    ):
        if len(episodes) == 0:
            raise ValueError("The demonstrations are empty: no episode was given")
        if isinstance(episodes[0].obs, dict):
            self.obs: Obs = {key: np.concatenate([ep.obs[key][:-1] for ep in episodes]) for key in episodes[0].obs}
            self.image_keys: list[Optional[str]] = [
                key for key, space in observation_space.spaces.items() if is_image_space(space)  # type: ignore[attr-defined]
            ]
        else:
            self.obs = np.concatenate([ep.obs[:-1] for ep in episodes])  # type: ignore[index]
            self.image_keys = [None] if is_image_space(observation_space) else []
        self.acts = np.concatenate([ep.acts for ep in episodes]).astype(np.float32)
        self.n_transitions = len(self.acts)
        if not 1 <= batch_size <= self.n_transitions:
            raise ValueError(
                f"batch_size must be between 1 and the number of transitions ({self.n_transitions}), got {batch_size}"
            )
        self.batch_size = batch_size
        self.augment = augment
        self.pad = pad
        self.shuffle = shuffle
        self.rng = np.random.default_rng(seed)
        self.device: Optional[th.device] = None
        if device is not None and self.image_keys == [None]:  # plain image observations: kept on the device
            self.device = th.device(device)
            self.images = th.as_tensor(self.obs, device=self.device)  # (n_transitions, C, H, W)

    def __len__(self) -> int:
        return self.n_transitions // self.batch_size

    def _shift(self, images: th.Tensor) -> th.Tensor:
        shifted = random_shift(images, self.pad)  # float32, same scale; pure indexing
        return shifted.to(th.uint8) if images.dtype == th.uint8 else shifted

    def batch(self, indices: np.ndarray) -> dict[str, Any]:
        """
        Build one batch from transition indices.

        :param indices: indices of the transitions
        :return: ``{"obs": observations, "acts": actions}``
        """
        if self.device is not None:
            images = self.images[th.as_tensor(indices, device=self.device)]  # (batch, C, H, W)
            if self.augment and self.pad > 0:
                images = self._shift(images)
            return {"obs": images, "acts": self.acts[indices]}
        obs = obs_index(self.obs, indices)  # a copy (fancy indexing)
        if self.augment and self.pad > 0:
            for key in self.image_keys:
                if key is None:
                    obs = self._shift(th.from_numpy(obs)).numpy()  # type: ignore[arg-type]
                else:
                    obs[key] = self._shift(th.from_numpy(obs[key])).numpy()  # type: ignore[index]
        if isinstance(obs, dict):
            import_bc()
            from imitation.data.types import DictObs

            obs = DictObs(obs)
        return {"obs": obs, "acts": self.acts[indices]}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        order = self.rng.permutation(self.n_transitions) if self.shuffle else np.arange(self.n_transitions)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield self.batch(order[start : start + self.batch_size])
