"""
rl-zoo3 integration: ``python -m rl_zoo3.train --algo ibrl --env ID`` (and ``enjoy``, ``record_video``, ``-optimize``).

Installing sb3-ibrl puts a start-up hook in site-packages (``sb3_ibrl_zoo.pth``, see ``sb3_ibrl_zoo_hook``) that
calls :func:`register` pieces as soon as rl-zoo3 is imported; ``python -m sb3_ibrl.train`` does it explicitly.

- :mod:`sb3_ibrl.zoo.registration`: the ``ibrl`` algorithm, its default config ``hyperparams/ibrl.yml``, the sampler
- :mod:`sb3_ibrl.zoo.assets`: generate missing demo files and IL policies named by the config
- :mod:`sb3_ibrl.zoo.sampler`: the Optuna sampler of IBRL hyperparameters (imports optuna)
"""

from sb3_ibrl.zoo.assets import DEMO_COUNTS, ensure_assets, ensure_demos, ensure_il_policy
from sb3_ibrl.zoo.registration import ALGO_NAME, default_config_path, register

__all__ = [
    "ALGO_NAME",
    "DEMO_COUNTS",
    "default_config_path",
    "ensure_assets",
    "ensure_demos",
    "ensure_il_policy",
    "register",
]
