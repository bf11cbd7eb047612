#!/usr/bin/env bash
# Installs, builds and runs every test (CTest) with validation layers on, normally and under
# baseline limits; then the fuzzers briefly and the sanitizer + synchronization-validation pass.
# Python-driven parity tests use a venv (.venv) that sees Debian's packages and adds the PyPI
# packages listed in scripts/requirements-test.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --tests
bash scripts/build.sh
if [ ! -x .venv/bin/python3 ]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
if [ -s scripts/requirements-test.txt ]; then
  .venv/bin/python3 -m pip install -q --disable-pip-version-check -r scripts/requirements-test.txt
fi
(cd build && ctest --output-on-failure -j"$(nproc)")
# Hardening passes (issue 14, docs/security.md): every libFuzzer harness for a short fixed time
# from its committed seeds (build-fuzz/), then the whole suite again under AddressSanitizer and
# UndefinedBehaviorSanitizer with synchronization validation in the GPU C tests (build-asan/).
bash scripts/fuzz.sh -t "${VKLM_CI_FUZZ_SECONDS:-10}"
bash scripts/sanitize.sh
