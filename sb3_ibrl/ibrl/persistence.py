"""
Saving and loading IBRL models without losing work or silently losing the IL policy.

- :func:`atomic_save`: files are written beside their target and renamed onto it, so a save that fails (e.g. an IL
  policy that cannot be pickled) leaves the previous checkpoint intact.
- :func:`resumable_buffer`: a loaded replay buffer has its open episodes ended, so that resumed collection never
  continues them with another episode's frames.
- :func:`il_policy_custom_objects`: a saved IL policy that cannot be unpickled (its class was renamed or moved, or
  its module is not installed) is an error that says how to load the model anyway, instead of SB3's warning
  followed by a model whose ``predict`` acts with the RL actor alone.
- :func:`saved_defaults_custom_objects`: a model saved before ``n_critics`` defaulted by observation type (its
  ``policy_kwargs`` hold no ``n_critics``) loads with the 5 critics it was trained with.
"""

import base64
import io
import json
import os
import pathlib
import zipfile
from typing import Any, Callable, Optional, TypeVar, Union

import cloudpickle
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import GymEnv

from sb3_ibrl.common.files import atomic_path
from sb3_ibrl.data.nstep_buffer import NStepBuffer
from sb3_ibrl.il.observations import split_env

PathOrFile = Union[str, pathlib.Path, io.BufferedIOBase]
IL_POLICY_KEY = "il_policy"
LEGACY_N_CRITICS = 5  # n_critics of every model saved before it defaulted by observation type (then always saved)
SelfAlgorithm = TypeVar("SelfAlgorithm", bound=BaseAlgorithm)


def target_path(path: Union[str, os.PathLike], suffix: str) -> pathlib.Path:
    """
    The file SB3 writes for ``path``: ``path`` itself, or ``path.<suffix>`` when it has no suffix.

    :param path: the path given to ``save`` / ``save_replay_buffer``
    :param suffix: SB3's suffix (``"zip"`` for models, ``"pkl"`` for replay buffers)
    """
    target = pathlib.Path(path)
    return pathlib.Path(f"{target}.{suffix}") if target.suffix == "" else target


def atomic_save(save: Callable[[PathOrFile], None], path: PathOrFile, suffix: str) -> None:
    """
    Write with ``save`` into a temporary file beside the target, then move it onto the target (``os.replace``):
    the target is either the old file or the complete new one, never a partial one.

    :param save: writes the file at the path it is given (SB3's ``save`` / ``save_replay_buffer``)
    :param path: the target path; file-like objects are written directly
    :param suffix: the suffix SB3 appends to a path without one (``"zip"``, ``"pkl"``)
    """
    if not isinstance(path, (str, os.PathLike)):
        save(path)
        return
    target = target_path(path, suffix)
    if target.is_dir():  # SB3 then writes to "<path>_2" (with a warning): keep its behaviour
        save(path)
        return
    with atomic_path(target) as temporary:
        save(temporary)


def _saved_data(path: PathOrFile) -> Optional[dict[str, Any]]:
    """The JSON ``data`` entry of an SB3 model file, or ``None`` where there is none (SB3 reports the problem)."""
    if isinstance(path, (str, os.PathLike)):
        file = pathlib.Path(path)
        if not file.is_file():
            file = target_path(path, "zip")  # SB3 tries "<path>.zip" next
        if not file.is_file() or not zipfile.is_zipfile(file):
            return None
        with zipfile.ZipFile(file) as archive:
            return json.loads(archive.read("data")) if "data" in archive.namelist() else None
    position = path.tell()
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("data")) if "data" in archive.namelist() else None
    except zipfile.BadZipFile:
        return None
    finally:
        path.seek(position)


def il_policy_custom_objects(
    path: PathOrFile, custom_objects: Optional[dict[str, Any]], kwargs: dict[str, Any]
) -> Optional[dict[str, Any]]:
    """
    Unpickle the IL policy saved with a model before SB3 loads it, and fail with the fix when that is impossible.

    :param path: the model file
    :param custom_objects: the ``custom_objects`` given to ``load``
    :param kwargs: the other keyword arguments given to ``load`` (``il_policy=`` replaces the saved one)
    :return: the ``custom_objects`` to give SB3, holding the unpickled IL policy (so it is unpickled once)
    """
    custom_objects = dict(custom_objects or {})
    if IL_POLICY_KEY in custom_objects:
        return custom_objects
    if IL_POLICY_KEY in kwargs:  # replaced: the saved one is not even unpickled
        return {**custom_objects, IL_POLICY_KEY: None}
    data = _saved_data(path)
    item = None if data is None else data.get(IL_POLICY_KEY)
    if not isinstance(item, dict) or ":serialized:" not in item:
        return custom_objects or None
    try:
        il_policy = cloudpickle.loads(base64.b64decode(item[":serialized:"].encode()))
    except Exception as error:
        if isinstance(error, RuntimeError) and "CUDA" in str(error):
            raise RuntimeError(
                f"The IL policy saved in {path} holds CUDA tensors and this machine has no CUDA device ({error}): an IL "
                "policy given as a plain callable is pickled with its tensors where they are. Move them to the CPU before "
                "saving, or load the model here without it: IBRL.load(path, il_policy=<IL policy>) replaces it."
            ) from error
        raise ImportError(
            f"The IL policy saved in {path} cannot be loaded here ({type(error).__name__}: {error}): its code is "
            "probably not importable (its class was renamed or moved, or its package is not installed). Make it "
            "importable again, or load the model without it: IBRL.load(path, il_policy=<IL policy>) replaces it, "
            "IBRL.load(path, custom_objects={'il_policy': None}) loads the RL actor alone (predict then acts "
            "without the IL policy)."
        ) from error
    return {**custom_objects, IL_POLICY_KEY: il_policy}


def saved_defaults_custom_objects(
    path: PathOrFile, custom_objects: Optional[dict[str, Any]], kwargs: dict[str, Any]
) -> Optional[dict[str, Any]]:
    """
    Keep the ensemble size of models saved before ``n_critics`` defaulted by observation type.

    Since then, the resolved ``n_critics`` is always in the saved ``policy_kwargs`` (``gradient_steps`` and
    ``policy_delay`` were always saved as numbers). A saved ``policy_kwargs`` without it comes from an older model,
    built with the old default (:data:`LEGACY_N_CRITICS`), whatever its observations: that value is restored, so
    that an image model with 5 critics is not rebuilt with 2.

    :param path: the model file
    :param custom_objects: the ``custom_objects`` given to ``load`` (a ``policy_kwargs`` there wins)
    :param kwargs: the other keyword arguments given to ``load`` (a ``policy_kwargs`` there wins)
    :return: the ``custom_objects`` to give SB3
    """
    if "policy_kwargs" in (custom_objects or {}) or "policy_kwargs" in kwargs:
        return custom_objects
    data = _saved_data(path)
    item = None if data is None else data.get("policy_kwargs")
    if data is None or (isinstance(item, dict) and item.get("n_critics") is not None):
        return custom_objects
    if isinstance(item, dict) and ":serialized:" in item:
        try:
            item = cloudpickle.loads(base64.b64decode(item[":serialized:"].encode()))
        except Exception:  # SB3 reports it while loading
            return custom_objects
    policy_kwargs = dict(item or {})
    return {**(custom_objects or {}), "policy_kwargs": {**policy_kwargs, "n_critics": LEGACY_N_CRITICS}}


def resumable_buffer(
    buffer: ReplayBuffer, n_envs: Optional[int], truncate_open_episodes: bool, device: th.device
) -> ReplayBuffer:
    """
    Prepare a loaded replay buffer for resuming: check its number of envs, end its open episodes, and sample all its
    stores onto the model's device (SB3 sets the device of the outer buffer only).

    :param buffer: the loaded replay buffer
    :param n_envs: the model's number of envs (``None``: no env to check against)
    :param truncate_open_episodes: end every open episode as a time-limit truncation (see
        :meth:`~sb3_ibrl.data.nstep_buffer.NStepBuffer.truncate_open_episodes`)
    :param device: the model's device
    :return: the buffer
    """
    if isinstance(buffer, NStepBuffer):
        buffer.to_device(device)
        if n_envs is not None and buffer.n_envs != n_envs:
            raise ValueError(
                f"The replay buffer holds the transitions of {buffer.n_envs} envs, but the model has {n_envs} envs: "
                "resume with as many envs as when it was saved"
            )
        if truncate_open_episodes:
            buffer.truncate_open_episodes()
    return buffer


class SaveLoadHooks:
    """
    IBRL's save / load hooks, placed before SB3's algorithm class (``class IBRL(SaveLoadHooks, TD3)``): atomic saves,
    loading that keeps the IL policy or says how to do without it, and replay buffers that resume without splicing.
    """

    def save(self, path: PathOrFile, exclude: Optional[Any] = None, include: Optional[Any] = None) -> None:
        """SB3's ``save``, atomic: written beside ``path``, then renamed onto it (a failed save keeps the old file)."""
        atomic_save(lambda target: super(SaveLoadHooks, self).save(target, exclude, include), path, "zip")

    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfAlgorithm],
        path: PathOrFile,
        env: Optional[GymEnv] = None,
        device: Union[th.device, str] = "auto",
        custom_objects: Optional[dict[str, Any]] = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs: Any,
    ) -> SelfAlgorithm:
        """
        SB3's ``load``; an IL policy that cannot be unpickled raises an ``ImportError`` that says how to do without. A model
        whose IL policy reads its own observations (``il_obs_keys``) splits ``env``'s observations as when it learned.
        """
        custom_objects = il_policy_custom_objects(path, custom_objects, kwargs)
        custom_objects = saved_defaults_custom_objects(path, custom_objects, kwargs)
        data = _saved_data(path)
        if env is not None and data is not None and data.get("il_obs_keys"):
            env = split_env(env, data["il_obs_keys"])
        return super().load(path, env, device, custom_objects, print_system_info, force_reset, **kwargs)  # type: ignore

    def save_replay_buffer(self, path: PathOrFile) -> None:
        """SB3's ``save_replay_buffer`` (demos included), atomic as :meth:`save`."""
        atomic_save(lambda target: super(SaveLoadHooks, self).save_replay_buffer(target), path, "pkl")

    def load_replay_buffer(self, path: PathOrFile, truncate_last_traj: bool = True) -> None:
        """
        Load a replay buffer saved by :meth:`save_replay_buffer`; ``truncate_last_traj``: end the episodes open at the save
        as time-limit truncations, so that resumed collection (in reset envs) never continues them with other frames.
        """
        previous = self.replay_buffer
        super().load_replay_buffer(path, truncate_last_traj)
        loaded, self.replay_buffer = self.replay_buffer, previous  # kept only if it fits the model
        n_envs = self.n_envs if self.env is not None else None
        self.replay_buffer = resumable_buffer(loaded, n_envs, truncate_last_traj, self.device)
