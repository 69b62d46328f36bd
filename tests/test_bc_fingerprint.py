"""benchmarks/fingerprints.py and bc_fingerprint_check.py: where two machines' demos and BC part."""

import json
import os
import pickle

import numpy as np
import pytest
import torch as th
from benchmark_helpers import load_benchmark


def test_digests_see_every_value_dtype_and_shape():
    fp = load_benchmark("fingerprints")
    image = np.zeros((2, 3, 4, 4), dtype=np.uint8)
    base = fp.digest([image])
    assert len(base) == fp.DIGEST_CHARS and base == fp.digest([image.copy()])
    changed = image.copy()
    changed[1, 2, 3, 3] = 1
    assert fp.digest([changed]) != base  # one value
    assert fp.digest([image.astype(np.int16)]) != base and fp.digest([image.reshape(2, 3, 16)]) != base
    assert fp.digest([image[:1], image[1:]]) != base  # the split between arrays counts too
    net = th.nn.Linear(3, 2)
    weights = fp.policy_fingerprint(net)
    with th.no_grad():
        net.bias[0] += 1e-7
    assert fp.policy_fingerprint(net) != weights
    assert fp.differences({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 1, "b": {"c": 2, "d": 4}, "e": 0}) == ["b.d", "e"]


def test_demo_fingerprint_refuses_demos_without_the_image_key():
    fp = load_benchmark("fingerprints")
    from sb3_ibrl.data.episodes import Episode

    episode = Episode({"state": np.zeros((3, 2), np.float32)}, np.zeros((2, 1), np.float32), np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="no observation key 'image'"):
        fp.demo_fingerprint([episode], "image")
    with pytest.raises(ValueError, match="no demos"):
        fp.demo_fingerprint([], "image")


def test_a_run_keeps_its_fingerprint_and_this_machine_reproduces_it(tmp_path):
    pytest.importorskip("imitation.algorithms.bc")
    spi, check = load_benchmark("state_pixel_il"), load_benchmark("bc_fingerprint_check")
    args = ["--task", "PointGoal-v0", "--methods", "ibrl", "--steps", "20", "--eval-every", "20", "--eval-episodes", "1"]
    folder = spi.main([*args, "--bc-batches", "3", "--bc-width", "4", "--seed", "2", "--no-plot", "--out", str(tmp_path)])
    with open(os.path.join(folder, "bc.json")) as file:
        bc = json.load(file)
    assert (bc["seed"], bc["demo_seed"]) == (2, 0)
    assert sorted(bc["fingerprint"]) == ["bc_weights", "demos"] and len(bc["fingerprint"]["demos"]["images"]) == 1
    assert bc["machine"]["torch"] == th.__version__ and bc["machine"]["torch_cpu_capability"]
    # the same machine records the same demos and trains the same BC: nothing differs
    report = check.check(folder, train=True)
    assert report["same"] and report["differences"] == [] and report["bc_trained_on"] == "the folder's demos.pkl"
    assert report["actual"] == bc["fingerprint"] and report["machine_then"] == bc["machine"]
    # a folder whose demo has one changed pixel, and no fingerprint in bc.json: computed from its files, and it differs
    demos_path = os.path.join(folder, "demos.pkl")
    with open(demos_path, "rb") as file:
        demos = pickle.load(file)
    demos[0].obs["image"][5, 0, 1, 1] ^= 7
    with open(demos_path, "wb") as file:
        pickle.dump(demos, file)
    del bc["fingerprint"]
    with open(os.path.join(folder, "bc.json"), "w") as file:
        json.dump(bc, file)
    report = check.check(folder)
    assert report["compared_with"] == "the folder's demos.pkl and bc_policy.zip"
    assert report["differences"] == ["demos.images"] and not report["same"]  # the first image, states and actions agree
    (change,) = report["pixel_changes"]
    assert (change["frames"], change["largest"]) == (1, 7) and 0 < change["share"] < 1e-3
    # --write stores the files' fingerprint once
    written = check.main([folder, "--write"])
    assert written["fingerprint"]["demos"]["images"] == report["expected"]["demos"]["images"]
    with pytest.raises(ValueError, match="already has a fingerprint"):
        check.main([folder, "--write"])
    with pytest.raises(FileNotFoundError, match=r"bc\.json"):
        check.check(str(tmp_path / "nothing"))
