"""benchmarks/match_rules.py: the deployed hybrid under other match rules, from recorded match statistics."""

import csv

import pytest
from benchmark_helpers import load_benchmark

from sb3_ibrl.benchmark.runner import CURVE_FIELDS

STATS = [  # IL warm-up: 20 episodes, mean 0.5 (sd 0.513); the hybrid's window: 12 episodes, then 20 (mean 0.6, 1.0)
    dict(il_return_mean=0.5, il_return_sd=0.513, il_episodes=20, hybrid_return_mean=h_mean, hybrid_return_sd=h_sd,
         hybrid_episodes=h_n, il_matched=matched)
    for h_mean, h_sd, h_n, matched in [(0.2, 0.41, 12, 0.0), (0.6, 0.503, 20, 1.0), (1.0, 0.0, 20, 1.0)]
]  # fmt: skip


def _write(path, fields, rows):
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def runner_results(path):
    rows = [dict(task="T", method="bc", seed=0, env_steps=0, success_rate=0.8)]
    for step, stats, confident, greedy in zip([1000, 2000, 3000], STATS, [0.7, 0.6, 0.9], [0.1, 0.2, 1.0]):
        deployed = greedy if stats["il_matched"] else confident
        rows.append(dict(task="T", method="ibrl", seed=0, env_steps=step, success_rate=deployed, greedy_success=greedy,
                         confident_success=confident, **stats))  # fmt: skip
    return _write(path, CURVE_FIELDS, rows)


def test_rules_recomputed_from_a_runner_results_file(tmp_path, capsys):
    rules = load_benchmark("match_rules")
    checkpoints = rules.read_checkpoints(runner_results(tmp_path / "results.csv"), model_confidence=3.0)
    points = checkpoints[("T", 0)]
    assert [point["before_kinf"] for point in points] == [0.8] * 3  # the IL policy alone: the seed's BC
    assert rules.deployed(points, "k3", 0.0, 20).tolist() == [0.7, 0.2, 1.0]  # the recorded deployment (z = 0)
    # z = 1: a lead of 0.1 over a standard error of 0.161 is not enough at 2000 steps; 0.5 over 0.115 is at 3000
    assert rules.deployed(points, "k3", 1.0, 20).tolist() == [0.7, 0.6, 1.0]
    assert rules.deployed(points, "kinf", 1.0, 20).tolist() == [0.8, 0.8, 1.0]
    assert rules.deployed(points, "kinf", 5.0, 20).tolist() == [0.8, 0.8, 0.8]
    table = rules.main([str(tmp_path / "results.csv"), "--confidences", "0", "1", "--model-confidence", "3"])
    assert "| | k3 | 1 | 0.70 0.60 1.00 | 0.77 | 1.00 | -0.20 | 1 |" in table
    assert "| | kinf | 0 | 0.80 0.20 1.00 | 0.67 | 1.00 | -0.60 | 1 |" in table
    assert "3 checkpoints: z = 0 gives the recorded il_matched" in capsys.readouterr().out
    inf_runs = rules.read_checkpoints(str(tmp_path / "results.csv"))[("T", 0)]  # runs at k = inf: measured, not BC's
    assert [point["before_kinf"] for point in inf_runs] == [0.7, 0.6, 0.9] and "before_k3" not in inf_runs[0]


def test_rules_from_sweep_files_and_bad_input(tmp_path):
    rules = load_benchmark("match_rules")
    fields = ["seed", "env_steps", "bc", "il_matched", "k0", "k3", "kinf", *rules.STAT_KEYS]
    rows = [dict(seed=0, env_steps=step, bc=0.5, k0=greedy, k3=0.4, kinf=0.5, **stats)
            for step, stats, greedy in zip([500, 1000, 1500], STATS, [0.0, 0.0, 0.9])]  # fmt: skip
    path = _write(tmp_path / "sweep_PointGoal-pixel-v0_seed0.csv", fields, rows)
    points = rules.read_checkpoints(path)[("PointGoal-pixel-v0", 0)]
    assert sorted(key for key in points[0] if key.startswith("before_")) == ["before_k3", "before_kinf"]
    assert rules.deployed(points, "kinf", 0.0, 20).tolist() == [0.5, 0.0, 0.9]
    assert rules.deployed(points, "kinf", 0.0, 21).tolist() == [0.5, 0.5, 0.5]  # a window the runs never filled
    with pytest.raises(ValueError, match="z = 0 does not give the recorded il_matched"):
        rules.check_recorded(rules.read_checkpoints(path), window=21)
    old = _write(tmp_path / "old.csv", ["seed", "env_steps", "bc", "k0"], [dict(seed=0, env_steps=1, bc=0, k0=0)])
    with pytest.raises(ValueError, match="lacks the match statistics"):
        rules.read_checkpoints(old)
