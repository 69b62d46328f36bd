# Two calls on the 2-core CPU. Call 1 (code 273abeb, 2026-12-07 14:58 UTC) stopped by its time limit at 15585 env steps;
# call 2 (code d50e5f8, 21:50 UTC; it includes 248ae49's bit-exact IL actions on [-1, 1] envs, which call 1 lacked)
# is the same command with --time-limit 3600: it continued from the checkpoint in --out to 20001 env steps
# (train_freq=2 collects 2 steps at a time from the odd 15585).
cd /work/main
MUJOCO_GL=egl python -m sb3_ibrl.benchmark headline --task Lift-pixel-v0 --out /tmp/liftdrq1/run --steps 20000 --seed 1 \
  --device cpu --time-limit 7800 --eval-every 4000 --eval-episodes 10 --eval-envs 2 \
  --bc-chunk 8 --bc-seconds 420 --bc resnet_width=16 n_batches=2000 learning_rate=3e-4 \
  --override train_freq=2 "proposal_critic='target'" "policy_kwargs=dict(encoder='drq',encoder_kwargs=dict(channels_last=True))"
MUJOCO_GL=egl python -m sb3_ibrl.benchmark headline --task Lift-pixel-v0 --out /tmp/liftdrq1/run --steps 20000 --seed 1 \
  --device cpu --time-limit 3600 --eval-every 4000 --eval-episodes 10 --eval-envs 2 \
  --bc-chunk 8 --bc-seconds 420 --bc resnet_width=16 n_batches=2000 learning_rate=3e-4 \
  --override train_freq=2 "proposal_critic='target'" "policy_kwargs=dict(encoder='drq',encoder_kwargs=dict(channels_last=True))"
