"""Helpers of the tests of ``benchmarks/``: those scripts are not a package, so tests load them from their files."""

import importlib.util
import os
from types import ModuleType

BENCHMARKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "benchmarks")


def load_benchmark(name: str) -> ModuleType:
    """
    Load ``benchmarks/<name>.py`` as a module (a new module object at each call).

    :param name: the script's name without ``.py``
    :return: the module
    """
    spec = importlib.util.spec_from_file_location(name, os.path.join(BENCHMARKS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module
