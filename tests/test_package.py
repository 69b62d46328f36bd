"""Packaging: the public API, the declared dependency set, and the imitation route that must not downgrade SB3."""

import ast
import importlib.metadata
import os

import gymnasium as gym
import pytest

import sb3_ibrl
from sb3_ibrl import IBRL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("+")[0].split(".")[:3])


def _setup_requirements() -> list[str]:
    tree = ast.parse(open(os.path.join(ROOT, "setup.py")).read())
    requirements: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and any(c in node.value for c in "<>=~"):
            requirements.append(node.value)
    return requirements


def test_public_api_and_version():
    assert sb3_ibrl.__version__ == open(os.path.join(ROOT, "sb3_ibrl", "version.txt")).read().strip()
    assert os.path.exists(os.path.join(ROOT, "sb3_ibrl", "py.typed"))
    assert set(IBRL.policy_aliases) == {"MlpPolicy", "CnnPolicy", "MultiInputPolicy"}
    assert "PointGoal-v0" in gym.registry


def test_imitation_is_never_declared():
    requirements = _setup_requirements()
    assert requirements, "no requirement found in setup.py"
    assert not any(req.lower().startswith("imitation") for req in requirements)
    core = {req.split(">")[0].split("<")[0].split("=")[0].lower() for req in requirements}
    assert {"stable_baselines3", "gymnasium", "torch", "numpy"} <= core


def test_installed_versions_within_declared_range():
    # After `pip install --no-deps imitation==1.0.1`, SB3 and gymnasium must still be the tested ones
    assert _version_tuple(importlib.metadata.version("stable_baselines3")) >= (2, 9, 2)
    assert (1, 4, 0) <= _version_tuple(importlib.metadata.version("gymnasium")) < (2, 0, 0)


def test_imitation_installed_without_its_pins():
    try:
        imitation_version = importlib.metadata.version("imitation")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("imitation is not installed")
    assert imitation_version == "1.0.1"
    pins = importlib.metadata.requires("imitation") or []
    assert any(pin.startswith("stable-baselines3") for pin in pins)  # imitation pins an old SB3 ...
    from imitation.algorithms import bc  # ... yet its BC imports and runs on ours (see test_demos)

    assert hasattr(bc, "BC")
