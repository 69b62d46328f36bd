# Two calls on the 2-core CPU. Call 1 (code 248ae49, 2026-12-07 17:42 UTC) stopped by its time limit at 15057 env steps;
# call 2 (code b71f9e5, same behaviour, 20:45 UTC) is the same command with --time-limit 3900: it continued from the
# checkpoint in --out to 20001 env steps (train_freq=2 collects 2 steps at a time from the odd 15057).
cd /work/main
MUJOCO_GL=egl python -m sb3_ibrl.benchmark headline --task Lift-pixel-v0 --out /tmp/liftdrq2/run --steps 20000 --seed 2 \
  --device cpu --time-limit 7800 --eval-every 4000 --eval-episodes 10 --eval-envs 2 \
  --bc-chunk 8 --bc-seconds 420 --bc resnet_width=16 n_batches=2000 learning_rate=3e-4 \
  --override train_freq=2 "proposal_critic='target'" "policy_kwargs=dict(encoder='drq',encoder_kwargs=dict(channels_last=True))"
MUJOCO_GL=egl python -m sb3_ibrl.benchmark headline --task Lift-pixel-v0 --out /tmp/liftdrq2/run --steps 20000 --seed 2 \
  --device cpu --time-limit 3900 --eval-every 4000 --eval-episodes 10 --eval-envs 2 \
  --bc-chunk 8 --bc-seconds 420 --bc resnet_width=16 n_batches=2000 learning_rate=3e-4 \
  --override train_freq=2 "proposal_critic='target'" "policy_kwargs=dict(encoder='drq',encoder_kwargs=dict(channels_last=True))"
