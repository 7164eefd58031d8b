#!/usr/bin/env bash
# test.sh: set up, build, and run the whole test suite through ctest, twice:
# a normal build (unit, fuzz replay and end-to-end tests with real clients) and an
# ASan+UBSan build of the same suite. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-debian.sh
jobs=$(nproc 2>/dev/null || echo 2)

echo "== build (RelWithDebInfo) =="
scripts/build.sh build
echo "== ctest: unit, fuzz, e2e =="
(cd build && ctest --output-on-failure --timeout 300 -j"$jobs")

echo "== build (ASan+UBSan) =="
scripts/build.sh build-asan -DTD_SANITIZE=address,undefined
echo "== ctest under ASan+UBSan: unit, fuzz, e2e =="
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure --timeout 300 -j"$jobs")
