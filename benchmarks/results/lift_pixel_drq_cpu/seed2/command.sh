cd /work/main
MUJOCO_GL=egl python -m sb3_ibrl.benchmark headline --task Lift-pixel-v0 --out /tmp/liftdrq2/run --steps 20000 --seed 2 \
  --device cpu --time-limit 7800 --eval-every 4000 --eval-episodes 10 --eval-envs 2 \
  --bc-chunk 8 --bc-seconds 420 --bc resnet_width=16 n_batches=2000 learning_rate=3e-4 \
  --override train_freq=2 "proposal_critic='target'" "policy_kwargs=dict(encoder='drq',encoder_kwargs=dict(channels_last=True))"
