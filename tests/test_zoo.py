"""
rl-zoo3 integration: the start-up hook, hyperparams/ibrl.yml, generated assets, the sampler, and the literal commands
(``python -m rl_zoo3.train|enjoy|record_video --algo ibrl``, ``-optimize`` with two workers on one SQLite storage).
"""

import argparse
import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium import spaces

pytest.importorskip("rl_zoo3", reason='needs the zoo extra: pip install -e ".[zoo]"')
optuna = pytest.importorskip("optuna")

import rl_zoo3  # noqa: E402
from rl_zoo3.exp_manager import ExperimentManager  # noqa: E402
from rl_zoo3.hyperparams_opt import HYPERPARAMS_CONVERTER, HYPERPARAMS_SAMPLER  # noqa: E402

from sb3_ibrl import IBRL  # noqa: E402
from sb3_ibrl.envs import METAWORLD_ENV_IDS, POINT_GOAL_IBRL_SETTINGS, ROBOSUITE_ENV_IDS  # noqa: E402
from sb3_ibrl.ibrl.policies import IBRLPolicy  # noqa: E402
from sb3_ibrl.train import with_default_algo  # noqa: E402
from sb3_ibrl.zoo import DEMO_COUNTS, default_config_path, ensure_assets, ensure_demos, register  # noqa: E402
from sb3_ibrl.zoo import assets as assets_module  # noqa: E402
from sb3_ibrl.zoo.sampler import NET_ARCHS, base_policy_kwargs, sample_ibrl_params  # noqa: E402

POINT_GOAL = "PointGoal-v0"
PAPER_IDS = [*ROBOSUITE_ENV_IDS, *METAWORLD_ENV_IDS]
# Keys that rl-zoo3 consumes itself (the others reach the IBRL constructor)
ZOO_KEYS = {"n_timesteps", "policy", "n_envs", "normalize", "env_wrapper", "vec_env_wrapper", "frame_stack", "callback"}
ZOO_KEYS |= {"monitor_kwargs", "env_kwargs", "noise_type", "noise_std"}
IBRL_KEYS = set(inspect.signature(IBRL.__init__).parameters) - {"self", "env", "_init_setup_model"}
POLICY_KEYS = set(inspect.signature(IBRLPolicy.__init__).parameters) - {"self", "observation_space", "action_space"}


register()  # this process: whether or not the start-up hook did (test_hook_registers_with_rl_zoo3 checks the hook)


def _env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "SB3_IBRL_NO_ZOO_HOOK"}
    return {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}


def _run(args: list[str], cwd: Path, timeout: float = 240, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    with open(default_config_path()) as file:
        return yaml.safe_load(file)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One working directory for the command line tests: the generated demos and IL policy are shared."""
    return tmp_path_factory.mktemp("zoo")


def _policy_kwargs(entry: dict[str, Any]) -> dict[str, Any]:
    value = entry.get("policy_kwargs", {})
    return eval(value) if isinstance(value, str) else value  # as rl-zoo3 does


# ------------------------------------------------------------------------------------------------- start-up hook
def test_startup_hook_is_installed_and_lightweight(tmp_path: Path) -> None:
    def modules_at_startup(**env: str) -> set[str]:
        code = "import sys, json; print(json.dumps(sorted(sys.modules)))"
        result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(**env), capture_output=True, text=True)
        return set(json.loads(result.stdout))

    modules = modules_at_startup()
    assert "sb3_ibrl_zoo_hook" in modules, 'the start-up hook is not installed: pip install -e ".[zoo]"'
    heavy = {"torch", "numpy", "sb3_ibrl", "rl_zoo3", "optuna", "gymnasium", "stable_baselines3"} & modules
    assert not heavy, f"the start-up hook imported {sorted(heavy)}"
    # Compared with a start without the hook, it adds itself and __future__ at most
    assert modules - modules_at_startup(SB3_IBRL_NO_ZOO_HOOK="1") <= {"sb3_ibrl_zoo_hook", "__future__"}


def test_build_installs_the_hook_and_config(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.py", "README.md", "pyproject.toml", "sb3_ibrl_zoo_hook.py", "sb3_ibrl", "hyperparams"):
        if (root / name).is_dir():
            shutil.copytree(root / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(root / name, source / name)
    _run(["setup.py", "-q", "build_py", "--build-lib", str(tmp_path / "lib")], source)
    lib = tmp_path / "lib"  # the root of a wheel: site-packages
    assert "__import__('sb3_ibrl_zoo_hook').install()" in (lib / "sb3_ibrl_zoo.pth").read_text()
    assert (lib / "sb3_ibrl_zoo_hook.py").is_file() and (lib / "sb3_ibrl" / "zoo" / "hyperparams" / "ibrl.yml").is_file()
    # The line installs the hook where the module is found, and does nothing (no error at start-up) where it is not
    line = (lib / "sb3_ibrl_zoo.pth").read_text()
    check = "import sys; exec(sys.argv[1]); print(any(type(f).__module__ == 'sb3_ibrl_zoo_hook' for f in sys.meta_path))"
    for path, installed in ((str(lib), "True"), (str(tmp_path / "empty"), "False")):
        result = subprocess.run(
            [sys.executable, "-S", "-c", check, line], env={"PYTHONPATH": path}, cwd=tmp_path, capture_output=True, text=True
        )
        assert result.returncode == 0 and result.stdout.strip() == installed and not result.stderr, result


def test_hook_registers_with_rl_zoo3(tmp_path: Path) -> None:
    code = (
        "import json, rl_zoo3, gymnasium\n"
        "from rl_zoo3.hyperparams_opt import HYPERPARAMS_SAMPLER, HYPERPARAMS_CONVERTER\n"
        "from rl_zoo3.exp_manager import ExperimentManager\n"
        "print(json.dumps([rl_zoo3.ALGOS['ibrl'].__name__, HYPERPARAMS_SAMPLER['ibrl'].__name__, "
        "'ibrl' in HYPERPARAMS_CONVERTER, ExperimentManager._sb3_ibrl_patched, 'Lift-state-v0' in gymnasium.registry]))"
    )
    printed = [line for line in _run(["-c", code], tmp_path).splitlines() if line.startswith("[")][-1]
    assert json.loads(printed) == ["IBRL", "sample_ibrl_params", True, True, True]
    assert rl_zoo3.ALGOS["ibrl"] is IBRL and rl_zoo3.utils.ALGOS is rl_zoo3.ALGOS
    assert HYPERPARAMS_SAMPLER["ibrl"] is sample_ibrl_params and "ibrl" in HYPERPARAMS_CONVERTER
    register()  # idempotent
    assert rl_zoo3.ALGOS["ibrl"] is IBRL and POINT_GOAL in gym.registry


def test_default_config_without_conf(tmp_path: Path) -> None:
    args = argparse.Namespace()
    manager = ExperimentManager(args, "ibrl", POINT_GOAL, str(tmp_path / "logs"))
    assert manager.config == default_config_path()
    custom = str(tmp_path / "my.yml")
    assert ExperimentManager(args, "ibrl", POINT_GOAL, str(tmp_path / "logs"), config=custom).config == custom
    assert ExperimentManager(args, "td3", POINT_GOAL, str(tmp_path / "logs")).config != default_config_path()


def test_train_wrapper_adds_algo() -> None:
    assert with_default_algo(["--env", POINT_GOAL]) == ["--algo", "ibrl", "--env", POINT_GOAL]
    assert with_default_algo(["--algo", "td3"]) == ["--algo", "td3"]


# ------------------------------------------------------------------------------------------------------ ibrl.yml
def test_config_has_every_task(config: dict[str, Any]) -> None:
    for env_id in [*PAPER_IDS, POINT_GOAL]:
        assert env_id in config, f"hyperparams/ibrl.yml has no entry for {env_id}"
        assert env_id in gym.registry


def test_config_keys_are_valid(config: dict[str, Any]) -> None:
    for env_id, entry in config.items():
        if env_id.endswith("-defaults"):  # YAML anchors
            continue
        unknown = set(entry) - IBRL_KEYS - ZOO_KEYS
        assert not unknown, f"{env_id}: {sorted(unknown)} are neither IBRL arguments nor rl-zoo3 keys"
        assert entry["policy"] in IBRL.policy_aliases
        assert set(_policy_kwargs(entry)) <= POLICY_KEYS, env_id
        assert isinstance(entry["n_timesteps"], (int, float)) and entry["n_timesteps"] > 0
        assert isinstance(entry["learning_rate"], float), f"{env_id}: write floats with a dot (YAML 1.1)"
        assert entry["demonstrations"] == f"demos/{env_id}.{'npz' if env_id == POINT_GOAL else 'hdf5'}"
        assert entry["il_policy"] == f"il/{env_id}.zip"


def test_config_follows_table_2(config: dict[str, Any]) -> None:
    for env_id in PAPER_IDS:
        entry, kwargs = config[env_id], _policy_kwargs(config[env_id])
        pixels = "-pixel" in env_id
        assert (entry["learning_rate"], entry["batch_size"], entry["tau"], entry["gamma"]) == (1e-4, 256, 0.01, 0.99)
        assert (entry["exploration_std"], entry["target_noise_clip"], entry["n_steps"]) == (0.1, 0.3, 3)
        assert kwargs["dropout"] == 0.5 and kwargs["layer_norm"] is True
        assert (kwargs["n_critics"], entry["gradient_steps"], entry["policy_delay"]) == ((2, 1, 1) if pixels else (5, 5, 5))
        if pixels:
            assert entry["policy"] == ("MultiInputPolicy" if env_id.endswith("pixelproprio-v0") else "CnnPolicy")
            assert kwargs["encoder"] == "vit" and kwargs["q_hidden_dim"] == 1024
        else:
            assert entry["policy"] == "MlpPolicy"
            assert kwargs["net_arch"] == [1024 if env_id.startswith("Square") else 512] * 3
        assert entry.get("demo_fraction", 0.0) == (0.5 if env_id.startswith("Square") else 0.0)
    assert {DEMO_COUNTS[f"{task}-state-v0"] for task in ("Lift", "Can", "Square")} == {1, 10, 50}
    assert {DEMO_COUNTS[env_id] for env_id in METAWORLD_ENV_IDS} == {3}
    point_goal = dict(config[POINT_GOAL])
    assert _policy_kwargs(point_goal) == POINT_GOAL_IBRL_SETTINGS["policy_kwargs"]
    point_goal.pop("policy_kwargs")
    for key, value in POINT_GOAL_IBRL_SETTINGS.items():
        assert key == "policy_kwargs" or point_goal[key] == value, key


class _FakePixelEnv(gym.Env):
    """Observations like the pixel tasks' (96 x 96 images, optionally with proprio), 7-dim actions."""

    def __init__(self, proprio: bool) -> None:
        image = spaces.Box(0, 255, (3, 96, 96), np.uint8)
        self.observation_space = spaces.Dict(image=image, proprio=spaces.Box(-np.inf, np.inf, (9,))) if proprio else image
        self.action_space = spaces.Box(-1, 1, (7,), np.float32)

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict]:
        return self.observation_space.sample(), 0.0, False, False, {}


@pytest.mark.parametrize("env_id", ["Lift-pixel-v0", "Square-pixelproprio-v0"])
def test_pixel_settings_build(config: dict[str, Any], env_id: str) -> None:
    entry = {key: value for key, value in config[env_id].items() if key not in ZOO_KEYS | {"il_policy", "demonstrations"}}
    model = IBRL(
        config[env_id]["policy"],
        _FakePixelEnv(proprio="proprio" in env_id),
        **{**entry, "policy_kwargs": _policy_kwargs(entry), "buffer_size": 10},
    )
    assert model.policy.n_critics == 2 and model.demo_fraction == entry.get("demo_fraction", 0.0)


# -------------------------------------------------------------------------------------------------------- assets
@pytest.mark.parametrize("suffix", ["npz", "hdf5"])
def test_assets_generated_when_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    if suffix == "hdf5":
        pytest.importorskip("h5py")
    pytest.importorskip("imitation")
    monkeypatch.chdir(tmp_path)
    hyperparams = {"demonstrations": f"demos/pg.{suffix}", "il_policy": "il/pg.zip"}
    ensure_assets(POINT_GOAL, hyperparams)
    assert sorted(path.name for path in tmp_path.rglob("*") if path.is_file()) == sorted([f"pg.{suffix}", "pg.zip"])
    stamps = [os.stat(hyperparams[key]).st_mtime_ns for key in ("demonstrations", "il_policy")]
    ensure_assets(POINT_GOAL, hyperparams)  # present: kept
    assert [os.stat(hyperparams[key]).st_mtime_ns for key in ("demonstrations", "il_policy")] == stamps
    model = IBRL("MlpPolicy", POINT_GOAL, **hyperparams, buffer_size=1000, policy_kwargs=dict(net_arch=[32]))
    assert model.il_policy is not None and model.replay_buffer.n_demo_transitions > 0


def test_il_policy_without_demos_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("imitation")
    monkeypatch.chdir(tmp_path)
    ensure_assets(POINT_GOAL, {"demonstrations": None, "il_policy": "il/pg.zip"})
    assert (tmp_path / "demos" / f"{POINT_GOAL}.npz").is_file() and (tmp_path / "il" / "pg.zip").is_file()


def test_simulated_task_demos_use_the_scripted_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_run(command: list[str], check: bool) -> subprocess.CompletedProcess:
        calls.append(command)
        return subprocess.CompletedProcess(command, 2)

    monkeypatch.setattr(assets_module.subprocess, "run", fake_run)
    with pytest.raises(RuntimeError, match="Could not record the demos of Can-state-v0"):
        ensure_demos("Can-state-v0", tmp_path / "can.hdf5")
    assert calls[0][1:7] == ["-m", "sb3_ibrl.demos", "--env", "Can-state-v0", "--n", "10"]
    assert not list(tmp_path.iterdir())  # no partial file left
    with pytest.raises(ValueError, match="No scripted demonstrator"):
        ensure_demos("MyTask-v0", tmp_path / "mine.hdf5")


# ------------------------------------------------------------------------------------------------------- sampler
def test_sampler_gives_plain_ibrl_arguments() -> None:
    params = dict(learning_rate=3e-4, tau=0.02, batch_size=64, n_steps=3, exploration_std=0.1, proposal_beta=None)
    params.update(proposal_confidence=2.0, critic_updates=2, n_critics=2, dropout=0.25, net_arch="small")
    with base_policy_kwargs({"encoder": "drq", "n_critics": 5}):
        hyperparams = sample_ibrl_params(optuna.trial.FixedTrial(params), 2, 1, {})
    assert hyperparams["policy_kwargs"] == {"encoder": "drq", "n_critics": 2, "dropout": 0.25, "net_arch": NET_ARCHS["small"]}
    assert hyperparams["gradient_steps"] == hyperparams["policy_delay"] == 2 and hyperparams["proposal_beta"] is None
    assert hyperparams["proposal_confidence"] == 2.0
    assert set(hyperparams) <= IBRL_KEYS
    assert HYPERPARAMS_CONVERTER["ibrl"](params)["policy_kwargs"]["net_arch"] == [64, 64]
    model = IBRL("MlpPolicy", POINT_GOAL, **{**hyperparams, "policy_kwargs": dict(net_arch=[32], n_critics=2)})
    assert model.batch_size == 64
    params["proposal_confidence"] = float("inf")  # the IL policy alone until the hybrid has matched it
    hyperparams = sample_ibrl_params(optuna.trial.FixedTrial(params), 2, 1, {})
    assert IBRL("MlpPolicy", POINT_GOAL, **{**hyperparams, "policy_kwargs": dict(net_arch=[32])}).proposal_confidence == np.inf


# --------------------------------------------------------------------------------------------- the command lines
def test_zoo_train_enjoy_record_video(workdir: Path) -> None:
    pytest.importorskip("imitation")
    out = _run(
        ["-m", "rl_zoo3.train", "--algo", "ibrl", "--env", POINT_GOAL, "-n", "500", "-f", "logs", "--eval-freq", "-1"], workdir
    )
    assert "are missing: recording 1 scripted demo" in out and f"IL policy il/{POINT_GOAL}.zip is missing" in out
    run_dir = workdir / "logs" / "ibrl" / f"{POINT_GOAL}_1"
    assert (run_dir / f"{POINT_GOAL}.zip").is_file() and (workdir / "il" / f"{POINT_GOAL}.zip").is_file()
    with open(run_dir / POINT_GOAL / "config.yml") as file:
        saved = yaml.load(file, Loader=yaml.UnsafeLoader)  # as rl-zoo3 reads it
    assert saved["il_policy"] == f"il/{POINT_GOAL}.zip" and saved["demonstrations"] == f"demos/{POINT_GOAL}.npz"

    out = _run(
        ["-m", "rl_zoo3.enjoy", "--algo", "ibrl", "--env", POINT_GOAL, "-f", "logs/", "-n", "150", "--no-render"], workdir
    )
    assert "Episode Length" in out or "Mean episode length" in out
    try:
        import pygame  # noqa: F401  (rendering to a window: gymnasium's HumanRendering)
    except ImportError:
        pass
    else:  # exactly as written, with a dummy video driver
        _run(
            ["-m", "rl_zoo3.enjoy", "--algo", "ibrl", "--env", POINT_GOAL, "-f", "logs/", "-n", "20"],
            workdir,
            SDL_VIDEODRIVER="dummy",
        )
    _run(["-m", "rl_zoo3.record_video", "--algo", "ibrl", "--env", POINT_GOAL, "-f", "logs/", "-n", "100"], workdir)
    assert list((run_dir / "videos").glob("*.mp4"))


def test_sb3_ibrl_train_without_the_hook(workdir: Path) -> None:
    pytest.importorskip("imitation")
    args = ["-m", "sb3_ibrl.train", "--env", POINT_GOAL, "-n", "400", "-f", "wrapper_logs", "--eval-freq", "-1"]
    _run(args, workdir, SB3_IBRL_NO_ZOO_HOOK="1")
    assert (workdir / "wrapper_logs" / "ibrl" / f"{POINT_GOAL}_1" / f"{POINT_GOAL}.zip").is_file()


def test_optimize_two_workers_share_one_study(workdir: Path) -> None:
    pytest.importorskip("imitation")
    storage = "sqlite:///study.db"
    args = [
        "-m",
        "rl_zoo3.train",
        "--algo",
        "ibrl",
        "--env",
        POINT_GOAL,
        "-n",
        "400",
        "-f",
        "opt_logs",
        "--eval-episodes",
        "2",
    ]
    args += ["-optimize", "--n-trials", "1", "--storage", storage, "--study-name", "s", "--no-optim-plots"]
    workers = [
        subprocess.Popen(
            [sys.executable, *args, "--seed", str(seed)],
            cwd=workdir,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for seed in (1, 2)
    ]
    outputs = [worker.communicate(timeout=240)[0] for worker in workers]
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-5000:]
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{workdir / 'study.db'}")
    trials = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(trials) == 2 and {trial.number for trial in trials} == {0, 1}
    assert set(trials[0].params) == {
        "learning_rate",
        "tau",
        "batch_size",
        "n_steps",
        "exploration_std",
        "proposal_beta",
        "proposal_confidence",
        "critic_updates",
        "n_critics",
        "dropout",
        "net_arch",
    }
