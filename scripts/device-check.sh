#!/usr/bin/env bash
# The device check (issue 13): everything a machine with a GPU should measure, in one call that
# stays well under 10 minutes on an H100/H200, with every result under one folder:
#   devices.json         the device and its capabilities as vklm reads them (+ nvidia-smi.txt)
#   suite.log            the GPU tests of the C suite (ops against their C references, runtime,
#                        model, inference, PPO/RL ops), normally and under baseline limits
#   card.json, card.md   the benchmark card (`vklm bench`): capabilities, GEMM GFLOP/s by path at
#                        the GPT-2 and Llama shapes, attention, gpt2-124M training tokens/s and
#                        MFU, prefill/decode tokens/s by batch and KV precision, peak memory
#                        (compare cards with scripts/bench-compare.py)
#   torch-infer.json     the same greedy decode (batch 1, KV cache) in PyTorch, and vklm's ratio
#   bench-ops.json       GEMM GFLOP/s by path at the GPT-2 shapes, elementwise GB/s
#   bench-train.json     training tokens/s, ms/step, MFU, peak memory (gpt2-tiny, gpt2-124M)
#   bench-train-f16.json, bench-train-bf16.json   gpt2-124M in mixed precision (f16 copies go
#                        through the cooperative-matrix GEMMs where the device has them)
#   bench-infer.json     prefill and decode tokens/s by context and batch
#   torch-train.json     the same training step in PyTorch on the same GPU, and vklm's ratio
#   summary.txt          the exit status of each part and how long it took
# The parts run in order of importance under one budget (BUDGET seconds, default 540, so that the
# whole call stays under the device tool's 10 minutes): each part's limit is cut to what is left,
# and a part with under 20 s left is skipped and says so.
# Usage, on the device from the checkout's root after building here and running
# ../shared/gpu/pack.sh build:   source .gpu/on-device.sh; bash scripts/device-check.sh [OUTDIR]
# (OUTDIR defaults to $OUT, the device tool's folder that comes back, else ./device-check).
set -uo pipefail
out=${1:-${OUT:-device-check}}
mkdir -p "$out"
vklm=build/apps/vklm
summary="$out/summary.txt"
: > "$summary"
deadline=$(( $(date +%s) + ${BUDGET:-540} ))
part() { # name, timeout (s), command...: runs one part, never stops the others
  local name=$1 limit=$2 t0 rc left
  shift 2
  t0=$(date +%s)
  left=$(( deadline - t0 ))
  if [ "$left" -lt 20 ]; then
    echo "$name: skipped, the ${BUDGET:-540} s budget is spent" | tee -a "$summary"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  timeout "$limit" "$@"
  rc=$?
  echo "$name: exit $rc in $(( $(date +%s) - t0 )) s (limit $limit s)" | tee -a "$summary"
}
{ nvidia-smi || true; } > "$out/nvidia-smi.txt" 2>&1
part devices 60 sh -c "$vklm devices --json > '$out/devices.json'"
# The C tests that exercise the device (their Python-driven siblings need the project's venv).
part suite 240 sh -c "cd build && VKLM_VALIDATE=1 ctest -j4 --timeout 120 -R \
  'test_ops_|test_runtime|test_model$|test_model_heads|test_model_modes|test_infer|test_sample' \
  > '../$out/suite.log' 2>&1"
part card 150 sh -c "$vklm bench --md --json-file '$out/card.json' > '$out/card.md'"
part torch-infer 60 sh -c "python3 scripts/bench_infer_torch.py --vklm $vklm --model gpt2-124M \
  --json > '$out/torch-infer.json'"
part torch-train 150 sh -c "python3 scripts/bench_train_torch.py --vklm $vklm --model gpt2-124M \
  --json > '$out/torch-train.json'"
part bench-infer 90 sh -c "$vklm bench infer --json > '$out/bench-infer.json'"
part bench-train 120 sh -c "$vklm bench train --model gpt2-tiny,gpt2-124M --json > '$out/bench-train.json'"
# mixed precision against PyTorch's autocast (and GradScaler for f16) on the same GPU
part torch-train-bf16 90 sh -c "python3 scripts/bench_train_torch.py --vklm $vklm --model gpt2-124M \
  --precision bf16 --json > '$out/torch-train-bf16.json'"
part torch-train-f16 90 sh -c "python3 scripts/bench_train_torch.py --vklm $vklm --model gpt2-124M \
  --precision f16 --json > '$out/torch-train-f16.json'"
part bench-ops 60 sh -c "$vklm bench ops --json > '$out/bench-ops.json'"
cat "$summary"
