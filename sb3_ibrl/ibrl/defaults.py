"""
The defaults that depend on the observations, from Table 2 of the paper:

=======================  ============  ======================================
option                   state tasks   image observations (or a Dict with one)
=======================  ============  ======================================
``n_critics``            E = 5         E = 2
``gradient_steps``       G = 5         G = 1
``policy_delay``         G = 5         G = 1
=======================  ============  ======================================

``IBRL(..., gradient_steps=None, policy_delay=None)`` and ``policy_kwargs=dict(n_critics=None)`` (the defaults) take
the column of the observation space, so ``IBRL("CnnPolicy", pixel_env, il_policy=bc)`` runs the paper's pixel
settings; a value the user gives always wins. The resolved values are what the model keeps and saves.
(``proposal_confidence``, not from the paper, used to be here too: 3 for states, inf for images; since 2026-12-07 it
is inf for both, a plain default of :class:`~sb3_ibrl.IBRL`.)
"""

from typing import Any

from gymnasium import spaces

from sb3_ibrl.common.spaces import has_image

# option: (state value, pixel value)
PAPER_DEFAULTS: dict[str, tuple[int, int]] = {
    "n_critics": (5, 2),
    "gradient_steps": (5, 1),
    "policy_delay": (5, 1),
}


def paper_default(name: str, observation_space: spaces.Space) -> Any:
    """
    The default value of an option for an observation space (Table 2 of the paper).

    :param name: ``"n_critics"``, ``"gradient_steps"`` or ``"policy_delay"``
    :param observation_space: the observation space: images (or a Dict holding one) take the pixel value
    :return: the value
    """
    state, pixel = PAPER_DEFAULTS[name]
    return pixel if has_image(observation_space) else state


def resolve_paper_defaults(model: Any) -> dict[str, Any]:
    """
    Set the options of an :class:`~sb3_ibrl.IBRL` model left to ``None`` to the default values for its observations:
    ``gradient_steps``, ``policy_delay`` and ``policy_kwargs["n_critics"]`` (``policy_kwargs``
    is copied, never changed in place: the caller's dict may serve another model).

    :param model: the model, with its observation space and options set
    :return: the options that were set, with their values (printed when the model is verbose)
    """
    resolved: dict[str, Any] = {}
    for name in ("gradient_steps", "policy_delay"):
        if getattr(model, name) is None:
            resolved[name] = int(paper_default(name, model.observation_space))
            setattr(model, name, resolved[name])
    if model.policy_kwargs.get("n_critics") is None:
        resolved["n_critics"] = int(paper_default("n_critics", model.observation_space))
        model.policy_kwargs = {**model.policy_kwargs, "n_critics": resolved["n_critics"]}
    if resolved and getattr(model, "verbose", 0) >= 1:
        kind = "image" if has_image(model.observation_space) else "state"
        print(f"IBRL: the default {kind} settings: " + ", ".join(f"{k}={v}" for k, v in resolved.items()))
    return resolved
