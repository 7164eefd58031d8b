#!/usr/bin/env bash
# config-table.sh [TRACED_BIN]: print the configuration reference as a markdown table,
# generated from `traced --help` so README.md cannot drift from the option tables.
set -euo pipefail
bin=${1:-build/cmd/traced/traced}
"$bin" --help | awk '
/^[a-z]+ options:$/ { module = $1; next }
/^  --[a-z]/ && module != "" {
    flag = $1; type = $2; gsub(/[<>]/, "", type)
    env = $0; sub(/.*\(env /, "", env); sub(/,.*/, "", env)
    def = $0; sub(/.*default "/, "", def); sub(/"\).*/, "", def)
    getline help; sub(/^ +/, "", help); gsub(/\|/, "\\|", help)
    printf "| `%s` | `%s` | %s | `%s` | %s |\n", flag, env, type, def, help
}' | { echo "| flag | environment | type | default | meaning |"; echo "|---|---|---|---|---|"; cat; }
