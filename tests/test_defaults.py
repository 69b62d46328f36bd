"""Defaults that follow the observations (Table 2: E and G for states vs images) and BC sized to the demos."""

import base64
import json
import re
import zipfile

import cloudpickle
import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces

import sb3_ibrl  # noqa: F401  (registers PointGoal-v0)
from sb3_ibrl import IBRL
from sb3_ibrl.baselines import RLPD, SQIL, PtFt
from sb3_ibrl.data.episodes import Episode
from sb3_ibrl.ibrl.defaults import PAPER_DEFAULTS, paper_default
from sb3_ibrl.ibrl.policies import IBRLCnnPolicy, IBRLPolicy
from sb3_ibrl.il import sizing, training
from sb3_ibrl.il.sizing import BCTimeEstimate, bc_batches

TINY_VIT = dict(encoder="vit", encoder_kwargs=dict(embed_dim=16, depth=1, num_heads=2), q_hidden_dim=32, net_arch=[32, 32])
CASES = {  # obs_mode: (policy, policy_kwargs, expected E, expected G)
    "state": ("MlpPolicy", dict(net_arch=[32, 32]), 5, 5),
    "pixel": ("CnnPolicy", TINY_VIT, 2, 1),
    "pixel_proprio": ("MultiInputPolicy", TINY_VIT, 2, 1),
}


def make_model(obs_mode: str, algo: type = IBRL, policy_kwargs: dict = None, **kwargs) -> IBRL:
    policy, default_kwargs, _, _ = CASES[obs_mode]
    env = gym.make("PointGoal-v0", obs_mode=obs_mode)
    kwargs = dict(dict(buffer_size=500, batch_size=8, learning_starts=10, seed=0), **kwargs)
    return algo(policy, env, policy_kwargs=dict(default_kwargs, **(policy_kwargs or {})), **kwargs)


def settings(model: IBRL) -> tuple[int, int, int, int]:
    """(E built, E in policy_kwargs, gradient_steps, policy_delay)."""
    built = model.critic.n_critics
    assert model.critic_target.n_critics == built and model.policy.n_critics == built
    return built, model.policy_kwargs["n_critics"], model.gradient_steps, model.policy_delay


@pytest.mark.parametrize("obs_mode", sorted(CASES))
def test_paper_settings_follow_the_observations(obs_mode, capsys):
    _, _, n_critics, updates = CASES[obs_mode]
    model = make_model(obs_mode, verbose=1)
    assert settings(model) == (n_critics, n_critics, updates, updates)
    kind = "state" if obs_mode == "state" else "image"
    expected = f"IBRL: the default {kind} settings: gradient_steps={updates}, policy_delay={updates}, n_critics={n_critics}"
    assert expected in capsys.readouterr().out
    # not from the paper, and the same for states and images: the IL policy alone until the hybrid has matched it
    assert model.proposal_confidence == model.policy.proposal_confidence == float("inf")
    # The ensemble really has E members (the Q head's output), and learn() makes G critic updates per env step
    q_values = model.critic(model.policy.obs_to_tensor(model.observation_space.sample())[0], th.zeros(1, 2))
    assert q_values.shape == (n_critics, 1, 1)
    model.learn(14)  # updates after learning_starts = 10: the steps 11..14
    assert model._n_updates == 4 * updates


def test_explicit_values_win_and_policy_kwargs_are_not_changed():
    policy_kwargs = dict(TINY_VIT)
    model = IBRL("CnnPolicy", gym.make("PointGoal-v0", obs_mode="pixel"), buffer_size=100, policy_kwargs=policy_kwargs)
    assert "n_critics" not in policy_kwargs  # the caller's dict may serve another model: it is copied, not changed
    assert settings(model) == (2, 2, 1, 1)
    assert settings(make_model("pixel", gradient_steps=3, policy_delay=2, policy_kwargs=dict(n_critics=4))) == (4, 4, 3, 2)
    assert settings(make_model("state", gradient_steps=1, policy_delay=1, policy_kwargs=dict(n_critics=2))) == (2, 2, 1, 1)
    assert settings(make_model("state", policy_kwargs=dict(n_critics=None))) == (5, 5, 5, 5)
    with pytest.raises(ValueError, match="gradient_steps must be a positive integer"):
        make_model("pixel", gradient_steps=0)


@pytest.mark.parametrize("algo", [RLPD, SQIL, PtFt])
def test_baselines_take_the_same_defaults(algo):
    assert settings(make_model("pixel", algo)) == (2, 2, 1, 1)
    assert settings(make_model("state", algo)) == (5, 5, 5, 5)
    assert settings(make_model("state", algo, gradient_steps=2, policy_delay=2)) == (5, 5, 2, 2)


def test_the_policies_alone_take_the_default_of_their_observations():
    image, vector = spaces.Box(0, 255, (3, 16, 16), np.uint8), spaces.Box(-1, 1, (4,), np.float32)
    actions = spaces.Box(-1, 1, (2,), np.float32)
    cnn = IBRLCnnPolicy(image, actions, lambda _: 1e-4, **TINY_VIT)
    mlp = IBRLPolicy(vector, actions, lambda _: 1e-4, net_arch=[8])
    assert (cnn.n_critics, mlp.n_critics) == (2, 5)
    assert cnn._get_constructor_parameters()["n_critics"] == 2  # saved with the policy (policy.save)
    assert IBRLPolicy(vector, actions, lambda _: 1e-4, net_arch=[8], n_critics=3).n_critics == 3
    assert paper_default("policy_delay", spaces.Dict({"image": image, "proprio": vector})) == 1
    assert PAPER_DEFAULTS["n_critics"] == (5, 2) and PAPER_DEFAULTS["gradient_steps"] == (5, 1)
    assert "proposal_confidence" not in PAPER_DEFAULTS  # inf whatever the observations


def _saved_data(path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("data"))


@pytest.mark.parametrize(
    "obs_mode, kwargs, expected", [("pixel", {}, (2, 2, 1, 1)), ("state", dict(gradient_steps=3), (5, 5, 3, 5))]
)
def test_save_and_load_keep_the_resolved_values(tmp_path, obs_mode, kwargs, expected):
    model = make_model(obs_mode, **kwargs)
    model.save(tmp_path / "model.zip")
    data = _saved_data(tmp_path / "model.zip")
    assert (data["gradient_steps"], data["policy_delay"]) == expected[2:]  # numbers, not None
    policy_kwargs = data["policy_kwargs"]
    if ":serialized:" in policy_kwargs:
        policy_kwargs = cloudpickle.loads(base64.b64decode(policy_kwargs[":serialized:"]))
    assert policy_kwargs["n_critics"] == expected[0]
    loaded = IBRL.load(tmp_path / "model.zip", env=gym.make("PointGoal-v0", obs_mode=obs_mode))
    assert settings(loaded) == expected
    for name, value in model.policy.state_dict().items():
        th.testing.assert_close(loaded.policy.state_dict()[name], value)


@pytest.mark.parametrize("extra", [{}, dict(activation_fn=th.nn.ReLU)], ids=["json", "pickled"])
def test_a_model_saved_before_the_observation_defaults_keeps_its_five_critics(tmp_path, extra):
    # Before this change n_critics defaulted to 5 for every policy and was not written into policy_kwargs
    model = make_model("pixel", policy_kwargs=dict(n_critics=5, **extra))
    model.save(tmp_path / "model.zip")
    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(entries["data"])
    saved = data["policy_kwargs"]
    assert (":serialized:" in saved) == bool(extra)  # SB3 pickles what JSON cannot hold
    if extra:
        policy_kwargs = cloudpickle.loads(base64.b64decode(saved[":serialized:"]))
        del policy_kwargs["n_critics"]
        saved = {":type:": "<class 'dict'>", ":serialized:": base64.b64encode(cloudpickle.dumps(policy_kwargs)).decode()}
    else:
        del saved["n_critics"]
    data["policy_kwargs"] = saved
    entries["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(tmp_path / "old.zip", "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    loaded = IBRL.load(tmp_path / "old.zip")  # rebuilt with 2 critics, the weights of 5 would not fit
    assert settings(loaded) == (5, 5, 1, 1) and loaded.policy_kwargs.get("activation_fn") is extra.get("activation_fn")
    th.testing.assert_close(loaded.critic.state_dict(), model.critic.state_dict())
    with pytest.raises(RuntimeError, match="size mismatch"):  # what the fix avoids
        IBRL.load(tmp_path / "old.zip", custom_objects=dict(policy_kwargs=dict(TINY_VIT, **extra)))


# ------------------------------------------------------------------------------------------- BC sized to the demos


def test_bc_batches_follow_the_data():
    assert bc_batches(82) == 10_000  # 3 CoffeePush demos: 1000 passes of 1 batch, below the floor
    assert bc_batches(1340) == 10_000  # 10 Can demos: 1000 passes of 5.2 batches, below the floor
    assert bc_batches(7500) == 29297  # 50 Square demos: ceil(1000 * 7500 / 256)
    assert bc_batches(3000, batch_size=100) == 30_000
    assert bc_batches(10**6) == 100_000  # the paper's count caps it
    assert bc_batches(100, batch_size=50, epochs=3, min_batches=1) == 6
    assert bc_batches(100, batch_size=500, epochs=3, min_batches=1) == 3  # a batch holds at most the data
    assert bc_batches(1000, batch_size=10, epochs=5, min_batches=1, max_batches=200) == 200
    for bad, match in ((dict(n_transitions=0), "no transition"), (dict(n_transitions=5, epochs=0), "epochs")):
        with pytest.raises(ValueError, match=match):
            bc_batches(**bad)
    with pytest.raises(ValueError, match="max_batches"):
        bc_batches(5, min_batches=10, max_batches=5)


def tiny_demos(n_transitions: int) -> list[Episode]:
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (n_transitions + 1, 3)).astype(np.float32)
    return [Episode(obs, rng.uniform(-1, 1, (n_transitions, 2)).astype(np.float32), np.zeros(n_transitions, np.float32))]


def count_batches(demos, **kwargs) -> int:
    done = []
    space, actions = spaces.Box(-1, 1, (3,), np.float32), spaces.Box(-1, 1, (2,), np.float32)
    training.train_bc(demos, space, actions, batch_size=8, net_arch=[8], callback=lambda n, _: done.append(n), **kwargs)
    assert done == list(range(1, len(done) + 1))
    return len(done)


def test_train_bc_sizes_to_the_data_unless_told(monkeypatch, capsys):
    calls = []

    def small_sizing(n_transitions: int, batch_size: int) -> int:  # the default sizing, scaled down for a fast test
        calls.append((n_transitions, batch_size))
        return bc_batches(n_transitions, batch_size, epochs=3, min_batches=4)

    monkeypatch.setattr(training, "bc_batches", small_sizing)
    assert count_batches(tiny_demos(40)) == 15  # 3 passes of 5 batches
    assert count_batches(tiny_demos(80)) == 30
    assert count_batches(tiny_demos(8)) == 4  # the floor
    assert calls == [(40, 8), (80, 8), (8, 8)]
    assert count_batches(tiny_demos(80), n_batches=7) == 7 and len(calls) == 3  # explicit wins, no sizing
    assert count_batches(tiny_demos(40), print_estimate=True) == 15
    line = capsys.readouterr().out
    assert "BC: 15 batches (sized to the data: 1000 passes over 40 demo transitions" in line and "minutes" in line
    with pytest.raises(ValueError, match="n_batches must be at least 1"):
        count_batches(tiny_demos(8), n_batches=0)


def test_time_estimate_times_a_few_batches_then_prints(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(sizing.time, "perf_counter", lambda: clock[0])
    lines = []
    estimate = BCTimeEstimate(10_000, note="(note)", min_seconds=2.0, max_timed=50, write=lines.append)
    clock[0] += 5.0  # the first batch: one-off costs, not timed
    estimate()
    for _ in range(3):  # 0.5 s per batch: 4 timed batches reach 2 s
        clock[0] += 0.5
        estimate()
        assert not lines
    clock[0] += 0.5
    estimate()
    # 7 s so far (5 batches) + 9995 batches at 0.5 s
    assert estimate.seconds == pytest.approx(7.0 + 9995 * 0.5)
    assert lines == ["BC: 10000 batches (note), about 83 minutes (500 ms per batch, timed on 4)"]
    for _ in range(10):
        estimate()
    assert len(lines) == 1  # printed once
    fast = BCTimeEstimate(2000, write=lines.append)
    for _ in range(201):
        clock[0] += 0.003
        fast()
    assert lines[-1] == "BC: 2000 batches, about 0.1 minutes (3 ms per batch, timed on 200)"


def test_bc_command_line_sizes_to_the_demos_and_says_how_long(tmp_path, monkeypatch, capsys):
    from sb3_ibrl.common.evaluation import record_episodes
    from sb3_ibrl.data.demo_files import save_episodes
    from sb3_ibrl.envs import PointGoalExpert
    from sb3_ibrl.il import cli

    demos = record_episodes(gym.make("PointGoal-v0"), PointGoalExpert(seed=0), 2, seed=0)
    n_transitions = sum(len(ep) for ep in demos)
    save_episodes(tmp_path / "demos.npz", demos)
    monkeypatch.setattr(cli, "bc_batches", lambda n, batch_size: bc_batches(n, batch_size, epochs=2, min_batches=1))
    args = ["--demos", str(tmp_path / "demos.npz"), "--env", "PointGoal-v0", "--no-progress", "--batch-size", "16"]
    summary = cli.run(cli.make_parser().parse_args([*args, "--out", str(tmp_path / "bc.zip")]))
    expected = int(np.ceil(2 * n_transitions / 16))
    assert summary["n_batches"] == expected
    out = capsys.readouterr().out
    assert f"{n_transitions} transitions; training BC (mlp) for {expected} batches, sized to the demos" in out
    assert re.search(rf"BC: {expected} batches, about [0-9.]+ minutes \(\d+ ms per batch", out)  # timed, then said
    summary = cli.run(cli.make_parser().parse_args([*args, "--out", str(tmp_path / "bc2.zip"), "--n-batches", "3"]))
    assert summary["n_batches"] == 3 and "BC: 3 batches, about" in capsys.readouterr().out


def test_zoo_bc_is_sized_to_the_demos_unless_given(tmp_path, monkeypatch):
    from sb3_ibrl.il import cli
    from sb3_ibrl.zoo.assets import ensure_il_policy

    seen = []

    def fake_run(args):  # records the command line's arguments, writes the file it must write
        seen.append(args)
        open(args.out, "w").close()

    monkeypatch.setattr(cli, "run", fake_run)
    ensure_il_policy("CoffeePush-state-v0", "demos.hdf5", tmp_path / "a.zip")
    ensure_il_policy("CoffeePush-state-v0", "demos.hdf5", tmp_path / "b.zip", n_batches=500)
    ensure_il_policy("CoffeePush-state-v0", "demos.hdf5", tmp_path / "c.zip", n_batches=None)
    assert [args.n_batches for args in seen] == [None, 500, None]
    assert (seen[0].batch_size, seen[0].lr) == (256, 1e-4)  # the paper's batch and learning rate
