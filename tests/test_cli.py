"""The vklm program as a user runs it: `vklm devices` (table and --json), `vklm bench ops --json`
(real, positive figures), and clear failures for bad flags and bad device choices.
Usage: test_cli.py path/to/vklm"""
import json
import subprocess
import sys

vklm = sys.argv[1]
failures = 0
checks = 0


def check(ok, what):
    global failures, checks
    checks += 1
    print(("  ok   " if ok else "  FAIL ") + what)
    if not ok:
        failures += 1


def run(*args, timeout=600):
    return subprocess.run([vklm, *args], capture_output=True, text=True, timeout=timeout)


r = run("devices")
check(r.returncode == 0 and "device 0:" in r.stdout and "subgroup" in r.stdout, "vklm devices prints a table")
r = run("devices", "--json")
devs = json.loads(r.stdout)
check(r.returncode == 0 and len(devs) >= 1, f"vklm devices --json lists {len(devs)} device(s)")
d = devs[0]
for key in ("name", "vendor", "driver", "api_version", "max_shared_memory", "subgroup_size",
            "subgroup_ops", "fp16_arithmetic", "storage_16bit", "cooperative_matrix",
            "timestamps", "max_storage_buffer_range", "heaps", "unified_memory"):
    check(key in d, f"device record has '{key}'")
check(sum(1 for x in devs if x["default"]) == 1, "exactly one device is marked default")
r = run("devices", "--json", "--limits", "baseline")
b = json.loads(r.stdout)[0]
check(b["max_shared_memory"] <= 16384 and b["max_workgroup_invocations"] <= 128 and b["baseline_limits"],
      "--limits baseline clamps the record to the spec minimums")

r = run("bench", "ops", "--json", "--seconds", "0.01", "--tokens", "4", "--no-naive")
check(r.returncode == 0, "vklm bench ops --json runs" + ("" if r.returncode == 0 else ": " + r.stderr[-500:]))
if r.returncode == 0:
    res = json.loads(r.stdout)
    mm = res["matmul"]
    check(len(mm) >= 5 and all(x["gflops_f32"] > 0 and x["gflops_f16_storage"] > 0 for x in mm),
          "bench reports positive GFLOP/s for %d matmul shapes (fp32 %s)" %
          (len(mm), ", ".join("%.1f" % x["gflops_f32"] for x in mm)))
    check(res["elementwise"]["gb_per_s"] > 0, "bench reports elementwise GB/s: %.1f" % res["elementwise"]["gb_per_s"])

r = run("bench", "ops", "--frobnicate")
check(r.returncode == 2 and "unknown flag" in r.stderr, "an unknown flag exits 2 with a message")
r = run("devices", "--device", "no-such-gpu-anywhere")
check(r.returncode == 0, "devices with an unmatched --device still lists (nothing is chosen)")
r = run("bench", "ops", "--device", "no-such-gpu-anywhere")
check(r.returncode == 1 and "no-such-gpu-anywhere" in r.stderr, "an unmatched --device is a clear error: " + r.stderr.strip()[:120])
r = run("nonsense")
check(r.returncode == 2, "an unknown command exits 2")

print(f"test_cli: {checks - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
