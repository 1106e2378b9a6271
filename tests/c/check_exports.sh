#!/bin/sh
# The shared library exports the C API and nothing else, each symbol under the release's version node.
# Every function the public headers declare is exported.
# usage: check_exports.sh NM LIBRARY INCLUDE_DIR GENERATED_INCLUDE_DIR
set -eu
nm_tool=$1
library=$2
headers="$3/chronofabric/*.h $4/chronofabric/version.h"
symbols=$("$nm_tool" -D --defined-only "$library" | awk '$2 ~ /^[TDBRW]$/ {print $3}')
[ -n "$symbols" ] || { echo "no exported symbols in $library"; exit 1; }
bad=$(printf '%s\n' "$symbols" | grep -v '^cf_[a-z0-9_]*@@CHRONOFABRIC_[0-9.]*$' | grep -v '^CHRONOFABRIC_' || true)
if [ -n "$bad" ]; then
  echo "unexpected exports from $library:"
  printf '%s\n' "$bad"
  exit 1
fi
# shellcheck disable=SC2086
declared=$(sed -n 's/^\(CF_NODISCARD \)\{0,1\}CF_API .*[ *]\(cf_[a-z0-9_]*\)(.*/\2/p' $headers | sort -u)
[ -n "$declared" ] || { echo "no declarations found in $headers"; exit 1; }
exported=$(printf '%s\n' "$symbols" | sed 's/@@.*//' | sort -u)
missing=$(printf '%s\n' "$declared" | grep -vxF "$exported" || true)
if [ -n "$missing" ]; then
  echo "declared in the headers but not exported (add them to the version map):"
  printf '%s\n' "$missing"
  exit 1
fi
extra=$(printf '%s\n' "$exported" | grep '^cf_' | grep -vxF "$declared" || true)
if [ -n "$extra" ]; then
  echo "exported but declared in no public header:"
  printf '%s\n' "$extra"
  exit 1
fi
count=$(printf '%s\n' "$symbols" | grep -c '^cf_')
echo "$count C API symbols exported, nothing else"
