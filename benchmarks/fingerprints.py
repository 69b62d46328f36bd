"""
Fingerprints of a wrist-camera BC run: short SHA-256 digests of its demos and BC weights, and the facts of the machine.

BC in ``state_pixel_il.py`` is deterministic on one machine, yet it differs between machines (README). The candidates
are the demo images (Mesa's llvmpipe renders on the CPU, with code chosen by the CPU's vector width), the simulation
(the scripted demo's states and actions), and torch's arithmetic (kernels chosen by torch's CPU capability, AVX2 or
AVX-512). ``state_pixel_il.py`` writes a fingerprint of each into ``bc.json``; ``bc_fingerprint_check.py`` compares a
folder's with what this machine makes.
"""

import functools
import hashlib
import os
import platform
from collections.abc import Iterable, Mapping
from typing import Any, Optional

import numpy as np
import torch as th

DIGEST_CHARS = 16  # 64 bits of SHA-256: enough to tell two recordings apart


def digest(arrays: Iterable[np.ndarray]) -> str:
    """A short SHA-256 of the arrays' dtypes, shapes and bytes, in order."""
    sha = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        sha.update(f"{array.dtype.str}{array.shape}".encode())
        sha.update(array.tobytes())
    return sha.hexdigest()[:DIGEST_CHARS]


def demo_fingerprint(episodes: list[Any], image_key: str) -> dict[str, Any]:
    """
    Digests of demos with Dict observations: each episode's images, the first image alone, and all states and actions.

    :param episodes: :class:`sb3_ibrl.data.episodes.Episode` objects whose ``obs`` is a dict with ``image_key``
    :param image_key: the IL's camera key
    :return: ``images`` (one digest per episode), ``first_image``, ``other_obs`` (every other key) and ``actions``
    """
    if not episodes:
        raise ValueError("no demos to fingerprint")
    for index, episode in enumerate(episodes):
        if not isinstance(episode.obs, Mapping) or image_key not in episode.obs:
            keys = sorted(episode.obs) if isinstance(episode.obs, Mapping) else "an array"
            raise ValueError(f"demo {index} has no observation key {image_key!r} (it has {keys})")
    return dict(
        images=[digest([episode.obs[image_key]]) for episode in episodes],
        first_image=digest([episodes[0].obs[image_key][0]]),
        other_obs=digest(episode.obs[key] for episode in episodes for key in sorted(episode.obs) if key != image_key),
        actions=digest(episode.acts for episode in episodes),
    )


def policy_fingerprint(policy: th.nn.Module) -> str:
    """A short SHA-256 of a network's parameters and buffers (names and values, in name order)."""
    state = policy.state_dict()
    sha = hashlib.sha256()
    for name in sorted(state):
        sha.update(name.encode())
        sha.update(digest([state[name].detach().cpu().numpy()]).encode())
    return sha.hexdigest()[:DIGEST_CHARS]


def gl_renderer() -> Optional[str]:
    """The OpenGL renderer MuJoCo draws with under ``MUJOCO_GL`` (e.g. Mesa's llvmpipe and its vector width), or None."""
    if os.environ.get("MUJOCO_GL") not in ("egl", "osmesa"):
        return None
    try:
        import mujoco
        from OpenGL import GL

        context = mujoco.GLContext(8, 8)
        context.make_current()
        try:
            return GL.glGetString(GL.GL_RENDERER).decode()
        finally:
            context.free()
    except Exception as error:  # a machine without the GL libraries: say why instead of failing the run
        return f"unknown ({type(error).__name__}: {error})"


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def machine_facts() -> dict[str, Any]:
    """
    The versions and CPU facts that can change a run's numbers between machines (computed once per process).

    Call it before the first env renders: its GL context (for the renderer's name) is made current, then freed, and
    robosuite does not make its own context current again before each frame.
    """
    facts: dict[str, Any] = dict(
        cpu=cpu_model(),
        torch=th.__version__,
        torch_cpu_capability=th.backends.cpu.get_cpu_capability(),
        numpy=np.__version__,
        gl_renderer=gl_renderer(),
    )
    for name in ("mujoco", "robosuite"):
        try:
            facts[name] = __import__(name).__version__
        except ImportError:
            facts[name] = None
    return facts


def differences(expected: Mapping[str, Any], actual: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The keys (``a.b`` for nested dicts) whose values differ, or that only one side has."""
    found = []
    for key in sorted(set(expected) | set(actual)):
        name = f"{prefix}{key}"
        if key not in expected or key not in actual:
            found.append(name)
        elif isinstance(expected[key], Mapping) and isinstance(actual[key], Mapping):
            found += differences(expected[key], actual[key], prefix=f"{name}.")
        elif expected[key] != actual[key]:
            found.append(name)
    return found
