#!/usr/bin/env bash
# ffi/test.sh: every test of the C ABI that cargo cannot run (the Rust unit tests of
# prunus-ffi run with `cargo test`). Exits non-zero on the first failure.
#
#   1. include/prunus.h is what cbindgen generates now (stale header = failure)
#   2. ffi/build.sh installs libprunus.so (SONAME libprunus.so.MAJOR), libprunus.a,
#      prunus.pc, prunus.h and prunus.hpp into a temporary prefix
#   3. the exported symbols of libprunus.so (nm -D) = the functions of the header = the
#      functions api_test covers
#   4. examples/c and examples/cpp build with -Wall -Wextra -Werror, against the shared and
#      the static library, and print exactly what the Rust API twin prints (top-5 with
#      labels, and every score) for a zoo model and a generated PPM
#   5. api_test (NULL / wrong sizes / wrong shapes / corrupt / truncated) and the C example
#      under valgrind memcheck: 0 errors, 0 bytes definitely lost
#   6. threads_test: 4 threads, one model, a session each, bit-identical outputs
#
# Needs cbindgen 0.29.x, a C and C++ compiler, make, pkg-config, valgrind, binutils:
#   apt-get install -y build-essential pkg-config valgrind
#   cargo install --locked cbindgen@0.29.0
# FFI_PROFILE=debug tests the debug build instead of the release build.
set -euo pipefail
start=$SECONDS
ffi="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$ffi")"
cd "$root"
profile="${FFI_PROFILE:-release}"
work="$(mktemp -d "${TMPDIR:-/tmp}/prunus-ffi-test.XXXXXX")"
trap 'rm -rf "$work"' EXIT
step() { echo "== ffi: $* ($((SECONDS - start)) s)"; }
fail() { echo "ffi/test.sh: FAILED: $*" >&2; exit 1; }

for tool in cbindgen cc gcc g++ make pkg-config valgrind nm readelf; do
  command -v "$tool" >/dev/null || fail "missing $tool: apt-get install -y build-essential \
pkg-config valgrind; cargo install --locked cbindgen@0.29.0"
done

step "header is up to date (cbindgen $(cbindgen --version 2>/dev/null | cut -d' ' -f2))"
ffi/gen-header.sh "$work/prunus.h"
diff -u include/prunus.h "$work/prunus.h" ||
  fail "include/prunus.h is stale: run ffi/gen-header.sh and commit the result"

step "build and install ($profile)"
prefix="$work/prefix"
build_args=(--prefix "$prefix")
cargo_profile=(--release)
if [ "$profile" = debug ]; then build_args+=(--debug); cargo_profile=(); fi
ffi/build.sh "${build_args[@]}"
# Separate invocations: building prunus-ffi together with prunus-tool would unify other
# features and rebuild the library that build.sh just installed.
cargo build -q "${cargo_profile[@]}" -p prunus-ffi --example classify_reference
cargo build -q "${cargo_profile[@]}" -p prunus-tool --bin prunus
bin="${CARGO_TARGET_DIR:-$root/target}/$profile"
version="$(cargo pkgid -p prunus-ffi)"; version="${version##*@}"
for f in "lib/libprunus.so.$version" "lib/libprunus.so.${version%%.*}" lib/libprunus.so \
         lib/libprunus.a lib/pkgconfig/prunus.pc include/prunus.h include/prunus.hpp; do
  [ -e "$prefix/$f" ] || fail "missing $prefix/$f"
done
soname="$(readelf -d "$prefix/lib/libprunus.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
[ "$soname" = "libprunus.so.${version%%.*}" ] || fail "SONAME is '$soname'"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
[ "$(pkg-config --modversion prunus)" = "$version" ] || fail "pkg-config version"
pkg-config --static --libs prunus | grep -q -- -lpthread || fail "prunus.pc lacks Libs.private"
echo "soname $soname, pkg-config: $(pkg-config --static --libs prunus)"

step "exported functions = header = api_test coverage"
cflags="$(pkg-config --cflags prunus)"
libs="$(pkg-config --libs prunus) -Wl,-rpath,$prefix/lib"
warn=(-std=c11 -pedantic -Wall -Wextra -Werror -O1 -g)
gcc "${warn[@]}" $cflags -o "$work/api_test" ffi/tests/c/api_test.c $libs
gcc "${warn[@]}" -pthread $cflags -o "$work/threads_test" ffi/tests/c/threads_test.c $libs
nm -D --defined-only "$prefix/lib/libprunus.so" | awk '{print $3}' | sort >"$work/exported"
grep -o '\bprunus_[a-z_]*(' include/prunus.h | tr -d '(' | sort -u >"$work/declared"
"$work/api_test" --list | sort >"$work/covered"
diff -u "$work/exported" "$work/declared" || fail "libprunus.so exports != prunus.h declarations"
diff -u "$work/exported" "$work/covered" || fail "api_test does not cover every exported function"
echo "$(wc -l <"$work/exported") functions"

step "test model and image"
"$bin/prunus" zoo mobilenet_v2 -o "$work/model.prunus" --input-hw 64 >/dev/null
"$bin/examples/classify_reference" --make-ppm "$work/image.ppm" 97 83
seq 0 999 | sed 's/^/label-/' >"$work/labels.txt"

step "examples build with -Werror (shared and static) and match the Rust API"
make -s -C examples/c PREFIX="$prefix" BUILD="$work/c"
make -s -C examples/cpp PREFIX="$prefix" BUILD="$work/cpp"
for exe in "$work/c/classify" "$work/cpp/classify_cpp"; do
  readelf -d "$exe" | grep -q "NEEDED.*\[libprunus.so.${version%%.*}\]" || fail "$exe: no libprunus.so NEEDED"
  ! readelf -d "$exe-static" | grep -q 'NEEDED.*libprunus' || fail "$exe-static: links libprunus.so"
done
"$bin/examples/classify_reference" "$work/model.prunus" "$work/image.ppm" "$work/labels.txt" >"$work/top5.rust"
"$bin/examples/classify_reference" -k 1000 "$work/model.prunus" "$work/image.ppm" >"$work/all.rust"
grep -q '^top-5:' "$work/top5.rust" && [ "$(grep -c 'score' "$work/all.rust")" = 1000 ] ||
  fail "unexpected reference output"
for exe in c/classify c/classify-static cpp/classify_cpp cpp/classify_cpp-static; do
  "$work/$exe" "$work/model.prunus" "$work/image.ppm" "$work/labels.txt" >"$work/top5.out"
  diff -u "$work/top5.rust" "$work/top5.out" || fail "$exe top-5 differs from the Rust API"
  "$work/$exe" -k 1000 "$work/model.prunus" "$work/image.ppm" >"$work/all.out"
  diff -q "$work/all.rust" "$work/all.out" >/dev/null || fail "$exe scores differ from the Rust API"
  echo "$exe: same output as the Rust API (top-5 with labels, 1000 scores)"
done
cat "$work/top5.rust"

step "api_test and the C example under valgrind memcheck"
mkdir -p "$work/scratch"
vg=(valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite)
memcheck() {  # memcheck NAME COMMAND...: 0 errors, 0 bytes definitely lost
  local log="$work/valgrind-$1.log"; shift
  "${vg[@]}" --log-file="$log" "$@" >"$log.stdout" || { cat "$log" "$log.stdout"; fail "valgrind: $*"; }
  grep -q 'ERROR SUMMARY: 0 errors' "$log" || { cat "$log"; fail "valgrind errors: $*"; }
  grep -qE 'definitely lost: 0 bytes|no leaks are possible' "$log" || { cat "$log"; fail "valgrind leak: $*"; }
  echo "$(basename "$1"): $(tail -n 1 "$log.stdout")"
  grep -E 'ERROR SUMMARY|definitely lost|no leaks are possible' "$log" | sed 's/^==[0-9]*== /  valgrind: /'
}
memcheck api_test "$work/api_test" "$work/model.prunus" "$work/scratch"
memcheck classify "$work/c/classify" "$work/model.prunus" "$work/image.ppm"

step "4 threads, one model, a session each"
"$work/threads_test" "$work/model.prunus" 3

echo "== ffi: all passed in $((SECONDS - start)) s"
