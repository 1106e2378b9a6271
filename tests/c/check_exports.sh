#!/bin/sh
# The shared library exports the C API and nothing else, each symbol under the release's version node.
# usage: check_exports.sh NM LIBRARY
set -eu
nm_tool=$1
library=$2
symbols=$("$nm_tool" -D --defined-only "$library" | awk '$2 ~ /^[TDBRW]$/ {print $3}')
[ -n "$symbols" ] || { echo "no exported symbols in $library"; exit 1; }
bad=$(printf '%s\n' "$symbols" | grep -v '^cf_[a-z0-9_]*@@CHRONOFABRIC_[0-9.]*$' | grep -v '^CHRONOFABRIC_' || true)
if [ -n "$bad" ]; then
  echo "unexpected exports from $library:"
  printf '%s\n' "$bad"
  exit 1
fi
count=$(printf '%s\n' "$symbols" | grep -c '^cf_')
echo "$count C API symbols exported, nothing else"
