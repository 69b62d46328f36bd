"""benchmarks/wrist_bc_batches.py: BC evaluated as it trains, on PointGoal-v0 (state RL, image IL)."""

import os
import sys

import numpy as np
import pytest
from benchmark_helpers import load_benchmark


@pytest.fixture(scope="module")
def script():
    pytest.importorskip("imitation.algorithms.bc")
    yield load_benchmark("wrist_bc_batches")
    sys.modules.pop("state_pixel_il", None)


def test_options(script):
    args = script.parse_args(["--task", "Can-state-v0"])
    assert (args.demos, args.width, args.checks, args.seeds) == (10, 16, [500, 1000, 2000], [0])
    for bad in (["--checks", "0", "5"], ["--width", "0"], ["--lr", "nan"], ["--lr", "-1"], ["--task", "Square-state-v0"]):
        with pytest.raises(SystemExit):
            script.parse_args(bad)


def test_checks_are_the_bc_of_that_many_batches(script, tmp_path):
    from sb3_ibrl.il.training import bc_action_error, train_bc

    common = ["--task", "PointGoal-v0", "--width", "4", "--eval-episodes", "1", "--out", str(tmp_path)]
    path = script.main([*common, "--seeds", "0", "1", "--checks", "1", "3"])
    rows = script.spi.read_curve(path)
    assert [(int(r["seed"]), int(r["batches"])) for r in rows] == [(0, 1), (0, 3), (1, 1), (1, 3)]
    assert all(0.0 <= float(r["success_rate"]) <= 1.0 for r in rows)
    seconds = [float(r["train_seconds"]) for r in rows]  # training time only, growing with the batches
    assert 0.0 <= seconds[0] <= seconds[1] and 0.0 <= seconds[2] <= seconds[3]
    # the evaluation at 1 batch did not change the training: the row at 3 batches is a BC trained for 3 batches
    args = script.parse_args(common)
    demos = script.spi.load_or_record_demos(args, os.path.dirname(path))
    env = script.spi.make_env("PointGoal-v0", args.camera, with_il=True)
    images = script.spi.part(demos, "image")
    alone = train_bc(images, env.observation_space["image"], env.action_space, n_batches=3, learning_rate=args.lr,
                     features="resnet18", resnet_width=4, pad=args.pad, seed=1)  # fmt: skip
    np.testing.assert_allclose(float(rows[3]["action_mse"]), bc_action_error(alone.policy, images), rtol=1e-5)
    assert float(rows[1]["action_mse"]) != float(rows[3]["action_mse"])  # another seed, another BC
    # done configurations are skipped; a new check retrains that seed and replaces its rows
    mtime = os.path.getmtime(path)
    script.main([*common, "--seeds", "0", "1", "--checks", "1", "3"])
    assert os.path.getmtime(path) == mtime
    script.main([*common, "--seeds", "1", "--checks", "1", "2"])
    rows = script.spi.read_curve(path)
    assert [(int(r["seed"]), int(r["batches"])) for r in rows] == [(0, 1), (0, 3), (1, 3), (1, 1), (1, 2)]


def test_chunking_bc_rows_are_their_own_configuration(script, tmp_path):
    common = ["--task", "PointGoal-v0", "--width", "4", "--eval-episodes", "1", "--out", str(tmp_path), "--seeds", "0"]
    assert script.parse_args([*common, "--chunk-decay", "0.3"]).chunk_decay == 0.0  # plain BC: one key whatever the decay
    for bad in (["--chunk-size", "0"], ["--chunk-size", "2", "--chunk-decay", "-1"]):
        with pytest.raises(SystemExit):
            script.parse_args([*common, *bad])
    path = script.main([*common, "--checks", "2"])
    script.main([*common, "--checks", "2", "--chunk-size", "3", "--chunk-decay", "0.01"])
    rows = script.spi.read_curve(path)
    assert [(int(r["chunk_size"]), float(r["chunk_decay"])) for r in rows] == [(1, 0.0), (3, 0.01)]
    assert all(0.0 <= float(r["success_rate"]) <= 1.0 and float(r["action_mse"]) >= 0.0 for r in rows)
    # rows written before chunking was an option (no chunk columns) are plain BC's
    old = {k: v for k, v in rows[0].items() if not k.startswith("chunk")}
    assert script.key_of(old) == script.key_of(rows[0]) != script.key_of(rows[1])
