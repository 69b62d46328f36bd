"""
Small helpers shared by IBRL, the baselines, BC and the benchmark (as SB3's ``common``):
:mod:`~sb3_ibrl.common.evaluation` (recording and evaluating episodes), :mod:`~sb3_ibrl.common.callbacks`
(the success curve), :mod:`~sb3_ibrl.common.spaces` (image / proprio entries of observation spaces) and
:mod:`~sb3_ibrl.common.files` (files written atomically).

The modules that lived here before 0.1.0 moved to :mod:`sb3_ibrl.networks`, :mod:`sb3_ibrl.data` and
:mod:`sb3_ibrl.il`. Their old paths (``sb3_ibrl.common.bc``, ``sb3_ibrl.common.demos``, ...) still import, with a
``DeprecationWarning``, for one release, so that old code and old pickles (saved replay buffers) keep loading.
"""

import importlib
import sys
import types
import warnings
from typing import Any

# old module name -> the modules its names moved to (looked up in this order)
MOVED_MODULES: dict[str, tuple[str, ...]] = {
    "augmentation": ("sb3_ibrl.networks.augmentation",),
    "bc": ("sb3_ibrl.il.training",),
    "buffers": ("sb3_ibrl.data.replay_buffer", "sb3_ibrl.data.nstep_buffer", "sb3_ibrl.data.buffer_memory"),
    "demos": ("sb3_ibrl.data.episodes", "sb3_ibrl.data.demo_files"),
    "encoders": ("sb3_ibrl.networks.encoders",),
    "il": ("sb3_ibrl.il.frozen",),
    "networks": ("sb3_ibrl.networks.mlp",),
    "q_networks": ("sb3_ibrl.networks.q_networks", "sb3_ibrl.common.spaces"),
    "resnet": ("sb3_ibrl.networks.resnet",),
    "robomimic_hdf5": ("sb3_ibrl.data.robomimic_hdf5", "sb3_ibrl.data.robomimic_writer", "sb3_ibrl.data.obs_keys"),
    "rollouts": ("sb3_ibrl.common.evaluation",),
}


class _MovedModule(types.ModuleType):
    """A stand-in for a moved module: its attributes are read from the new modules, with a ``DeprecationWarning``."""

    def __init__(self, name: str, targets: tuple[str, ...]):
        super().__init__(name, f"Moved to {' and '.join(targets)}; this alias is removed in sb3-ibrl 0.2.0.")
        self._targets = targets

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        for target in self._targets:
            module = importlib.import_module(target)
            if hasattr(module, attribute):
                warnings.warn(
                    f"{self.__name__} moved: import {attribute} from {target} (the old path is removed in sb3-ibrl 0.2.0)",
                    DeprecationWarning,
                    stacklevel=2,
                )
                return getattr(module, attribute)
        raise AttributeError(f"module {self.__name__!r} (moved to {', '.join(self._targets)}) has no attribute {attribute!r}")


for _old, _targets in MOVED_MODULES.items():
    _alias = sys.modules.setdefault(f"{__name__}.{_old}", _MovedModule(f"{__name__}.{_old}", _targets))
    setattr(sys.modules[__name__], _old, _alias)
