"""
The methods a benchmark compares: IBRL, its ablations and the paper's baselines, all with the same networks.

Every RL method is built from the task's settings plus its own options, so a side-by-side differs only where the
methods do.
"""

import copy
from dataclasses import dataclass, field
from typing import Any, Optional

import gymnasium as gym
from stable_baselines3.common.base_class import BaseAlgorithm

from sb3_ibrl.baselines import RLPD, SQIL, PtFt
from sb3_ibrl.common.spaces import has_image
from sb3_ibrl.ibrl import IBRL


@dataclass
class MethodSpec:
    """
    A benchmark method.

    :param algo: the algorithm class (``None`` for BC alone, which is only evaluated)
    :param description: one line for tables and ``--help``
    :param uses_il: gets the task's BC policy as ``il_policy``
    :param kwargs: options on top of the task's settings
    :param policy_kwargs: ``policy_kwargs`` on top of the task's
    :param needs_images: only for image observations
    """

    algo: Optional[type[BaseAlgorithm]]
    description: str
    uses_il: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict)
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    needs_images: bool = False


METHODS: dict[str, MethodSpec] = {
    "ibrl": MethodSpec(IBRL, "IBRL (actor + bootstrap proposal)", uses_il=True),
    "bc": MethodSpec(None, "BC alone (the IL policy of IBRL)"),
    "rlpd+": MethodSpec(RLPD, "RLPD+: 50% demos + successes, actor dropout, same networks"),
    "rlpd": MethodSpec(
        RLPD, "RLPD: 50% demos, no actor dropout", kwargs=dict(oversample_successes=False), policy_kwargs=dict(dropout=0.0)
    ),
    "td3+demos": MethodSpec(IBRL, "TD3 with the demos in its buffer (same networks)"),
    "ptft": MethodSpec(PtFt, "Pt-Ft: BC pretraining, BC-regularized TD3 (fixed weight 1)", kwargs=dict(bc_schedule="fixed")),
    "ptft-sqf": MethodSpec(PtFt, "Pt-Ft with the soft-Q-filter schedule (weight 1)", kwargs=dict(bc_schedule="soft_q_filter")),
    "sqil": MethodSpec(SQIL, "SQIL: demos reward 1, online reward 0, 50% demos"),
    "ibrl-actor-only": MethodSpec(IBRL, "IBRL - actor proposal only", uses_il=True, kwargs=dict(bootstrap_proposal=False)),
    "ibrl-no-dropout": MethodSpec(IBRL, "IBRL w/o actor dropout", uses_il=True, policy_kwargs=dict(dropout=0.0)),
    "ibrl-greedy": MethodSpec(
        IBRL,
        "IBRL, the paper's greedy actor proposal (proposal_confidence=0)",
        uses_il=True,
        kwargs=dict(proposal_confidence=0.0),
    ),
    "ibrl-soft": MethodSpec(
        IBRL,
        "IBRL, the release's state setting: soft choices (beta 10) in both proposals, target critics",
        uses_il=True,
        kwargs=dict(proposal_beta=10.0, bootstrap_beta=10.0, proposal_critic="target"),
    ),
    "ibrl-drq": MethodSpec(IBRL, "IBRL w/ DrQ network", uses_il=True, policy_kwargs=dict(encoder="drq"), needs_images=True),
}


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """
    Parse ``method:key=value`` overrides (values are Python literals), e.g. ``ptft:bc_weight=0.1``.

    :return: ``{method: {key: value}}``
    """
    import ast

    overrides: dict[str, dict[str, Any]] = {}
    for item in items:
        method, sep, assignment = item.partition(":")
        key, eq, value = assignment.partition("=")
        if not sep or not eq or not key:
            raise ValueError(f"Bad override {item!r}: expected method:key=value, e.g. ptft:bc_weight=0.1")
        if method not in METHODS:
            raise ValueError(f"Override {item!r} names an unknown method {method!r}: expected one of {sorted(METHODS)}")
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value  # a plain string
        overrides.setdefault(method, {})[key] = parsed
    return overrides


def check_method(method: str, env: gym.Env) -> MethodSpec:
    """The spec of ``method``, checked against the env (clear errors for unknown names and impossible pairs)."""
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}: expected one of {sorted(METHODS)}")
    spec = METHODS[method]
    if spec.needs_images and not has_image(env.observation_space):
        raise ValueError(
            f"Method {method!r} needs image observations; {env.spec.id if env.spec else env} has {env.observation_space}"
        )
    return spec


def make_model(
    method: str,
    env: gym.Env,
    settings: dict[str, Any],
    demonstrations: Any,
    il_policy: Any = None,
    seed: int = 0,
    ibrl_demo_fraction: float = 0.0,
    overrides: Optional[dict[str, Any]] = None,
) -> BaseAlgorithm:
    """
    Build the model of an RL method for a task.

    :param method: a key of :data:`METHODS` (not ``"bc"``)
    :param env: the training env
    :param settings: the task's RL settings (:attr:`TaskSpec.rl_settings`)
    :param demonstrations: the demos (every method gets them in its buffer)
    :param il_policy: the BC policy (for the methods that use it)
    :param seed: the seed
    :param ibrl_demo_fraction: IBRL's own oversampling on this task (paper: 0.5 for Square)
    :param overrides: extra keyword arguments for this method
    """
    spec = check_method(method, env)
    if spec.algo is None:
        raise ValueError(f"Method {method!r} has no RL model")
    kwargs = copy.deepcopy(settings)
    kwargs["policy_kwargs"] = {**kwargs.get("policy_kwargs", {}), **spec.policy_kwargs}
    kwargs.update(copy.deepcopy(spec.kwargs))
    if spec.algo is IBRL and ibrl_demo_fraction > 0:
        kwargs["demo_fraction"] = ibrl_demo_fraction
    if spec.uses_il:
        kwargs["il_policy"] = il_policy
    for key, value in (overrides or {}).items():
        if key == "policy_kwargs":
            kwargs["policy_kwargs"].update(value)
        else:
            kwargs[key] = value
    policy = "MlpPolicy"
    if isinstance(env.observation_space, gym.spaces.Dict):
        policy = "MultiInputPolicy"
    elif has_image(env.observation_space):
        policy = "CnnPolicy"
    return spec.algo(policy, env, demonstrations=demonstrations, seed=seed, **kwargs)
