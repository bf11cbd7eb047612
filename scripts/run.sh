#!/usr/bin/env bash
# The main job: installs, builds, lists the Vulkan devices, then runs the quickstart: the first half
# of a language model's life cycle (corpus, cleaning, tokenizer, shards, pretraining, generation)
# on an embedded default with no network. Flags go to scripts/quickstart.sh (--data, --steps,
# --out, --model, --prompt); choose a device with VKLM_DEVICE=N|name.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
./build/apps/vklm devices
bash scripts/quickstart.sh "$@"
