"""
Register IBRL with rl-zoo3 2.9 (which has no plugin mechanism): the ``ibrl`` entry of its algorithm table, its
default hyperparameters file, its Optuna sampler, and the generation of missing demos / IL policies.

Called by the start-up hook (``sb3_ibrl_zoo_hook``) right after rl-zoo3 modules are imported, or explicitly::

    from sb3_ibrl.zoo import register
    register()  # imports rl_zoo3 and patches it; idempotent

What is patched, all in place (rl-zoo3 modules share the same dict objects):

- ``rl_zoo3.utils.ALGOS`` (also ``rl_zoo3.ALGOS``): ``"ibrl": IBRL``; importing ``sb3_ibrl`` registers its envs;
- ``rl_zoo3.hyperparams_opt.HYPERPARAMS_SAMPLER`` / ``HYPERPARAMS_CONVERTER``: the IBRL sampler for ``-optimize``;
- ``rl_zoo3.exp_manager.ExperimentManager``: without ``-conf``, ``--algo ibrl`` reads sb3-ibrl's
  ``hyperparams/ibrl.yml``; after reading the hyperparameters, missing ``demonstrations`` / ``il_policy`` files
  are generated (:func:`sb3_ibrl.zoo.assets.ensure_assets`), and training uses 1 torch thread unless
  ``--num-threads`` is given (:func:`choose_torch_threads`). Other algorithms are untouched.
"""

import functools
import importlib
import inspect
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Optional

ALGO_NAME = "ibrl"
CONFIG_NAME = f"{ALGO_NAME}.yml"
_PATCHED_ATTR = "_sb3_ibrl_patched"


def default_config_path() -> str:
    """
    The hyperparameters file that ``--algo ibrl`` reads without ``-conf``.

    :return: ``sb3_ibrl/zoo/hyperparams/ibrl.yml`` in an installed package, else ``hyperparams/ibrl.yml`` of the
        source checkout (editable installs)
    """
    package_dir = Path(__file__).resolve().parent
    candidates = [package_dir / "hyperparams" / CONFIG_NAME, package_dir.parents[1] / "hyperparams" / CONFIG_NAME]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    raise FileNotFoundError(f"sb3-ibrl's {CONFIG_NAME} is missing: looked for {', '.join(map(str, candidates))}")


def choose_torch_threads(threads_at_import: int, argv: Sequence[str]) -> Optional[int]:
    """
    The torch thread count for training IBRL with rl-zoo3: 1 unless the user chose one (``--num-threads``). Torch's
    default, one per core, runs many times slower on a busy machine (the small state networks gain nothing from more
    threads; on a shared 2-core machine even the BC ResNet ran 2-3x slower with 2 threads than with 1).

    :param threads_at_import: torch's thread count when rl-zoo3 was imported (before ``--num-threads`` applied)
    :param argv: the command line
    :return: the number of threads to set, or ``None`` to leave it
    """
    import torch as th

    chosen = any(arg.startswith("--num-threads") for arg in argv) or th.get_num_threads() != threads_at_import
    return None if chosen else 1


def _register_algo(zoo: ModuleType) -> None:
    from sb3_ibrl import IBRL  # also registers the envs with gymnasium

    zoo.ALGOS[ALGO_NAME] = IBRL


def _register_sampler(hyperparams_opt: ModuleType) -> None:
    from sb3_ibrl.zoo.sampler import convert_ibrl_params, sample_ibrl_params

    hyperparams_opt.HYPERPARAMS_SAMPLER[ALGO_NAME] = sample_ibrl_params
    hyperparams_opt.HYPERPARAMS_CONVERTER[ALGO_NAME] = convert_ibrl_params


def _patch_experiment_manager(exp_manager: ModuleType) -> None:
    manager_class = exp_manager.ExperimentManager
    if getattr(manager_class, _PATCHED_ATTR, False):
        return
    original_init: Callable[..., None] = manager_class.__init__
    original_read: Callable[..., tuple[dict[str, Any], dict[str, Any]]] = manager_class.read_hyperparameters
    original_optimize: Callable[..., None] = manager_class.hyperparameters_optimization
    init_signature = inspect.signature(original_init)
    import torch as th

    threads_at_import = th.get_num_threads()  # rl-zoo3's train() applies --num-threads later

    @functools.wraps(original_init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        if self.algo == ALGO_NAME and init_signature.bind(self, *args, **kwargs).arguments.get("config") is None:
            self.config = default_config_path()

    @functools.wraps(original_read)
    def read_hyperparameters(self: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        hyperparams, saved_hyperparams = original_read(self)
        if self.algo == ALGO_NAME:
            from sb3_ibrl.zoo.assets import ensure_assets

            ensure_assets(self.env_name.gym_id, hyperparams, env_kwargs=hyperparams.get("env_kwargs") or self.env_kwargs)
            threads = choose_torch_threads(threads_at_import, sys.argv)
            if threads is not None:
                print(f"sb3-ibrl: training with {threads} torch thread (--num-threads N to change)", flush=True)
                th.set_num_threads(threads)
        return hyperparams, saved_hyperparams

    @functools.wraps(original_optimize)
    def hyperparameters_optimization(self: Any) -> None:
        if self.algo != ALGO_NAME:
            return original_optimize(self)
        from sb3_ibrl.zoo.sampler import base_policy_kwargs, create_study_once

        if isinstance(self.storage, str) and self.study_name:  # workers started together share one study
            create_study_once(self.storage, self.study_name)
        # The sampler merges its policy_kwargs into the config's (rl-zoo3 would replace them)
        with base_policy_kwargs(self._hyperparams.get("policy_kwargs")):
            return original_optimize(self)

    manager_class.__init__ = __init__
    manager_class.read_hyperparameters = read_hyperparameters
    manager_class.hyperparameters_optimization = hyperparameters_optimization
    setattr(manager_class, _PATCHED_ATTR, True)


_HANDLERS: dict[str, Callable[[ModuleType], None]] = {
    "rl_zoo3": _register_algo,
    "rl_zoo3.hyperparams_opt": _register_sampler,
    "rl_zoo3.exp_manager": _patch_experiment_manager,
}


def on_import(module: ModuleType) -> None:
    """
    Register with one rl-zoo3 module (called by the start-up hook right after the module is imported).

    :param module: ``rl_zoo3``, ``rl_zoo3.hyperparams_opt`` or ``rl_zoo3.exp_manager``
    """
    handler = _HANDLERS.get(module.__name__)
    if handler is not None:
        handler(module)


def register() -> None:
    """Import rl-zoo3 and register IBRL with it: the algorithm, the default config, the sampler. Idempotent."""
    for name in _HANDLERS:
        on_import(importlib.import_module(name))
