"""Test of `vklm bench infer` (argv[1]: the vklm binary): tiny runs with --json on small random
models (gpt2-tiny in f32 and q8_0, llama-tiny in q4_0, whose K = 172 MLP projection falls back to
f16) must exit 0 and report positive prefill and decode rates at every requested context, a
positive session memory and weight size, the context list clamped to what fits, and one queue
submission per decode token."""
import json
import os
import subprocess
import sys

VKLM = sys.argv[1]
failures = 0


def check(ok, what):
    global failures
    print(("  ok   " if ok else "  FAIL ") + what, flush=True)
    failures += not ok


def bench(*args, env=None):
    r = subprocess.run([VKLM, "bench", "infer", "--json", "--prefill", "16", "--decode", "4",
                        "--seconds", "0.01", *args], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        return None
    return json.loads(r.stdout)


for model, wtype, ctxs in (("gpt2-tiny", "f32", "0,16,200"), ("gpt2-tiny", "q8_0", "0,8"),
                           ("llama-tiny", "q4_0", "0,24")):
    label = "%s %s" % (model, wtype)
    j = bench("--model", model, "--type", wtype, "--ctx", ctxs, "-c", "48")
    check(j is not None, "%s: exit 0 and JSON" % label)
    if j is None:
        continue
    dec = j["decode"]
    want = [min(int(c), 48 - 1 - 4) for c in ctxs.split(",")]
    check([d["context"] for d in dec] == want,
          "%s: decode contexts %s (asked %s, -c 48)" % (label, [d["context"] for d in dec], ctxs))
    check(j["prefill"]["tok_s"] > 0 and j["prefill"]["tokens"] == 16,
          "%s: prefill 16 tokens at %.1f tok/s" % (label, j["prefill"]["tok_s"]))
    check(all(d["tok_s"] > 0 and d["ms_per_token"] > 0 for d in dec),
          "%s: decode tok/s %s" % (label, ", ".join("%.1f" % d["tok_s"] for d in dec)))
    check(j["peak_memory_bytes"] > 0 and j["session_memory_bytes"] > 0 and j["weight_bytes"] > 0,
          "%s: session memory %d B, weights %d B" % (label, j["session_memory_bytes"],
                                                    j["weight_bytes"]))
    check(j["weight_type"] == wtype and (j["f16_fallback_matrices"] > 0) == (model == "llama-tiny"),
          "%s: weight type %s, %d f16 fallback matrices" % (label, j["weight_type"],
                                                            j["f16_fallback_matrices"]))
# batched decode: aggregate tokens/s for each batch size, the cache sized for the largest
jb = bench("--model", "gpt2-tiny", "--ctx", "0", "--batch", "1,3,8", "--batch-ctx", "5")
check(jb is not None and [b["sequences"] for b in jb["batch"]] == [1, 3, 8]
      and all(b["tok_s"] > 0 and b["ms_per_step"] > 0 and b["context"] == 5 for b in jb["batch"])
      and jb["kv_cache"] in ("f16", "f32"),
      "batched decode figures: %s" % (", ".join("%d seq %.1f tok/s" % (b["sequences"], b["tok_s"])
                                                 for b in jb["batch"]) if jb else "none"))
r = subprocess.run([VKLM, "bench", "infer", "--batch", "0,4"], capture_output=True, text=True)
check(r.returncode == 2 and "--batch" in r.stderr, "bad --batch: exit 2 with a message")
# quantized weights are smaller than f32 ones
j32, j8 = bench("--model", "gpt2-tiny", "--ctx", "0"), bench("--model", "gpt2-tiny", "--ctx", "0",
                                                              "--type", "q8_0")
check(j32 is not None and j8 is not None and j8["weight_bytes"] < j32["weight_bytes"],
      "q8_0 weights smaller than f32")
# one queue submission per decode token, also where nothing is mapped (a discrete GPU's case:
# the token, its row and the sampled id go through host-visible memory, not staged copies)
for staged in ("0", "1"):
    js = bench("--model", "gpt2-tiny", "--ctx", "0,8", env=dict(os.environ, VKLM_STAGING=staged))
    subs = [d["submits_per_token"] for d in js["decode"]] if js else None
    check(subs is not None and all(x == 1 for x in subs),
          "VKLM_STAGING=%s: %s queue submission(s) per decode token (want 1)" % (staged, subs))
r = subprocess.run([VKLM, "bench", "infer", "--type", "q5_k"], capture_output=True, text=True)
check(r.returncode == 2 and "--type" in r.stderr, "bad --type: exit 2 with a message")
print("%d failure(s)" % failures)
sys.exit(1 if failures else 0)
