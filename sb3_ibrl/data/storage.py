"""
Where the replay buffers keep observations: numpy arrays in host memory, or torch tensors on a device (images on
the GPU: sampling, n-step lookups and augmentation then never copy a batch from the host).

Observations are arrays or dicts of arrays (Dict spaces); every helper takes both. A store is allocated with
:func:`allocate` and read with :func:`gather`; values written into it may be numpy arrays or tensors.
"""

from collections.abc import Mapping
from typing import Any, Optional, Union

import numpy as np
import torch as th
from gymnasium import spaces

from sb3_ibrl.common.spaces import has_image

Obs = Union[np.ndarray, th.Tensor, dict[str, Any]]
# Share of the device's free memory that device storage may take
DEVICE_MEMORY_FRACTION = 0.8


def _map(obs: Obs, fn: Any) -> Obs:
    return {key: fn(value) for key, value in obs.items()} if isinstance(obs, Mapping) else fn(obs)


def allocate(space: spaces.Space, rows: int, n_envs: int, device: Optional[th.device] = None) -> Obs:
    """
    Zeroed storage for ``rows x n_envs`` observations of ``space``, in the space's dtype.

    :param space: a Box, or a Dict of Boxes
    :param rows: rows (time steps) per env
    :param n_envs: number of envs
    :param device: ``None`` for numpy arrays in host memory, else the torch device of the tensors
    """
    if isinstance(space, spaces.Dict):
        return {key: allocate(sub, rows, n_envs, device) for key, sub in space.spaces.items()}
    shape = (rows, n_envs, *space.shape)  # type: ignore[misc]
    if device is None:
        return np.zeros(shape, dtype=space.dtype)
    return th.zeros(shape, dtype=th.from_numpy(np.zeros(0, dtype=space.dtype)).dtype, device=device)


def write(store: Obs, index: Any, value: Obs) -> None:
    """``store[index] = value`` for arrays or dicts of arrays; a numpy value is copied onto a tensor store's device."""
    if isinstance(store, dict):
        for key in store:
            write(store[key], index, value[key])  # type: ignore[index]
    elif isinstance(store, th.Tensor):
        on_host = not isinstance(value, th.Tensor)
        store[index] = host_to_device(np.asarray(value), store.device) if on_host else value.to(store.device)  # type: ignore[union-attr]
    else:
        store[index] = value.cpu().numpy() if isinstance(value, th.Tensor) else value


def host_to_device(array: np.ndarray, device: th.device) -> th.Tensor:
    """
    A copy of a numpy array as a tensor on ``device``. To a GPU it goes through pinned memory without blocking: a plain
    copy from pageable memory waits until the GPU has run all the work queued on it (e.g. the previous update), so the
    host could not prepare the next update meanwhile.
    """
    if device.type != "cuda":
        return th.tensor(array, device=device)
    return th.from_numpy(np.ascontiguousarray(array)).pin_memory().to(device, non_blocking=True)


def gather(store: Obs, index: Any) -> Obs:
    """
    ``store[index]`` for arrays or dicts of arrays; numpy index arrays are moved to a tensor store's device.

    :param store: the storage
    :param index: an int, a slice, an index array or a tuple of them
    :return: the indexed observations (a copy for index arrays)
    """

    def index_one(value: Any) -> Any:
        if isinstance(value, th.Tensor):
            parts = index if isinstance(index, tuple) else (index,)
            moved = tuple(host_to_device(part, value.device) if isinstance(part, np.ndarray) else part for part in parts)
            return value[moved if isinstance(index, tuple) else moved[0]]
        return value[index]

    return _map(store, index_one)


def snapshot(obs: Obs, device: Optional[th.device] = None) -> Obs:
    """A copy of observations that later writes to the source cannot change: numpy, or tensors on ``device``."""
    if device is None:
        return _map(obs, lambda value: value.cpu().numpy() if isinstance(value, th.Tensor) else np.array(value))
    return _map(obs, lambda value: th.as_tensor(value).to(device=device, copy=True))


def to_numpy(obs: Obs) -> Obs:
    """Observations as numpy arrays (tensors are copied to the host)."""
    return _map(obs, lambda value: value.cpu().numpy() if isinstance(value, th.Tensor) else value)


def as_stored(space: spaces.Space, obs: Obs, n_envs: int) -> Obs:
    """A copy of ``obs`` (all envs) as the buffer stores it: in the space's dtype, ``(n_envs, *shape)``."""
    if isinstance(space, spaces.Dict):
        return {key: as_stored(sub, obs[key], n_envs) for key, sub in space.spaces.items()}  # type: ignore[index]
    stored = np.array(obs, dtype=space.dtype)
    shape = (n_envs, *space.shape)  # type: ignore[misc]
    return stored if stored.shape == shape else stored.reshape(shape)


def equal_as_stored(first: Obs, second: Obs) -> bool:
    """
    Whether two observations as stored (same dtype and shape) are the same, bit for bit: as the buffer would return
    them. Comparing the bytes is the cheap check of the usual case (0.3 us for 39 floats, ~3 us for a 3x96x96 image).
    """
    if isinstance(first, dict):
        return all(first[key].tobytes() == second[key].tobytes() for key in first)  # type: ignore[index]
    return first.tobytes() == second.tobytes()  # type: ignore[union-attr]


def differ_per_env(first: Obs, second: Obs, n_envs: int) -> np.ndarray:
    """Per env, whether two observations as stored (``(n_envs, *shape)``) differ: ``(n_envs,)`` bools."""
    return np.array([not equal_as_stored(gather(first, env_idx), gather(second, env_idx)) for env_idx in range(n_envs)])


def resolve_storage_device(
    storage_device: Optional[Union[str, th.device]], device: th.device, observation_space: spaces.Space, obs_bytes: int
) -> Optional[th.device]:
    """
    The device to store observations on, or ``None`` for host memory.

    :param storage_device: ``"auto"`` (the buffer's CUDA device when the observations hold images and fit in
        :data:`DEVICE_MEMORY_FRACTION` of its free memory, else host memory), ``None`` (numpy arrays in host memory),
        or a device for torch tensors (a CUDA device is checked to fit; ``"cpu"`` keeps tensors in host memory)
    :param device: the buffer's device (where samples go)
    :param observation_space: the observation space
    :param obs_bytes: bytes of all the observations the store holds when full
    """
    if storage_device is None:
        return None
    automatic = storage_device == "auto"
    target = device if automatic else th.device(storage_device)
    if automatic and (target.type != "cuda" or not has_image(observation_space)):
        return None
    if target.type == "cuda":
        free, _ = th.cuda.mem_get_info(target)
        if obs_bytes > DEVICE_MEMORY_FRACTION * free:
            message = (
                f"Replay observations of {obs_bytes / 2**30:.1f} GiB do not fit in {DEVICE_MEMORY_FRACTION:.0%} of the "
                f"{free / 2**30:.1f} GiB free on {target}"
            )
            if automatic:
                import warnings

                warnings.warn(f"{message}: they are kept in host memory instead (storage_device=None).")
                return None
            raise MemoryError(f"{message}. Lower buffer_size, or pass replay_buffer_kwargs=dict(storage_device=None).")
    return target
