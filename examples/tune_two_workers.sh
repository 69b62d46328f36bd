#!/usr/bin/env bash
# Tune IBRL with rl-zoo3 and Optuna: two worker processes share one study through a SQLite storage.
#
#   bash examples/tune_two_workers.sh                                  # PointGoal-v0, 2 x 4 trials of 3000 steps
#   ENV_ID=Lift-state-v0 STEPS=50000 N_TRIALS=10 bash examples/tune_two_workers.sh
#   N_TRIALS=1 STEPS=400 EVAL_EPISODES=2 bash examples/tune_two_workers.sh   # smoke test, ~30 s on 2 cores
#
# Other machines join the same study with the same command and a storage they all reach, e.g.
# STORAGE=postgresql://user:password@host/db (create the study once first:
# `optuna create-study --storage "$STORAGE" --study-name "$STUDY" --direction maximize`). With SQLite, workers on one
# machine may start together: sb3-ibrl creates the study under a lock. Then train with the best trial's values:
#   python -m rl_zoo3.train --algo ibrl --env "$ENV_ID" --storage "$STORAGE" --study-name "$STUDY" --trial-id N
# (N >= 1: rl-zoo3 ignores --trial-id 0).
set -euo pipefail
ENV_ID="${ENV_ID:-PointGoal-v0}"
STEPS="${STEPS:-3000}"                  # env steps per trial
N_TRIALS="${N_TRIALS:-4}"               # trials per worker
EVAL_EPISODES="${EVAL_EPISODES:-10}"    # episodes per evaluation (the objective: mean reward = success rate)
STORAGE="${STORAGE:-sqlite:///ibrl_tuning.db}"
STUDY="${STUDY:-ibrl-$ENV_ID}"
LOGS="${LOGS:-logs/tuning}"
PYTHON="${PYTHON:-python}"

mkdir -p "$LOGS"
pids=()
for worker in 1 2; do
    OMP_NUM_THREADS=1 "$PYTHON" -m rl_zoo3.train --algo ibrl --env "$ENV_ID" -n "$STEPS" -f "$LOGS" \
        -optimize --n-trials "$N_TRIALS" --storage "$STORAGE" --study-name "$STUDY" \
        --eval-episodes "$EVAL_EPISODES" --n-evaluations 2 --seed "$worker" --no-optim-plots \
        > "$LOGS/worker$worker.log" 2>&1 &
    pids+=($!)
    echo "worker $worker: pid ${pids[-1]}, log $LOGS/worker$worker.log"
done
for pid in "${pids[@]}"; do wait "$pid"; done

"$PYTHON" - "$STORAGE" "$STUDY" <<'PY'
import sys

import optuna

study = optuna.load_study(storage=sys.argv[1], study_name=sys.argv[2])
trials = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
print(f"{len(trials)} trials done in study {study.study_name!r}")
for trial in sorted(trials, key=lambda t: -t.value)[:5]:
    print(f"  trial {trial.number}: {trial.value:.2f}  {trial.params}")
best = study.best_trial.number
# rl-zoo3 reads --trial-id only when it is not 0
print(f"best: trial {best}" + (f" (train with it: --trial-id {best})" if best else " (rl-zoo3 ignores --trial-id 0)"))
PY
