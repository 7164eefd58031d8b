#!/usr/bin/env bash
# build.sh [BUILD_DIR] [extra cmake args...]: configure and build traced with CMake.
# BUILD_DIR defaults to ./build. Example: scripts/build.sh build-asan -DTD_SANITIZE=address,undefined
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$dir" -j"$jobs"
