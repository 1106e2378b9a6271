#!/usr/bin/env bash
# Records a baseline: runs cf-latency RUNS times (default 5) and writes the median of every figure across the
# runs, as Markdown and JSON, to bench/baselines/<name>.{md,json}. Single runs on a shared machine are noise.
# usage: bench/baselines/record.sh NAME [RUNS] [cf-latency options...]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
name=${1:?usage: record.sh NAME [RUNS] [cf-latency options...]}
runs=${2:-5}
shift $(( $# >= 2 ? 2 : 1 ))
exe=${CF_LATENCY:-$root/build/bench/cf-latency/cf-latency}
[ -x "$exe" ] || { echo "record.sh: $exe not built; run toolchains/cf build" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for run in $(seq 1 "$runs"); do
    echo "record.sh: run $run/$runs" >&2
    "$exe" --quiet --json "$work/run$run.json" "$@" >/dev/null
done
python3 "$root/bench/baselines/summarize.py" "$root/bench/baselines/$name" "$work"/run*.json
echo "record.sh: wrote bench/baselines/$name.md and $name.json" >&2
