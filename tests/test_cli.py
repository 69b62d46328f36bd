"""Every command line's --help, and the torch thread counts of the command lines that train small networks."""

import os
import pathlib
import subprocess
import sys

import gymnasium as gym
import pytest
import torch as th

from sb3_ibrl.il.cli import make_parser, run, torch_threads
from sb3_ibrl.zoo.registration import choose_torch_threads

HELP_COMMANDS = {
    "bc": (["sb3_ibrl.bc", "--help"], "--threads"),
    "demos": (["sb3_ibrl.demos", "--help"], "--max-attempts"),
    "demos replay": (["sb3_ibrl.demos", "replay", "--help"], "--file"),
    "train (rl-zoo3)": (["sb3_ibrl.train", "--help"], "--num-threads"),
    "benchmark": (["sb3_ibrl.benchmark", "--help"], "{run,report,headline}"),
    "benchmark headline": (["sb3_ibrl.benchmark", "headline", "--help"], "--time-limit"),
    "benchmark run": (["sb3_ibrl.benchmark", "run", "--help"], "rlpd+: RLPD+: 50% demos + successes"),
    "benchmark report": (["sb3_ibrl.benchmark", "report", "--help"], "--out"),
}


@pytest.mark.parametrize("name", sorted(HELP_COMMANDS))
def test_every_command_line_help(name):
    arguments, expected = HELP_COMMANDS[name]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-m", *arguments], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage:") and expected in " ".join(result.stdout.split()), result.stdout


def test_bc_uses_one_thread_by_default_and_restores_the_count(tmp_path, capsys):
    from sb3_ibrl.common.evaluation import record_episodes
    from sb3_ibrl.data.demo_files import save_episodes
    from sb3_ibrl.envs import PointGoalExpert

    save_episodes(tmp_path / "demos.npz", record_episodes(gym.make("PointGoal-v0"), PointGoalExpert(seed=0), 1, seed=0))
    args = ["--demos", str(tmp_path / "demos.npz"), "--env", "PointGoal-v0", "--n-batches", "3", "--no-progress"]
    before = th.get_num_threads()
    try:
        th.set_num_threads(2)
        run(make_parser().parse_args([*args, "--out", str(tmp_path / "bc.zip")]))
        assert "(mlp) for 3 batches (torch threads: 1)" in capsys.readouterr().out and th.get_num_threads() == 2
        run(make_parser().parse_args([*args, "--out", str(tmp_path / "bc2.zip"), "--threads", "2"]))
        assert "(mlp) for 3 batches (torch threads: 2)" in capsys.readouterr().out
        with torch_threads(1):
            assert th.get_num_threads() == 1
        assert th.get_num_threads() == 2
    finally:
        th.set_num_threads(before)


def test_zoo_trains_with_one_thread_unless_told():
    threads = th.get_num_threads()
    assert choose_torch_threads(threads, ["train.py", "--algo", "ibrl"]) == 1
    assert choose_torch_threads(threads, ["train.py", "--num-threads", "4"]) is None
    assert choose_torch_threads(threads, ["train.py", "--num-threads=4"]) is None
    assert choose_torch_threads(threads + 1, ["train.py"]) is None  # changed since rl-zoo3 was imported
