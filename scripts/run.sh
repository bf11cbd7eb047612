#!/usr/bin/env bash
# The main job on the embedded default: installs, builds, then lists the Vulkan devices and runs
# the op benchmark on the default one. Pass a device with VKLM_DEVICE=N|name.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
./build/apps/vklm devices
./build/apps/vklm bench ops
