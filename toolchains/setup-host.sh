#!/usr/bin/env bash
# Prepares a Debian/Ubuntu x86-64 host to cross-build Prunus for ARM boards and test it
# under qemu-user. Idempotent; run as root (or with sudo available).
#
#   toolchains/setup-host.sh            # apt packages, rustup targets, zig venv
#   toolchains/setup-host.sh --no-apt   # only rustup targets and the venv
#
# - apt: Debian's cross gcc + libc for aarch64 and armhf (linkers of the plain route, the C
#   example, and the sysroots qemu-user loads with -L), qemu-user, binutils (readelf for the
#   glibc check), cmake.
# - rustup: the ARM targets for the toolchain pinned in rust-toolchain.toml.
# - toolchains/.venv: ziglang + cargo-zigbuild from PyPI (release bundles link against
#   glibc 2.17 with zig; see toolchains/README.md). Pinned versions below.
set -euo pipefail
cd "$(dirname "$0")/.."

ZIGLANG_VERSION="${ZIGLANG_VERSION:-0.17.1}"
CARGO_ZIGBUILD_VERSION="${CARGO_ZIGBUILD_VERSION:-0.24.1}"
APT_PACKAGES="gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libc6-dev-arm64-cross \
libc6-dev-armhf-cross qemu-user binutils cmake python3-venv"
RUST_TARGETS="aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf \
thumbv7neon-unknown-linux-gnueabihf"

if [ "${1:-}" != "--no-apt" ]; then
    missing=""
    for p in $APT_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
        echo "setup-host: apt-get install$missing"
        export DEBIAN_FRONTEND=noninteractive
        $sudo apt-get update -q
        # shellcheck disable=SC2086
        $sudo apt-get install -y -q --no-install-recommends $missing
    else
        echo "setup-host: apt packages present"
    fi
fi

# rustup reads rust-toolchain.toml in this directory: the targets go to the pinned toolchain.
# shellcheck disable=SC2086
rustup target add $RUST_TARGETS

venv=toolchains/.venv
stamp="$venv/.prunus-requirements"
want="ziglang==$ZIGLANG_VERSION cargo-zigbuild==$CARGO_ZIGBUILD_VERSION"
if [ ! -x "$venv/bin/cargo-zigbuild" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup-host: creating $venv with $want"
    "${PYTHON:-python3}" -m venv "$venv"
    # shellcheck disable=SC2086
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $want
    echo "$want" > "$stamp"
fi
echo "setup-host: ready (zig $("$venv/bin/python" -m ziglang version), $("$venv/bin/cargo-zigbuild" --version))"
