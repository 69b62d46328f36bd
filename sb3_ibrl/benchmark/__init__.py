"""Benchmarks of IBRL against the paper's baselines and ablations: ``python -m sb3_ibrl.benchmark run|report``."""

from sb3_ibrl.benchmark.methods import METHODS, MethodSpec, make_model
from sb3_ibrl.benchmark.runner import RunConfig, collect_results, run_all, run_one
from sb3_ibrl.benchmark.tasks import PROFILES, TaskSpec, get_task

__all__ = [
    "METHODS",
    "PROFILES",
    "MethodSpec",
    "RunConfig",
    "TaskSpec",
    "collect_results",
    "get_task",
    "make_model",
    "run_all",
    "run_one",
]
