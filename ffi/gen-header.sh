#!/usr/bin/env bash
# Writes the C header of prunus-ffi with the pinned cbindgen (0.29.x):
#   ffi/gen-header.sh            -> include/prunus.h (commit the result)
#   ffi/gen-header.sh OUT.h      -> OUT.h (ffi/test.sh diffs it against include/prunus.h)
# The version macros are generated here from the crate's version in Cargo.toml.
# Install cbindgen with: cargo install --locked cbindgen@0.29.0
set -euo pipefail
ffi="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$ffi")"
out="${1:-$root/include/prunus.h}"

command -v cbindgen >/dev/null || {
  echo "cbindgen not found: cargo install --locked cbindgen@0.29.0" >&2; exit 1; }
case "$(cbindgen --version)" in
  "cbindgen 0.29."*) ;;
  *) echo "need cbindgen 0.29.x, found '$(cbindgen --version)':" \
          "cargo install --locked cbindgen@0.29.0" >&2; exit 1 ;;
esac

# "path+file:///.../ffi#prunus-ffi@0.1.0" -> 0.1.0
version="$(cd "$root" && cargo pkgid -p prunus-ffi)"; version="${version##*@}"
IFS=. read -r major minor patch <<<"${version%%[-+]*}"

config="$(mktemp)"
trap 'rm -f "$config"' EXIT
{
  echo 'after_includes = """'
  echo
  echo '/** Version of this header, from prunus-ffi'"'"'s Cargo.toml; prunus_version() gives the'
  echo '    library'"'"'s, which should be equal. */'
  echo "#define PRUNUS_VERSION_MAJOR $major"
  echo "#define PRUNUS_VERSION_MINOR $minor"
  echo "#define PRUNUS_VERSION_PATCH $patch"
  echo "#define PRUNUS_VERSION_STRING \"$version\""
  echo '/** The version as one comparable number: MAJOR * 10000 + MINOR * 100 + PATCH. */'
  echo "#define PRUNUS_VERSION_NUMBER ($major * 10000 + $minor * 100 + $patch)"
  echo '"""'
  cat "$ffi/cbindgen.toml"
} >"$config"
cbindgen --quiet --config "$config" --output "$out" "$ffi"
