#!/usr/bin/env bash
# Writes PREFIX/lib/pkgconfig/prunus.pc (relocatable: paths relative to the .pc file), with
# the native libraries a static link of libprunus.a needs for TRIPLE as rustc reports them.
# Shared by ffi/build.sh (host installs) and toolchains/build.sh (board bundles).
#
#   ffi/pkgconfig.sh PREFIX VERSION [TRIPLE]
set -euo pipefail
prefix="$1" version="$2" triple="${3:-}"
target=()
[ -n "$triple" ] && target=(--target "$triple")
probe="$(mktemp -d)"
private="$(echo '' | rustc "${target[@]}" --crate-type staticlib --crate-name probe \
    --print native-static-libs -o "$probe/libprobe.a" - 2>&1 | sed -n 's/.*native-static-libs: //p')"
rm -rf "$probe"
[ -n "$private" ] || private="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"
mkdir -p "$prefix/lib/pkgconfig"
cat >"$prefix/lib/pkgconfig/prunus.pc" <<PC
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: prunus
Description: Prunus: runs small CNNs on the CPU (C API)
Version: $version
Libs: -L\${libdir} -lprunus
Libs.private: $private
Cflags: -I\${includedir}
PC
