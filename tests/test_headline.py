"""The headline run (python -m sb3_ibrl.benchmark headline): its smoke mode end to end, time limit + resume, parts."""

import importlib.util
import json
import os
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_ibrl.benchmark import headline
from sb3_ibrl.benchmark.__main__ import main as benchmark_main
from sb3_ibrl.benchmark.deadline import StopAtDeadline
from sb3_ibrl.benchmark.headline import POINT_GOAL_PIXEL, HeadlineConfig, run_headline
from sb3_ibrl.benchmark.headline_tools import (
    TIME_PARTS,
    Stopwatch,
    evaluate_vec,
    parse_assignments,
    parse_literal,
    timed_updates,
)
from sb3_ibrl.envs import PointGoalExpert

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def quiet(message: str) -> None:
    pass


def check_timing(result: dict, measured: tuple = ("bc", "env_steps", "updates", "evaluation", "checkpoint")) -> None:
    """The ``measured`` parts took time, and the parts cover the whole wall-clock time."""
    timing = result["timing"]
    assert set(TIME_PARTS) | {"total", "other"} == set(timing)
    assert all(timing[part] >= 0 for part in TIME_PARTS)
    for part in measured:
        assert timing[part] > 0, part
    assert sum(timing[part] for part in TIME_PARTS) == pytest.approx(timing["total"], rel=0.05, abs=1.0)
    assert abs(timing["other"]) < 0.05 * timing["total"] + 1.0
    assert timing["total"] == pytest.approx(sum(call["seconds"] for call in result["calls"]), rel=1e-6)


def check_files(folder) -> None:
    for name in ("headline.json", "demos.npz", "bc.zip", "checkpoint/model.zip", "checkpoint/buffer.pkl"):
        assert (folder / name).is_file(), name
    assert (folder / "headline.png").read_bytes()[:8] == PNG_SIGNATURE


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("headline")
    start = time.perf_counter()
    result = run_headline(HeadlineConfig(str(folder), task=POINT_GOAL_PIXEL, smoke=True), log=quiet)
    return folder, result, time.perf_counter() - start


def test_smoke_run_writes_the_curve_the_split_and_the_plot(smoke_run):
    folder, result, seconds = smoke_run
    assert seconds < 120
    check_files(folder)
    with open(folder / "headline.json") as file:
        assert json.load(file) == json.loads(json.dumps(result))  # the file holds what was returned
    assert result["task"] == POINT_GOAL_PIXEL and not result["partial"] and result["stopped"] == "complete"
    assert result["settings"]["smoke"] and result["settings"]["steps"] == 300 and result["settings"]["n_demos"] == 1
    curve = result["curve"]
    assert [row["env_steps"] for row in curve] == [150, 300]
    for row in curve:
        for key in ("hybrid_success", "greedy_success", "rl_only_success", "il_fraction"):
            assert 0.0 <= row[key] <= 1.0, key
        if not row["il_matched"]:  # images deploy the IL policy alone until the hybrid has matched it (k = inf)
            assert row["il_fraction"] == 1.0
        assert row["il_episodes"] >= 1 and 0.0 <= row["il_return_mean"] <= 1.0  # the warm-up's episodes, whole
        assert row["il_matched"] == (row["hybrid_episodes"] >= 20 and row["hybrid_return_mean"] >= row["il_return_mean"])
        assert 1 <= row["hybrid_length"] <= 100 and 1 <= row["rl_only_length"] <= 100
        assert row["eval_seconds"] > 0
    assert 0 < curve[0]["updates"] < curve[1]["updates"] == result["updates"]
    assert result["updates_per_env_step"] == pytest.approx(result["updates"] / 300)
    assert result["updates_per_second"] == pytest.approx(result["updates"] / result["timing"]["updates"])
    assert curve[0]["wall_seconds"] < curve[1]["wall_seconds"] <= result["timing"]["total"]
    check_timing(result)
    demos, bc = result["demos"], result["bc"]
    assert demos["n"] == 1 and demos["transitions"] == demos["mean_length"] > 0
    assert bc["features"] == "resnet18" and bc["n_batches"] >= 1 and bc["chosen_by"] in ("time_budget", "max_batches")
    assert 0.0 <= bc["success"] <= 1.0 and bc["train_seconds"] > 0
    assert result["machine"]["device"] == "cpu" and result["machine"]["versions"]["torch"]
    assert [call["stopped"] for call in result["calls"]] == ["complete"]


def test_a_complete_run_is_not_run_again(smoke_run):
    folder, result, _ = smoke_run
    again = run_headline(HeadlineConfig(str(folder), task=POINT_GOAL_PIXEL, smoke=True), log=quiet)
    assert again["calls"] == result["calls"] and again["curve"] == result["curve"]


def test_time_limit_stops_in_time_and_the_same_command_continues(tmp_path, monkeypatch):
    class StopAfter25Steps(StopAtDeadline):  # the deadline passes at the 25th env step of the call
        @property
        def due(self) -> bool:
            return self.n_calls >= 25

    sizes = dict(task=POINT_GOAL_PIXEL, smoke=True, steps=120, eval_every=60, eval_episodes=1)
    with monkeypatch.context() as patch:
        patch.setattr(headline, "StopAtDeadline", StopAfter25Steps)
        first = run_headline(HeadlineConfig(str(tmp_path), time_limit=1000.0, **sizes), log=quiet)
    # Stopped at the step where the time was up, that step kept: evaluated there, checkpoint saved
    assert first["partial"] and first["stopped"] == "time_limit" and first["env_steps"] == 25
    assert [row["env_steps"] for row in first["curve"]] == [25]
    check_files(tmp_path)
    second = run_headline(HeadlineConfig(str(tmp_path), **sizes), log=quiet)
    assert not second["partial"] and second["env_steps"] == 120
    assert [row["env_steps"] for row in second["curve"]] == [25, 60, 120]
    assert second["curve"][0] == first["curve"][0]
    assert [(c["from_steps"], c["to_steps"], c["stopped"]) for c in second["calls"]] == [
        (0, 25, "time_limit"),
        (25, 120, "complete"),
    ]
    # Demos and BC come from the first call: not recorded or trained again
    assert second["bc"] == first["bc"] and second["timing"]["bc"] == first["timing"]["bc"]
    assert second["timing"]["demos"] == first["timing"]["demos"]
    check_timing(second)
    with pytest.raises(ValueError, match="holds a headline run of PointGoal-pixel-v0, not Lift-pixel-v0"):
        run_headline(HeadlineConfig(str(tmp_path), task="Lift-pixel-v0", smoke=True), log=quiet)
    with pytest.raises(ValueError, match="--n-envs 1: continue it with the same"):
        run_headline(HeadlineConfig(str(tmp_path), **dict(sizes, steps=240), n_envs=2), log=quiet)


def test_a_time_limit_that_ends_before_the_first_chunk_ends_the_call_in_time(tmp_path):
    # eval_every 10000: the old check (every eval_every / 5 env steps, the first chunk always made) took 50 s here
    sizes = dict(task=POINT_GOAL_PIXEL, smoke=True, steps=20_000, eval_every=10_000, eval_episodes=1)
    start = time.perf_counter()
    result = run_headline(HeadlineConfig(str(tmp_path), time_limit=12.0, **sizes), log=quiet)
    assert time.perf_counter() - start < 12.0 + 3.0  # the limit, with room for the process's own start of envs
    assert result["stopped"] == "time_limit" and result["env_steps"] < 20_000
    assert [row["env_steps"] for row in result["curve"]] == [result["env_steps"]]


def test_a_time_limit_already_spent_stops_before_the_first_step(tmp_path):
    sizes = dict(task=POINT_GOAL_PIXEL, smoke=True, steps=60, eval_every=60, eval_episodes=1)
    result = run_headline(HeadlineConfig(str(tmp_path), time_limit=0.01, **sizes), log=quiet)  # BC alone takes longer
    assert result["stopped"] == "time_limit" and result["env_steps"] == 0 and result["curve"][0]["env_steps"] == 0
    again = run_headline(HeadlineConfig(str(tmp_path), **sizes), log=quiet)
    assert [row["env_steps"] for row in again["curve"]] == [0, 60] and not again["partial"]


def test_a_folder_without_checkpoint_restarts_ibrl_but_keeps_demos_and_bc(tmp_path):
    sizes = dict(task=POINT_GOAL_PIXEL, smoke=True, steps=40, eval_every=40, eval_episodes=1)
    first = run_headline(HeadlineConfig(str(tmp_path), **sizes), log=quiet)
    os.remove(tmp_path / "checkpoint" / "model.zip")
    second = run_headline(HeadlineConfig(str(tmp_path), **dict(sizes, steps=60)), log=quiet)
    assert [row["env_steps"] for row in second["curve"]] == [40, 60]
    assert [call["from_steps"] for call in second["calls"]] == [0]
    assert second["bc"] == first["bc"] and first["timing"]["bc"] > 0 and second["timing"]["bc"] == 0
    check_timing(second, measured=("env_steps", "evaluation", "checkpoint"))  # no update before learning_starts


def _to_goal(obs: np.ndarray) -> np.ndarray:
    expert = PointGoalExpert(noise_std=0.0)
    return np.stack([expert(row) for row in obs])


def test_evaluate_vec_plays_the_seeded_episodes_in_parallel():
    vec_env = DummyVecEnv([lambda: gym.make("PointGoal-v0")] * 2)
    result = evaluate_vec(vec_env, lambda obs, starts: (_to_goal(obs), np.array([True, False])), n_episodes=5, seed=7)
    # The same 5 episodes one by one (reset seeds 7..11)
    env, lengths = gym.make("PointGoal-v0"), []
    for seed in range(7, 12):
        obs, _ = env.reset(seed=seed)
        done, steps = False, 0
        while not done:
            obs, _, terminated, truncated, _ = env.step(_to_goal(obs[None])[0])
            done, steps = terminated or truncated, steps + 1
        lengths.append(steps)
    assert result["length"] == pytest.approx(np.mean(lengths))
    assert result["success"] == 1.0 and 0.0 < result["il_fraction"] < 1.0
    assert evaluate_vec(vec_env, lambda obs, starts: (_to_goal(obs), None), n_episodes=5, seed=7)["length"] == result["length"]
    assert np.isnan(evaluate_vec(vec_env, lambda obs, starts: (np.zeros((2, 2)), None), 1, seed=0)["il_fraction"])
    with pytest.raises(ValueError, match="n_episodes must be at least 1"):
        evaluate_vec(vec_env, lambda obs, starts: (obs, None), n_episodes=0, seed=0)


def test_timed_updates_counts_train_calls_and_unwraps():
    class Model:
        device = "cpu"

        def train(self, gradient_steps: int, batch_size: int = 100) -> int:
            time.sleep(0.05)
            return gradient_steps

    model, watch = Model(), Stopwatch({"updates": 1.0, "unknown": 5.0})
    with timed_updates(model, watch):
        assert model.train(3) == 3 and model.train(gradient_steps=1) == 1
    assert 1.09 < watch.seconds["updates"] < 1.5
    assert "train" not in vars(model) and "unknown" not in watch.seconds
    with watch.part("report"):
        time.sleep(0.02)
    assert watch.seconds["report"] >= 0.02


def test_override_values_are_python_literals():
    assert parse_literal("2") == 2 and parse_literal("'bf16'") == "bf16" and parse_literal("bf16") == "bf16"
    assert parse_literal("True") is True and parse_literal("None") is None
    assert parse_literal("{'storage_device': 'cuda'}") == {"storage_device": "cuda"}
    assert parse_literal("dict(storage_device='cuda', n=2)") == {"storage_device": "cuda", "n": 2}
    assert parse_assignments(["train_freq=2", "mixed_precision='bf16'"]) == {"train_freq": 2, "mixed_precision": "bf16"}
    with pytest.raises(ValueError, match="Cannot read 'f\\(1\\)' as a Python literal"):
        parse_literal("f(1)")
    with pytest.raises(ValueError, match="Bad --override 'train_freq': expected key=value"):
        parse_assignments(["train_freq"])


def test_command_line_errors_name_the_problem(tmp_path, capsys):
    assert benchmark_main(["headline", "--task", "Nope-v0", "--out", str(tmp_path)]) == 2
    assert "Unknown headline task 'Nope-v0'" in capsys.readouterr().err
    assert benchmark_main(["headline", "--out", str(tmp_path), "--override", "x"]) == 2
    assert "Bad --override 'x'" in capsys.readouterr().err
    assert benchmark_main(["headline", "--out", str(tmp_path), "--override", "no_such_option=1", "train_freq=2"]) == 2
    assert "--override no_such_option: not a keyword of IBRL.__init__" in capsys.readouterr().err
    assert benchmark_main(["headline", "--out", str(tmp_path), "--bc", "n_batchez=2"]) == 2
    assert "--bc n_batchez: not a keyword of train_bc" in capsys.readouterr().err
    assert not os.listdir(tmp_path)  # nothing ran
    if not torch.cuda.is_available():
        assert benchmark_main(["headline", "--out", str(tmp_path), "--device", "cuda"]) == 2
        assert "--device cuda, but torch" in capsys.readouterr().err
    assert benchmark_main(["headline", "--out", str(tmp_path), "--steps", "0"]) == 2
    assert "steps must be at least 1" in capsys.readouterr().err


def _lift_pixel_ready() -> bool:
    if importlib.util.find_spec("robosuite") is None:
        return False
    from sb3_ibrl.envs.rendering import select_gl_backend

    try:
        select_gl_backend()
    except RuntimeError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _lift_pixel_ready(), reason="needs robosuite and an offscreen OpenGL backend")
def test_lift_pixel_smoke_through_the_command_line(tmp_path):
    args = ["headline", "--task", "Lift-pixel-v0", "--out", str(tmp_path), "--smoke", "--steps", "80", "--eval-every", "80"]
    args += ["--eval-episodes", "1", "--bc-seconds", "1", "--override", "learning_starts=40", "batch_size=16"]
    assert benchmark_main(args) == 0
    with open(tmp_path / "headline.json") as file:
        result = json.load(file)
    assert result["task"] == "Lift-pixel-v0" and result["env_steps"] == 80 and not result["partial"]
    assert result["settings"]["overrides"] == {"learning_starts": 40, "batch_size": 16}
    assert 0 < result["updates"] <= 40  # updates start after learning_starts
    assert result["demos"]["n"] == 1 and result["bc"]["features"] == "resnet18"
    assert result["machine"]["mujoco_gl"] in ("egl", "osmesa")
    check_timing(result)
    check_files(tmp_path)


def test_parallel_training_and_evaluation_envs(tmp_path):
    config = HeadlineConfig(str(tmp_path), task=POINT_GOAL_PIXEL, smoke=True, steps=40, eval_every=40, n_envs=2)
    result = run_headline(HeadlineConfig(**dict(vars(config), eval_envs=2, eval_episodes=3)), log=quiet)
    assert result["env_steps"] == 40 and result["settings"]["n_envs"] == 2 and result["settings"]["eval_envs"] == 2
    assert [row["env_steps"] for row in result["curve"]] == [40]
    assert 1 <= result["curve"][0]["hybrid_length"] <= 100


def test_evaluate_vec_tells_the_policy_where_episodes_start():
    vec_env = DummyVecEnv([lambda: gym.make("PointGoal-v0")] * 2)
    calls = []

    def act(obs, starts):
        calls.append(starts.copy())
        return _to_goal(obs), None

    evaluate_vec(vec_env, act, n_episodes=3, seed=7)  # two episodes at once, then one
    firsts = [i for i, starts in enumerate(calls) if starts.any()]
    assert len(firsts) == 2 and firsts[0] == 0  # one reset per group of episodes
    # each played episode starts once, at its reset: both envs, then env 0 alone (env 1 is idle in the last group)
    assert calls[0].tolist() == [True, True] and calls[firsts[1]].tolist() == [True, False]
    assert sum(starts.sum() for starts in calls) == 3


class _ChunkPolicy:
    """A fake SB3 policy predicting chunks of 2 actions of size 1: (t, t + 1) / 10 at its t-th call."""

    def __init__(self):
        self.t = 0

    def set_training_mode(self, mode):
        pass

    def obs_to_tensor(self, obs):
        return torch.as_tensor(obs), True

    def _predict(self, obs, deterministic=True):
        self.t += 1
        return torch.tensor([[self.t - 1, self.t]] * len(obs), dtype=torch.float32) / 10


def test_a_chunking_bc_acts_by_temporal_ensembling_from_each_episode_start():
    from sb3_ibrl.benchmark.headline_tools import policy_act_fn

    space = gym.spaces.Box(-0.15, 0.15, (1,))
    act = policy_act_fn(_ChunkPolicy(), (2, 0.0), space)
    obs = np.zeros((2, 3), dtype=np.float32)
    assert np.allclose(act(obs, np.array([True, True]))[0], [[0.0], [0.0]])  # first chunk (0, .1): its first action
    # step 2 averages the first chunk's second action (.1) and the second chunk's first (.1); step 3: (.2 + .2) / 2,
    # clipped to the space; env 1 starting again takes its new chunk's first action alone
    assert np.allclose(act(obs, np.array([False, False]))[0], [[0.1], [0.1]])
    assert np.allclose(act(obs, np.array([False, True]))[0], [[0.15], [0.15]])  # 0.2 both, clipped to 0.15
    assert np.allclose(act(obs, np.array([False, True]))[0], [[0.15], [0.15]])  # env 1: mean(.4, .3) = .35 -> .15
    plain = policy_act_fn(_ChunkPolicy())  # without chunking: the policy's own predict (which this fake lacks)
    with pytest.raises(AttributeError, match="predict"):
        plain(obs, np.array([True, True]))
    with pytest.raises(ValueError, match="Box action space"):
        policy_act_fn(_ChunkPolicy(), (2, 0.0), gym.spaces.Discrete(2))


def test_a_chunking_bc_is_the_stateful_il_policy_of_the_run(tmp_path):
    from sb3_ibrl.ibrl import IBRL
    from sb3_ibrl.il.stateful import ActionChunkingPolicy

    config = HeadlineConfig(str(tmp_path), task=POINT_GOAL_PIXEL, smoke=True, steps=40, eval_every=40, bc_chunk=3)
    result = run_headline(HeadlineConfig(**dict(vars(config), eval_episodes=2)), log=quiet)
    assert result["settings"]["bc_chunk"] == 3 and result["settings"]["bc_chunk_decay"] == 0.01
    assert result["bc"]["chunk_size"] == 3 and 0.0 <= result["bc"]["success"] <= 1.0
    model = IBRL.load(str(tmp_path / "checkpoint" / "model.zip"))
    chunking = model.policy.il_policy.policy
    assert isinstance(chunking, ActionChunkingPolicy) and (chunking.chunk_size, chunking.decay) == (3, 0.01)
    assert model.cache_il_actions and result["env_steps"] == 40
    # the BC predicts 3 actions of the env's 2
    from stable_baselines3.common.policies import ActorCriticPolicy

    assert ActorCriticPolicy.load(str(tmp_path / "bc.zip")).action_space.shape == (6,)
    # the folder's BC is a chunking one: a call that asks for another refuses to continue with it
    for other in (dict(bc_chunk=1), dict(bc_chunk_decay=0.5)):
        with pytest.raises(ValueError, match=r"holds a BC of --bc-chunk 3 --bc-chunk-decay 0\.01"):
            run_headline(HeadlineConfig(**dict(vars(config), **other)), log=quiet)
    with pytest.raises(ValueError, match="bc_chunk must be at least 1"):
        HeadlineConfig(str(tmp_path), bc_chunk=0).resolve()
    with pytest.raises(ValueError, match="bc_chunk_decay must be a number >= 0"):
        HeadlineConfig(str(tmp_path), bc_chunk=2, bc_chunk_decay=-1.0).resolve()


def test_evaluation_envs_use_the_cores_the_idle_training_envs_leave(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    # the third GPU run: 8 training envs left 7 evaluation envs, so 10 episodes took two rounds
    assert HeadlineConfig(str(tmp_path), n_envs=8).resolve().eval_envs == 10
    assert HeadlineConfig(str(tmp_path), n_envs=8, eval_episodes=4).resolve().eval_envs == 4
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert HeadlineConfig(str(tmp_path), n_envs=8).resolve().eval_envs == 3
    assert HeadlineConfig(str(tmp_path), n_envs=8, smoke=True).resolve().eval_envs == 1
