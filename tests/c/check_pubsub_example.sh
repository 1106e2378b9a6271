#!/bin/sh
# Runs the C example as two processes: a subscriber and a publisher on one shared topic, 200000 messages.
# usage: check_pubsub_example.sh EXAMPLE
set -eu
example=$1
topic="example.$$"
out=$(mktemp -d)
trap 'rm -rf "$out"; rm -f "/dev/shm/chronofabric-$(id -u)/topic.$topic"' EXIT
# Bounded in time: a peer that dies must fail the test, not leave the other spinning on a full or empty topic.
timeout 90 ${CF_TEST_WRAPPER:-} "$example" subscribe "$topic" 200000 >"$out/sub" 2>&1 &
subscriber=$!
timeout 90 ${CF_TEST_WRAPPER:-} "$example" publish "$topic" 200000 >"$out/pub" 2>&1 || { cat "$out/pub"; kill "$subscriber"; exit 1; }
wait "$subscriber" || { cat "$out/sub"; exit 1; }
cat "$out/pub" "$out/sub"
grep -qx 'published 200000 messages' "$out/pub"
grep -qx 'received 200000 messages, 0 out of order' "$out/sub"
# Bad input: a usage line and status 2.
status=0
${CF_TEST_WRAPPER:-} "$example" publish "$topic" many >/dev/null 2>"$out/err" || status=$?
[ "$status" -eq 2 ] && grep -q 'COUNT must be a number' "$out/err"
