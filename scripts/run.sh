#!/usr/bin/env bash
# run.sh [traced flags...]: set up a Debian 12 machine, build, and run traced in the
# foreground with the embedded defaults (data in ./data, ports 4317/4318/3200,
# JSON logs on stderr). Ctrl-C stops it after flushing everything accepted to disk.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-debian.sh
scripts/build.sh build
exec build/cmd/traced/traced "$@"
