"""
The frozen imitation-learning (IL) policy that IBRL consults, and the adapters that build it from
what users have: an ``imitation`` BC trainer, an SB3 policy, a torch module or callable, or a path
to a saved SB3 policy / model.

Whatever the source, :class:`FrozenILPolicy` maps an observation tensor (as SB3 stores it, not
normalized) to an action scaled to ``[-1, 1]``; it is in eval mode, has no trainable parameters
and belongs to no optimizer.
"""

import copy
import os
import zipfile
from typing import Any, Callable, Optional, Union

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import get_action_dim
from torch import nn

from sb3_ibrl.common.spaces import is_unit_box
from sb3_ibrl.data.episodes import obs_length

ILPolicySource = Union["FrozenILPolicy", BasePolicy, nn.Module, Callable[[th.Tensor], th.Tensor], str, os.PathLike, Any]


class FrozenILPolicy(nn.Module):
    """
    A frozen IL policy that outputs actions scaled to ``[-1, 1]``.

    :param policy: an SB3 ``BasePolicy``, or a torch module / callable mapping a batch of observation
        tensors to a batch of actions in the env's action units
    :param action_space: the env's (bounded) action space
    :param description: what the policy was built from, for messages and ``repr``
    """

    def __init__(
        self, policy: Union[BasePolicy, nn.Module, Callable[[th.Tensor], Any]], action_space: spaces.Box, description: str
    ):
        super().__init__()
        self.description = description
        self.action_space = action_space
        self.register_buffer("low", th.as_tensor(action_space.low, dtype=th.float32), persistent=False)
        self.register_buffer("high", th.as_tensor(action_space.high, dtype=th.float32), persistent=False)
        if isinstance(policy, nn.Module):
            self.policy: Any = policy
            self.policy.requires_grad_(False)
            self.policy.eval()
        else:
            object.__setattr__(self, "policy", policy)  # a plain callable: not a submodule
        self.requires_grad_(False)
        self.eval()

    @property
    def stateful(self) -> bool:
        """Whether the policy keeps memory across steps (a :class:`~sb3_ibrl.il.stateful.StatefulILPolicy`)."""
        return bool(getattr(self.policy, "stateful", False))

    def start_episodes(self, env_indices: Any, context: str = "train") -> None:
        """Tell a stateful policy that these envs start an episode (nothing for a stateless one)."""
        if self.stateful and len(env_indices) > 0:
            self.policy.start_episodes([int(i) for i in env_indices], context)

    def train(self, mode: bool = True) -> "FrozenILPolicy":
        """The IL policy stays in eval mode whatever is asked (it is frozen)."""
        return super().train(False)

    @property
    def device(self) -> th.device:
        return self.low.device

    @th.no_grad()
    def forward(
        self, observation: Union[th.Tensor, dict[str, th.Tensor]], env_indices: Any = None, context: str = "predict"
    ) -> th.Tensor:
        """
        :param observation: ``(batch, *obs_shape)`` or a dict of such tensors
        :param env_indices: for a stateful policy, the env of each row (default: ``0 .. batch - 1``)
        :param context: for a stateful policy, whose memory: ``"train"``, ``"predict"`` or ``"demos"``
        :return: ``(batch, action_dim)`` in ``[-1, 1]``
        """
        if self.stateful:
            env_indices = list(range(obs_length(observation))) if env_indices is None else [int(i) for i in env_indices]
            actions = th.as_tensor(self.policy.step(observation, env_indices, context), dtype=th.float32, device=self.device)
        elif isinstance(self.policy, BasePolicy):
            actions = self.policy._predict(observation, deterministic=True)
            if self.policy.squash_output:  # already in [-1, 1] (e.g. TD3 / SAC actors)
                self._check_finite(actions, observation)
                return actions.clamp(-1.0, 1.0).float()
        else:
            actions = th.as_tensor(self.policy(observation), dtype=th.float32, device=self.device)
        actions = actions.reshape(actions.shape[0], -1).float()
        self._check_finite(actions, observation)
        actions = th.minimum(th.maximum(actions, self.low), self.high)  # clip to the action bounds
        if is_unit_box(self.action_space):  # already [-1, 1]: the affine map would move them by float32 rounding (up to 6e-8)
            return actions
        return 2.0 * (actions - self.low) / (self.high - self.low) - 1.0

    def _check_finite(self, actions: th.Tensor, observation: Union[th.Tensor, dict[str, th.Tensor]]) -> None:
        """
        Refuse NaN / infinite IL actions: one of them, even where the actor proposal rejects the IL action,
        reaches the TD target and turns every network parameter NaN within a few updates.
        """
        finite = th.isfinite(actions).reshape(len(actions), -1).all(dim=1)  # (batch,)
        if bool(finite.all()):  # one check per call (per batch): cheap, see benchmarks/finite_check_cost.py
            return
        row, n_bad = int(th.nonzero(~finite)[0, 0]), int((~finite).sum())
        raise ValueError(
            f"The IL policy ({self.description}) returned a non-finite action {actions[row].tolist()} for observation "
            f"{row} of a batch of {len(actions)} ({n_bad} such rows): {describe_observation(observation, row)}. "
            "IBRL cannot use it (it would turn every network parameter NaN). Make the IL policy return finite actions for "
            "such observations (e.g. check the inputs it was trained on, or wrap it to replace NaN)."
        )

    def __getstate__(self) -> dict[str, Any]:
        # Pickled (e.g. inside ``IBRL.save``) on the CPU, so a model saved on a GPU loads anywhere
        state = self.__dict__.copy()
        if self.device.type != "cpu":
            state["_buffers"] = {name: buf.cpu() for name, buf in self._buffers.items() if buf is not None}
            state["_modules"] = {name: copy.deepcopy(mod).cpu() for name, mod in self._modules.items() if mod is not None}
        return state

    def extra_repr(self) -> str:
        return f"from={self.description}"


def describe_observation(observation: Union[th.Tensor, dict[str, th.Tensor]], row: int, max_values: int = 16) -> str:
    """
    One observation of a batch, for error messages: its values when small, else its shape and range.

    :param observation: a batch of observations (tensor or dict of tensors)
    :param row: which one
    :param max_values: print the values of observations with at most this many
    """
    if isinstance(observation, dict):
        return (
            "{"
            + ", ".join(f"{key!r}: {describe_observation(value, row, max_values)}" for key, value in observation.items())
            + "}"
        )
    value = observation[row].detach().float().cpu()
    if value.numel() <= max_values:
        return f"observation {[round(x, 6) for x in value.flatten().tolist()]}"
    finite = value[th.isfinite(value)]
    value_range = f"[{finite.min().item():.4g}, {finite.max().item():.4g}]" if finite.numel() else "no finite value"
    n_nonfinite = value.numel() - finite.numel()
    return f"observation of shape {tuple(value.shape)}, finite values in {value_range}, {n_nonfinite} non-finite values"


def _is_imitation_bc(obj: Any) -> bool:
    return type(obj).__module__.startswith("imitation.") and hasattr(obj, "policy") and isinstance(obj.policy, BasePolicy)


def _is_sb3_model_zip(path: str) -> bool:
    """SB3 model archives hold a ``data`` entry (``th.save`` files are zip archives too, without it)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return "data" in archive.namelist()


def _load_policy_file(path: str, device: Union[th.device, str]) -> BasePolicy:
    """Load an SB3 model ``.zip`` (its policy) or a policy file written by ``BasePolicy.save``."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"IL policy file not found: {path}")
    if _is_sb3_model_zip(path):
        from stable_baselines3.common.save_util import load_from_zip_file

        try:
            data, params, _ = load_from_zip_file(path, device=device)
        except Exception as error:
            raise ValueError(f"Could not read the SB3 model file {path} as an IL policy: {error}") from error
        if data is None or params is None or "policy" not in params or "policy_class" not in data:
            raise ValueError(f"{path} is a zip file but not an SB3 model (no policy inside)")
        policy_kwargs = dict(data.get("policy_kwargs", {}))
        policy_kwargs.pop("device", None)
        policy = data["policy_class"](
            data["observation_space"], data["action_space"], lambda _: 0.0, **policy_kwargs  # no training: dummy lr
        )
        policy.load_state_dict(params["policy"])
        return policy.to(device)
    from stable_baselines3.common.policies import ActorCriticPolicy

    try:
        return ActorCriticPolicy.load(path, device=device)
    except Exception as error:
        raise ValueError(
            f"Could not load {path} as an IL policy: expected an SB3 model .zip or a policy saved with "
            f"`policy.save(path)` (e.g. imitation's `bc.policy.save`), got error: {error}"
        ) from error


def _check_spaces(policy: BasePolicy, observation_space: spaces.Space, action_space: spaces.Box, description: str) -> None:
    il_obs, il_act = policy.observation_space, policy.action_space
    if not isinstance(il_act, spaces.Box) or il_act.shape != action_space.shape:
        raise ValueError(
            f"The IL policy ({description}) has action space {il_act}, which does not match the env's "
            f"action space {action_space} (different shape)"
        )
    if not (np.allclose(il_act.low, action_space.low) and np.allclose(il_act.high, action_space.high)):
        raise ValueError(
            f"The IL policy ({description}) was trained with action bounds [{il_act.low}, {il_act.high}], "
            f"but the env's are [{action_space.low}, {action_space.high}]"
        )
    if type(il_obs) is not type(observation_space) or il_obs.shape != observation_space.shape:
        raise ValueError(
            f"The IL policy ({description}) has observation space {il_obs}, which does not match the env's "
            f"observation space {observation_space}"
        )
    if isinstance(il_obs, spaces.Dict) and set(il_obs.spaces) != set(observation_space.spaces):  # type: ignore[attr-defined]
        raise ValueError(f"The IL policy ({description}) reads observation keys {sorted(il_obs.spaces)}, the env has others")


def _probe(frozen: FrozenILPolicy, observation_space: spaces.Space, action_space: spaces.Box) -> None:
    """Call a policy of unknown spaces once on sample observations and check the action shape."""
    samples = [observation_space.sample() for _ in range(2)]
    if isinstance(observation_space, spaces.Dict):
        obs: Any = {key: th.as_tensor(np.stack([s[key] for s in samples]), device=frozen.device) for key in samples[0]}
        shape_text = str({key: tuple(value.shape) for key, value in obs.items()})
    else:
        obs = th.as_tensor(np.stack(samples), device=frozen.device)
        shape_text = str(tuple(obs.shape))
    try:
        actions = frozen.policy(obs)
    except Exception as error:
        raise ValueError(
            f"The IL policy ({frozen.description}) failed on a batch of observations of shape {shape_text} "
            f"from the env's observation space: {type(error).__name__}: {error}"
        ) from error
    shape = tuple(th.as_tensor(actions).shape)
    if shape != (2, get_action_dim(action_space)):
        raise ValueError(
            f"The IL policy ({frozen.description}) returned actions of shape {shape} for a batch of 2 observations; "
            f"expected {(2, get_action_dim(action_space))} for the env's action space {action_space}"
        )


def as_il_policy(
    source: Optional[ILPolicySource],
    observation_space: spaces.Space,
    action_space: spaces.Space,
    device: Union[th.device, str] = "cpu",
) -> Optional[FrozenILPolicy]:
    """
    Build the frozen IL policy from any supported source, checking it against the env's spaces.

    :param source: ``None`` (no IL policy), an ``imitation.algorithms.bc.BC`` trainer, an SB3
        ``BasePolicy``, a torch module or callable (observation tensor -> actions in env units), a path to
        an SB3 model ``.zip`` or to a policy saved with ``policy.save``, or an already built ``FrozenILPolicy``
    :param observation_space: the env's observation space
    :param action_space: the env's action space (a bounded ``Box``)
    :param device: where the IL policy runs
    :return: the frozen IL policy, or ``None``
    """
    if source is None:
        return None
    if not isinstance(action_space, spaces.Box):
        raise ValueError(f"IBRL needs a continuous (Box) action space, got {action_space}")
    if isinstance(source, FrozenILPolicy):
        frozen = source
        if frozen.action_space.shape != action_space.shape:
            raise ValueError(f"The IL policy ({frozen.description}) acts in {frozen.action_space}, the env in {action_space}")
        return frozen.to(device)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        policy: Any = _load_policy_file(path, device)
        description = f"file {path}"
    elif _is_imitation_bc(source):
        policy, description = source.policy, f"imitation {type(source).__name__} trainer"
    elif isinstance(source, (BasePolicy, nn.Module)) or callable(source):
        policy, description = source, type(source).__name__
    else:
        raise TypeError(
            f"Unsupported il_policy of type {type(source).__name__}: pass an imitation BC trainer, an SB3 policy, "
            "a torch module or callable, or a path to a saved SB3 policy"
        )
    if isinstance(policy, BasePolicy):
        _check_spaces(policy, observation_space, action_space, description)
    frozen = FrozenILPolicy(policy, action_space, description).to(device)
    if not isinstance(policy, BasePolicy):
        _probe(frozen, observation_space, action_space)
    return frozen
