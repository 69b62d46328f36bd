"""
Startup hook that plugs sb3-ibrl into rl-zoo3, installed as ``sb3_ibrl_zoo.pth`` in site-packages.

Python runs the ``.pth`` line at every start-up; it calls :func:`install`, which only appends a small finder to
``sys.meta_path`` (this module imports nothing else). The finder does nothing until ``rl_zoo3`` (or one of the
submodules below) is imported: then, right after the module has run, it calls
:func:`sb3_ibrl.zoo.registration.on_import`, which registers the ``ibrl`` algorithm, its default hyperparameters
file, its Optuna sampler and the sb3-ibrl environments with rl-zoo3. So ``python -m rl_zoo3.train --algo ibrl``
works without ``--gym-packages`` or ``-conf``, and programs that never import rl-zoo3 pay nothing.

Set the environment variable ``SB3_IBRL_NO_ZOO_HOOK=1`` to switch the hook off.

This is a top-level module (not in the ``sb3_ibrl`` package) because importing ``sb3_ibrl`` imports torch; it imports
nothing but ``sys``.
"""

from __future__ import annotations  # annotations are not evaluated: no typing import at start-up

import sys

# Modules whose import triggers the registration, in the order rl-zoo3 imports them
WATCHED_MODULES = ("rl_zoo3", "rl_zoo3.hyperparams_opt", "rl_zoo3.exp_manager")


def _after_import(module: object) -> None:
    """Register sb3-ibrl with the rl-zoo3 module that was just imported; never break the import itself."""
    try:
        from sb3_ibrl.zoo.registration import on_import

        on_import(module)
    except Exception as error:  # a broken plugin must not break rl-zoo3
        import warnings

        warnings.warn(f"sb3-ibrl could not register with {getattr(module, '__name__', module)}: {error!r}", stacklevel=2)


class _NotifyingLoader:
    """Wraps a module's loader: runs the module, then :func:`_after_import`."""

    def __init__(self, loader: object) -> None:
        self._loader = loader

    def create_module(self, spec: object) -> object | None:
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: object) -> None:
        # The module sees its real loader (resource readers, get_data, ...)
        module.__loader__ = self._loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _after_import(module)

    def __getattr__(self, name: str) -> object:
        return getattr(self._loader, name)


class ZooImportHook:
    """A ``sys.meta_path`` finder that only wraps the loader of the :data:`WATCHED_MODULES`."""

    def __init__(self) -> None:
        self._searching: set[str] = set()

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object | None:
        if fullname not in WATCHED_MODULES or fullname in self._searching:
            return None
        self._searching.add(fullname)
        try:
            for finder in sys.meta_path:
                find_spec = getattr(finder, "find_spec", None)
                if finder is self or find_spec is None:
                    continue
                spec = find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            self._searching.discard(fullname)
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _NotifyingLoader(spec.loader)
        return spec


def install() -> None:
    """Put the finder in front of ``sys.meta_path`` (once); for rl-zoo3 modules already imported, register now."""
    if not any(isinstance(finder, ZooImportHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, ZooImportHook())
    for name in WATCHED_MODULES:
        if name in sys.modules:
            _after_import(sys.modules[name])
