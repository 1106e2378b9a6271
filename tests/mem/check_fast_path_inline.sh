#!/usr/bin/env bash
# Disassembles the fast-path probes (fast_path_probe.cpp) and fails if any of them calls out.
# Usage: check_fast_path_inline.sh OBJDUMP ARCHIVE FUNCTION...
set -euo pipefail
objdump=$1
archive=$2
shift 2
listing=$("$objdump" -d --no-show-raw-insn "$archive")
status=0
for function in "$@"; do
    body=$(printf '%s\n' "$listing" | awk -v name="<$function>:" '$2 == name { on = 1; next } on && NF == 0 { exit } on')
    if [ -z "$body" ]; then
        echo "FAIL: $function is not in $archive"
        status=1
        continue
    fi
    calls=$(printf '%s\n' "$body" | grep -E '[[:space:]]call' || true)
    if [ -n "$calls" ]; then
        echo "FAIL: $function calls out of the fast path:"
        printf '%s\n' "$calls"
        status=1
    else
        echo "ok: $function: $(printf '%s\n' "$body" | wc -l) instructions, no call"
    fi
done
exit "$status"
