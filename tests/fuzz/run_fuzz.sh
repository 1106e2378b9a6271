#!/usr/bin/env bash
# Builds one libFuzzer target with clang++ (the project itself builds with g++, and libFuzzer comes with clang's
# runtime) and runs it for a bounded time over a copy of its seed corpus (tests/fuzz/corpus/<target>).
#   run_fuzz.sh <target> <source-root> <work-dir> [seconds]      (default 60 seconds)
# Targets: wire_frame (engine/wire frame reader), shm_topic (a topic's read side under a writing attacker),
# bridge_control (the bridge's receive path: MAC, clock-probe answers, data sequences), quic_packet_header (a
# datagram's coalesced QUIC packets), quic_transport_parameters (QUIC transport parameters decode/encode),
# quic_frames (the QUIC frame parser and encoders).
# Exit status: 0 no crash; 1 a crash, sanitizer report, oracle failure, timeout or out-of-memory (the reproducer
# is left in <work-dir> as crash-*/timeout-*/oom-*), or the target does not build; 2 bad arguments;
# 77 clang++ or libFuzzer is missing (Meson counts the test as skipped).
# CF_FUZZ_CXX overrides the compiler (default clang++).
set -euo pipefail

usage() {
    local targets="wire_frame|shm_topic|bridge_control|quic_packet_header|quic_transport_parameters|quic_frames"
    echo "usage: run_fuzz.sh <$targets> <source-root> <work-dir> [seconds]" >&2
    exit 2
}
if [ $# -lt 3 ] || [ $# -gt 4 ]; then usage; fi
TARGET=$1
[ -f "$2/engine/wire/frame.cpp" ] || { echo "run_fuzz.sh: $2 is not the ChronoFabric source root" >&2; exit 2; }
ROOT=$(cd "$2" && pwd)
WORK=$3
RUN_SECONDS=${4:-60}
# Each target: the code under test and what it needs, nothing else; its libraries; its largest input.
case "$TARGET" in
    wire_frame)
        SOURCES="engine/wire/frame.cpp engine/compute/checksum.cpp platform/os/last_error.cpp"
        LIBS="-lisal"
        MAX_LEN=65536 ;;
    shm_topic)
        SOURCES="engine/bus/ring_layout.cpp engine/bus/spsc_ring.cpp engine/bus/mpsc_ring.cpp
                 engine/bus/broadcast_ring.cpp engine/bus/topic.cpp engine/bus/topic_protocols.cpp engine/bus/publisher.cpp
                 engine/bus/subscriber.cpp engine/bus/process_table.cpp platform/os/process_liveness.cpp engine/time/hlc.cpp
                 engine/time/counter_clock.cpp
                 platform/cpu/cpu_info.cpp platform/os/last_error.cpp"
        LIBS="-lcpu_features"
        MAX_LEN=4096 ;;
    bridge_control)
        SOURCES="engine/wire/frame.cpp engine/compute/checksum.cpp platform/os/last_error.cpp engine/wire/mac_key.cpp
                 engine/wire/datagram_auth.cpp engine/runtime/clock_probes.cpp engine/time/offset_estimator.cpp"
        LIBS="-lisal -lgnutls"
        MAX_LEN=65536 ;;
    quic_packet_header)
        SOURCES="engine/quic/packet_header.cpp engine/quic/packet_header_writer.cpp engine/quic/stateless_reset.cpp
                 engine/quic/transport_error.cpp platform/os/last_error.cpp"
        LIBS="-lgnutls"
        MAX_LEN=4096 ;;
    quic_transport_parameters)
        SOURCES="engine/quic/transport_parameters.cpp engine/quic/transport_error.cpp"
        LIBS=""
        MAX_LEN=2048 ;;
    quic_frames)
        SOURCES="engine/quic/frames.cpp engine/quic/frame_encoding.cpp engine/quic/transport_error.cpp"
        LIBS=""
        MAX_LEN=4096 ;;
    *) echo "run_fuzz.sh: unknown target '$TARGET'" >&2; usage ;;
esac
[[ $RUN_SECONDS =~ ^[1-9][0-9]*$ ]] || { echo "run_fuzz.sh: seconds must be a positive integer" >&2; exit 2; }
CXX=${CF_FUZZ_CXX:-clang++}

if ! command -v "$CXX" >/dev/null 2>&1; then
    echo "run_fuzz.sh: SKIP: $CXX not found; install clang and libclang-rt-14-dev (toolchains/cf setup)"
    exit 77
fi
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

# libFuzzer is a separate package (libclang-rt-14-dev) from the compiler: try linking an empty target first.
printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' \
    >"$WORK/probe.cpp"
if ! "$CXX" -fsanitize=fuzzer "$WORK/probe.cpp" -o "$WORK/probe" >"$WORK/probe.log" 2>&1; then
    echo "run_fuzz.sh: SKIP: $CXX cannot link with -fsanitize=fuzzer (is libclang-rt-14-dev installed?):"
    sed 's/^/    /' "$WORK/probe.log"
    exit 77
fi

BINARY="$WORK/${TARGET}_fuzz"
echo "run_fuzz.sh: building $BINARY with $("$CXX" --version | head -n 1)"
# shellcheck disable=SC2086  # SOURCES and LIBS are word lists
"$CXX" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
    -Wall -Wextra -I"$ROOT" \
    "$ROOT/tests/fuzz/${TARGET}_fuzz.cpp" \
    $(for source in $SOURCES; do printf '%s ' "$ROOT/$source"; done) \
    $LIBS -o "$BINARY"

# A fresh copy of the seeds: libFuzzer adds what it finds to the first corpus directory, never to the sources.
rm -rf "$WORK/corpus"
mkdir -p "$WORK/corpus"
cp "$ROOT"/tests/fuzz/corpus/"$TARGET"/* "$WORK/corpus/"
rm -f "$WORK"/crash-* "$WORK"/timeout-* "$WORK"/oom-* "$WORK"/leak-*

# libFuzzer's own default error exit code is 77, which Meson would read as "skipped": make every failure 1.
echo "run_fuzz.sh: fuzzing for ${RUN_SECONDS}s over $(find "$WORK/corpus" -type f | wc -l) seed(s)"
status=0
(cd "$WORK" && UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    "$BINARY" -max_total_time="$RUN_SECONDS" -timeout=5 -rss_limit_mb=1024 -max_len="$MAX_LEN" \
        -error_exitcode=1 -timeout_exitcode=1 -artifact_prefix="$WORK/" -print_final_stats=1 \
        "$WORK/corpus") || status=$?
if [ "$status" -ne 0 ]; then
    echo "run_fuzz.sh: FAIL: the fuzzer stopped with status $status; reproducers:"
    ls -l "$WORK"/crash-* "$WORK"/timeout-* "$WORK"/oom-* "$WORK"/leak-* 2>/dev/null || echo "    (none written)"
    echo "run_fuzz.sh: replay one with: $BINARY <file>"
    exit 1
fi
echo "run_fuzz.sh: OK: no crash in ${RUN_SECONDS}s; corpus now $(find "$WORK/corpus" -type f | wc -l) file(s)"
