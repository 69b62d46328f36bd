cd /work/main
MUJOCO_GL=egl python -m sb3_ibrl.benchmark headline --task Lift-pixel-v0 --out /tmp/liftdrq/run --steps 20000 \
  --device cpu --time-limit 7500 --eval-every 4000 --eval-episodes 10 --eval-envs 2 \
  --bc-chunk 8 --bc-seconds 420 --bc resnet_width=16 n_batches=2000 learning_rate=3e-4 \
  --override train_freq=2 "proposal_critic='target'" "policy_kwargs=dict(encoder='drq',encoder_kwargs=dict(channels_last=True))"
# Call 3 (code 3334e38, 2026-12-07 22:46 UTC; the second call had been cut off unsaved at about 17K, so this one
# resumed from the first call's checkpoint at 15200 and redid 16K): the same command with --time-limit 2640,
# completed at 20000 env steps.
