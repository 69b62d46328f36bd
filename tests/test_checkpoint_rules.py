"""benchmarks/checkpoint_rules.py: the last checkpoint of a state_pixel_il.py run, under each way of acting."""

import csv
import os

import numpy as np
import pytest
import torch as th
from benchmark_helpers import load_benchmark


def test_options():
    rules = load_benchmark("checkpoint_rules")
    args = rules.parse_args([])
    assert (args.task, args.seeds, args.episodes, args.ways) == ("Lift-state-v0", [0, 1, 2], 100, list(rules.WAYS))
    assert rules.WAYS == ("deployed", "greedy", "confident", "sampled", "collecting", "rl", "il")
    for bad in (["--episodes", "0"], ["--ways", "soft"]):
        with pytest.raises(SystemExit):
            rules.parse_args(bad)


def test_every_way_of_a_small_run(tmp_path):
    pytest.importorskip("imitation.algorithms.bc")
    spi, rules = load_benchmark("state_pixel_il"), load_benchmark("checkpoint_rules")
    common = ["--task", "PointGoal-v0", "--out", str(tmp_path)]
    with pytest.raises(FileNotFoundError, match=r"model\.zip not found"):
        rules.main([*common, "--seeds", "0", "--episodes", "1"])
    spi.main([*common, "--steps", "40", "--eval-every", "40", "--eval-episodes", "2", "--bc-batches", "2", "--bc-width", "4",
              "--methods", "ibrl", "--no-plot"])  # fmt: skip
    path = rules.main([*common, "--seeds", "0", "--episodes", "2"])
    with open(path, newline="") as file:
        rows = {row["way"]: row for row in csv.DictReader(file)}
    assert sorted(rows) == sorted(rules.WAYS)
    assert {int(row["env_steps"]) for row in rows.values()} == {40} and {row["episodes"] for row in rows.values()} == {"2"}
    for row in rows.values():
        assert 0.0 <= float(row["success_rate"]) <= 1.0 and float(row["mean_episode_length"]) > 0
    # the deployed way replays the curve's own point: the same episodes (reset seeds from 1000), the same actions
    with open(os.path.join(tmp_path, "PointGoal-v0", "seed_0", "ibrl", "curve.csv"), newline="") as file:
        curve = list(csv.DictReader(file))[-1]
    assert float(rows["deployed"]["success_rate"]) == float(curve["success_rate"])
    assert np.isclose(float(rows["deployed"]["mean_episode_length"]), float(curve["mean_episode_length"]), atol=0.05)
    # the deployed hybrid is the greedy or the confident one: that way's row is copied, not evaluated again
    same = [way for way in ("greedy", "confident") if float(rows[way]["eval_seconds"]) == 0.0]
    assert len(same) == 1 and float(rows["deployed"]["eval_seconds"]) > 0
    for field in ("success_rate", "mean_episode_length", "episodes", "env_steps"):
        assert rows[same[0]][field] == rows["deployed"][field]
    # one row per episode and way, which add up to the way's row; PointGoal has no robosuite object: blank start
    with open(os.path.join(tmp_path, "PointGoal-v0", "seed_0", "checkpoint_episodes.csv"), newline="") as file:
        episodes = list(csv.DictReader(file))
    assert [(row["way"], row["episode"]) for row in episodes] == [(way, str(i)) for way in rules.WAYS for i in range(2)]
    for way, row in rows.items():
        mine = [episode for episode in episodes if episode["way"] == way]
        assert np.mean([int(episode["success"]) for episode in mine]) == float(row["success_rate"])
        assert np.isclose(np.mean([int(episode["length"]) for episode in mine]), float(row["mean_episode_length"]), atol=0.05)
        assert {episode["object_yaw_deg"] for episode in mine} == {""} and {episode["env_steps"] for episode in mine} == {"40"}
    assert [e["length"] for e in episodes if e["way"] == same[0]] == [e["length"] for e in episodes if e["way"] == "deployed"]


def test_where_the_object_started():
    from sb3_ibrl.common.evaluation import EpisodeOutcome
    from sb3_ibrl.envs.robosuite_envs import RobosuiteEnv

    rules = load_benchmark("checkpoint_rules")

    class Wrapped:  # a robosuite env under a wrapper (not built: only its type is read)
        unwrapped = RobosuiteEnv.__new__(RobosuiteEnv)

    def outcome(x, y, yaw_deg):
        half = np.radians(yaw_deg) / 2
        return EpisodeOutcome(True, 30, {"state": np.array([x, y, 0.82, 0.0, 0.0, np.sin(half), np.cos(half), 0.5])})

    expected = dict(object_x=0.012, object_y=-0.027, object_yaw_deg=30.0)
    assert rules.object_start(Wrapped(), outcome(0.012, -0.027, 30.0)) == expected
    assert rules.object_start(Wrapped(), outcome(0.0, 0.0, 200.0))["object_yaw_deg"] == -160.0
    assert rules.object_start(Wrapped(), EpisodeOutcome(False, 5, {}))["object_x"] == ""

    class Other:
        unwrapped = object()

    assert rules.object_start(Other(), outcome(0.1, 0.1, 10.0)) == dict(object_x="", object_y="", object_yaw_deg="")
    # success by heading, folded into [0, 90): -30 and 60 fall in one bin, 95 in the first, blanks are left out
    folded = [("-30.0", 1), ("60.0", 0), ("95.0", 1), ("44.9", 0), ("", 1)]
    rows = [dict(object_yaw_deg=yaw, success=won) for yaw, won in folded]
    assert rules.success_by_heading(rows, 90.0, 2) == [(0.0, 1, 2), (45.0, 1, 2)]
    assert rules.success_by_heading(rows, 90.0, 3) == [(0.0, 1, 1), (30.0, 0, 1), (60.0, 1, 2)]


def test_seeds_evaluated_apart_are_gathered(tmp_path):
    pytest.importorskip("imitation.algorithms.bc")
    spi, rules = load_benchmark("state_pixel_il"), load_benchmark("checkpoint_rules")
    common = ["--task", "PointGoal-v0", "--out", str(tmp_path)]
    spi.main([*common, "--steps", "40", "--eval-every", "40", "--eval-episodes", "1", "--bc-batches", "2", "--bc-width", "4",
              "--methods", "ibrl", "--no-plot"])  # fmt: skip
    task_dir = os.path.join(tmp_path, "PointGoal-v0")
    # another call's seed, evaluated before: its rows are kept beside this call's
    os.makedirs(os.path.join(task_dir, "seed_7"))
    other = dict(task="PointGoal-v0", seed=7, env_steps=40, way="rl", episodes=3, success_rate=0.5,
                 mean_episode_length=9.0, eval_seconds=1.0)  # fmt: skip
    spi.write_curve(os.path.join(task_dir, "seed_7", "checkpoint_rules.csv"), [other], rules.FIELDS)
    path = rules.main([*common, "--seeds", "0", "--episodes", "1", "--ways", "rl", "il"])
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(row["seed"], row["way"]) for row in rows] == [("0", "rl"), ("0", "il"), ("7", "rl")]
    assert rows[2]["success_rate"] == "0.5"
    seed_csv = os.path.join(task_dir, "seed_0", "checkpoint_rules.csv")
    with open(seed_csv, newline="") as file:
        first = list(csv.DictReader(file))
    assert [row["way"] for row in first] == ["rl", "il"]
    assert not any(name.endswith(".tmp") for name in os.listdir(task_dir))
    # a later call with other ways keeps these rows of the same checkpoint, in the order of WAYS; a way evaluated
    # again replaces its row; a row of another checkpoint (other env_steps) is dropped
    stale = dict(first[0], way="confident", env_steps=20, success_rate=0.25)
    spi.write_curve(seed_csv, [*first, stale], rules.FIELDS)
    rules.main([*common, "--seeds", "0", "--episodes", "2", "--ways", "sampled", "rl"])
    with open(seed_csv, newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(row["way"], row["episodes"]) for row in rows] == [("sampled", "2"), ("rl", "2"), ("il", "1")]
    assert rows[2] == first[1]
    with open(os.path.join(task_dir, "seed_0", "checkpoint_episodes.csv"), newline="") as file:
        episodes = [(row["way"], row["episode"]) for row in csv.DictReader(file)]
    assert episodes == [("sampled", "0"), ("sampled", "1"), ("rl", "0"), ("rl", "1"), ("il", "0")]


def test_the_ways_act_as_named(tmp_path):
    pytest.importorskip("imitation.algorithms.bc")
    spi, rules = load_benchmark("state_pixel_il"), load_benchmark("checkpoint_rules")
    spi.main(["--task", "PointGoal-v0", "--out", str(tmp_path), "--steps", "40", "--eval-every", "40", "--eval-episodes",
              "1", "--bc-batches", "2", "--bc-width", "4", "--methods", "ibrl", "--no-plot"])  # fmt: skip
    from stable_baselines3.common.policies import ActorCriticPolicy

    from sb3_ibrl import IBRL

    folder = os.path.join(tmp_path, "PointGoal-v0", "seed_0")
    env = spi.make_env("PointGoal-v0", "", with_il=True)
    model = IBRL.load(os.path.join(folder, "ibrl", "model.zip"), env=env, device="cpu")
    bc = ActorCriticPolicy.load(os.path.join(folder, "bc_policy.zip"), device="cpu")
    ways = rules.actors(model, bc, "image", spi, {})
    obs, _ = env.reset(seed=3)
    assert ways["greedy"][0] == 0.0 and ways["confident"][0] == model.proposal_confidence > 0
    assert np.allclose(ways["il"][1](obs), bc.predict(obs["image"], deterministic=True)[0])
    assert np.allclose(ways["rl"][1](obs), model.predict(obs, deterministic=True, rl_only=True)[0])
    with model.policy.deployed_with(0.0):  # greedy: the hybrid is the RL or the IL action, whichever the critics prefer
        hybrid = ways["greedy"][1](obs)
    il_action = model.policy.unscale_action(model.policy.scale_action(ways["il"][1](obs)))
    assert np.allclose(hybrid, ways["rl"][1](obs), atol=1e-5) or np.allclose(hybrid, il_action, atol=1e-5)
    # sampled: a random critic pair per call, no exploration noise: the RL or the IL action, as predict(deterministic=False)
    assert ways["sampled"][0] == 0.0
    with model.policy.deployed_with(0.0):
        sampled = []
        for _ in range(20):
            th.manual_seed(len(sampled))
            expected = model.predict(obs, deterministic=False)[0]
            th.manual_seed(len(sampled))
            sampled.append(ways["sampled"][1](obs))
            assert np.allclose(sampled[-1], expected)
    for action in sampled:
        assert np.allclose(action, ways["rl"][1](obs), atol=1e-5) or np.allclose(action, il_action, atol=1e-5)
    # collecting: sampled plus the run's exploration noise on the RL action, drawn from torch's generator (repeatable)
    assert ways["collecting"][0] == 0.0 and ways["collecting"][1].std == model.exploration_std > 0
    rl_action = model.policy.scale_action(ways["rl"][1](obs))
    for seed in range(20):
        th.manual_seed(seed)
        collected = ways["collecting"][1](obs)
        th.manual_seed(seed)
        assert np.array_equal(ways["collecting"][1](obs), collected)
        th.manual_seed(seed)
        noisy_rl = np.clip(rl_action + model.exploration_std * th.randn(1, len(rl_action)).numpy()[0], -1.0, 1.0)
        took_il = np.allclose(collected, il_action, atol=1e-5)
        assert took_il or np.allclose(model.policy.scale_action(collected), noisy_rl, atol=1e-5)
        assert not np.allclose(collected, ways["rl"][1](obs), atol=1e-3)  # never the RL action without its noise
    assert "propose" not in vars(model.policy)  # the noise is gone after each call: predict is the policy's own again
    model.policy.act_with_il = False  # the RL side alone: every action is the noisy RL action
    th.manual_seed(0)
    alone = model.policy.scale_action(ways["collecting"][1](obs))
    th.manual_seed(0)
    noise = model.exploration_std * th.randn(1, len(rl_action)).numpy()[0]
    assert np.allclose(alone, np.clip(rl_action + noise, -1.0, 1.0), atol=1e-5)


def test_a_kept_model_is_evaluated_apart_from_the_last(tmp_path):
    pytest.importorskip("imitation.algorithms.bc")
    spi, rules = load_benchmark("state_pixel_il"), load_benchmark("checkpoint_rules")
    common = ["--task", "PointGoal-v0", "--out", str(tmp_path)]
    with pytest.raises(SystemExit):
        spi.parse_args([*common, "--keep-models", "--no-checkpoint"])
    with pytest.raises(SystemExit):
        rules.parse_args([*common, "--at", "0"])
    spi.main([*common, "--steps", "40", "--eval-every", "20", "--eval-episodes", "1", "--bc-batches", "2", "--bc-width", "4",
              "--methods", "ibrl", "--no-plot", "--keep-models"])  # fmt: skip
    run_dir = os.path.join(tmp_path, "PointGoal-v0", "seed_0", "ibrl")
    assert sorted(name for name in os.listdir(run_dir) if name.startswith("model")) == [
        "model.zip",
        "model_20.zip",
        "model_40.zip",
    ]
    with pytest.raises(FileNotFoundError, match=r"model_30\.zip not found.*--keep-models"):
        rules.main([*common, "--seeds", "0", "--episodes", "1", "--at", "30"])
    last = rules.main([*common, "--seeds", "0", "--episodes", "1", "--ways", "rl"])
    kept = rules.main([*common, "--seeds", "0", "--episodes", "1", "--ways", "rl", "--at", "20"])
    assert os.path.basename(kept) == "checkpoint_rules_at_20.csv" and os.path.basename(last) == "checkpoint_rules.csv"
    for path, steps in ((last, "40"), (kept, "20")):  # each checkpoint keeps its own rows: neither drops the other's
        with open(path, newline="") as file:
            assert [(row["way"], row["env_steps"]) for row in csv.DictReader(file)] == [("rl", steps)]
    seed_dir = os.path.dirname(run_dir)
    assert os.path.exists(os.path.join(seed_dir, "checkpoint_episodes_at_20.csv"))
    # a file renamed by hand to another step count is refused, not reported under the wrong budget
    os.replace(os.path.join(run_dir, "model_20.zip"), os.path.join(run_dir, "model_30.zip"))
    with pytest.raises(ValueError, match="at 20 env steps, not 30"):
        rules.main([*common, "--seeds", "0", "--episodes", "1", "--at", "30"])
