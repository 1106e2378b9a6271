#!/usr/bin/env bash
# HTTP/3 interop of our QUIC transport with ngtcp2 (issue 13 item 9), both directions, on loopback:
#   ours -> gtlsserver --htdocs     cf-h3-peer client against ngtcp2's server
#   gtlsclient --download -> ours   ngtcp2's client against cf-h3-peer server
# Cases each way: handshake and a small body; 8 MB checksummed; 100 requests multiplexed on one connection, every
# body checked; ChaCha20-Poly1305 only; a key update in the middle of an 8 MB transfer (ours initiates it towards
# gtlsserver, also several in a row; gtlsclient --key-update towards ours); Retry (gtlsserver -V / cf-h3-peer
# server --retry); IPv6 on ::1;
# and, with the relay given, 2 MB and 100 requests on one connection through cf-lossy-relay (3% loss, 2%
# reordered, 1% duplicated, 5 ms each way).
# Certificates: an Ed25519 CA and an Ed25519 server certificate made here with certtool; our client verifies the
# chain (--ca), gtlsclient does not verify.
# usage: h3_interop.sh CF_H3_PEER [CF_LOSSY_RELAY]   (or --no-nghttp3: skips, saying why)
# Exit 77 (skip) when certtool or both ngtcp2 programs are missing; a missing one skips its direction with a
# message, no IPv6 loopback skips the IPv6 cases. About 25 s natively.
# Note: gtlsserver answers a path that is a number ("/1000") with that many zero bytes, not the file: the files
# it serves here have names that are not numbers.
set -u

peer=${1:?usage: h3_interop.sh CF_H3_PEER [CF_LOSSY_RELAY]}
relay=${2:-}
relay_options="--loss 3 --reorder 2 --duplicate 1 --delay 5 --seed 7"
limit=40   # seconds any one program may take (gtlsclient also gives up after 10 s of silence)

skip() {
    echo "SKIP quic-h3-interop: $*"
    exit 77
}
[ "$peer" = "--no-nghttp3" ] && skip "cf-h3-peer was not built: libnghttp3 (Debian libnghttp3-dev) was not found"
command -v certtool >/dev/null 2>&1 || skip "certtool (gnutls-bin) is not installed"
gtlsserver=$(command -v gtlsserver)
gtlsclient=$(command -v gtlsclient)
[ -n "$gtlsserver$gtlsclient" ] ||
    skip "neither gtlsserver nor gtlsclient is installed (Debian ngtcp2-server, ngtcp2-client)"

work=$(mktemp -d /tmp/cf-h3-interop-XXXXXX)
pids=()
failures=0
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
    if [ "$failures" -eq 0 ]; then rm -rf "$work"; else echo "logs kept in $work"; fi
}
trap cleanup EXIT
# A waited-for process leaves the list at once: its PID may go to someone else's process.
forget() {
    local pid kept=()
    for pid in "${pids[@]}"; do [ "$pid" = "$1" ] || kept+=("$pid"); done
    pids=("${kept[@]}")
}

# Each result line says how long its case took (since the previous line).
case_start=$(date +%s%N)
took() {
    local now
    now=$(date +%s%N)
    took=$(printf '(%d.%01d s)' $(((now - case_start) / 1000000000)) $(((now - case_start) / 100000000 % 10)))
    case_start=$now
}
fail() {
    took
    echo "FAIL $took: $*"
    failures=$((failures + 1))
}
pass() {
    took
    echo "ok $took: $*"
}

# --- Keys: an Ed25519 CA and server certificate ------------------------------------------------------------------
certs() {
    printf 'cn = cf h3 test CA\nca\ncert_signing_key\nexpiration_days = 2\n' >"$work/ca.tmpl"
    printf '%s\n' 'cn = localhost' 'dns_name = localhost' 'ip_address = 127.0.0.1' 'ip_address = ::1' \
        tls_www_server signing_key 'expiration_days = 2' >"$work/server.tmpl"
    certtool --generate-privkey --key-type=ed25519 --outfile "$work/ca.key" &&
        certtool --generate-self-signed --load-privkey "$work/ca.key" --template "$work/ca.tmpl" \
            --outfile "$work/ca.pem" &&
        certtool --generate-privkey --key-type=ed25519 --outfile "$work/server.key" &&
        certtool --generate-certificate --load-privkey "$work/server.key" --load-ca-certificate "$work/ca.pem" \
            --load-ca-privkey "$work/ca.key" --template "$work/server.tmpl" --outfile "$work/server.pem"
}
certs >"$work/certtool.log" 2>&1 || { cat "$work/certtool.log"; echo "FAIL: certtool"; exit 1; }
key="$work/server.key"
cert="$work/server.pem"

# --- Bad arguments are refused with status 2 ---------------------------------------------------------------------
for args in "" "client" "client 127.0.0.1 notaport https://localhost/1" "client 127.0.0.1 443 ftp://x/1" \
    "client -n 0 127.0.0.1 443 https://localhost/1" "server --ciphers=RC4 127.0.0.1 0 k c" "content x" "bogus"; do
    # shellcheck disable=SC2086
    "$peer" $args >/dev/null 2>&1
    rc=$?
    [ "$rc" -eq 2 ] || { fail "cf-h3-peer $args: status $rc, expected 2"; refused=0; }
done
[ "${refused:-1}" -eq 1 ] && pass "bad arguments refused with status 2"

# The expected body of "/N" from our server, and files for gtlsserver: 8 MB and 100 of assorted sizes.
"$peer" content 8000000 >"$work/pattern" || { echo "FAIL: cf-h3-peer content"; exit 1; }
mkdir -p "$work/htdocs"
cp "$work/pattern" "$work/htdocs/big"
head -c 2000000 "$work/pattern" >"$work/htdocs/mid"
head -c 1000 "$work/pattern" >"$work/htdocs/small"
sum_of() { sha256sum <"$1" | cut -d' ' -f1; }
sum_of_pattern() { head -c "$1" "$work/pattern" | sha256sum | cut -d' ' -f1; }
declare -A pattern_sums   # size -> sum_of_pattern, computed once
many_sizes=()
for i in $(seq 0 99); do
    size=$((1 + i * 4099 % 100003))
    many_sizes+=("$size")
    tail -c +$((i * 7 + 1)) "$work/pattern" | head -c "$size" >"$work/htdocs/r$i"
done

ipv6=1
if ! grep -q '^00000000000000000000000000000001 ' /proc/net/if_inet6 2>/dev/null; then
    ipv6=0
    echo "SKIP (IPv6 cases): the host has no IPv6 loopback address ::1"
fi

# --- Our client against gtlsserver --------------------------------------------------------------------------------
# Starts gtlsserver with "$@" on a free port of $1's family: tries random ports until one binds. Sets gs_port.
start_gtlsserver() {
    local address=$1 log=$2 attempt port pid
    shift 2
    for attempt in 1 2 3 4 5 6 7 8; do
        port=$((20000 + RANDOM % 40000))
        "$gtlsserver" -q "$@" --htdocs="$work/htdocs" "$address" "$port" "$key" "$cert" >"$log" 2>&1 &
        pid=$!
        sleep 0.3
        if kill -0 "$pid" 2>/dev/null; then
            pids+=("$pid")
            gs_pid=$pid
            gs_port=$port
            return 0
        fi
        wait "$pid" 2>/dev/null
    done
    return 1
}
stop_pid() {
    kill "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    forget "$1"
}

# Starts cf-lossy-relay in front of ADDRESS PORT (logging to LOG); sets relay_pid and relay_port.
start_relay() {
    local address=$1 port=$2 log=$3
    [[ $address == *:* ]] && address="[$address]"
    # shellcheck disable=SC2086
    "$relay" --listen "$address:0" --server "$address:$port" $relay_options >"$log" 2>&1 &
    relay_pid=$!
    pids+=("$relay_pid")
    relay_port=
    for _ in $(seq 50); do
        relay_port=$(sed -n 's/^cf-lossy-relay: listening on .*:\([0-9]*\), server.*/\1/p' "$log")
        [ -n "$relay_port" ] && return 0
        sleep 0.1
    done
    return 1
}

# Stops the relay; it must have lost datagrams both ways (or the case tested no loss).
stop_relay() {
    kill -INT "$relay_pid" 2>/dev/null
    wait "$relay_pid" 2>/dev/null
    forget "$relay_pid"
    local lost
    lost=$(grep -o ' lost=[0-9]*' "$2" | grep -vc ' lost=0$')
    [ "$lost" -eq 2 ] || fail "$1: the relay did not lose datagrams both ways: $(tail -n 1 "$2")"
}
via_relay=0

# check_responses OUT NAME SIZE SUM...: every "response" line of OUT names the right status, size and checksum.
check_responses() {
    local out=$1 want=$((($# - 1) / 3)) got=0 line path size sum expected
    shift
    declare -A expect
    while [ $# -gt 0 ]; do
        expect[$1]="$2 $3"
        shift 3
    done
    local pattern='^response ([^ ]+) status=200 size=([0-9]+) sha256=([0-9a-f]+)$'
    while read -r line; do
        path= size= sum=
        if [[ $line =~ $pattern ]]; then
            path=${BASH_REMATCH[1]} size=${BASH_REMATCH[2]} sum=${BASH_REMATCH[3]}
        fi
        expected=${expect[$path]:-}
        if [ -z "$path" ] || [ "$expected" != "$size $sum" ]; then
            echo "  unexpected: $line (expected: ${expected:-nothing for this path})"
            return 1
        fi
        got=$((got + 1))
    done < <(grep '^response ' "$out")
    [ "$got" -eq "$want" ] || { echo "  $got responses, expected $want"; return 1; }
}

# ours_vs_gtlsserver NAME ADDRESS "GTLSSERVER OPTIONS" "CLIENT OPTIONS" CHECK PATH SIZE SUM ...
# CHECK: an extended regex the client's "connection" line must match.
ours_vs_gtlsserver() {
    local name=$1 address=$2 server_options=$3 client_options=$4 check=$5 out urls=() i
    shift 5
    out="$work/ours-$name.out"
    if ! start_gtlsserver "$address" "$work/gtlsserver-$name.log" $server_options; then
        fail "ours -> gtlsserver, $name: gtlsserver did not start (log: $work/gtlsserver-$name.log)"
        return
    fi
    local host=$address
    [[ $address == *:* ]] && host="[$address]"
    for ((i = 1; i <= $#; i += 3)); do urls+=("https://localhost:$gs_port${!i}"); done
    local port=$gs_port
    if [ "$via_relay" -eq 1 ]; then
        if ! start_relay "$address" "$gs_port" "$work/relay-$name.log"; then
            stop_pid "$gs_pid"
            fail "ours -> gtlsserver, $name: the relay did not start (log: $work/relay-$name.log)"
            return
        fi
        port=$relay_port
    fi
    # shellcheck disable=SC2086
    timeout "$limit" "$peer" client -q --ca="$work/ca.pem" $client_options "$address" "$port" "${urls[@]}" \
        >"$out" 2>"$work/ours-$name.err"
    local rc=$?
    stop_pid "$gs_pid"
    [ "$via_relay" -eq 1 ] && stop_relay "ours -> gtlsserver, $name" "$work/relay-$name.log"
    if [ "$rc" -ne 0 ]; then
        fail "ours -> gtlsserver, $name: cf-h3-peer client exited $rc: $(tail -n 2 "$work/ours-$name.err")"
    elif ! check_responses "$out" "$@"; then
        fail "ours -> gtlsserver, $name: bodies"
    elif ! grep -Eq "^connection .*$check" "$out"; then
        fail "ours -> gtlsserver, $name: expected /$check/ in: $(grep '^connection' "$out")"
    else
        pass "ours -> gtlsserver, $name: $(grep '^connection' "$out" | cut -d' ' -f2-)"
    fi
}

if [ -z "$gtlsserver" ]; then
    echo "SKIP (our client against gtlsserver): gtlsserver is not installed (Debian ngtcp2-server)"
else
    small=(/small 1000 "$(sum_of "$work/htdocs/small")")
    big=(/big 8000000 "$(sum_of "$work/pattern")")
    mid=(/mid 2000000 "$(sum_of "$work/htdocs/mid")")
    many=()
    declare -A file_sums
    while read -r sum file; do file_sums[${file##*/}]=$sum; done < <(sha256sum "$work"/htdocs/r*)
    for i in $(seq 0 99); do many+=("/r$i" "${many_sizes[$i]}" "${file_sums[r$i]}"); done
    chacha='NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305'
    ours_vs_gtlsserver handshake 127.0.0.1 "" "" "alpn=h3 .*retried=0" "${small[@]}"
    ours_vs_gtlsserver 8MB 127.0.0.1 "" "" "alpn=h3" "${big[@]}"
    ours_vs_gtlsserver 100-requests 127.0.0.1 "" "" "alpn=h3" "${many[@]}"
    ours_vs_gtlsserver chacha20 127.0.0.1 "--ciphers=$chacha" "--ciphers=TLS_CHACHA20_POLY1305_SHA256" \
        "cipher=TLS_CHACHA20_POLY1305_SHA256" "${big[@]}"
    ours_vs_gtlsserver key-update 127.0.0.1 "" "--key-update-after=2000000" "key_updates=1 " "${big[@]}"
    # Updates in a row, each as soon as our side allows it (three PTOs after the previous one was acknowledged):
    # 40 MB leave time for at least two, and none of our packets is lost to keys the peer does not have yet.
    ours_vs_gtlsserver key-updates 127.0.0.1 "" "--key-update-after=1 --key-updates=5" \
        "key_updates=[2-5] packets_lost=0" "${big[@]}" "${big[@]}" "${big[@]}" "${big[@]}" "${big[@]}"
    ours_vs_gtlsserver retry 127.0.0.1 "-V" "" "retried=1" "${small[@]}" "${big[@]}"
    if [ "$ipv6" -eq 1 ]; then
        ours_vs_gtlsserver ipv6 ::1 "" "" "alpn=h3" "${small[@]}" "${big[@]}"
    fi
    if [ -n "$relay" ]; then
        via_relay=1
        ours_vs_gtlsserver lossy 127.0.0.1 "" "" "packets_lost=[1-9]" "${mid[@]}" "${many[@]}"
        via_relay=0
    fi
fi

# --- gtlsclient against our server --------------------------------------------------------------------------------
# gtlsclient_vs_ours NAME ADDRESS "SERVER OPTIONS" "GTLSCLIENT OPTIONS" CHECK SIZE...
# Every /SIZE downloaded must equal the pattern's first SIZE bytes; CHECK: an extended regex our server's
# "connection" line must match.
gtlsclient_vs_ours() {
    local name=$1 address=$2 server_options=$3 client_options=$4 check=$5 out port pid size urls=() bad=0
    shift 5
    out="$work/server-$name.out"
    # shellcheck disable=SC2086
    timeout "$limit" "$peer" server -q $server_options "$address" 0 "$key" "$cert" >"$out" 2>"$work/server-$name.err" &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 50); do
        grep -q '^listening' "$out" 2>/dev/null && break
        sleep 0.1
    done
    port=$(sed -n 's/^listening .*:\([0-9]*\)$/\1/p' "$out")
    if [ -z "$port" ]; then
        stop_pid "$pid"
        fail "gtlsclient -> ours, $name: our server did not start: $(cat "$work/server-$name.err")"
        return
    fi
    for size in "$@"; do urls+=("https://localhost:$port/$size"); done
    local download="$work/download-$name"
    mkdir -p "$download"
    if [ "$via_relay" -eq 1 ]; then
        if ! start_relay "$address" "$port" "$work/relay-$name.log"; then
            stop_pid "$pid"
            fail "gtlsclient -> ours, $name: the relay did not start (log: $work/relay-$name.log)"
            return
        fi
        port=$relay_port
    fi
    # shellcheck disable=SC2086
    timeout "$limit" "$gtlsclient" -q --timeout=10s --exit-on-all-streams-close --download="$download" $client_options \
        "$address" "$port" "${urls[@]}" >"$work/gtlsclient-$name.log" 2>&1
    local rc=$?
    # Our server prints the connection's line once it closed (or, if gtlsclient's CONNECTION_CLOSE was lost, when
    # it stops at SIGINT).
    for _ in $(seq 30); do
        grep -q '^connection' "$out" && break
        sleep 0.1
    done
    [ "$via_relay" -eq 1 ] && stop_relay "gtlsclient -> ours, $name" "$work/relay-$name.log"
    kill -INT "$pid" 2>/dev/null
    wait "$pid"
    local server_rc=$?
    forget "$pid"
    local -A got=()
    local sum file
    while read -r sum file; do got[${file##*/}]=$sum; done < <(cd "$download" && sha256sum -- * 2>/dev/null)
    for size in "$@"; do
        [ -n "${pattern_sums[$size]:-}" ] || pattern_sums[$size]=$(sum_of_pattern "$size")
        [ "${got[$size]:-}" = "${pattern_sums[$size]}" ] || bad=$((bad + 1))
    done
    if [ "$rc" -ne 0 ]; then
        fail "gtlsclient -> ours, $name: gtlsclient exited $rc (log: $work/gtlsclient-$name.log)"
    elif [ "$bad" -ne 0 ]; then
        fail "gtlsclient -> ours, $name: $bad of $# downloads missing or wrong"
    elif [ "$server_rc" -ne 0 ]; then
        fail "gtlsclient -> ours, $name: our server exited $server_rc: $(grep '^connection' "$out")"
    elif ! grep -Eq "^connection .*$check" "$out"; then
        fail "gtlsclient -> ours, $name: expected /$check/ in: $(grep '^connection' "$out")"
    else
        pass "gtlsclient -> ours, $name: $(grep '^connection' "$out" | cut -d' ' -f2-)"
    fi
}

if [ -z "$gtlsclient" ]; then
    echo "SKIP (gtlsclient against our server): gtlsclient is not installed (Debian ngtcp2-client)"
else
    chacha='NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305'
    gtlsclient_vs_ours handshake 127.0.0.1 "" "" "alpn=h3 .*requests=1 " 1000
    gtlsclient_vs_ours 8MB 127.0.0.1 "" "" "requests=1 bytes=8000000 " 8000000
    gtlsclient_vs_ours 100-requests 127.0.0.1 "" "" "requests=100 " "${many_sizes[@]}"
    gtlsclient_vs_ours chacha20 127.0.0.1 "--ciphers=TLS_CHACHA20_POLY1305_SHA256" "--ciphers=$chacha" \
        "cipher=TLS_CHACHA20_POLY1305_SHA256" 8000000
    gtlsclient_vs_ours key-update 127.0.0.1 "" "--key-update=1ms" "key_updates=[1-9]" 8000000
    gtlsclient_vs_ours retry 127.0.0.1 "--retry" "" "requests=2 " 1000 8000000
    if [ "$ipv6" -eq 1 ]; then
        gtlsclient_vs_ours ipv6 ::1 "" "" "requests=2 " 1000 8000000
    fi
    if [ -n "$relay" ]; then
        via_relay=1
        gtlsclient_vs_ours lossy 127.0.0.1 "" "" "requests=101 .*packets_lost=[1-9]" 2000000 "${many_sizes[@]}"
        via_relay=0
    fi
fi

if [ "$failures" -ne 0 ]; then
    echo "quic-h3-interop: $failures case(s) failed"
    exit 1
fi
echo "quic-h3-interop: all cases passed"
