# code of 0950d69 (same learning code as 4b24541); 2 cores, AMD EPYC; two CI dry runs shared the cores for 43 minutes
cd /work/main
MUJOCO_GL=egl python -m sb3_ibrl.benchmark headline --task Assembly-pixel-v0 --out /work/runs/assembly-drq2 --steps 100000 \
  --device cpu --time-limit 8400 --eval-every 4000 --eval-episodes 10 --eval-envs 2 \
  --bc-seconds 1200 --bc resnet_width=16 n_batches=2000 learning_rate=3e-4 \
  --override train_freq=2 "proposal_critic='target'" "policy_kwargs=dict(encoder='drq',encoder_kwargs=dict(channels_last=True))"
