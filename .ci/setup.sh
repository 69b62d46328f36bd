#!/usr/bin/env bash
# Set up sb3-ibrl on a fresh machine (Python + pip, and apt on Debian/Ubuntu): CPU torch first, then the package,
# its simulators and its tools.
set -euo pipefail
PYTHON="${PYTHON:-python3}"
cd "$(dirname "$0")/.."

# 1. offscreen OpenGL for the pixel observations of the simulated tasks (Mesa's EGL and OSMesa: CPU rendering)
if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends libegl1 libegl-mesa0 libosmesa6
fi
# 2. torch: keep an installed one; otherwise the CPU build from PyTorch's CPU wheel index (PyPI's Linux torch is the
#    CUDA build, with several GB of CUDA packages). Where that index cannot be reached, fall back to the default
#    index, and say so.
TORCH_CPU_INDEX="https://download.pytorch.org/whl/cpu"
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
    if ! "$PYTHON" -m pip install -q torch==2.13.0 --index-url "$TORCH_CPU_INDEX"; then
        echo "setup: could not install torch from $TORCH_CPU_INDEX; installing it from the default index instead" \
            "(on Linux, PyPI serves the CUDA build: several GB)" >&2
        "$PYTHON" -m pip install -q torch==2.13.0
    fi
fi
# 3. the package with its test tools, the simulators (robosuite, Meta-World) and rl-zoo3
"$PYTHON" -m pip install -q -e ".[tests,robosuite,metaworld,zoo,plot]"
# 4. imitation without its pins (they would downgrade stable-baselines3 and gymnasium)
"$PYTHON" -m pip install -q --no-deps imitation==1.0.1 tqdm
"$PYTHON" -c "import sb3_ibrl, imitation.algorithms.bc, stable_baselines3, gymnasium, torch; print('sb3-ibrl', sb3_ibrl.__version__, '| SB3', stable_baselines3.__version__, '| gymnasium', gymnasium.__version__, '| torch', torch.__version__)"
"$PYTHON" -c "from sb3_ibrl.envs.rendering import select_gl_backend; print('offscreen rendering: MUJOCO_GL=' + select_gl_backend())"
