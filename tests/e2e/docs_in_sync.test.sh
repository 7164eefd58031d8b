#!/usr/bin/env bash
# docs_in_sync: the shipped traced.conf and README's option table are generated from the
# option tables; they must match what this traced binary prints. A config file and
# environment variables must be honoured by a real start.
source "$(dirname "$0")/lib.sh"
e2e_init docs_in_sync
root=$TD_E2E_DIR/../..

check "deploy/traced.conf equals traced --print-config" \
    diff <("$TRACED_BIN" --print-config) "$root/deploy/traced.conf"

readme_table=$(grep '^| `--' "$root/README.md")
gen_table=$("$root/scripts/config-table.sh" "$TRACED_BIN" | grep '^| `--')
expect_eq "README option table equals scripts/config-table.sh" "$readme_table" "$gen_table"

# a config file sets the log format; env wins over the file for log-level
cat >"$E2E_TMP/t.conf" <<CONF
# test config
log-format = logfmt
log-level = debug
CONF
TRACED_LOG_LEVEL=info traced_start --config "$E2E_TMP/t.conf"
check "config file applied (logfmt lines)" grep -q '^ts="' "$TRACED_LOG"
check "environment overrides the file (no debug lines)" bash -c "! grep -q 'level=\"debug\"' '$TRACED_LOG'"
check "traced stops cleanly" traced_stop
finish
