"""
Does this machine make the same demos and BC as a ``state_pixel_il.py`` seed folder? Where do they part?

BC is deterministic on one machine and differs between machines (README). This script records the folder's demos
again (same task, camera, count and reset seed: seconds) and compares their fingerprints with the folder's
(``bc.json``, see :mod:`fingerprints`): the images, the first image, the other observations and the actions. With
``--train`` it also trains BC again with the folder's settings, on the folder's own ``demos.pkl`` when it is there (so
that only torch's arithmetic can differ) and compares the weights (minutes: Lift's 2000 batches take about 7 minutes on
one core). The machine facts of both sides are printed, and ``--json`` writes the whole report.

    MUJOCO_GL=egl OMP_NUM_THREADS=1 python benchmarks/bc_fingerprint_check.py \\
        benchmarks/results/state_pixel_il/g3_soft/Lift-state-v0/seed_0 --train

A folder from before fingerprints were kept has none in ``bc.json``: ``--write`` computes them from its ``demos.pkl``
and ``bc_policy.zip`` and stores them (with this machine's facts as ``fingerprint_machine``: run it on the machine
that made the folder).
"""

import argparse
import json
import os
import pickle
import re
import sys
from typing import Any, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import state_pixel_il as spi
from fingerprints import demo_fingerprint, differences, machine_facts, policy_fingerprint


def read_json(path: str) -> dict[str, Any]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: give a seed folder of state_pixel_il.py (it holds bc.json)")
    with open(path) as file:
        return json.load(file)


def folder_demos(folder: str) -> Optional[list[Any]]:
    path = os.path.join(folder, "demos.pkl")
    if not os.path.exists(path):
        return None
    with open(path, "rb") as file:
        return pickle.load(file)


def bc_seed(bc: dict[str, Any], folder: str) -> int:
    """BC's seed: ``bc.json``'s, else the folder's name (``seed_<n>``)."""
    if "seed" in bc:
        return int(bc["seed"])
    match = re.fullmatch(r"seed_(\d+)", os.path.basename(os.path.normpath(folder)))
    if match is None:
        raise ValueError(f"{folder}: bc.json has no seed and the folder is not named seed_<n>")
    return int(match.group(1))


def pixel_changes(stored: list[Any], fresh: list[Any], key: str) -> list[dict[str, Any]]:
    """Per episode: the share of image values that differ, and the largest difference (0-255)."""
    changes = []
    for old, new in zip(stored, fresh):
        a, b = np.asarray(old.obs[key], dtype=np.int16), np.asarray(new.obs[key], dtype=np.int16)
        if a.shape != b.shape:
            changes.append(dict(shape=[list(a.shape), list(b.shape)]))
            continue
        changed = a != b
        frames = int(changed.reshape(len(changed), -1).any(axis=1).sum())
        changes.append(dict(share=float(changed.mean()), largest=int(np.abs(a - b).max()), frames=frames))
    return changes


def retrain(bc: dict[str, Any], folder: str, demos: list[Any]) -> Any:
    """BC trained again with the folder's settings (``bc.json``) on ``demos``."""
    if bc.get("selection"):
        raise ValueError(f"{folder}: BC was kept by --bc-select; training it again would need the selection's evaluations too")
    task, key = bc["task"], bc["il_key"]
    env = spi.make_env(task, key, with_il=True)
    bc_trainer = spi.train_image_bc(spi.part(demos, key), env, key, int(bc["n_batches"]), float(bc["learning_rate"]),
                                    int(bc["resnet_width"]), int(bc["random_shift_pad"]), bc_seed(bc, folder))  # fmt: skip
    return bc_trainer.policy


def check(folder: str, train: bool = False) -> dict[str, Any]:
    """
    Compare a seed folder's fingerprints with what this machine makes.

    :param folder: ``<out>/<task>/seed_<n>`` of ``state_pixel_il.py``
    :param train: also train BC again and compare its weights
    :return: the report: ``same`` (True when nothing differs), ``differences`` (fingerprint keys), both machines' facts
    """
    bc = read_json(os.path.join(folder, "bc.json"))
    stored_demos = folder_demos(folder)
    key = bc["il_key"]
    if "fingerprint" in bc:
        expected, source = bc["fingerprint"], "bc.json"
    elif stored_demos is not None and os.path.exists(os.path.join(folder, "bc_policy.zip")):
        expected, source = files_fingerprint(folder, stored_demos, key), "the folder's demos.pkl and bc_policy.zip"
    else:
        raise ValueError(f"{folder}: bc.json has no fingerprint, and demos.pkl or bc_policy.zip is missing to compute one")
    fresh = spi.record(bc["task"], key, int(bc["n_demos"]), int(bc.get("demo_seed", 0)))
    actual: dict[str, Any] = dict(demos=demo_fingerprint(fresh, key))
    if train:
        actual["bc_weights"] = policy_fingerprint(retrain(bc, folder, stored_demos if stored_demos is not None else fresh))
    expected = {name: value for name, value in expected.items() if name in actual}
    found = differences(expected, actual)
    report = dict(
        folder=folder,
        compared_with=source,
        same=not found,
        differences=found,
        expected=expected,
        actual=actual,
        bc_trained_on=None if not train else ("the folder's demos.pkl" if stored_demos is not None else "a fresh recording"),
        machine_then=bc.get("machine", bc.get("fingerprint_machine")),
        machine_now=dict(machine_facts()),
    )
    if stored_demos is not None and any(name.startswith("demos.") for name in found):
        report["pixel_changes"] = pixel_changes(stored_demos, fresh, key)
    return report


def files_fingerprint(folder: str, demos: list[Any], key: str) -> dict[str, Any]:
    """The fingerprint of a folder's demos (read from its ``demos.pkl``) and ``bc_policy.zip``."""
    from stable_baselines3.common.policies import ActorCriticPolicy

    policy = ActorCriticPolicy.load(os.path.join(folder, "bc_policy.zip"), device="cpu")
    return dict(demos=demo_fingerprint(demos, key), bc_weights=policy_fingerprint(policy))


def write_fingerprint(folder: str) -> dict[str, Any]:
    """Store the fingerprint of a folder's files in its ``bc.json`` (atomically); refused if it has one."""
    path = os.path.join(folder, "bc.json")
    bc = read_json(path)
    if "fingerprint" in bc:
        raise ValueError(f"{path} already has a fingerprint")
    demos = folder_demos(folder)
    if demos is None:
        raise FileNotFoundError(f"{folder}: no demos.pkl to fingerprint")
    bc["fingerprint"] = files_fingerprint(folder, demos, bc["il_key"])
    bc["fingerprint_machine"] = dict(machine_facts())
    with open(f"{path}.tmp", "w") as file:
        json.dump(bc, file, indent=1)
    os.replace(f"{path}.tmp", path)
    return bc


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a seed folder of state_pixel_il.py (<out>/<task>/seed_<n>)")
    parser.add_argument("--train", action="store_true", help="also train BC again and compare its weights")
    parser.add_argument("--write", action="store_true", help="store the fingerprint of the folder's files in its bc.json")
    parser.add_argument("--json", default=None, help="write the report to this file")
    args = parser.parse_args(argv)
    machine_facts()  # before any env renders
    if args.write:
        bc = write_fingerprint(args.folder)
        print(json.dumps(dict(fingerprint=bc["fingerprint"], fingerprint_machine=bc["fingerprint_machine"]), indent=1))
        return bc
    report = check(args.folder, train=args.train)
    print(json.dumps(report, indent=1))
    print("same as the folder" if report["same"] else f"differs from the folder: {', '.join(report['differences'])}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(report, file, indent=1)
    return report


if __name__ == "__main__":
    main()
