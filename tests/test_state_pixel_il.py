"""benchmarks/state_pixel_il.py (state RL, pixel IL): its options, and a small resumable run on PointGoal-v0."""

import csv
import json
import os

import numpy as np
import pytest
from benchmark_helpers import load_benchmark

from sb3_ibrl import IBRL


@pytest.fixture(scope="module")
def script():
    return load_benchmark("state_pixel_il")


def test_options(script):
    args = script.parse_args([])
    assert (args.task, args.demos, args.camera, args.methods) == ("Lift-state-v0", 1, "robot0_eye_in_hand", ["ibrl", "rlpd+"])
    assert script.parse_args(["--task", "Can-state-v0"]).demos == 10  # the paper's demo counts
    assert script.parse_args(["--task", "Can-state-v0", "--demos", "3"]).demos == 3
    assert script.il_key("Lift-state-v0", "agentview") == "agentview" and script.il_key("PointGoal-v0", "x") == "image"
    assert args.gradient_steps is None and script.rl_settings("Lift-state-v0")["gradient_steps"] == 1  # the cpu profile's G
    assert script.rl_settings("Lift-state-v0", 3)["gradient_steps"] == 3
    assert script.rl_settings("Lift-state-v0", 3)["policy_kwargs"] == script.rl_settings("Lift-state-v0")["policy_kwargs"]
    assert args.bc_select is None and script.parse_args(["--bc-batches", "8", "--bc-select", "4", "8"]).bc_select == [4, 8]
    bad_options = [["--steps", "0"], ["--task", "Square-state-v0"], ["--methods", "sqil"], ["--gradient-steps", "0"]]
    bad_options += [["--bc-batches", "8", "--bc-select", "4"], ["--bc-batches", "8", "--bc-select", "0", "8"]]  # must end at 8
    bad_options += [["--ibrl-option", "demo_fraction"], ["--ibrl-option", "1x=2"]]  # NAME=VALUE, NAME an identifier
    given = ["--ibrl-option", "demo_fraction=0.5", "--ibrl-option", "warmup=il", "--ibrl-option", "proposal_beta=None"]
    assert args.ibrl_options == {} and script.parse_args(given).ibrl_options == dict(
        demo_fraction=0.5, warmup="il", proposal_beta=None
    )
    for bad in bad_options:
        with pytest.raises(SystemExit):
            script.parse_args(bad)


def rows_of(path):
    with open(path, newline="") as file:
        return [(row["method"], int(row["env_steps"])) for row in csv.DictReader(file)]


def test_a_small_run_writes_its_results_and_resumes(script, tmp_path):
    pytest.importorskip("imitation.algorithms.bc")
    common = ["--task", "PointGoal-v0", "--eval-every", "30", "--eval-episodes", "1", "--bc-batches", "2", "--bc-width", "4"]
    folder = script.main([*common, "--steps", "60", "--out", str(tmp_path)])
    assert folder == os.path.join(str(tmp_path), "PointGoal-v0", "seed_0")
    expected = [("bc", 0), ("ibrl", 30), ("ibrl", 60), ("rlpd+", 30), ("rlpd+", 60)]
    assert rows_of(os.path.join(folder, "results.csv")) == expected
    with open(os.path.join(folder, "bc.json")) as file:
        bc = json.load(file)
    assert (bc["il_key"], bc["n_batches"], bc["resnet_width"], bc["n_demos"]) == ("image", 2, 4, 1)
    assert 0.0 <= bc["success_rate"] <= 1.0 and bc["action_mse"] >= 0.0
    assert os.path.exists(os.path.join(folder, "success.png"))
    bc_mtime = os.path.getmtime(os.path.join(folder, "bc_policy.zip"))
    # a second call with a larger budget continues both runs from their checkpoints, and keeps BC
    script.main([*common, "--steps", "90", "--out", str(tmp_path), "--no-plot"])
    assert rows_of(os.path.join(folder, "ibrl", "curve.csv")) == [("ibrl", 30), ("ibrl", 60), ("ibrl", 90)]
    assert rows_of(os.path.join(folder, "rlpd+", "curve.csv"))[-1] == ("rlpd+", 90)
    assert os.path.getmtime(os.path.join(folder, "bc_policy.zip")) == bc_mtime
    with open(os.path.join(folder, "summary.json")) as file:
        curves = json.load(file)["curves"]
    assert sorted(curves) == ["ibrl", "rlpd+"] and sorted(curves["ibrl"], key=int) == ["30", "60", "90"]
    with open(os.path.join(tmp_path, "PointGoal-v0", "summary.json")) as file:  # the task folder gathers the seeds
        gathered = json.load(file)
    assert gathered["seeds"] == ["0"] and sorted(gathered["curves"]["rlpd+"], key=int) == ["30", "60", "90"]
    # continuing a run with another G would mix two settings in one curve: refused, and the curve is kept
    with pytest.raises(ValueError, match="gradient_steps=1, this call asks for 2"):
        script.main([*common, "--steps", "120", "--gradient-steps", "2", "--out", str(tmp_path), "--no-plot"])
    with pytest.raises(ValueError, match="collect_confidently=False, this call asks for True"):  # so is another option
        script.main(
            [*common, "--steps", "120", "--ibrl-option", "collect_confidently=True", "--out", str(tmp_path), "--no-plot"]
        )
    assert rows_of(os.path.join(folder, "ibrl", "curve.csv"))[-1] == ("ibrl", 90)
    # another seed, RLPD+ only, with G = 2: no BC is trained for it, and the task folder now has both seeds
    second_seed = ["--steps", "30", "--seed", "1", "--methods", "rlpd+", "--gradient-steps", "2", "--out", str(tmp_path)]
    script.main([*common, *second_seed, "--no-plot"])
    with open(os.path.join(tmp_path, "PointGoal-v0", "seed_1", "summary.json")) as file:
        assert json.load(file)["rl_settings"]["gradient_steps"] == 2
    assert not os.path.exists(os.path.join(tmp_path, "PointGoal-v0", "seed_1", "bc.json"))
    assert rows_of(os.path.join(tmp_path, "PointGoal-v0", "seed_1", "results.csv")) == [("rlpd+", 30)]
    with open(os.path.join(tmp_path, "PointGoal-v0", "summary.json")) as file:
        gathered = json.load(file)
    assert gathered["seeds"] == ["0", "1"] and gathered["curves"]["rlpd+"]["30"]["seeds"].keys() == {"0", "1"}
    # other IBRL options reach the model and the summary
    options = ["--ibrl-option", "collect_confidently=True", "--ibrl-option", "demo_fraction=0.5"]
    third_seed = ["--steps", "30", "--seed", "2", "--methods", "ibrl", *options, "--out", str(tmp_path)]
    folder = script.main([*common, *third_seed, "--no-plot"])
    model = IBRL.load(os.path.join(folder, "ibrl", "model.zip"))
    assert model.collect_confidently is True and model.demo_fraction == 0.5
    with open(os.path.join(folder, "summary.json")) as file:
        assert json.load(file)["ibrl_options"] == dict(collect_confidently=True, demo_fraction=0.5)


def test_the_task_folder_gathers_the_seeds(script, tmp_path):
    task = tmp_path / "Lift-state-v0"
    for seed, (bc, ibrl) in enumerate([(0.1, [0.2, 0.8]), (0.3, [0.4, 1.0])]):
        rows = [dict(task="Lift-state-v0", method="bc", seed=seed, env_steps=0, success_rate=bc)]
        rows += [dict(task="Lift-state-v0", method="ibrl", seed=seed, env_steps=5000 * (i + 1), success_rate=value)
                 for i, value in enumerate(ibrl)]  # fmt: skip
        os.makedirs(task / f"seed_{seed}")
        script.write_curve(str(task / f"seed_{seed}" / "results.csv"), rows)
    os.makedirs(task / "preliminary")  # not a seed folder: ignored
    os.makedirs(task / "seed_7")  # a run stopped before its first results: not a seed of the summary
    summary = script.aggregate(str(task))
    assert summary["seeds"] == ["0", "1"]
    assert summary["curves"]["bc"][0]["mean"] == pytest.approx(0.2) and summary["curves"]["bc"][0]["std"] == pytest.approx(0.1)
    expected = {"mean": pytest.approx(0.9), "std": pytest.approx(0.1), "seeds": {"0": 0.8, "1": 1.0}}
    assert summary["curves"]["ibrl"][10000] == expected
    assert [row["seed"] for row in script.read_curve(str(task / "results.csv"))] == ["0"] * 3 + ["1"] * 3
    assert os.path.exists(task / "success.png")
    with open(task / "summary.json") as file:
        assert json.load(file)["curves"]["ibrl"]["5000"]["mean"] == pytest.approx(0.3)
    os.makedirs(tmp_path / "empty")
    assert script.aggregate(str(tmp_path / "empty")) == {}


def test_bc_select_keeps_the_best_checkpoint(script, tmp_path, monkeypatch):
    """``--bc-select``: BC is scored after each listed batch count on other start states, and the best one is kept."""
    pytest.importorskip("imitation.algorithms.bc")
    from sb3_ibrl.il.training import _as_policy

    real_evaluate, probe, actions = script.evaluate_policy_success, {}, {}

    def fake_evaluate(env, act, n_episodes, seed):
        if seed != script.SELECT_SEED:  # the reported evaluation of the kept BC: the real one
            return real_evaluate(env, act, n_episodes, seed=seed)
        probe.setdefault("obs", env.observation_space.sample())
        actions[len(actions) + 1] = act(probe["obs"])  # this checkpoint's action on one fixed observation
        return {1: 0.2, 2: 0.6, 3: 0.6, 4: 0.4}[len(actions)], 50.0  # checkpoints 2 and 3 tie: the later is kept

    monkeypatch.setattr(script, "evaluate_policy_success", fake_evaluate)
    options = ["--task", "PointGoal-v0", "--eval-episodes", "1", "--bc-width", "4", "--methods", "ibrl", "--steps", "1"]
    folder = script.main(
        [*options, "--bc-batches", "4", "--bc-select", "1", "2", "3", "4", "--out", str(tmp_path), "--no-plot"]
    )
    with open(os.path.join(folder, "bc.json")) as file:
        bc = json.load(file)
    assert bc["n_batches"] == 3 and bc["selection"]["scores"] == {"1": 0.2, "2": 0.6, "3": 0.6, "4": 0.4}
    kept = _as_policy(os.path.join(folder, "bc_policy.zip"), device="cpu")
    action = kept.predict(probe["obs"]["image"], deterministic=True)[0]
    assert np.allclose(action, actions[3], atol=1e-6)  # the saved policy is checkpoint 3, not the last one trained
    assert not np.allclose(actions[3], actions[4], atol=1e-6)


def test_the_hybrid_actor_tells_the_model_where_episodes_start(script):
    calls = []

    class Model:
        def predict(self, obs, episode_start=None, deterministic=False):
            calls.append((obs, episode_start.tolist(), deterministic))
            return np.zeros(2), None

    act = script.HybridActor(Model())
    act.reset()
    for step in ("a", "b", None, "c"):
        act.reset() if step is None else act(step)
    assert calls == [("a", [True], True), ("b", [False], True), ("c", [True], True)]


def test_a_chunking_bc_is_trained_evaluated_and_used_by_ibrl(script, tmp_path):
    pytest.importorskip("imitation.algorithms.bc")
    from sb3_ibrl.il.frozen import FrozenILPolicy
    from sb3_ibrl.il.stateful import ActionChunkingPolicy

    common = ["--task", "PointGoal-v0", "--eval-every", "30", "--eval-episodes", "2", "--bc-batches", "2", "--bc-width", "4"]
    chunking = ["--bc-chunk", "3", "--bc-chunk-decay", "0.5", "--methods", "ibrl", "--no-plot", "--out", str(tmp_path)]
    folder = script.main([*common, *chunking, "--steps", "30"])
    with open(os.path.join(folder, "bc.json")) as file:
        bc = json.load(file)
    assert (bc["chunk_size"], bc["chunk_decay"]) == (3, 0.5) and bc["action_mse"] >= 0.0
    from stable_baselines3.common.policies import ActorCriticPolicy

    policy = ActorCriticPolicy.load(os.path.join(folder, "bc_policy.zip"))
    assert policy.action_space.shape == (6,)  # 3 actions of 2 dims per prediction
    model = IBRL.load(os.path.join(folder, "ibrl", "model.zip"))
    il = model.il_policy.policy if isinstance(model.il_policy, FrozenILPolicy) else model.il_policy
    assert isinstance(il, ActionChunkingPolicy) and (il.chunk_size, il.decay) == (3, 0.5)
    # BC alone is evaluated with temporal ensembling, and each episode starts with no chunks in memory
    env = script.make_env("PointGoal-v0", "unused", with_il=True)
    actor = script.image_actor(policy, "image", 3, env.action_space, 0.5)
    obs, _ = env.reset(seed=0)
    actor.reset()
    actor(obs)
    actor(obs)
    assert len(actor.chunking._chunks["predict"][0]) == 2
    actor.reset()
    action = actor(obs)
    assert len(actor.chunking._chunks["predict"][0]) == 1 and env.action_space.contains(action.astype(np.float32))
    # the folder's BC is a chunking BC: a call that asks for plain BC is refused
    with pytest.raises(ValueError, match="chunk_size, chunk_decay"):
        script.main([*common, "--methods", "ibrl", "--no-plot", "--out", str(tmp_path), "--steps", "60"])
