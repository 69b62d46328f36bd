"""
Optuna sampler of IBRL hyperparameters for ``python -m rl_zoo3.train --algo ibrl -optimize``.

Every sampled value is a plain value (numbers, ``None``, lists), so trials can be stored in any Optuna storage and
shared by several worker processes or machines (``--storage sqlite:///study.db --study-name NAME``).
"""

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import optuna

from sb3_ibrl.zoo.assets import folder_lock

SQLITE_PREFIX = "sqlite:///"

# Named network sizes (the actor and critic MLPs; for pixels: the MLP after the trunk / pooling)
NET_ARCHS: dict[str, list[int]] = {
    "small": [64, 64],
    "medium": [256, 256],
    "large": [512, 512, 512],  # paper, states (Lift, Can)
    "xlarge": [1024, 1024, 1024],  # paper, states (Square)
}
POLICY_KWARGS_KEYS = ("net_arch", "n_critics", "dropout")

_base_policy_kwargs: dict[str, Any] = {}


@contextlib.contextmanager
def base_policy_kwargs(policy_kwargs: Optional[dict[str, Any]]) -> Iterator[None]:
    """
    Within this context, sampled ``policy_kwargs`` are merged into ``policy_kwargs`` (the config's), instead of
    replacing them as rl-zoo3 does with sampled values: pixel options such as ``encoder`` are kept while tuning.

    :param policy_kwargs: the ``policy_kwargs`` of the hyperparameters being tuned
    """
    global _base_policy_kwargs
    previous, _base_policy_kwargs = _base_policy_kwargs, dict(policy_kwargs or {})
    try:
        yield
    finally:
        _base_policy_kwargs = previous


def create_study_once(storage: str, study_name: str) -> None:
    """
    Create an rl-zoo3 study (maximize) in a SQLite storage unless it exists, holding a lock on the database's folder.

    Optuna workers that start together on one machine would otherwise race to create the database tables
    (``UNIQUE constraint failed: alembic_version``). With a database server shared by several machines, create the
    study once beforehand: ``optuna create-study --storage URL --study-name NAME --direction maximize``.

    :param storage: an Optuna storage URL; only ``sqlite:///PATH`` ones are handled
    :param study_name: the study name
    """
    if not storage.startswith(SQLITE_PREFIX):
        return
    database = Path(storage[len(SQLITE_PREFIX) :])
    database.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(database.parent.resolve()):
        optuna.create_study(storage=storage, study_name=study_name, direction="maximize", load_if_exists=True)


def convert_ibrl_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    """
    Turn sampled (or stored) trial parameters into IBRL constructor arguments.

    :param sampled_params: the trial's parameters, as named by :func:`sample_ibrl_params`
    :return: keyword arguments for ``IBRL``
    """
    params = dict(sampled_params)
    hyperparams: dict[str, Any] = {}
    for name in ("learning_rate", "tau", "batch_size", "n_steps", "exploration_std", "proposal_beta", "proposal_confidence"):
        if name in params:
            hyperparams[name] = params.pop(name)
    if "critic_updates" in params:  # G critic updates per env step, then one actor update (Algorithm 1)
        hyperparams["gradient_steps"] = hyperparams["policy_delay"] = params.pop("critic_updates")
    policy_kwargs = dict(_base_policy_kwargs)
    if "net_arch" in params:
        policy_kwargs["net_arch"] = list(NET_ARCHS[params.pop("net_arch")])
    for name in ("n_critics", "dropout"):
        if name in params:
            policy_kwargs[name] = params.pop(name)
    if policy_kwargs:
        hyperparams["policy_kwargs"] = policy_kwargs
    hyperparams.update(params)  # anything else is passed on as is
    return hyperparams


def sample_ibrl_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict[str, Any]) -> dict[str, Any]:
    """
    Sample IBRL hyperparameters (the signature of rl-zoo3's ``HYPERPARAMS_SAMPLER`` entries).

    :param trial: the Optuna trial
    :param n_actions: action dimension (unused: the exploration noise is ``exploration_std``)
    :param n_envs: number of envs (unused)
    :param additional_args: rl-zoo3's extra arguments (unused)
    :return: keyword arguments for ``IBRL``
    """
    trial.suggest_float("learning_rate", 3e-5, 3e-3, log=True)
    trial.suggest_float("tau", 0.005, 0.1, log=True)
    trial.suggest_categorical("batch_size", [64, 128, 256, 512])
    trial.suggest_categorical("n_steps", [1, 3, 5, 10])
    trial.suggest_float("exploration_std", 0.05, 0.3)
    trial.suggest_categorical("proposal_beta", [None, 1.0, 10.0, 100.0])  # None: greedy actor proposal
    # the deployed hybrid until it has matched its IL policy: 0 greedy, inf the IL policy alone (the image default)
    trial.suggest_categorical("proposal_confidence", [0.0, 1.0, 2.0, 3.0, 4.0, float("inf")])
    trial.suggest_categorical("critic_updates", [1, 2, 5])
    trial.suggest_categorical("n_critics", [2, 5, 10])
    trial.suggest_categorical("dropout", [0.0, 0.25, 0.5])
    trial.suggest_categorical("net_arch", list(NET_ARCHS))
    return convert_ibrl_params(trial.params)
