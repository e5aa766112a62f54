#!/usr/bin/env bash
# Runs every test of the project. Sets up what the tests need first: the Python venv that
# writes the onnxruntime reference fixtures (tests/fixtures/). Needs the host packages of
# .ci/run (C toolchain, valgrind, cbindgen 0.29, toolchains/setup-host.sh for ARM).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -c /dev/null ]; then
  echo "error: /dev/null is not a character device (something replaced it); cargo's compiler probe" >&2
  echo "reads it as source. Restore it: rm /dev/null && mknod -m 666 /dev/null c 1 3" >&2
  exit 1
fi

echo "== fixtures (onnxruntime reference outputs)"
bash tests/fixtures/setup_venv.sh

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== tests"
cargo test --workspace

echo "== C ABI (header, install, C/C++ examples, valgrind, threads)"
bash ffi/test.sh

echo "== ARM boards: bundles (glibc 2.17 floor) and the qemu test matrix"
bash toolchains/build.sh pi4 pi3-32 jetson-nano
bash toolchains/qemu-test.sh

echo "== all tests passed"
