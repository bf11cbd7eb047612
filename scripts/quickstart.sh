#!/usr/bin/env bash
# The first half of a language model's life on an embedded default, with no network: a corpus,
# cleaning and deduplication, a BPE tokenizer, token shards, pretraining a small GPT-2 on the
# GPU (lavapipe when there is none), and generation from it; then a summary of where things are.
#
# Usage: scripts/quickstart.sh [--data FILE_OR_DIR]... [--out DIR] [--steps N] [--model PRESET]
#                              [--vocab N] [--prompt TEXT]
# Without --data the corpus is Debian's `fortunes` package (English quotations, installed by
# scripts/install-deps.sh), split into documents of 25 fortunes. Needs a built build/apps/vklm.
set -euo pipefail
cd "$(dirname "$0")/.."
VKLM=${VKLM:-build/apps/vklm}
out=quickstart steps=200 model=gpt2-tiny vocab=4096 prompt="The meaning of life is"
data=()
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data+=("$2"); shift 2 ;;
    --out) out=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --vocab) vocab=$2; shift 2 ;;
    --prompt) prompt=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
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
  step "1/6 corpus: Debian's fortunes, 25 fortunes per document"
  rm -rf "$out/corpus" && mkdir -p "$out/corpus"
  for f in "$fortunes"/*; do
    case "$f" in *.dat|*.u8) continue ;; esac
    [ -f "$f" ] && cat "$f" && printf '\n%%\n'
  done | awk -v dir="$out/corpus" -v per=25 '
    /^%$/ { if (buf != "") { n++; text = text buf "\n"; buf = "" }
            if (n >= per) { f = sprintf("%s/fortunes_%04d.txt", dir, d++); printf "%s", text > f; close(f); text = ""; n = 0 }
            next }
    { buf = buf $0 "\n" }
    END { if (text != "") { f = sprintf("%s/fortunes_%04d.txt", dir, d++); printf "%s", text > f; close(f) } }'
  echo "$(ls "$out/corpus" | wc -l) documents, $(du -sh "$out/corpus" | cut -f1)"
  data=("$out/corpus")
  # Fortunes are hard-wrapped verse and quotations: a line end is not a sentence end, so C4's
  # "drop lines without terminal punctuation" would remove most of the text.
  prepare_flags=(--c4-keep-unpunctuated)
else
  step "1/6 corpus: ${data[*]}"
fi

step "2/6 clean, filter and deduplicate (vklm data prepare)"
"$VKLM" data prepare -o "$out/cleaned.jsonl" "${prepare_flags[@]}" "${data[@]}"

step "3/6 train a byte-level BPE tokenizer of $vocab tokens (vklm tokenizer train)"
"$VKLM" tokenizer train -o "$out/tokenizer.json" --vocab-size "$vocab" --special '<|endoftext|>' \
  "$out/cleaned.jsonl"

step "4/6 tokenize into shards (vklm data tokenize)"
rm -rf "$out/shards"
"$VKLM" data tokenize -t "$out/tokenizer.json" -i "$out/cleaned.jsonl" -o "$out/shards"

step "5/6 pretrain $model for $steps steps on the GPU (vklm train)"
"$VKLM" train --train "$out/shards" --model "$model" -b 8 -T 64 --steps "$steps" --lr 3e-3 \
  --warmup 20 --val-every 25 --ckpt-every 100 --out "$out/run" --force --log-every 10 2>&1 |
  tee "$out/train.log"
cp "$out/tokenizer.json" "$out/run/tokenizer.json"

step "6/6 generate (vklm generate)"
"$VKLM" generate -m "$out/run" -p "$prompt" -n 60 --temp 0.8 --top-k 40 --seed 1
echo

t1=$(date +%s)
val=$(grep -o '"val_loss":[0-9.]*' "$out/run/metrics.jsonl" | sed 's/.*://' | sed -n '1p;$p' | tr '\n' ' ')
cat <<EOF

== done in $((t1 - t0)) s ==
  corpus, cleaned:   $out/cleaned.jsonl (report: $out/cleaned.jsonl.stats.json)
  tokenizer:         $out/tokenizer.json
  token shards:      $out/shards/
  model checkpoint:  $out/run/checkpoint.bin
  loss plot:         $out/run/loss.png
  metrics log:       $out/run/metrics.jsonl (validation loss first and last: $val)
  generate more:     $VKLM generate -m $out/run -p "Your prompt" -n 100
  your own text:     scripts/quickstart.sh --data FILE_OR_DIR [--steps N] [--out DIR]
EOF
