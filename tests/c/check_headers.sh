#!/bin/sh
# Each public header compiles on its own, as C11 and as C++20 with every warning an error, and every function that
# returns an int (a status or a count) is marked CF_NODISCARD.
# usage: check_headers.sh INCLUDE_DIR GENERATED_INCLUDE_DIR CC CXX
set -eu
include=$1
generated=$2
cc=$3
cxx=$4
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
count=0
for header in "$include"/chronofabric/*.h "$generated"/chronofabric/version.h; do
  name=$(basename "$header")
  printf '#include <chronofabric/%s>\n' "$name" >"$scratch/one.c"
  cp "$scratch/one.c" "$scratch/one.cpp"
  "$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror -I"$include" -I"$generated" -fsyntax-only "$scratch/one.c" ||
    { echo "chronofabric/$name does not compile alone as C11"; exit 1; }
  "$cxx" -std=c++20 -Wall -Wextra -Wpedantic -Werror -I"$include" -I"$generated" -fsyntax-only "$scratch/one.cpp" ||
    { echo "chronofabric/$name does not compile alone as C++20"; exit 1; }
  count=$((count + 1))
done
unmarked=$(grep -h '^CF_API int ' "$include"/chronofabric/*.h | grep -v 'cf_isa_active(' || true)
if [ -n "$unmarked" ]; then
  echo "int-returning functions without CF_NODISCARD:"
  printf '%s\n' "$unmarked"
  exit 1
fi
echo "$count headers compile alone (C11 and C++20)"
