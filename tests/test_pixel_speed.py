"""``benchmarks/pixel_speed.py --profile``: where an update's time goes (checked on the CPU with a tiny ViT)."""

import gymnasium as gym
import pytest
from benchmark_helpers import load_benchmark

TINY = dict(encoder="vit", encoder_kwargs=dict(embed_dim=16, depth=1, num_heads=2), q_hidden_dim=32, net_arch=[32, 32])


def test_profile_counts_per_update_and_finds_no_gpu_work_on_the_cpu():
    speed = load_benchmark("pixel_speed")
    env = gym.make("PointGoal-v0", obs_mode="pixel", image_size=32)
    model = speed.ibrl_model(env, "cpu", TINY, "free", dict(speed.SPEEDUPS["baseline"]))
    speed.fill(model, 60)
    one, tables = speed.profile_updates(model, 1, 8)
    three, _ = speed.profile_updates(model, 3, 8)
    assert set(one) == {"wall_ms", "gpu_busy_ms", "gpu_busy_share", "kernels", "launches", "syncs", "items", "torch_ops"}
    assert one["wall_ms"] > 0 and one["torch_ops"] > 100  # a ViT update dispatches hundreds of ops
    assert abs(three["torch_ops"] / one["torch_ops"] - 1) < 0.1  # counts are per update, whatever the number profiled
    assert one["kernels"] == one["launches"] == one["syncs"] == one["gpu_busy_ms"] == one["gpu_busy_share"] == 0
    assert "aten::" in tables and "Self CPU" in tables


def test_fill_writes_episodes_as_collection_does():
    speed = load_benchmark("pixel_speed")
    env = gym.make("PointGoal-v0", obs_mode="pixel", image_size=32)
    model = speed.ibrl_model(env, "cpu", TINY, "free", dict(speed.SPEEDUPS["baseline"]))
    speed.fill(model, 60, episode_length=20)
    buffer = model.replay_buffer
    assert buffer.size() == 60 and not buffer.breaks[:60].any()  # every next observation is the next row's
    assert int(buffer.dones[:60].sum()) == 3 and len(buffer.final_observations) == 3  # only episode ends are held apart
    assert len(buffer.episode_rows()) == 3


def test_speedup_steps_are_cumulative_and_a_joined_step_is_measured_once():
    speed = load_benchmark("pixel_speed")
    steps = speed.speedup_steps(["cache-il", "cudagraphs+tf32", "bf16"])
    assert [label for label, _ in steps] == ["cache-il", "cache-il+cudagraphs+tf32", "cache-il+cudagraphs+tf32+bf16"]
    assert steps[0][1] == dict(cache_il_actions=True)
    assert steps[1][1] == dict(cache_il_actions=True, compile_updates="reduce-overhead", mixed_precision="tf32")
    assert steps[2][1] == dict(cache_il_actions=True, compile_updates="reduce-overhead", mixed_precision="bf16")
    # one at a time, as before: the same options at the same step
    single = speed.speedup_steps(["cache-il", "cudagraphs", "tf32", "bf16"])
    assert single[2][1] == steps[1][1] and single[3][1] == steps[2][1]
    for bad in (["cache-il", "tf33"], ["cudagraphs+"], ["cudagraphs+bf61"]):
        with pytest.raises(ValueError, match="unknown speed-up"):
            speed.speedup_steps(bad)


def test_channels_last_step_reaches_the_encoder_and_keeps_its_other_options():
    speed = load_benchmark("pixel_speed")
    env = gym.make("PointGoal-v0", obs_mode="pixel", image_size=32)
    (_, options), (_, both) = speed.speedup_steps(["baseline", "channels-last"])
    default, nhwc = (speed.ibrl_model(env, "cpu", TINY, "free", opts) for opts in (options, both))
    assert default.policy.critic.encoder.net.channels_last is False
    net = nhwc.policy.critic.encoder.net
    assert net.channels_last is True and net.embed_dim == 16 and net.depth == 1  # merged with TINY's encoder_kwargs
    assert nhwc.replay_buffer.storage_device is None  # the baseline's options still apply
    assert both["encoder_kwargs"] == dict(channels_last=True)  # the caller's dicts are left alone
    assert TINY["encoder_kwargs"] == dict(embed_dim=16, depth=1, num_heads=2)
