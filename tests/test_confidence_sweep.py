"""benchmarks/confidence_sweep.py: one training run, deployed under several confidences (here from pixels)."""

import csv
import os

import numpy as np
import pytest
from benchmark_helpers import load_benchmark


def test_pixel_sweep_deploys_each_confidence(tmp_path):
    sweep = load_benchmark("confidence_sweep")
    tiny = ["learning_starts=40", "batch_size=16", "proposal_confidence=1e999"]  # a literal: inf
    paths = sweep.main(["--task", "PointGoal-pixel-v0", "--seeds", "0", "--steps", "80", "--eval-every", "40",
                        "--eval-episodes", "3", "--confidences", "0", "inf", "--out", str(tmp_path),
                        "--override", *tiny])  # fmt: skip
    with open(paths[0], newline="") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["env_steps"]) for row in rows] == [40, 80]
    for row in rows:
        # k = inf keeps the IL action everywhere: the IL policy alone, on the BC evaluation's own episodes
        assert float(row["kinf"]) == float(row["bc"])
        assert 0.0 <= float(row["k0"]) <= 1.0
        # the model's own rule: its confidence (inf) until it has matched its IL policy, then greedy
        matched = float(row["il_matched"]) == 1.0
        assert float(row["deployed_k"]) == (0.0 if matched else np.inf)
        assert float(row["deployed"]) == float(row["k0" if matched else "kinf"])
        assert np.isfinite(float(row["q_il_demo"])) and np.isfinite(float(row["q_rl_demo"]))


@pytest.mark.parametrize(
    "item, message",
    [("proposal_confidense=3", "proposal_confidense: not a keyword of IBRL"), ("train_freq", "expected key=value")],
)
def test_bad_override_fails_before_training(tmp_path, capsys, item, message):
    sweep = load_benchmark("confidence_sweep")
    with pytest.raises(SystemExit):
        sweep.main(["--task", "PointGoal-pixel-v0", "--out", str(tmp_path), "--override", item])
    assert message in capsys.readouterr().err
    assert not os.listdir(tmp_path)  # nothing ran
