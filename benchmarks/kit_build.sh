#!/usr/bin/env bash
# Builds .kit/ (the wheels a GPU machine without package access needs) with the shared kit builder
# ../shared/gpu-kit/build.sh, mended for this project:
#
#   bash benchmarks/kit_build.sh robosuite        # or metaworld / none; KIT_PYTHON_VERSION=3.11 for a local check
#
# Mends (the shared builder itself is read-only):
# 1. In a git worktree `.git` is a file, so the builder's first step (appending /.kit/ to .git/info/exclude)
#    fails with "Not a directory" and the build stops. The project's .gitignore ignores .kit/ instead, so that
#    step is dropped here (it would also have written into the main repository's exclude file, shared by
#    every worktree).
# 2. .kit/install.sh is the project's benchmarks/kit_install.sh (see there: what it mends in the shared one).
# 3. pytest and its dependencies are added (the GPU machine's preinstalled set has none, and the GPU script runs
#    tests/test_cuda.py): about 2 MB.
# KIT_SRC: the folder of the shared builder (default: ../shared/gpu-kit next to the project root, else
# /work/shared/gpu-kit).
set -euo pipefail
sim=${1:-robosuite}
root=$(git rev-parse --show-toplevel)
cd "$root"
src=${KIT_SRC:-$root/../shared/gpu-kit}
[ -f "$src/build.sh" ] || src=/work/shared/gpu-kit
[ -f "$src/build.sh" ] || { echo "kit_build: no build.sh in $src; set KIT_SRC to the gpu-kit folder" >&2; exit 2; }
git check-ignore -q .kit/install.sh || { echo "kit_build: add '.kit/' to .gitignore first" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$src/build.sh" "$src/install.sh" "$tmp/"
[ "$(grep -c '\.git/info/exclude' "$tmp/build.sh")" = 1 ] \
  || { echo "kit_build: $src/build.sh changed (its .git/info/exclude line); check this wrapper" >&2; exit 2; }
sed -i '/\.git\/info\/exclude/d' "$tmp/build.sh"
bash "$tmp/build.sh" "$sim"
plat=(--platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "${KIT_PYTHON_VERSION:-3.12}" --implementation cp \
  "${plat[@]}" -d .kit/whl pytest==9.0.3 pluggy==1.6.0 iniconfig==2.3.0 pygments==2.20.0
cp "$root/benchmarks/kit_install.sh" .kit/install.sh
echo "kit_build: .kit/install.sh is benchmarks/kit_install.sh (the shared install.sh, mended)"
