#!/usr/bin/env bash
# The prepared GPU run of issue 11, in one command of at most ~9.5 minutes: the headline run (Lift-pixel-v0 from
# pixels, 1 scripted demo, BC, IBRL for 20K env steps, evaluations; python -m sb3_ibrl.benchmark headline), then the
# update speed (benchmarks/pixel_speed.py on cuda), then tests/test_cuda.py. Every stage has its own timeout.
#
# Before (on the CPU machine, once): bash benchmarks/kit_build.sh robosuite     (builds .kit/, ignored by git)
# With the device tool:
#     run(command="bash benchmarks/gpu_headline.sh", carry=[".kit"], timeout_s=600)
# Options are environment variables, e.g.
#     run(command="N_ENVS=4 OVERRIDES=\"mixed_precision='bf16' compile_updates=True\" bash benchmarks/gpu_headline.sh",
#         carry=[".kit"], timeout_s=600)
#   TASK (Lift-pixel-v0)  STEPS (20000)  HEADLINE_SECONDS (400: the headline's --time-limit)  N_ENVS (4: four Lift envs step in parallel; updates per env step stay the paper's)
#   OVERRIDES (IBRL keywords for --override, e.g. "train_freq=2")  BC_SECONDS (60)  EVAL_EPISODES (10)
#   BUDGET (570: seconds for the whole script)  RUN_DIR (runs/gpu-headline)  DEVICE (cuda)
#   EXTRA (more headline arguments; a CPU dry run: DEVICE=cpu EXTRA=--smoke STEPS=300 BUDGET=240)
#   SPEED_ARGS (pixel_speed.py options; default: the paper ViT, ResNet-18 IL, baseline / IL cache / device replay / bf16;
#     torch.compile variants take minutes to compile: give them a call of their own, e.g.
#     SPEED_ARGS="--encoders paper-vit --speedups baseline cache-il device-replay bf16 compile cudagraphs --il resnet18 --updates 200")
#   STAGES ("headline speed tests": which stages run, in that order)  SPEED_SECONDS (120: the speed stage's limit)
#   TESTS_K (a pytest -k selection of tests/test_cuda.py; default: all, the compiled variants last)
# The headline stops in time and saves a checkpoint; RUN_DIR is an ignored folder of the tree, which the device machine
# keeps while it stays warm: the same call again (at once) continues a partial run.
#
# Writes into $OUT (flat, 8 files): env.txt (nvidia-smi, kit, torch), headline.log, headline.json, headline.png,
# pixel_speed.json, pixel_speed.log, pixel_profile.txt (pixel_speed.py --profile: GPU busy share, kernels, syncs and
# top ops per update of each configuration), test_cuda.txt (pytest -v; stopped by SIGINT at its limit, so that the
# failures so far are still reported).
set -u
start=$SECONDS
budget=${BUDGET:-570}
left() { echo $((budget - (SECONDS - start))); }
OUT=${OUT:-/tmp/gpu_headline_out}
mkdir -p "$OUT"
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
TASK=${TASK:-Lift-pixel-v0}
STEPS=${STEPS:-20000}
RUN_DIR=${RUN_DIR:-runs/gpu-headline}
STAGES=${STAGES:-headline speed tests}
stage() { [[ " $STAGES " == *" $1 "* ]]; }

# 1. Machine and kit
{
  date -u
  nvidia-smi || echo "nvidia-smi failed"
  echo "nproc: $(nproc)  python3: $(command -v python3)"
  if [ -f .kit/install.sh ]; then source .kit/install.sh; else echo "no .kit/: carry it (bash benchmarks/kit_build.sh robosuite)"; fi
  python3 -c "
import torch
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print('device', torch.cuda.get_device_name(0), round(p.total_memory / 2**30, 1), 'GiB, capability', p.major, p.minor)
    print('bf16', torch.cuda.is_bf16_supported(), 'cudnn', torch.backends.cudnn.version())
"
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
echo "[gpu_headline] setup took $((SECONDS - start)) s"

# 2. The headline run
if ! stage headline; then
  echo "[gpu_headline] headline not in STAGES ($STAGES)" | tee "$OUT/headline.log"
elif [ "${KIT_GL_OK:-1}" = 0 ] && [[ $TASK != PointGoal* ]]; then
  echo "[gpu_headline] skipped the headline: MuJoCo cannot render through EGL here (see env.txt)" | tee "$OUT/headline.log"
else
  limit=${HEADLINE_SECONDS:-400}
  after=0
  if stage speed || stage tests; then after=60; fi
  room=$(($(left) - 45 - after))  # 45 s for start-up and the kill grace, 60 s for the stages after it (if any run)
  [ "$room" -lt "$limit" ] && limit=$room
  args=(--task "$TASK" --out "$RUN_DIR" --steps "$STEPS" --time-limit "$limit" --n-envs "${N_ENVS:-4}" --device "${DEVICE:-cuda}")
  args+=(--bc-seconds "${BC_SECONDS:-60}" --eval-episodes "${EVAL_EPISODES:-10}")
  # shellcheck disable=SC2206  # OVERRIDES holds several key=value words
  [ -n "${OVERRIDES:-}" ] && args+=(--override ${OVERRIDES})
  # shellcheck disable=SC2206
  [ -n "${EXTRA:-}" ] && args+=(${EXTRA})
  echo "[gpu_headline] headline: ${args[*]}"
  timeout -k 10 $((limit + 45)) python3 -u -m sb3_ibrl.benchmark headline "${args[@]}" 2>&1 \
    | grep --line-buffered -v "robosuite WARNING" | tee "$OUT/headline.log"
  echo "[gpu_headline] headline exit status ${PIPESTATUS[0]} after $((SECONDS - start)) s"
  cp "$RUN_DIR/headline.json" "$RUN_DIR/headline.png" "$OUT/" 2>/dev/null
  python3 - "$RUN_DIR/headline.json" <<'EOF' 2>&1 | tee -a "$OUT/headline.log"
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except OSError:
    sys.exit("no headline.json")
t = r["timing"]
print(f"[gpu_headline] {r['task']}: {r['env_steps']} env steps, {'partial' if r['partial'] else 'complete'}, "
      f"{t['total']:.0f} s on {r['machine']['device_name']}; BC {r['bc']['success']:.2f} ({r['bc']['n_batches']} batches)")
for row in r["curve"]:
    print(f"  {row['env_steps']:>7}  hybrid {row['hybrid_success']:.2f}  RL alone {row['rl_only_success']:.2f}  {row['wall_seconds']:.0f} s")
print("  split (s): " + ", ".join(f"{k} {v:.0f}" for k, v in t.items()))
print(f"  updates/s {r['updates_per_second']}, env steps/s {r['env_steps_per_second']}, updates per env step {r['updates_per_env_step']:.2f}")
EOF
fi

# 3. Update speed (no rendering needed)
t=$(($(left) - 40))
if ! stage speed; then
  echo "[gpu_headline] speed not in STAGES ($STAGES)" | tee "$OUT/pixel_speed.log"
elif [ "$t" -ge 30 ]; then
  [ "$t" -gt "${SPEED_SECONDS:-120}" ] && t=${SPEED_SECONDS:-120}
  # shellcheck disable=SC2086
  timeout -k 5 "$t" python3 -u benchmarks/pixel_speed.py --device "${DEVICE:-cuda}" ${SPEED_ARGS:---encoders paper-vit \
    --speedups baseline cache-il device-replay bf16 --il resnet18 --updates 100 --no-td3} --out "$OUT/pixel_speed.json" \
    --profile "$OUT/pixel_profile.txt" >"$OUT/pixel_speed.log" 2>&1
  echo "[gpu_headline] pixel_speed exit status $? after $((SECONDS - start)) s"
  cat "$OUT/pixel_speed.log"
else
  echo "[gpu_headline] no time left for pixel_speed.py" | tee "$OUT/pixel_speed.log"
fi

# 4. CUDA tests
if ! stage tests; then
  echo "tests not in STAGES ($STAGES)" >"$OUT/test_cuda.txt"
elif [ ! -f tests/test_cuda.py ]; then
  echo "tests/test_cuda.py is missing: skipped" >"$OUT/test_cuda.txt"
else
  # The correctness tests first, then the compiled variants (minutes of compilation), each pytest under what is left.
  # SIGINT: pytest stops as on Ctrl-C and still prints the failures so far (with -v, every test's outcome as it ends)
  : >"$OUT/test_cuda.txt"
  if [ -n "${TESTS_K:-}" ]; then selections=("$TESTS_K"); else selections=("not speed_options" "speed_options"); fi
  for selection in "${selections[@]}"; do
    t=$(($(left) - 5))
    if [ "$t" -lt 20 ]; then
      echo "[gpu_headline] no time left for tests/test_cuda.py -k '$selection'" >>"$OUT/test_cuda.txt"
      continue
    fi
    timeout -s INT -k 10 "$t" python3 -m pytest -v -rfE --tb=short -p no:cacheprovider tests/test_cuda.py \
      -k "$selection" >>"$OUT/test_cuda.txt" 2>&1
    echo "[gpu_headline] test_cuda -k '$selection' exit status $? after $((SECONDS - start)) s" >>"$OUT/test_cuda.txt"
  done
fi
grep -E "PASSED|FAILED|ERROR|SKIPPED|passed|failed" "$OUT/test_cuda.txt" | tail -40
echo "[gpu_headline] done in $((SECONDS - start)) s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
