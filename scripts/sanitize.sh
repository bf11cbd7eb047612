#!/usr/bin/env bash
# The sanitizer pass (issue 14, docs/security.md): builds vklm and every test with
# -fsanitize=address,undefined (UBSan halts on the first error) into build-asan/ and runs the
# whole CTest suite there. The same pass runs the C tests, the GPU ones among them, with the
# validation layer's synchronization validation (VKLM_VALIDATE=sync), so one pass serves both.
# Python-driven tests run the instrumented vklm binary. Only our code is instrumented: the Vulkan
# loader, lavapipe and the validation layer are not (their leaks at exit are suppressed, see
# tests/sanitizers/lsan.supp).
#   scripts/sanitize.sh               build and run the whole suite
#   scripts/sanitize.sh -R regex      only the tests matching regex (ctest -R)
# Environment: VKLM_ASAN_BUILD (default build-asan), VKLM_ASAN_JOBS (default nproc).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${VKLM_ASAN_BUILD:-build-asan}"
jobs="${VKLM_ASAN_JOBS:-$(nproc)}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DVKLM_SANITIZE=ON -DVKLM_TEST_VALIDATE=sync >/dev/null
cmake --build "$build" -j"$jobs" >/dev/null
supp="$PWD/tests/sanitizers/lsan.supp"
# quarantine_size_mb / allocator_release_to_os_interval_ms: freed memory is held back (to catch
# use after free) only up to 32 MiB and handed back to the OS, so that the tests that bound the
# resident memory of a process (tests/test_serve_hostile.py) measure vklm rather than ASan.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:quarantine_size_mb=32:allocator_release_to_os_interval_ms=100${VKLM_ASAN_EXTRA:+:$VKLM_ASAN_EXTRA}"
export LSAN_OPTIONS="suppressions=$supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
cd "$build"
ctest --output-on-failure -j"$jobs" "$@"
