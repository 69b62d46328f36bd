"""The benchmark runner: methods x tasks x seeds to CSV, resuming, the report, and the method registry."""

import csv
import math
import os

import gymnasium as gym
import numpy as np
import pytest
from torch import nn

from sb3_ibrl import IBRL, RLPD, SQIL, PtFt
from sb3_ibrl.benchmark import METHODS, RunConfig, get_task, make_model, run_all, run_one
from sb3_ibrl.benchmark.__main__ import main as benchmark_main
from sb3_ibrl.benchmark.methods import parse_overrides
from sb3_ibrl.benchmark.report import load_curves, success_table, write_report
from sb3_ibrl.benchmark.runner import CURVE_FIELDS
from sb3_ibrl.data.nstep_buffer import NStepBuffer

FAST = {"ibrl": {"learning_starts": 50}, "rlpd+": {"learning_starts": 50}, "ptft": {"pretrain_steps": 20}}


def read_rows(path: str) -> list[dict]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def point_goal():
    task = get_task("PointGoal-v0")
    task.bc_settings = dict(task.bc_settings, n_batches=200)
    return task


def test_run_all_writes_curves_for_methods_and_seeds(tmp_path, point_goal):
    config = RunConfig(str(tmp_path), steps=200, eval_every=100, eval_episodes=2, overrides=FAST, greedy_eval=True)
    failures = run_all([point_goal], ["ibrl", "rlpd+", "bc"], [0, 1], config)
    assert failures == []
    rows = read_rows(tmp_path / "results.csv")
    assert list(rows[0]) == CURVE_FIELDS
    assert {(r["method"], r["seed"]) for r in rows} == {(m, s) for m in ("ibrl", "rlpd+", "bc") for s in ("0", "1")}
    for method in ("ibrl", "rlpd+"):
        run = [r for r in rows if r["method"] == method and r["seed"] == "0"]
        assert [int(r["env_steps"]) for r in run] == [100, 200]
        assert all(0.0 <= float(r["success_rate"]) <= 1.0 for r in run)
        assert all(float(r["mean_episode_length"]) <= 100 for r in run)
    il = [float(r["il_fraction"]) for r in rows if r["method"] == "ibrl"]
    assert all(0.0 <= value <= 1.0 for value in il)
    assert all(math.isnan(float(r["il_fraction"])) for r in rows if r["method"] == "rlpd+")
    # IBRL's diagnostics: the greedy deployment, the IL share while collecting, the proposals' Q on the demo states
    for row in (r for r in rows if r["method"] == "ibrl"):
        assert 0.0 <= float(row["greedy_success"]) <= 1.0 and 0.0 <= float(row["il_fraction_train"]) <= 1.0
        assert 0.0 <= float(row["confident_success"]) <= 1.0 and row["il_matched"] in ("0.0", "1.0")
        # the default deployment is one of the two: greedy once the hybrid matched its IL policy, else confident
        expected = row["greedy_success"] if row["il_matched"] == "1.0" else row["confident_success"]
        assert row["success_rate"] == expected
        assert 0.0 <= float(row["il_wins_demo"]) <= 1.0 and 0.0 < float(row["return_demo"]) <= 1.0
        assert math.isfinite(float(row["q_il_demo"])) and math.isfinite(float(row["q_rl_demo"]))
    assert all(r["greedy_success"] == r["q_il_demo"] == "" for r in rows if r["method"] != "ibrl")
    # BC: evaluated once per seed, the value of its assets file, the same at 0 and at the budget
    bc = [r for r in rows if r["method"] == "bc" and r["seed"] == "0"]
    assert [int(r["env_steps"]) for r in bc] == [0, 200] and bc[0]["success_rate"] == bc[1]["success_rate"]
    assert os.path.exists(tmp_path / "assets" / "PointGoal-v0" / "seed1" / "demos.npz")


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path, point_goal):
    config = RunConfig(str(tmp_path), steps=100, eval_every=100, eval_episodes=2, overrides=FAST)
    first = run_one(point_goal, "ibrl", 0, config, log=lambda message: None)
    folder = tmp_path / "runs" / "PointGoal-v0" / "ibrl" / "seed0"
    assert (folder / "model.zip").exists() and (folder / "buffer.pkl").exists()
    logs = []
    config.steps = 200
    rows = run_one(point_goal, "ibrl", 0, config, log=logs.append)
    assert any("resumed at 100 env steps" in line for line in logs)
    assert [int(r["env_steps"]) for r in rows] == [100, 200]
    assert rows[0]["success_rate"] == str(first[0]["success_rate"])  # the first part is kept, not rerun
    assert float(rows[1]["wall_seconds"]) >= float(rows[0]["wall_seconds"])
    logs.clear()
    run_one(point_goal, "ibrl", 0, config, log=logs.append)
    assert any("complete, skipped" in line for line in logs)


def test_truncate_open_episodes_stops_n_step_returns():
    buffer = NStepBuffer(10, gym.spaces.Box(-9, 9, (1,)), gym.spaces.Box(-1, 1, (1,)), "cpu", n_steps=3, gamma=0.5)
    for t in range(3):
        buffer.add(np.full((1, 1), t), np.full((1, 1), t + 1), np.zeros((1, 1)), np.ones(1), np.array([False]), [{}])
    buffer.truncate_open_episodes()  # the run stops here; a fresh episode starts at obs 7
    buffer.add(np.full((1, 1), 7), np.full((1, 1), 8), np.zeros((1, 1)), np.ones(1), np.array([False]), [{}])
    samples = buffer._get_samples(np.array([1]))
    # from row 1: rewards of rows 1 and 2 only (1 + 0.5), bootstrapped (not terminal) from obs 3, discount 0.25
    assert samples.rewards.item() == pytest.approx(1.5)
    assert samples.next_observations.item() == 3.0 and samples.dones.item() == 0.0
    assert samples.discounts.item() == pytest.approx(0.25)


def test_report_tables_and_plots(tmp_path):
    rows = []
    for method, finals in (("ibrl", [1.0, 0.5]), ("rlpd+", [0.25, 0.25]), ("bc", [0.1, 0.3])):
        for seed, final in enumerate(finals):
            for step, value in ((1000, final / 2), (2000, final)):
                rows.append(
                    dict(
                        task="T-v0",
                        method=method,
                        seed=seed,
                        env_steps=step,
                        success_rate=value,
                        mean_episode_length=50,
                        il_fraction=0.2 if method == "ibrl" else "nan",
                        rl_only_success=0.5 if method == "ibrl" else "nan",
                        wall_seconds=1,
                    )
                )
    os.makedirs(tmp_path) if not tmp_path.exists() else None
    with open(tmp_path / "results.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=CURVE_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    table = success_table(load_curves(str(tmp_path / "results.csv")))
    assert "0.75 ± 0.25 (n=2, 2K)" in table  # IBRL: mean of 1.0 and 0.5
    assert "0.20 ± 0.10" in table  # BC
    assert "| 3.0x |" in table  # IBRL / RLPD+
    written = write_report(str(tmp_path))
    assert {os.path.basename(path) for path in written} == {"summary.md", "success.png", "il_fraction.png"}
    assert all(os.path.getsize(path) > 0 for path in written)
    with open(tmp_path / "summary.md") as file:
        summary = file.read()
    assert "| T-v0 | ibrl | 2 | 0.75 ± 0.25 | 0.50 ± 0.00 |" in summary  # hybrid vs RL actor alone (Fig. 11)
    with pytest.raises(FileNotFoundError, match="No results file"):
        write_report(str(tmp_path / "nothing"))


def test_hybrid_report_compares_the_deployments_with_bc(tmp_path):
    # IBRL: seed 0 (BC 1.0) confident 1.0 then 0.9, greedy 0.2 then 1.0; seed 1 (BC 0.5) confident 0.5, 0.7; greedy 0.1, 0.3
    curves = {0: ([1.0, 0.9], [0.2, 1.0]), 1: ([0.5, 0.7], [0.1, 0.3])}
    rows = []
    for seed, (confident, greedy) in curves.items():
        for step, hybrid, paper in zip((1000, 2000), confident, greedy):
            diagnostics = dict(greedy_success=paper, il_fraction_train=0.4, q_il_demo=0.7, q_rl_demo=0.8, il_wins_demo=0.3)
            rows.append(dict(task="T-v0", method="ibrl", seed=seed, env_steps=step, success_rate=hybrid,
                             mean_episode_length=50, il_fraction=0.9, rl_only_success="nan", wall_seconds=1,
                             return_demo=0.8, **diagnostics))  # fmt: skip
        for step in (0, 2000):
            rows.append(dict(task="T-v0", method="bc", seed=seed, env_steps=step, success_rate=1.0 - 0.5 * seed,
                             mean_episode_length=50, il_fraction=1.0, rl_only_success="nan", wall_seconds=1))  # fmt: skip
    with open(tmp_path / "results.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=CURVE_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    from sb3_ibrl.benchmark.hybrid_report import deployment_table, worst_gap_to_bc

    loaded = load_curves(str(tmp_path / "results.csv"))
    bc = {0: 1.0, 1: 0.5}
    assert worst_gap_to_bc(loaded["T-v0"]["ibrl"], bc, "success_rate", after=0) == pytest.approx(-0.1)  # 0.9 vs 1.0
    assert worst_gap_to_bc(loaded["T-v0"]["ibrl"], bc, "greedy_success", after=0) == pytest.approx(-0.8)  # 0.2 vs 1.0
    assert worst_gap_to_bc(loaded["T-v0"]["ibrl"], bc, "greedy_success", after=1000) == pytest.approx(-0.2)  # 0.3 vs 0.5
    table = deployment_table(loaded)
    # after the first quarter (500 steps): both evaluations; default mean curve 0.75 0.80 (area 0.775), worst 0.9 - 1.0
    assert (
        "| T-v0 | ibrl | 2 | default | 0.75 0.80 |" in table
        and "always confident" not in table
        and "| 0.80 | -0.10 (0.5K) |" in table
    )
    assert "| T-v0 | ibrl | 2 | greedy (paper) | 0.15 0.65 | 0.40 | 0.65 | -0.80 (0.5K) |" in table
    assert "| T-v0 | bc | 2 | | 0.75 (per seed: 1.00 0.50) |" in table
    written = write_report(str(tmp_path))
    assert "hybrid.png" in {os.path.basename(path) for path in written}
    with open(tmp_path / "summary.md") as file:
        assert "deployed with the confident and the greedy actor proposal" in file.read()


def test_each_method_has_one_colour_in_every_panel_and_figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex

    from sb3_ibrl.benchmark.report import curves_figure, method_color

    def seeds(final):
        return {0: [(1000, dict(success_rate=final / 2, il_fraction=0.2)), (2000, dict(success_rate=final, il_fraction=0.3))]}

    # Panels with different method sets (plotting order used to pick the colours): one colour per method everywhere
    curves = {"A": {m: seeds(0.5) for m in ("bc", "ibrl", "rlpd+")}, "B": {m: seeds(0.4) for m in METHODS}}
    colours = {}
    for key in ("success_rate", "il_fraction"):
        fig = curves_figure(curves, key)
        for ax in fig.axes:
            for line in ax.get_lines():
                method = line.get_label().split(" (")[0]
                colours.setdefault(method, set()).add(to_hex(line.get_color()))
                if method == "BC":
                    assert line.get_linestyle() == "--"
        plt.close(fig)
    assert all(len(found) == 1 for found in colours.values()), colours
    assert colours["BC"] == {to_hex("tab:gray")} and colours["ibrl"] == {to_hex(method_color("ibrl"))}
    named = [to_hex(method_color(method)) for method in METHODS]
    assert len(set(named)) == len(named)  # every method of the runner has a colour of its own
    assert method_color("my-method") == method_color("my-method") and to_hex(method_color("my-method")) not in named


def test_methods_build_the_right_models_and_ablations():
    env = gym.make("PointGoal-v0")
    settings = dict(get_task("PointGoal-v0").rl_settings)
    demos = None
    il = lambda obs: obs[:, :2]  # noqa: E731
    expected = {
        "ibrl": IBRL,
        "rlpd+": RLPD,
        "rlpd": RLPD,
        "td3+demos": IBRL,
        "ptft": PtFt,
        "ptft-sqf": PtFt,
        "sqil": SQIL,
        "ibrl-actor-only": IBRL,
        "ibrl-no-dropout": IBRL,
    }
    models = {name: make_model(name, env, settings, demos, il_policy=il) for name in expected}
    assert {name: type(model) for name, model in models.items()} == expected
    assert models["ibrl"].il_policy is not None and models["td3+demos"].il_policy is None and models["rlpd+"].il_policy is None
    assert models["ibrl-actor-only"].bootstrap_proposal is False and models["ibrl"].bootstrap_proposal is True
    dropouts = {
        name: [m.p for m in models[name].actor.modules() if isinstance(m, nn.Dropout)]
        for name in ("ibrl", "ibrl-no-dropout", "rlpd")
    }
    assert dropouts["ibrl"] and all(p == 0.5 for p in dropouts["ibrl"])
    assert all(p == 0.0 for p in dropouts["ibrl-no-dropout"]) and all(p == 0.0 for p in dropouts["rlpd"])
    assert models["ptft-sqf"].bc_schedule == "soft_q_filter" and models["ptft"].bc_schedule == "fixed"
    assert models["rlpd"].replay_buffer.successes is None and models["rlpd+"].replay_buffer.successes is not None
    with pytest.raises(ValueError, match="needs image observations"):
        make_model("ibrl-drq", env, settings, demos, il_policy=il)
    with pytest.raises(ValueError, match="Unknown method"):
        make_model("dqn", env, settings, demos)
    overridden = make_model("ptft", env, settings, demos, overrides=parse_overrides(["ptft:bc_weight=0.1"])["ptft"])
    assert overridden.bc_weight == 0.1
    assert set(METHODS) >= set(expected) | {"bc", "ibrl-drq"}


def test_drq_ablation_on_images():
    from sb3_ibrl.envs.point_goal import PointGoalEnv

    env = gym.wrappers.TimeLimit(PointGoalEnv(obs_mode="pixel"), 100)
    settings = dict(learning_starts=10, batch_size=8, buffer_size=200)
    model = make_model("ibrl-drq", env, settings, None, il_policy=lambda obs: th_zeros(len(obs)))
    assert model.policy.critic.encoder.kind == "drq"
    assert (
        make_model("ibrl", env, settings, None, il_policy=lambda obs: th_zeros(len(obs))).policy.critic.encoder.kind == "vit"
    )


def th_zeros(n: int):
    import torch as th

    return th.zeros(n, 2)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="Unknown benchmark task"):
        get_task("Lift-v9")
    with pytest.raises(ValueError, match="Unknown profile"):
        get_task("Lift-state-v0", "fast")
    with pytest.raises(ValueError, match="'cpu' profile is for state tasks"):
        get_task("Lift-pixel-v0", "cpu")
    with pytest.raises(ValueError, match="expected method:key=value"):
        parse_overrides(["bc_weight=0.1"])
    with pytest.raises(ValueError, match="unknown method"):
        parse_overrides(["nope:x=1"])
    assert benchmark_main(["run", "--tasks", "Nope-v0", "--out", "/tmp/unused"]) == 2


def test_paper_settings_and_counts():
    lift, square, coffee = get_task("Lift-state-v0"), get_task("Square-state-v0"), get_task("CoffeePush-pixel-v0")
    assert (lift.n_demos, square.n_demos, coffee.n_demos) == (1, 50, 3)
    assert lift.rl_settings["gradient_steps"] == 5 and lift.rl_settings["policy_kwargs"]["n_critics"] == 5
    assert square.rl_settings["policy_kwargs"]["net_arch"] == [1024] * 3 and square.ibrl_demo_fraction == 0.5
    assert coffee.rl_settings["policy_kwargs"]["encoder"] == "vit" and coffee.rl_settings["gradient_steps"] == 1
    assert lift.bc_settings["n_batches"] == 100_000 and coffee.budget == 100_000
