"""
Checks of IBRL's options at construction: a wrong value fails at once with a message that names the option, the
value and what is expected, instead of an ``IndexError`` deep in training or a silent change of behaviour (e.g. a
negative exploration std switching exploration off).
"""

import numbers
from typing import Any

import numpy as np
from gymnasium import spaces

from sb3_ibrl.ibrl.acceleration import check_mixed_precision, compile_kwargs

CHOICES = {"proposal_critic": ("online", "target"), "actor_q_reduction": ("min", "mean"), "warmup": ("il", "random")}


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def check_int(name: str, value: Any, minimum: int) -> None:
    """
    Raise a ``ValueError`` unless ``value`` is an integer ``>= minimum``.

    :param name: the option, for the message
    :param value: its value
    :param minimum: the smallest allowed value
    """
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {_shown(value)}")


def check_real(name: str, value: Any, low: float, high: float = np.inf, low_open: bool = False) -> None:
    """
    Raise a ``ValueError`` unless ``value`` is a number in ``[low, high]`` (``(low, high]`` with ``low_open``).

    :param name: the option, for the message
    :param value: its value
    :param low: the lower bound
    :param high: the upper bound
    :param low_open: exclude ``low`` itself
    """
    inside = _is_real(value) and (value > low if low_open else value >= low) and value <= high
    if not inside:
        interval = (
            f"{'(' if low_open else '['}{low:g}, {high:g}]" if np.isfinite(high) else f"{'>' if low_open else '>='} {low:g}"
        )
        raise ValueError(f"{name} must be a number {'in ' if np.isfinite(high) else ''}{interval}, got {_shown(value)}")


def check_ibrl_options(model: Any) -> None:
    """
    Check the options of an :class:`~sb3_ibrl.IBRL` model (or a subclass) before anything is built.

    :param model: the model, its options set
    """
    for name, allowed in CHOICES.items():
        if getattr(model, name) not in allowed:
            raise ValueError(f"Unknown {name}={getattr(model, name)!r}: expected one of {allowed}")
    if model.proposal_beta is not None and (not _is_real(model.proposal_beta) or model.proposal_beta <= 0):
        raise ValueError(
            "proposal_beta must be a positive number (e.g. 10), or None for the greedy choice, "
            f"got {_shown(model.proposal_beta)}"
        )
    if model.bootstrap_beta is not None and (not _is_real(model.bootstrap_beta) or model.bootstrap_beta <= 0):
        raise ValueError(
            "bootstrap_beta must be a positive number (e.g. 10), or None for the max of the two proposals, "
            f"got {_shown(model.bootstrap_beta)}"
        )
    check_real("proposal_confidence", model.proposal_confidence, 0.0)
    if not isinstance(model.collect_confidently, (bool, np.bool_)):
        raise ValueError(f"collect_confidently must be True or False, got {_shown(model.collect_confidently)}")
    check_int("il_warmup_episodes", model.il_warmup_episodes, 0)
    check_int("match_il_episodes", model.match_il_episodes, 0)
    check_real("match_il_confidence", model.match_il_confidence, 0.0, 10.0)
    if model.il_warmup_episodes > 0 and (model.il_policy is None or model.warmup != "il"):
        raise ValueError(
            f"il_warmup_episodes={model.il_warmup_episodes} rolls out the IL policy: it needs an il_policy and warmup='il'"
        )
    if model.buffer_size is not None:
        check_int("buffer_size", model.buffer_size, 1)
    check_int("batch_size", model.batch_size, 1)
    check_int("n_steps", model.n_steps, 1)
    check_int("policy_delay", model.policy_delay, 1)
    check_int("learning_starts", model.learning_starts, 0)
    if not _is_int(model.gradient_steps) or model.gradient_steps == 0 or model.gradient_steps < -1:
        raise ValueError(
            f"gradient_steps must be a positive integer (or -1: as many as env steps), got {_shown(model.gradient_steps)}"
        )
    check_mixed_precision(model.mixed_precision)
    compile_kwargs(model.compile_updates)  # raises on an unknown option
    check_real("exploration_std", model.exploration_std, 0.0)
    check_real("tau", model.tau, 0.0, 1.0, low_open=True)
    check_real("gamma", model.gamma, 0.0, 1.0)
    check_real("target_policy_noise", model.target_policy_noise, 0.0)
    check_real("target_noise_clip", model.target_noise_clip, 0.0)
    if not _is_real(model.demo_fraction) or not 0.0 <= model.demo_fraction < 1.0:
        raise ValueError(f"demo_fraction must be a number in [0, 1), got {_shown(model.demo_fraction)}")
    bounded = isinstance(model.action_space, spaces.Box) and np.all(np.isfinite(model.action_space.low))
    if not bounded or not np.all(np.isfinite(model.action_space.high)):
        raise ValueError(f"IBRL needs a bounded continuous (Box) action space, got {model.action_space}")
