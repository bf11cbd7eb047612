#!/usr/bin/env bash
# A language model's life on an embedded default, with no network: a corpus, cleaning and
# deduplication, a BPE tokenizer, token shards, pretraining a small GPT-2 on the GPU (lavapipe
# when there is none), generation and evaluation; then alignment on the synthetic instruction set
# in scripts/align: supervised fine-tuning, K answers per question ranked by a simulated rater,
# a reward model, RLHF with PPO against it (and DPO as the alternative), evaluation of the aligned
# models, and a one-page HTML report; then a summary of where things are and each stage's figure.
#
# Usage: scripts/quickstart.sh [--data FILE_OR_DIR]... [--out DIR] [--steps N] [--model PRESET]
#                              [--vocab N] [--prompt TEXT] [--sft-steps N] [--rm-steps N]
#                              [--dpo-steps N] [--ppo-iters N]
# Without --data the corpus is Debian's `fortunes` package (English quotations, installed by
# scripts/install-deps.sh), split into documents of 25 fortunes. Needs a built build/apps/vklm.
set -euo pipefail
cd "$(dirname "$0")/.."
VKLM=${VKLM:-build/apps/vklm}
out=quickstart steps=200 model=gpt2-tiny vocab=4096 prompt="The meaning of life is"
sft_steps=300 rm_steps=0 dpo_steps=30 ppo_iters=10
data=()
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data+=("$2"); shift 2 ;;
    --out) out=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --vocab) vocab=$2; shift 2 ;;
    --prompt) prompt=$2; shift 2 ;;
    --sft-steps) sft_steps=$2; shift 2 ;;
    --rm-steps) rm_steps=$2; shift 2 ;;
    --dpo-steps) dpo_steps=$2; shift 2 ;;
    --ppo-iters) ppo_iters=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "quickstart: unknown flag $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -x "$VKLM" ] || { echo "quickstart: $VKLM is not built (run scripts/build.sh)" >&2; exit 1; }
mkdir -p "$out"
t0=$(date +%s)
step() { printf '\n== %s ==\n' "$*"; }

prepare_flags=()
if [ ${#data[@]} -eq 0 ]; then
  fortunes=/usr/share/games/fortunes
  [ -d "$fortunes" ] || { echo "quickstart: $fortunes is missing (apt-get install fortunes)" >&2; exit 1; }
  step "1/6 corpus: Debian's fortunes, 25 fortunes per document, two sources (tech, misc)"
  rm -rf "$out/corpus" && mkdir -p "$out/corpus/tech" "$out/corpus/misc"
  for f in "$fortunes"/*; do
    case "$f" in *.dat|*.u8) continue ;; esac
    case "${f##*/}" in computers|linux|linuxcookie|perl|science|debian) src=tech ;; *) src=misc ;; esac
    [ -f "$f" ] && cat "$f" >> "$out/corpus/$src.txt" && printf '\n%%\n' >> "$out/corpus/$src.txt"
  done
  for src in tech misc; do awk -v dir="$out/corpus/$src" -v per=25 '
    /^%$/ { if (buf != "") { n++; text = text buf "\n"; buf = "" }
            if (n >= per) { f = sprintf("%s/fortunes_%04d.txt", dir, d++); printf "%s", text > f; close(f); text = ""; n = 0 }
            next }
    { buf = buf $0 "\n" }
    END { if (text != "") { f = sprintf("%s/fortunes_%04d.txt", dir, d++); printf "%s", text > f; close(f) } }' \
    "$out/corpus/$src.txt"; rm "$out/corpus/$src.txt"; done
  echo "$(ls "$out/corpus/tech" | wc -l) tech and $(ls "$out/corpus/misc" | wc -l) misc documents, $(du -sh "$out/corpus" | cut -f1)"
  sources=(--source "tech=$out/corpus/tech" --source "misc=$out/corpus/misc")
  weights=tech=0.3,misc=0.7
  # Fortunes are hard-wrapped verse and quotations: a line end is not a sentence end, so C4's
  # "drop lines without terminal punctuation" would remove most of the text.
  prepare_flags=(--c4-keep-unpunctuated)
else
  step "1/6 corpus: ${data[*]}"
  sources=()
  for d in "${data[@]}"; do sources+=(--source "data=$d"); done
  weights=data=1
fi

step "2/6 clean, filter, identify languages, deduplicate (vklm data prepare)"
"$VKLM" data prepare -o "$out/cleaned.jsonl" "${prepare_flags[@]}" "${sources[@]}"

step "3/6 train a byte-level BPE tokenizer of $vocab tokens (vklm tokenizer train)"
"$VKLM" tokenizer train -o "$out/tokenizer.json" --vocab-size "$vocab" --special '<|endoftext|>' \
  "$out/cleaned.jsonl"

step "4/6 mix the sources ($weights of the tokens) into token shards (vklm data mix)"
rm -rf "$out/shards"
"$VKLM" data mix -t "$out/tokenizer.json" -o "$out/shards" --by source --weights "$weights" \
  "$out/cleaned.jsonl"

step "5/6 pretrain $model for $steps steps on the GPU (vklm train)"
"$VKLM" train --train "$out/shards" --model "$model" -b 8 -T 64 --steps "$steps" --lr 3e-3 \
  --warmup 20 --val-every 25 --ckpt-every 100 --out "$out/run" --force --log-every 10 2>&1 |
  tee "$out/train.log"
cp "$out/tokenizer.json" "$out/run/tokenizer.json"

step "6/6 generate (vklm generate)"
"$VKLM" generate -m "$out/run" -p "$prompt" -n 60 --temp 0.8 --top-k 40 --seed 1
echo

# -- eval (vklm eval): a few seconds on the built-in tasks; figures go into the summary --------
step "eval: held-out perplexity, a multiple-choice task, a bias probe (vklm eval)"
"$VKLM" eval -m "$out/run" "shards:$out/shards" antonyms crows-mini --stride 64 \
  --json "$out/eval.json" --html "$out/eval.html" --quiet | tee "$out/eval.txt"
evalfig=$(awk '$1=="shards" && $3=="bits_per_byte" {b=$4} $1=="antonyms" && $3=="acc" {a=$4}
  $1=="crows-mini" && $3=="pct_stereotype" {c=$4}
  END {printf "validation shards %s bits/byte, antonyms acc %s (chance 0.25), crows-mini stereotyped %s", b, a, c}' "$out/eval.txt")
# -- end of eval ---------------------------------------------------------------------------------

# -- alignment (docs/alignment.md): SFT, ranking by a simulated rater, reward model, DPO ---------
align=scripts/align
step "align 1/5: supervised fine-tuning on $align/instructions.jsonl (vklm sft)"
"$VKLM" sft --data "$align/instructions.jsonl" --init "$out/run" --out "$out/sft" --force \
  --steps "$sft_steps" --lr 3e-3 --warmup 10 -b 8 -T 32 --val-fraction 0 --log-every 25 \
  --eval-answers "$align/questions.jsonl" --answer-tokens 8
step "align 2/5: 4 answers to each question, ranked by a simulated rater (vklm rank --simulate answer)"
rm -f "$out/rankings.jsonl"
"$VKLM" rank -m "$out/sft" --prompts "$align/questions.jsonl" -o "$out/rankings.jsonl" -k 4 \
  --temp 1.0 --max-tokens 8 --seed 1 --simulate answer
step "align 3/5: a reward model from the rankings (vklm reward train)"
rm_len=(--epochs 4); [ "$rm_steps" -gt 0 ] && rm_len=(--steps "$rm_steps")
"$VKLM" reward train -m "$out/sft" --data "$out/rankings.jsonl" --out "$out/reward" -b 16 -T 32 \
  "${rm_len[@]}" --lr 1e-3 --val-fraction 0.2 --norm-prompts 32 --norm-k 2 --norm-tokens 8 \
  --bad-rows skip
step "align 4/5: RLHF: PPO against the reward model, KL-penalised to the SFT model (vklm ppo)"
"$VKLM" ppo -m "$out/sft" --reward "$out/reward" --prompts "$align/questions.jsonl" --out "$out/ppo" \
  --iters "$ppo_iters" -b 8 -k 2 --max-tokens 8 -T 32 --lr 1e-4 --value-lr 1e-4 --bad-rows skip
step "align 5/5: direct preference optimisation against the SFT model, the alternative (vklm dpo)"
"$VKLM" dpo -m "$out/sft" --data "$out/rankings.jsonl" --out "$out/dpo" -b 4 -T 32 \
  --steps "$dpo_steps" --lr 1e-3 --beta 0.1 --val-fraction 0.2 --bad-rows skip
step "eval of the aligned models: antonyms and crows-mini (vklm eval)"
for m in sft ppo dpo; do
  "$VKLM" eval -m "$out/$m" antonyms crows-mini --json "$out/$m/eval.json" --quiet | tee "$out/$m/eval.txt"
done
step "chat: the PPO model answers a question (vklm generate)"
"$VKLM" generate -m "$out/ppo" -p $'Question: What color is the sky?\nAnswer:' -n 6 --temp 0
echo
step "the life-cycle report (vklm report)"
"$VKLM" report "$out" --prompts "$align/questions.jsonl" -n 8
evalm() { awk '$1=="antonyms" && $3=="acc" {a=$4} $1=="crows-mini" && $3=="pct_stereotype" {c=$4}
  END {printf "antonyms acc %s, crows-mini stereotyped %s", a, c}' "$1"; }
num() { grep -o "\"$2\": [-0-9.enul]*" "$1" | head -1 | sed 's/.*: //'; }
ppo_r() { grep -o "\"$2\": {[^}]*}" "$1" | grep -o '"reward_mean": [-0-9.e]*' | sed 's/.*: //'; }
ppo_k() { grep -o '"last": {[^}]*}' "$1" | grep -o '"kl": [-0-9.e]*' | sed 's/.*: //'; }
dpo_m() { grep -o "\"$2\": {[^}]*}" "$1" | grep -o '"margin": [-0-9.e]*' | sed 's/.*: //'; }
alignfig="SFT exact match $(num "$out/sft/sft_eval.json" exact_match_before) -> $(num "$out/sft/sft_eval.json" exact_match_after) of $(num "$out/sft/sft_eval.json" items); reward model held-out pairwise accuracy $(num "$out/reward/reward.json" heldout_accuracy); PPO mean reward $(ppo_r "$out/ppo/ppo.json" first) -> $(ppo_r "$out/ppo/ppo.json" last), KL $(ppo_k "$out/ppo/ppo.json"); DPO held-out margin $(dpo_m "$out/dpo/dpo.json" heldout_before) -> $(dpo_m "$out/dpo/dpo.json" heldout_after), KL $(num "$out/dpo/dpo.json" kl_sampled) nats"
# -- end of alignment ------------------------------------------------------------------------------

t1=$(date +%s)
val=$(grep -o '"val_loss":[0-9.]*' "$out/run/metrics.jsonl" | sed 's/.*://' | sed -n '1p;$p' | tr '\n' ' ')
cat <<EOF

== done in $((t1 - t0)) s ==
  corpus, cleaned:   $out/cleaned.jsonl (report: $out/cleaned.jsonl.stats.json)
  tokenizer:         $out/tokenizer.json
  token shards:      $out/shards/ (the mixture by source: mixture.json, mixture.png)
  model checkpoint:  $out/run/checkpoint.bin
  loss plot:         $out/run/loss.png
  metrics log:       $out/run/metrics.jsonl (validation loss first and last: $val)
  eval:              $out/eval.txt, eval.json, eval.html ($evalfig)
  aligned models:    $out/sft (SFT), $out/reward (reward model), $out/ppo (PPO), $out/dpo (DPO), rankings in
                     $out/rankings.jsonl; loss plots beside each
  report:            $out/report.html (every stage's figures and plots; the base, SFT, PPO and
                     DPO models' answers to the same questions side by side)
  alignment:         $alignfig
  eval, SFT model:   $(evalm "$out/sft/eval.txt")
  eval, PPO model:   $(evalm "$out/ppo/eval.txt")
  eval, DPO model:   $(evalm "$out/dpo/eval.txt")
  generate more:     $VKLM generate -m $out/run -p "Your prompt" -n 100
  ask the PPO model: $VKLM generate -m $out/ppo -p "Your prompt" -n 20
  rank by hand:      $VKLM rank -m $out/sft --prompts $align/questions.jsonl -o my-rankings.jsonl [--web]
  your own text:     scripts/quickstart.sh --data FILE_OR_DIR [--steps N] [--out DIR]
EOF
