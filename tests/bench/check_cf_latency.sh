#!/bin/sh
# cf-latency as a user runs it.
#   run:       every scenario briefly; the table, the JSON and the SVG hold what they should, the bus
#              scenarios saw every message in order and the compute kernels agreed with the reference
#              (a wrong result shows as a note)
#   bad-input: every kind of bad command line is refused with a message and the documented exit status
# usage: check_cf_latency.sh CF_LATENCY run|bad-input   (CF_TEST_WRAPPER: emulator prefix for cross builds)
set -eu
exe=$1
mode=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

# shellcheck disable=SC2086
cfl() { ${CF_TEST_WRAPPER:-} "$exe" "$@"; }

expect_status() {  # expect_status STATUS MESSAGE_FRAGMENT ARGS...
    want=$1; fragment=$2; shift 2
    status=0
    cfl "$@" >"$tmp/out" 2>"$tmp/err" || status=$?
    if [ "$status" -ne "$want" ]; then
        echo "FAIL: cf-latency $* exited $status, expected $want"; cat "$tmp/err"; fails=$((fails + 1)); return
    fi
    if ! grep -q -- "$fragment" "$tmp/err"; then
        echo "FAIL: cf-latency $*: stderr lacks '$fragment':"; cat "$tmp/err"; fails=$((fails + 1)); return
    fi
    echo "ok: cf-latency $* -> $status"
}

case $mode in
run)
    cfl --scenario all --duration 0.4 --interval-us 200 --json "$tmp/r.json" --svg "$tmp/r.svg" >"$tmp/table" 2>"$tmp/err"
    for text in "CPU" "ISA level" "invariant TSC" "p99.99" "cf::CounterClock::now" "clock_gettime(CLOCK_MONOTONIC)" \
                "clock_nanosleep" "own clock lane, 2 threads" \
                "64 B ping-pong RTT/2: cf topic" "1 KiB one-way: boost::lockfree::spsc_queue" \
                "moodycamel::ReaderWriterQueue" "SPSC: cf::bus::SpscRing:" "M msg/s" "MPSC: cf::bus::MpscRing:" \
                "64 B ping-pong RTT/2: cf shared-memory topic" "1 KiB one-way: cf shared-memory topic" \
                "compute ISA" "FMA peak probe" "GFLOP/s, and ours / peer" "% of the FMA peak probe" \
                "    ddot n=64 (1 KiB) " "    dgemv 64x64 (33 KiB) " "    dgemm 64x64x64 " \
                "cf::compute Morton 2D encode (per point)" "64 B RTT: cf socket driver" \
                "64 B one-way: plain sockets, non-blocking busy-poll" "udp-throughput" "1 KiB syscalls/msg" \
                "64 B one-way: bridge over cf socket driver" \
                "64 B one-way via offset estimate: bridge over cf socket driver" \
                "64 B one-way: keyed bridge (HMAC) over cf socket driver" \
                "handshake: TLS 1.3 alone (GnuTLS, both ends, in memory)" "handshake: cf QUIC, both ends, in memory" \
                "one stream, in memory, one thread (median of 3): cf QUIC:" \
                "handshake: ngtcp2 0.12, both ends, in memory" "one thread (median of 3): ngtcp2 0.12:" \
                "lock-step, socket driver, one thread: system calls per message, client" \
                "64 per round trip, socket driver, one thread: system calls per message, client" \
                "64 per round trip, uring driver, one thread: system calls per message, client"; do
        grep -q -F -- "$text" "$tmp/table" && continue
        # A compute row may be left out when a round of it would not fit the short run (a loaded or emulated host),
        # the ngtcp2 rows in a build without ngtcp2, the per-message calls when their program cannot run (an
        # emulator); the scenario then says so in a note, which counts as the row's answer.
        case $text in
            *ngtcp2*) grep -q -F -- "ngtcp2 rows left out:" "$tmp/table" && continue ;;   # built without it
            *"system calls per message"*) grep -q -F -- "${text%%system calls*}system calls per message left out:" \
                                              "$tmp/table" && continue ;;
            "    d"*) label=$(echo "$text" | sed 's/^ *//; s/ *$//')
                 grep -q -F -- "$label left out: one round of calls would take" "$tmp/table" && continue ;;
        esac
        echo "FAIL: table lacks '$text'"; fails=$((fails + 1))
    done
    python3 - "$tmp/r.json" <<'PY' || fails=$((fails + 1))
import json, sys
report = json.load(open(sys.argv[1]))
names = [s["scenario"] for s in report["scenarios"]]
assert names == ["clock", "timer", "hlc", "alloc", "bus", "bus-throughput", "ipc", "compute", "udp",
                 "udp-throughput", "tcp", "bridge", "quic"], names
assert report["host"]["cpu_model"] and report["host"]["compute_isa"], "host facts missing"
for scenario in report["scenarios"]:
    assert scenario["series"] or scenario["figures"], scenario["scenario"]
    for note in scenario["notes"]:   # a peer may be missing (cross builds); a wrong result never
        assert "out of order" not in note and "corrupt" not in note and not note.startswith("ERROR"), note
    for figure in scenario["figures"]:
        # Throughput (and what follows from it) may be 0 in so short a run: time-sliced producers can move nothing
        # in their windows; a share dropped is 0 when nothing was.
        may_be_zero = figure["unit"] in ("M msg/s", "Gbit/s", "per msg", "%")
        assert figure["value"] is not None and (figure["value"] > 0 or may_be_zero and figure["value"] == 0), figure
    for s in scenario["series"]:
        assert s["count"] > 0, s["name"]
        assert s["min"] <= s["p50"] <= s["p90"] <= s["p99"] <= s["p99.9"] <= s["p99.99"] <= s["max"], s
        points = s["percentiles"]
        assert points[-1]["percentile"] == 100 and points[-1]["value"] == s["max"], s["name"]
        assert all(a["percentile"] <= b["percentile"] and a["value"] <= b["value"] for a, b in zip(points, points[1:]))
clock = report["scenarios"][0]
assert clock["ratios"] and clock["ratios"][0]["p50"] > 0
print("ok: JSON has", sum(len(s["series"]) for s in report["scenarios"]), "series with ordered percentiles")
with open(sys.argv[1] + ".series", "w") as out:
    out.write(str(sum(len(s["series"]) for s in report["scenarios"])))
PY
    head -c 200 "$tmp/r.svg" | grep -q '<svg' || { echo "FAIL: SVG does not start with <svg"; fails=$((fails + 1)); }
    tail -c 20 "$tmp/r.svg" | grep -q '</svg>' || { echo "FAIL: SVG not closed"; fails=$((fails + 1)); }
    lines=$(grep -o '<polyline' "$tmp/r.svg" | wc -l)
    series=$(cat "$tmp/r.json.series" 2>/dev/null || echo unknown)
    [ "$lines" = "$series" ] || { echo "FAIL: SVG has $lines lines, expected $series (one per series)"; fails=$((fails + 1)); }
    ;;
bad-input)
    expect_status 2 "unknown scenario 'nope'" --scenario nope
    expect_status 2 "unknown scenario ''" --scenario clock,
    expect_status 2 "--duration wants seconds" --duration -1
    expect_status 2 "--duration wants seconds" --duration abc
    expect_status 2 "--duration needs a value" --duration
    expect_status 2 "--interval-us wants" --interval-us 5
    expect_status 2 "--cpu wants a CPU number" --cpu x
    expect_status 2 "unknown option '--bogus'" --bogus
    expect_status 1 "cannot pin to cpu 4000" --cpu 4000 --duration 0.05 --scenario clock
    expect_status 1 "cannot write '/nonexistent/dir/r.json'" --json /nonexistent/dir/r.json --scenario clock
    cfl --help | grep -q -- "--scenario" || { echo "FAIL: --help"; fails=$((fails + 1)); }
    cfl --list | grep -q "^timer" || { echo "FAIL: --list"; fails=$((fails + 1)); }
    ;;
*)
    echo "usage: $0 CF_LATENCY run|bad-input"; exit 2 ;;
esac
[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all checks passed"
