#!/usr/bin/env bash
# Set up sb3-ibrl on a fresh machine (Python + pip only): CPU torch first, then the package and its tools.
set -euo pipefail
PYTHON="${PYTHON:-python3}"
cd "$(dirname "$0")/.."

# 1. torch: keep an installed one; otherwise the CPU build (a plain `pip install torch` pulls GBs of CUDA packages)
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
    "$PYTHON" -m pip install -q torch==2.13.0
fi
# 2. the package with its test tools
"$PYTHON" -m pip install -q -e ".[tests]"
# 3. imitation without its pins (they would downgrade stable-baselines3 and gymnasium)
"$PYTHON" -m pip install -q --no-deps imitation==1.0.1 tqdm
"$PYTHON" -c "import sb3_ibrl, imitation.algorithms.bc, stable_baselines3, gymnasium; print('sb3-ibrl', sb3_ibrl.__version__, '| SB3', stable_baselines3.__version__, '| gymnasium', gymnasium.__version__)"
