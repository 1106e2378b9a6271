#!/bin/sh
# `meson install` delivers what an integrator needs: the headers, the libraries and chronofabric.pc. Installs into a
# scratch DESTDIR and checks that
#  - the C test and the example build against that tree with pkg-config alone, and the test passes;
#  - `pkg-config --cflags chronofabric` works without the private dependencies' .pc files (a machine without
#    libgnutls28-dev, liburing-dev, libisal-dev: the public headers include none of them);
#  - the tree relocates: moved elsewhere, `pkg-config --define-prefix` finds it and a program links and runs.
# usage: check_install.sh BUILD_DIR SOURCE_DIR CC...
set -eu
build=$1
source=$2
shift 2
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest/staged" --no-rebuild --quiet
pc=$(find "$dest/staged" -name chronofabric.pc | head -n 1)
[ -n "$pc" ] || { echo "chronofabric.pc was not installed"; exit 1; }
staged_prefix=$(cd "$(PKG_CONFIG_LIBDIR=$(dirname "$pc") pkg-config --variable=prefix chronofabric)" && pwd)
for header in chronofabric.h status.h version.h log.h engine.h clock.h pool.h topic.h publisher.h subscriber.h \
              compute.h morton.h checksum.h bridge.h; do
  find "$dest/staged" -path "*/chronofabric/$header" | grep -q . || { echo "chronofabric/$header was not installed"; exit 1; }
done
find "$dest/staged" -name 'libchronofabric.so*' | grep -q . || { echo "libchronofabric.so was not installed"; exit 1; }
find "$dest/staged" -name 'libchronofabric.a' | grep -q . || { echo "libchronofabric.a was not installed"; exit 1; }
if grep -q '^Requires' "$pc"; then
  echo "chronofabric.pc requires other packages (their -dev packages would be needed for --cflags):"
  grep '^Requires' "$pc"
  exit 1
fi

# Moved away from where it was installed for: only --define-prefix can find it now.
mv "$staged_prefix" "$dest/moved"
pcdir=$(dirname "$(find "$dest/moved" -name chronofabric.pc | head -n 1)")
# PKG_CONFIG_LIBDIR replaces the system's search path: no other package's .pc file is visible.
cflags=$(PKG_CONFIG_LIBDIR=$pcdir pkg-config --define-prefix --cflags chronofabric)
libs=$(PKG_CONFIG_LIBDIR=$pcdir pkg-config --define-prefix --libs chronofabric)
libdir=$(PKG_CONFIG_LIBDIR=$pcdir pkg-config --define-prefix --variable=libdir chronofabric)
echo "pkg-config: $cflags $libs"
case "$cflags $libs" in
  *"$dest/moved"*) ;;
  *) echo "pkg-config --define-prefix did not point into the moved tree"; exit 1 ;;
esac
[ -e "$libdir/libchronofabric.so" ] || { echo "libdir $libdir has no libchronofabric.so"; exit 1; }

cat >"$dest/tiny.c" <<'PROGRAM'
#include <chronofabric/chronofabric.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    uint64_t code = cf_morton_encode_2d64(3, 5);
    uint32_t crc = 0;
    if (code != 0x27 || cf_crc32c("123456789", 9, &crc) != CF_OK || crc != 0xE3069283u) return 1;
    if (cf_version() != CF_VERSION_NUMBER || strcmp(cf_version_string(), CF_VERSION_STRING) != 0) return 1;
    printf("ok %s\n", cf_version_string());
    return 0;
}
PROGRAM
# shellcheck disable=SC2086
"$@" -std=c11 -Wall -Wextra -Wpedantic -Werror -o "$dest/tiny" "$dest/tiny.c" $cflags $libs
LD_LIBRARY_PATH=$libdir "$dest/tiny" | grep -qx "ok [0-9]*\.[0-9]*\.[0-9]*" || { echo "the relocated program failed"; exit 1; }

# shellcheck disable=SC2086
"$@" -std=c11 -Wall -Wextra -Wpedantic -Werror -o "$dest/capi_test" "$source/tests/c/capi_test.c" $cflags $libs
# shellcheck disable=SC2086
"$@" -std=c11 -Wall -Wextra -Wpedantic -Werror -o "$dest/pubsub_example" "$source/tests/c/pubsub_example.c" $cflags $libs
LD_LIBRARY_PATH=$libdir "$dest/capi_test"
