#!/bin/sh
# `meson install` delivers what an integrator needs: the header, the libraries and chronofabric.pc. Installs into a
# scratch DESTDIR, builds the C test and the example against that tree with pkg-config alone, and runs the test.
# usage: check_install.sh BUILD_DIR SOURCE_DIR CC...
set -eu
build=$1
source=$2
shift 2
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" --no-rebuild --quiet
pc=$(find "$dest" -name chronofabric.pc | head -n 1)
[ -n "$pc" ] || { echo "chronofabric.pc was not installed"; exit 1; }
prefix=$(sed -n 's/^prefix=//p' "$pc")
header=$(find "$dest" -path '*/chronofabric/chronofabric.h' | head -n 1)
[ -n "$header" ] || { echo "chronofabric.h was not installed"; exit 1; }
find "$dest" -name 'libchronofabric.so*' | grep -q . || { echo "libchronofabric.so was not installed"; exit 1; }
find "$dest" -name 'libchronofabric.a' | grep -q . || { echo "libchronofabric.a was not installed"; exit 1; }
flags=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --define-variable=prefix="$dest$prefix" --cflags --libs chronofabric)
echo "pkg-config: $flags"
# shellcheck disable=SC2086
"$@" -std=c11 -Wall -Wextra -Werror -o "$dest/capi_test" "$source/tests/c/capi_test.c" $flags
# shellcheck disable=SC2086
"$@" -std=c11 -Wall -Wextra -Werror -o "$dest/pubsub_example" "$source/tests/c/pubsub_example.c" $flags
libdir=$(dirname "$(find "$dest" -name 'libchronofabric.so' | head -n 1)")
LD_LIBRARY_PATH=$libdir "$dest/capi_test"
