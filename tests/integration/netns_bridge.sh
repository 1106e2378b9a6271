#!/usr/bin/env bash
# Two engines in two network namespaces bridge a topic both ways (issue 5, point 7).
# usage: netns_bridge.sh BRIDGE_PEER UDP_RELAY
#
# Topology, made here and removed on every exit path (the names carry this shell's PID):
#   cfa-PID  198.18.1.2 --veth-- 198.18.1.1  cfr-PID  198.18.2.1 --veth-- 198.18.2.2  cfb-PID
# cfr routes between the two links (ip_forward) and runs udp_relay when asked to. The addresses are from
# 198.18.0.0/15, the range set aside for network test benches; nothing leaves the namespaces.
# Runs (A sends topic id 1 and republishes 2, B the other way round):
#   1. uring, A <-> B directly      2. socket, A <-> B directly
#   3. uring through the relay      4. socket through the relay (loss, duplication, reordering)
# Checks, per direction: every message arrived with the right bytes in order, or is accounted for exactly: the
# receiving bridge's gaps / duplicates / late / republished equal what the relay's replay of the bridge's rules
# over the frames it actually sent predicts; received + gaps + head + tail == sent (head: sequences before the
# first arrival, tail: after the last, which no counter can see); duplicates == the copies the relay made;
# republished + late == sent - dropped; gaps + head + tail == dropped + late. Both ends: the offset bound contains
# 0 at every answered probe (both read CLOCK_REALTIME: the true offset is 0).
# A run that fails while the kernel dropped datagrams on receive (InErrors in /proc/net/snmp of a namespace: the
# machine was too busy to read them) is repeated once: no program saw those datagrams, so nothing can count them.
# Exit 77 (skip) without root / CAP_NET_ADMIN / ip. Without io_uring the uring runs are skipped with a message.
# CF_NETNS_MISCOUNT=N makes the relay report every count N too high: the checks must then fail (shows they can).
set -u

peer_program=${1:?usage: netns_bridge.sh BRIDGE_PEER UDP_RELAY}
relay_program=${2:?usage: netns_bridge.sh BRIDGE_PEER UDP_RELAY}
miscount=${CF_NETNS_MISCOUNT:-0}
count=3000         # messages each way per run
rate=10000         # messages per second each way: well inside what two cores move without kernel drops
peer_timeout=20    # seconds; a run takes about a second

skip() {
    echo "SKIP netns-bridge: $*"
    exit 77
}

command -v ip >/dev/null 2>&1 || skip "'ip' (iproute2) is not installed"
[ "$(id -u)" -eq 0 ] || skip "creating network namespaces and veth pairs needs root (CAP_NET_ADMIN); uid is $(id -u)"
command -v python3 >/dev/null 2>&1 || { echo "netns-bridge: python3 is needed to read the programs' JSON"; exit 1; }

ns_a="cfa-$$"
ns_r="cfr-$$"
ns_b="cfb-$$"
work=$(mktemp -d)
pids=()
namespaces=()

cleanup() {
    local pid ns
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
    for ns in "${namespaces[@]}"; do ip netns delete "$ns" 2>/dev/null; done   # takes its veth ends along
    rm -rf "$work"
}
# Processes waited for leave the list at once: their PIDs may go to someone else's process.
forget() {
    local pid kept=()
    for pid in "${pids[@]}"; do [ "$pid" = "$1" ] || kept+=("$pid"); done
    pids=("${kept[@]}")
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Names with a live PID in them are ours: one left by a killed earlier shell of the same PID is stale.
for ns in "$ns_a" "$ns_r" "$ns_b"; do ip netns delete "$ns" 2>/dev/null; done
if ! ip netns add "$ns_a" 2>"$work/netns.err"; then
    skip "'ip netns add' failed (no CAP_NET_ADMIN here?): $(cat "$work/netns.err")"
fi
namespaces+=("$ns_a")

fail_setup() {
    echo "netns-bridge: setup failed: $*"
    exit 1
}
# Not for programs started in the background: $! must be the program itself (ip netns exec execs it), not a
# subshell running a function, so that kill reaches it.
in_ns() { ip netns exec "$@"; }

for ns in "$ns_r" "$ns_b"; do
    ip netns add "$ns" || fail_setup "ip netns add $ns"
    namespaces+=("$ns")
done
ip link add "cfa$$" netns "$ns_a" type veth peer name "cfra$$" netns "$ns_r" || fail_setup "veth a"
ip link add "cfb$$" netns "$ns_b" type veth peer name "cfrb$$" netns "$ns_r" || fail_setup "veth b"
in_ns "$ns_a" ip addr add 198.18.1.2/24 dev "cfa$$" || fail_setup "address a"
in_ns "$ns_r" ip addr add 198.18.1.1/24 dev "cfra$$" || fail_setup "address relay a"
in_ns "$ns_r" ip addr add 198.18.2.1/24 dev "cfrb$$" || fail_setup "address relay b"
in_ns "$ns_b" ip addr add 198.18.2.2/24 dev "cfb$$" || fail_setup "address b"
for link in "$ns_a cfa$$" "$ns_r cfra$$" "$ns_r cfrb$$" "$ns_b cfb$$" "$ns_a lo" "$ns_r lo" "$ns_b lo"; do
    set -- $link
    in_ns "$1" ip link set "$2" up || fail_setup "link $2 up"
done
in_ns "$ns_a" ip route add default via 198.18.1.1 || fail_setup "route a"
in_ns "$ns_b" ip route add default via 198.18.2.1 || fail_setup "route b"
in_ns "$ns_r" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward' || fail_setup "ip_forward in $ns_r"

a_address=198.18.1.2:7100
b_address=198.18.2.2:7200
relay_a=198.18.1.1:7300   # the relay socket A talks to
relay_b=198.18.2.1:7300   # the relay socket B talks to

# Kernel UDP counters of a namespace, for a failure report (a datagram the kernel dropped explains a miscount).
udp_counters() { in_ns "$1" sh -c "grep '^Udp:' /proc/net/snmp | tail -1"; }

# run_peers NAME DRIVER A_PEER B_PEER: both peers at once; 0, 77 (driver unavailable) or 1.
run_peers() {
    local name=$1 driver=$2 a_peer=$3 b_peer=$4 pid_a pid_b status_a=0 status_b=0
    ip netns exec "$ns_a" "$peer_program" --bind "$a_address" --peer "$a_peer" --driver "$driver" --send-topic 1 \
        --receive-topic 2 --count "$count" --rate "$rate" --timeout "$peer_timeout" \
        >"$work/$name.a.json" 2>"$work/$name.a.err" &
    pid_a=$!
    pids+=("$pid_a")
    ip netns exec "$ns_b" "$peer_program" --bind "$b_address" --peer "$b_peer" --driver "$driver" --send-topic 2 \
        --receive-topic 1 --count "$count" --rate "$rate" --timeout "$peer_timeout" \
        >"$work/$name.b.json" 2>"$work/$name.b.err" &
    pid_b=$!
    pids+=("$pid_b")
    wait "$pid_a" || status_a=$?
    forget "$pid_a"
    # Without io_uring both ends refuse alike; should only one, the other need not wait for its timeout.
    [ "$status_a" -eq 77 ] && kill "$pid_b" 2>/dev/null
    wait "$pid_b" || status_b=$?
    forget "$pid_b"
    if [ "$status_a" -eq 77 ] || [ "$status_b" -eq 77 ]; then
        cat "$work/$name.a.err" "$work/$name.b.err" | grep -m1 'unavailable' || true
        return 77
    fi
    if [ "$status_a" -ne 0 ] || [ "$status_b" -ne 0 ]; then
        echo "netns-bridge: $name: bridge_peer failed (A status $status_a, B status $status_b)"
        cat "$work/$name.a.err" "$work/$name.b.err"
        return 1
    fi
    return 0
}

# check NAME [RELAY_JSON]: judges one run's numbers; prints them, and every failed check.
check() {
    python3 - "$1" "$count" "$work/$1.a.json" "$work/$1.b.json" "${2:-}" <<'PYTHON'
import json, sys

def load(path):
    try:
        with open(path) as file:
            return json.load(file)
    except (OSError, ValueError) as error:
        print(f"FAIL {path}: no JSON ({error})")
        sys.exit(1)

name, count = sys.argv[1], int(sys.argv[2])
a, b = load(sys.argv[3]), load(sys.argv[4])
relay = load(sys.argv[5]) if sys.argv[5] else None
failures = []

def expect(what, got, want):
    if got != want:
        failures.append(f"{what}: {got}, expected {want}")

for sender, receiver, label, way in ((a, b, "A->B", "a_to_b"), (b, a, "B->A", "b_to_a")):
    topic = str(sender["send_topic"])
    rx = receiver["receive"]
    where = f"{name} {label}"
    expect(f"{where} published", sender["published"], count)
    expect(f"{where} forwarded", sender["send"]["forwarded"], count)
    for key in ("forward_too_large", "forward_dropped", "source_lost"):
        expect(f"{where} sender {key}", sender["send"][key], 0)
    expect(f"{where} payload mismatches", receiver["payload_mismatches"], 0)
    expect(f"{where} out of order", receiver["out_of_order"], 0)
    expect(f"{where} delivered == republished", receiver["received"], rx["republished"])
    for key in ("session_resets", "publish_full", "too_large", "misaligned", "hlc_rejected"):
        expect(f"{where} {key}", rx[key], 0)
    head = receiver["first_sequence"] if receiver["received"] else count
    tail = count - 1 - receiver["last_sequence"] if receiver["received"] else 0
    # Every sequence is published, a gap, or before the first / after the last arrival.
    expect(f"{where} received + gaps + head + tail", receiver["received"] + rx["gaps"] + head + tail, count)
    if relay is None:
        expect(f"{where} received", receiver["received"], count)
        for key in ("gaps", "duplicates", "late"):
            expect(f"{where} {key}", rx[key], 0)
    else:
        side = relay[way]
        for key in ("bad_datagrams", "foreign_datagrams", "send_errors", "oversized_frames", "held_at_exit"):
            expect(f"{where} relay {key}", side[key], 0)
        ledger = side["topics"].get(topic)
        if ledger is None:
            failures.append(f"{where}: the relay saw no frame of topic {topic}")
            continue
        # The first hop lost nothing: the relay saw every forwarded frame, in order.
        expect(f"{where} relay frames in", ledger["frames_in"], sender["send"]["forwarded"])
        expect(f"{where} relay sender out of order", ledger["sender_out_of_order"], 0)
        expect(f"{where} relay's first frame", ledger["sender_first"], 0)
        if side["control_frames"] == 0:
            failures.append(f"{where}: no clock probe went through the relay")
        # What the relay did, against the receiving bridge's counters.
        predicted = ledger["expect"]
        for key in ("received", "republished", "gaps", "duplicates", "late", "session_resets"):
            expect(f"{where} {key} vs relay's replay", rx[key], predicted[key])
        expect(f"{where} first sequence vs relay", receiver["first_sequence"], predicted["first"])
        expect(f"{where} last sequence vs relay", receiver["last_sequence"], predicted["last"])
        dropped, copies = ledger["dropped"], ledger["duplicated"]
        expect(f"{where} duplicates == copies made", rx["duplicates"], copies)
        expect(f"{where} republished + late == sent - dropped", rx["republished"] + rx["late"], count - dropped)
        expect(f"{where} gaps + head + tail == dropped + late", rx["gaps"] + head + tail, dropped + rx["late"])
        for key in ("dropped", "duplicated", "delayed"):
            if ledger[key] == 0:
                failures.append(f"{where}: the relay {key} nothing: the run tested no {key} frames")
        if rx["late"] == 0:
            failures.append(f"{where}: no frame arrived late: the run tested no reordering")
    print(f"{where} [{receiver['driver']}]: sent {sender['published']}, received {receiver['received']}, "
          f"gaps {rx['gaps']}, duplicates {rx['duplicates']}, late {rx['late']}, head {head}, tail {tail}"
          + (f"; relay dropped {ledger['dropped']}, duplicated {ledger['duplicated']}, "
             f"delayed {ledger['delayed']}" if relay is not None and ledger else ""))

for side, label in ((a, "A"), (b, "B")):
    offset = side["offset"]
    where = f"{name} {label}"
    if side["timed_out"]:
        failures.append(f"{where}: timed out after {side['elapsed_s']} s")
    for key in ("rx_errors", "tx_errors", "foreign_datagrams", "unknown_topic", "wire_rejected_datagrams",
                "probes_rejected", "control_rejected"):
        expect(f"{where} {key}", side["bridge"][key], 0)
    expect(f"{where} poll errors", side["poll_errors"], 0)
    expect(f"{where} truncated receives", side["driver_stats"]["rx_truncated"], 0)
    if not offset["valid"]:
        failures.append(f"{where}: no clock offset estimate")
        continue
    if abs(offset["offset_ns"]) > offset["bound_ns"]:
        failures.append(f"{where}: offset {offset['offset_ns']} ns +- {offset['bound_ns']} ns does not contain 0")
    expect(f"{where} offset checks outside the bound", offset["violations"], 0)
    print(f"{where} [{side['driver']}]: offset {offset['offset_ns']:.0f} ns +- {offset['bound_ns']:.0f} ns "
          f"(best rtt {offset['best_rtt_ns']:.0f} ns, {offset['samples']} samples, {offset['checks']} checks), "
          f"{side['bridge']['datagrams_out']} datagrams out, {side['bridge']['datagrams_in']} in, "
          f"{side['elapsed_s']:.2f} s")

for failure in failures:
    print(f"FAIL {failure}")
sys.exit(1 if failures else 0)
PYTHON
}

report_failure() {
    local name=$1
    echo "--- $name: A's JSON, B's JSON, their stderr, kernel UDP counters (A, relay, B)"
    cat "$work/$name.a.json" "$work/$name.b.json" "$work/$name.a.err" "$work/$name.b.err" 2>/dev/null
    udp_counters "$ns_a"
    udp_counters "$ns_r"
    udp_counters "$ns_b"
    if [ -f "$work/$name.relay.json" ]; then
        echo "--- $name: the relay's JSON and stderr"
        cat "$work/$name.relay.json" "$work/$name.relay.err"
    fi
}

# Datagrams the kernel dropped on receive (InErrors: full socket buffers, memory), all namespaces together.
kernel_drops() {
    local total=0 ns value
    for ns in "${namespaces[@]}"; do
        value=$(in_ns "$ns" awk '/^Udp:/ && ++lines == 2 { print $4 }' /proc/net/snmp)
        total=$((total + ${value:-0}))
    done
    echo "$total"
}

# attempt NAME DRIVER [SEED]: one run, directly (no seed) or through the relay. 0 passed, 1 failed, 77 driver
# unavailable, 3 failed while the kernel dropped datagrams (the machine was too busy to read them in time).
attempt() {
    local name=$1 driver=$2 seed=${3:-} status=0 relay_pid="" waited=0 drops_before
    drops_before=$(kernel_drops)
    rm -f "$work/$name".*
    if [ -n "$seed" ]; then
        ip netns exec "$ns_r" "$relay_program" --listen-a "$relay_a" --listen-b "$relay_b" --to-a "$a_address" \
            --to-b "$b_address" --loss 0.05 --duplicate 0.03 --reorder 0.05 --reorder-depth 8 --seed "$seed" \
            --duration 60 --miscount "$miscount" >"$work/$name.relay.json" 2>"$work/$name.relay.err" &
        relay_pid=$!
        pids+=("$relay_pid")
        until grep -q 'ready' "$work/$name.relay.err" 2>/dev/null; do
            if ! kill -0 "$relay_pid" 2>/dev/null || [ "$waited" -ge 100 ]; then
                kill "$relay_pid" 2>/dev/null
                wait "$relay_pid" 2>/dev/null
                forget "$relay_pid"
                echo "netns-bridge: $name: udp_relay did not start"
                cat "$work/$name.relay.err"
                return 1
            fi
            sleep 0.05
            waited=$((waited + 1))
        done
        run_peers "$name" "$driver" "$relay_a" "$relay_b" || status=$?
        kill -TERM "$relay_pid" 2>/dev/null
        wait "$relay_pid" 2>/dev/null
        forget "$relay_pid"
    else
        run_peers "$name" "$driver" "$b_address" "$a_address" || status=$?
    fi
    [ "$status" -eq 77 ] && return 77
    # Sanitizer builds: UBSan reports and goes on, so a report is a failure here, not a line nobody reads.
    if grep -l -E 'runtime error:|Sanitizer' "$work/$name".*.err 2>/dev/null; then
        echo "netns-bridge: $name: a sanitizer reported an error"
        status=1
    fi
    if [ "$status" -eq 0 ] && check "$name" ${seed:+"$work/$name.relay.json"}; then return 0; fi
    report_failure "$name"
    local drops=$(($(kernel_drops) - drops_before))
    if [ "$drops" -gt 0 ]; then
        echo "netns-bridge: $name: the kernel dropped $drops datagrams on receive during this run"
        return 3
    fi
    return 1
}

failed=0
uring_skipped=0

# run_case NAME DRIVER [SEED]. A run the kernel disturbed (datagrams dropped before any program saw them, which
# no counter can account for) is repeated once; any other failure fails the test at once.
run_case() {
    local name=$1 driver=$2 status=0
    if [ "$driver" = uring ] && [ "$uring_skipped" -eq 1 ]; then
        echo "netns-bridge: $name skipped: io_uring is unavailable here"
        return
    fi
    attempt "$@" || status=$?
    if [ "$status" -eq 3 ]; then
        echo "netns-bridge: $name: running it once more"
        status=0
        attempt "$@" || status=$?
    fi
    case $status in
        0) ;;
        77) uring_skipped=1; echo "netns-bridge: $name skipped: io_uring is unavailable here" ;;
        *) failed=1 ;;
    esac
}

# Seeds chosen (with the relay's splitmix64 stream) so that each relay run also drops the first frame one way
# and the last frame(s) the other way, and delays a first frame: head and tail accounting get exercised.
run_case direct-uring uring
run_case direct-socket socket
run_case relay-uring uring 10453
run_case relay-socket socket 10376

if [ "$uring_skipped" -eq 1 ]; then
    echo "netns-bridge: the io_uring runs were skipped (io_uring unavailable); the socket runs ran"
fi
if [ "$failed" -ne 0 ]; then
    echo "netns-bridge: FAILED"
    exit 1
fi
echo "netns-bridge: all runs passed"
exit 0
