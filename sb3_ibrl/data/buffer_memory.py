"""
How much memory a replay buffer takes, and an early, clear failure when it cannot fit.

numpy allocates lazily, so a buffer too large for the machine would otherwise start, fill up over hours, then swap
or be killed. :func:`check_buffer_memory` counts every store when the buffer is made (the online transitions of all
envs, the successful episodes kept for oversampling, the demonstrations) and refuses, with the largest
``buffer_size`` that fits.
"""

from typing import Optional

import numpy as np
from gymnasium import spaces

# Refuse buffers whose arrays would take more than this fraction of the memory available now
MEMORY_FRACTION = 0.9


def available_memory_bytes() -> Optional[int]:
    """Memory available to new allocations (``MemAvailable`` of ``/proc/meminfo``), ``None`` when unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def observation_bytes(observation_space: spaces.Space) -> int:
    """Bytes of one observation (Box or Dict of Box) in its own dtype."""
    boxes = observation_space.spaces.values() if isinstance(observation_space, spaces.Dict) else [observation_space]
    return sum(int(np.prod(box.shape)) * np.dtype(box.dtype).itemsize for box in boxes)  # type: ignore[arg-type]


def transition_bytes(observation_space: spaces.Space, action_space: spaces.Box) -> int:
    """
    Bytes one transition takes in :class:`NStepBuffer`: one observation (in its own dtype), the action
    and reward (float32) and the done / timeout / break flags.

    :param observation_space: observation space (Box or Dict of Box)
    :param action_space: action space
    :return: bytes per transition
    """
    return observation_bytes(observation_space) + 4 * int(np.prod(action_space.shape)) + 4 + 3


def stored_transitions(buffer_size: int, n_envs: int = 1, success_buffer_size: int = 0) -> int:
    """
    Transitions held when full: ``buffer_size // n_envs`` rows of ``n_envs`` envs (``buffer_size`` counts the
    transitions of all envs, as in SB3), plus the store of successful episodes (``min(success_buffer_size, buffer_size)``).
    """
    return max(buffer_size // n_envs, 1) * n_envs + min(success_buffer_size, buffer_size)


def check_buffer_memory(
    buffer_size: int,
    observation_space: spaces.Space,
    action_space: spaces.Box,
    available: Optional[int] = None,
    n_envs: int = 1,
    success_buffer_size: int = 0,
    extra_transitions: int = 0,
    on_device: bool = False,
) -> int:
    """
    Fail early, with the numbers, when a buffer cannot fit in memory (instead of swapping or being
    killed once it fills up: numpy allocates lazily). Every store counts: the online transitions of all envs, the
    successful episodes kept for oversampling and the demonstrations.

    :param buffer_size: capacity in transitions, all envs together (as SB3's ``buffer_size``)
    :param observation_space: observation space
    :param action_space: action space
    :param available: bytes available (read from the system when ``None``)
    :param n_envs: number of envs (each gets ``buffer_size // n_envs`` rows)
    :param success_buffer_size: capacity of the store of successful episodes (0: none)
    :param extra_transitions: transitions held besides, whatever ``buffer_size`` is (the demonstrations)
    :param on_device: the observations are stored on a device (GPU), not in host memory: they are not counted here
    :return: the bytes the stores need in host memory when full
    """
    per_transition = transition_bytes(observation_space, action_space)
    if on_device:
        per_transition -= observation_bytes(observation_space)

    def needed_for(size: int) -> int:
        return (stored_transitions(size, n_envs, success_buffer_size) + extra_transitions) * per_transition

    needed = needed_for(buffer_size)
    available = available_memory_bytes() if available is None else available
    if available is not None and needed > MEMORY_FRACTION * available:
        low, high = 0, buffer_size  # the largest buffer_size that fits (needed_for grows with it): bisection
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if needed_for(middle) <= MEMORY_FRACTION * available else (low, middle - 1)
        stores = f"{n_envs} env{'s' if n_envs > 1 else ''}" + (", successful episodes" if success_buffer_size else "")
        stores += f", {extra_transitions:,} demonstration transitions" if extra_transitions else ""
        fix = (
            f"Lower buffer_size to at most {low:,}."
            if low >= 1
            else "Even the smallest buffer_size does not fit: use fewer demonstrations or a machine with more memory."
        )
        raise MemoryError(
            f"A replay buffer of buffer_size={buffer_size:,} ({stores}; {per_transition:,} bytes per transition) needs "
            f"{needed / 2**30:.1f} GiB when full, but only {available / 2**30:.1f} GiB of memory is available. {fix}"
        )
    return needed
