#!/usr/bin/env bash
# Runs the runtime crate's tests for aarch64 under qemu-user (NEON kernels on an emulated
# Cortex-A72), from an x86-64 host. Extra arguments go to `cargo test` (default: the
# kernel tests, `--lib kernels` (dense and sparse), then the sparse model tests,
# `--test sparse_models`).
#
# Needs (Debian): apt-get install -y gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
#                 rustup target add aarch64-unknown-linux-gnu
#
#   sdk/runtime/qemu-test.sh                  # kernel property tests
#   sdk/runtime/qemu-test.sh --lib            # every unit test of the crate
#   QEMU_CPU=cortex-a53 sdk/runtime/qemu-test.sh
#
# Settings are environment variables (no .cargo/config.toml, which belongs to the
# toolchains/ setup).
set -euo pipefail
cd "$(dirname "$0")/../.."

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER="${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER:-aarch64-linux-gnu-gcc}"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER:-qemu-aarch64 -L /usr/aarch64-linux-gnu}"
export QEMU_CPU="${QEMU_CPU:-cortex-a72}"

if [ "$#" -eq 0 ]; then
    cargo test -p prunus --target aarch64-unknown-linux-gnu --lib kernels
    set -- --test sparse_models
fi
exec cargo test -p prunus --target aarch64-unknown-linux-gnu "$@"
