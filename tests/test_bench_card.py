"""Test of the benchmark card (argv[1]: the vklm binary): `vklm bench --json --quick` on this
machine's device must finish well under a minute with every section present (device,
capabilities, GEMM by path, attention, training, inference, the MFU peak and where it came from,
peak memory) and every figure positive, its figures consistent with one another (the measured
MFU peak is the best fp32 GEMM of the card; MFU = FLOPs/token x tokens/s / peak; one queue
submission per decode token); `vklm bench all --md` prints Markdown tables and writes the same
card with --json-file; bad flags exit 2 with a message; scripts/bench-compare.py on the same card
twice gives a ratio of 1 for every figure; scripts/bench_infer_torch.py (PyTorch on the CPU,
gpt2-tiny) prints a positive vklm / torch decode ratio and its cached model matches
reference_model."""
import json
import os
import subprocess
import sys
import tempfile
import time

VKLM = sys.argv[1]
SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts")
failures = 0


def check(ok, what):
    global failures
    print(("  ok   " if ok else "  FAIL ") + what, flush=True)
    failures += not ok


def run(*args, **kw):
    return subprocess.run(list(args), capture_output=True, text=True, **kw)


tmp = tempfile.mkdtemp(prefix="vklm-card-")
card_path = os.path.join(tmp, "card.json")

# ---- the card as JSON --------------------------------------------------------------------------
t0 = time.time()
r = run(VKLM, "bench", "--json", "--quick")
dt = time.time() - t0
check(r.returncode == 0, "vklm bench --json --quick: exit %d in %.1f s" % (r.returncode, dt))
if r.returncode != 0:
    print(r.stdout[-2000:], r.stderr[-2000:])
    print("%d failure(s)" % (failures or 1))
    sys.exit(1)
check(dt < 60, "the card took %.1f s on this device (want well under a minute)" % dt)
card = json.loads(r.stdout)
with open(card_path, "w") as f:
    f.write(r.stdout)
for key in ("device", "capabilities", "gemm", "attention", "training", "inference", "mfu_peak",
            "figures", "peak_memory_bytes"):
    check(key in card, "section %s present" % key)
dev, caps = card["device"], card["capabilities"]
check(all(dev.get(k) for k in ("name", "vendor", "vendor_id", "device_id", "driver",
                               "driver_version", "api_version")),
      "device: %s, %s %s, driver %s %s, Vulkan %s" % (dev.get("name"), dev.get("vendor_id"),
                                                     dev.get("device_id"), dev.get("driver"),
                                                     dev.get("driver_version"),
                                                     dev.get("api_version")))
check(caps["subgroup_size"] > 0 and caps["shared_memory_bytes"] > 0
      and caps["kernels"] in ("cpu", "gpu") and isinstance(caps["cooperative_matrix"], list),
      "capabilities: subgroup %s, shared %s B, fp16 %s, 16-bit storage %s, kernels %s" % (
          caps["subgroup_size"], caps["shared_memory_bytes"], caps["fp16_arithmetic"],
          caps["storage_16bit"], caps["kernels"]))
figs = card["figures"]
bad = [f for f in figs if not (isinstance(f["value"], (int, float)) and f["value"] > 0)]
check(len(figs) > 20 and not bad, "%d figures, all positive%s" % (
    len(figs), "" if not bad else "; not: %s" % [(f["section"], f["name"]) for f in bad]))
sections = {f["section"] for f in figs}
check(sections == {"gemm", "attention", "training", "inference", "memory"},
      "figure sections %s" % sorted(sections))
paths = set()
for g in card["gemm"]:
    paths |= set(g["gflops"])
cpu = dev["type"] == "cpu"
want_paths = {"fp32 tiled", "fp16 storage", "naive"} | ({"fp32 cpu"} if cpu else set())
check(want_paths <= paths, "GEMM paths measured: %s" % sorted(paths))
shapes = [g["shape"] for g in card["gemm"]]
check(any(s.startswith("gpt2") for s in shapes) and any(s.startswith("llama") for s in shapes),
      "GEMM shapes: %s" % ", ".join(shapes))
best = max(v for g in card["gemm"] for p, v in g["gflops"].items() if p.startswith("fp32"))
pk = card["mfu_peak"]
if pk["known_device"]:
    check(pk["source"].startswith("table:"), "MFU peak from the table: %s" % pk["source"])
else:
    check(pk["source"].startswith("measured:") and abs(pk["gflops"] - best) <= 1e-9 * best,
          "MFU peak %.2f GFLOP/s = the best fp32 GEMM (%.2f): %s" % (pk["gflops"], best,
                                                                    pk["source"]))
tr = card["training"]
mfu = tr["flops_per_token"] * tr["tokens_per_s"] / (pk["gflops"] * 1e9)
check(tr["tokens_per_s"] > 0 and abs(tr["mfu"] - mfu) <= 1e-6 * mfu
      and tr["dispatches_per_step"] >= tr["barriers_per_step"] > 0 and tr["submits_per_step"] >= 1,
      "training %s B %d x T %d: %.0f tokens/s, %.1f ms/step, MFU %.2f%%, %d dispatches, %d "
      "barriers, %.1f submissions/step, peak %.1f MiB" % (
          tr["model"], tr["B"], tr["T"], tr["tokens_per_s"], tr["ms_per_step"], 100 * tr["mfu"],
          tr["dispatches_per_step"], tr["barriers_per_step"], tr["submits_per_step"],
          tr["peak_memory_bytes"] / 2**20))
inf = card["inference"]
kvs = [x["kv_cache"] for x in inf["runs"]]
check(kvs == (["f16", "f32"] if caps["storage_16bit"] else ["f32"]),
      "inference KV caches measured: %s" % kvs)
check(all(x["prefill_tok_s"] > 0 and x["decode_tok_s"] > 0 and x["submits_per_token"] == 1
          and x["batch"] and all(b["tok_s"] > 0 for b in x["batch"]) for x in inf["runs"]),
      "prefill / decode / batched tokens/s: %s" % "; ".join(
          "%s %.0f / %.0f / %s" % (x["kv_cache"], x["prefill_tok_s"], x["decode_tok_s"],
                                   ", ".join("%d: %.0f" % (b["sequences"], b["tok_s"])
                                             for b in x["batch"])) for x in inf["runs"]))
check(card["peak_memory_bytes"] >= max(tr["peak_memory_bytes"], inf["peak_memory_bytes"]) > 0,
      "peak device memory %d B" % card["peak_memory_bytes"])
at = card["attention"]
check(at["forward_ms"] > 0 and at["backward_ms"] > 0, "attention B %d T %d: forward %.2f ms, "
      "backward %.2f ms" % (at["B"], at["T"], at["forward_ms"], at["backward_ms"]))

# ---- Markdown, --json-file ------------------------------------------------------------------------
md_json = os.path.join(tmp, "card-md.json")
r = run(VKLM, "bench", "all", "--md", "--quick", "--json-file", md_json)
lines = r.stdout.splitlines()
check(r.returncode == 0 and any(l.startswith("| GEMM GFLOP/s |") for l in lines)
      and any(l.startswith("| --- |") for l in lines)
      and sum(l.startswith("| training |") for l in lines) >= 5
      and any(l.startswith("| inference |") for l in lines) and "**device**" in r.stdout,
      "vklm bench all --md: Markdown tables (%d lines)" % len(lines))
try:
    with open(md_json) as f:
        j = json.load(f)
    check(j["device"]["name"] == dev["name"] and len(j["figures"]) == len(figs),
          "--json-file wrote the card (%d figures)" % len(j["figures"]))
except (OSError, ValueError, KeyError) as e:
    check(False, "--json-file: %s" % e)

# ---- bad usage ----------------------------------------------------------------------------------
for args, word in ((["--json", "--md"], "not both"), (["--seconds", "fast"], "--seconds"),
                   (["--batch", "0"], "--batch"), (["--bogus"], "--bogus"),
                   (["frobnicate"], "unknown benchmark")):
    r = run(VKLM, "bench", *args)
    check(r.returncode == 2 and word in r.stderr and not r.stdout.strip(),
          "vklm bench %s: exit %d, message %r" % (" ".join(args), r.returncode,
                                                  r.stderr.strip().splitlines()[0]
                                                  if r.stderr.strip() else ""))
r = run(VKLM, "bench", "--json", "--train-model", "gpt2-huge")
check(r.returncode == 2 and "gpt2-huge" in r.stderr and not r.stdout,
      "unknown --train-model: exit 2 with a message, before measuring")

# ---- bench-compare.py ---------------------------------------------------------------------------
cmp = os.path.join(SCRIPTS, "bench-compare.py")
r = run(sys.executable, cmp, card_path, card_path)
rows = [l for l in r.stdout.splitlines() if l.split() and l.split()[-1].endswith("x")]
check(r.returncode == 0 and len(rows) == len(figs) and all(l.split()[-1] == "1.00x" for l in rows),
      "bench-compare.py: the same card twice, %d figures, every ratio 1.00x" % len(rows))
r = run(sys.executable, cmp, "--md", card_path, md_json)
check(r.returncode == 0 and r.stdout.startswith("| figure | ") and "| --- |" in r.stdout,
      "bench-compare.py --md: a Markdown table")
bad_card = os.path.join(tmp, "bad.json")
with open(bad_card, "w") as f:
    f.write('{"figures": 3}')
r = run(sys.executable, cmp, card_path, bad_card)
check(r.returncode == 2 and "not a benchmark card" in r.stderr, "bench-compare.py: a non-card: exit 2")

# ---- PyTorch decode ratio ---------------------------------------------------------------------
r = run(sys.executable, os.path.join(SCRIPTS, "bench_infer_torch.py"), "--vklm", VKLM,
        "--device", "cpu", "--model", "gpt2-tiny", "--context", "8", "--decode", "4", "--json")
try:
    j = json.loads(r.stdout)
    check(r.returncode == 0 and j["ratio_decode_tok_s"] > 0 and j["torch"]["tok_s"] > 0
          and j["vklm"]["tok_s"] > 0 and j["torch"]["cache_check_rel_diff"] < 1e-4,
          "bench_infer_torch.py: vklm %.0f, torch %.0f tokens/s, ratio %.3f, cache check %.2g" % (
              j["vklm"]["tok_s"], j["torch"]["tok_s"], j["ratio_decode_tok_s"],
              j["torch"]["cache_check_rel_diff"]))
except (ValueError, KeyError) as e:
    check(False, "bench_infer_torch.py: %s; %s" % (e, r.stderr[-500:]))

print("%d failure(s)" % failures)
sys.exit(1 if failures else 0)
