#!/usr/bin/env bash
# setup-debian.sh: install build and test prerequisites for traced on Debian 12 (bookworm).
#
# Idempotent: it skips apt when every package is already installed, installs
# nodejs/npm from apt only when `node`/`npm` are not on PATH (a nodesource or
# nvm install is left alone), and runs `npm ci` in tests/e2e only when
# node_modules is missing or older than package-lock.json.
# It does NOT build the C code.
#
# Run as root, or as a normal user with sudo (only apt-get runs under sudo;
# npm runs as the invoking user so tests/e2e/node_modules is not root-owned).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
E2E_DIR="$ROOT/tests/e2e"

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

APT_PACKAGES=(
  build-essential cmake pkg-config git clang libclang-rt-14-dev
  libmicrohttpd-dev libjansson-dev libleveldb-dev libgrpc-dev
  libprotobuf-c-dev protobuf-c-compiler libunwind-dev zlib1g-dev
  libcurl4-openssl-dev nghttp2-client golang-go curl ca-certificates
)

# Privilege escalation only for apt.
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "not root and sudo is not installed"
  SUDO=(sudo)
fi

command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script is for Debian 12"
if [ -r /etc/debian_version ]; then
  case "$(cat /etc/debian_version)" in
    12*|bookworm*) ;;
    *) log "warning: tested on Debian 12 only (found Debian $(cat /etc/debian_version))" ;;
  esac
fi

is_installed() {
  # dpkg -s equivalent that prints nothing; true only for fully installed packages.
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

# Node.js: only from apt when no node/npm is on PATH already.
if ! command -v node >/dev/null 2>&1; then
  APT_PACKAGES+=(nodejs)
fi
if ! command -v npm >/dev/null 2>&1; then
  APT_PACKAGES+=(npm)
fi

MISSING=()
for p in "${APT_PACKAGES[@]}"; do
  is_installed "$p" || MISSING+=("$p")
done

if [ "${#MISSING[@]}" -eq 0 ]; then
  log "apt: all ${#APT_PACKAGES[@]} packages already installed"
else
  log "apt: installing ${#MISSING[@]} missing package(s): ${MISSING[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${MISSING[@]}"
  for p in "${MISSING[@]}"; do
    is_installed "$p" || die "apt package $p is still not installed"
  done
  log "apt: done"
fi

command -v node >/dev/null 2>&1 || die "node not found on PATH after install"
command -v npm >/dev/null 2>&1 || die "npm not found on PATH after install"
NODE_VERSION="$(node --version)"
log "node $NODE_VERSION ($(command -v node)), npm $(npm --version)"
# The OpenTelemetry JS SDK 2.x wants node ^18.19.0 || >=20.6.0 (Debian 12's own nodejs is 18.13).
node -e '
  const [maj, min] = process.versions.node.split(".").map(Number);
  process.exit((maj === 18 && min >= 19) || (maj === 20 && min >= 6) || maj > 20 ? 0 : 1);
' || log "warning: node $NODE_VERSION is older than the OpenTelemetry SDK supports (^18.19.0 || >=20.6.0); e2e scripts may fail"

# tests/e2e npm dependencies.
if [ -f "$E2E_DIR/package.json" ]; then
  NEED_NPM=0
  MARKER="$E2E_DIR/node_modules/.package-lock.json"   # written by npm on every install
  if [ ! -d "$E2E_DIR/node_modules" ]; then
    NEED_NPM=1
  else
    [ -e "$MARKER" ] || MARKER="$E2E_DIR/node_modules"
    if [ -f "$E2E_DIR/package-lock.json" ]; then
      [ "$E2E_DIR/package-lock.json" -nt "$MARKER" ] && NEED_NPM=1
    else
      [ "$E2E_DIR/package.json" -nt "$MARKER" ] && NEED_NPM=1
    fi
  fi
  if [ "$NEED_NPM" -eq 1 ]; then
    if [ -f "$E2E_DIR/package-lock.json" ]; then
      log "npm: npm ci in tests/e2e"
      (cd "$E2E_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    else
      log "npm: no package-lock.json, npm install in tests/e2e"
      (cd "$E2E_DIR" && npm install --no-audit --no-fund --loglevel=error)
    fi
    log "npm: done"
  else
    log "npm: tests/e2e/node_modules is up to date"
  fi
else
  log "npm: $E2E_DIR/package.json not found, skipping"
fi

log "ok"
