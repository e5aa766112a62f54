#!/usr/bin/env bash
# Runs every test of the project. Sets up what the tests need first: the Python venv that
# writes the onnxruntime reference fixtures (tests/fixtures/). Later issues extend this
# script (qemu).
set -euo pipefail
cd "$(dirname "$0")"

echo "== fixtures (onnxruntime reference outputs)"
bash tests/fixtures/setup_venv.sh

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== tests"
cargo test --workspace

echo "== C ABI (header, install, C/C++ examples, valgrind, threads)"
bash ffi/test.sh

echo "== all tests passed"
