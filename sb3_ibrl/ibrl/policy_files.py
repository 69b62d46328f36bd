"""
Saving and loading an IBRL policy alone, as SB3 users do: ``model.policy.save(path)``, ``IBRLPolicy.load(path)``.

SB3's ``BaseModel.save`` writes the weights and the constructor parameters. An IBRL policy also acts with its frozen
IL policy (the hybrid action of the actor proposal) and with acting options that :class:`~sb3_ibrl.IBRL` sets; both
are kept too, so that the loaded policy predicts what the saved one did. The IL policy is pickled (with cloudpickle, as
``IBRL.save`` does), so loading it needs its code importable. ``save(path, include_il_policy=False)`` leaves it out and
``load(path, load_il_policy=False)`` skips it: the policy then acts with the RL actor alone.
"""

import warnings
from typing import Any, TypeVar, Union

import cloudpickle
import torch as th
from stable_baselines3.common.utils import get_device

from sb3_ibrl.common.files import atomic_path

SelfSavedAlone = TypeVar("SelfSavedAlone", bound="SavedAlone")

# Set on the policy by IBRL (they are algorithm settings, not constructor parameters), and read when acting
ACTING_OPTIONS = ("act_with_il", "proposal_beta", "proposal_confidence", "proposal_critic")


class SavedAlone:
    """Mixin of :class:`~sb3_ibrl.ibrl.policies.IBRLPolicy`: SB3's policy ``save`` / ``load``, with the IL policy."""

    il_policy: Any

    def save(self, path: str, include_il_policy: bool = True) -> None:
        """
        Save the policy alone: weights, constructor parameters, acting options and (by default) the frozen IL policy.

        :param path: the file to write (written beside it, then renamed onto it: a save that fails keeps the old file)
        :param include_il_policy: ``False`` leaves the IL policy out: the loaded policy acts with the RL actor alone
        """
        il_policy = None
        if include_il_policy and self.il_policy is not None:
            try:
                il_policy = cloudpickle.dumps(self.il_policy)
            except Exception as error:
                raise ValueError(
                    f"The IL policy ({self.il_policy.description}) cannot be pickled ({type(error).__name__}: {error}). "
                    "Save the policy without it, policy.save(path, include_il_policy=False), and set policy.il_policy "
                    "after loading (sb3_ibrl.il.as_il_policy builds it)"
                ) from error
        acting = {name: getattr(self, name) for name in ACTING_OPTIONS}
        acting.update(il_policy=il_policy, il_policy_left_out=self.il_policy is not None and il_policy is None)
        data = self._get_constructor_parameters()  # type: ignore[attr-defined]
        with atomic_path(path) as temporary:
            th.save({"state_dict": self.state_dict(), "data": data, "acting": acting}, temporary)  # type: ignore[attr-defined]

    @classmethod
    def load(
        cls: type[SelfSavedAlone], path: str, device: Union[th.device, str] = "auto", load_il_policy: bool = True
    ) -> SelfSavedAlone:
        """
        Load a policy written by :meth:`save` (or by SB3's ``BaseModel.save``).

        :param path: the file written by :meth:`save`
        :param device: where the policy runs
        :param load_il_policy: ``False`` skips the saved IL policy (e.g. where its code is not at hand): the policy
            acts with the RL actor alone
        :return: the policy, with its IL policy when it was saved with one
        """
        device = get_device(device)
        saved = th.load(path, map_location=device, weights_only=False)
        policy = cls(**saved["data"])
        policy.load_state_dict(saved["state_dict"])  # type: ignore[attr-defined]
        policy.to(device)  # type: ignore[attr-defined]
        acting = saved.get("acting", {})
        for name in ACTING_OPTIONS:
            if name in acting:
                setattr(policy, name, acting[name])
        if load_il_policy and acting.get("il_policy") is not None:
            try:
                policy.il_policy = cloudpickle.loads(acting["il_policy"]).to(device)
            except Exception as error:
                raise ValueError(
                    f"The IL policy saved in {path} cannot be loaded ({type(error).__name__}: {error}): its code must be "
                    f"importable. To act with the RL actor alone, load with {cls.__name__}.load(path, load_il_policy=False)"
                ) from error
        elif acting.get("il_policy_left_out"):
            warnings.warn(
                f"{path} was saved without its IL policy (include_il_policy=False): the loaded policy acts with the RL "
                "actor alone. Set policy.il_policy (sb3_ibrl.il.as_il_policy builds it) to act as IBRL does."
            )
        return policy
