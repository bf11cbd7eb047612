#!/usr/bin/env python3
"""Aggregate generation tokens/s of `vklm serve` by slot count: for each SLOTS in --slots, a
server with -np SLOTS and as many simultaneous streaming clients, each asking for --tokens new
tokens (`ignore_eos`; the count is the server's usage). Prints a
Markdown table (docs/benchmarks.md keeps one). Standard library only.

    python3 scripts/bench_serve.py build/apps/vklm [-m MODEL] [--slots 1,2,4,8,16] [--tokens 128]

Without -m it makes a model of its own in a temporary directory: a byte-level BPE of 300 ids
and a 4-layer GPT-2 (C 256, 4 heads, 512 positions) trained for 2 steps (weights near random:
the benchmark measures speed, not text)."""
import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time


def make_model(vklm, d):
    text = os.path.join(d, "text.txt")
    with open(text, "w") as f:
        for i in range(400):
            f.write(f"the cat {i} sat on the mat and the dog {i % 7} ran after the bird.\n")
    tok = os.path.join(d, "tokenizer.json")
    subprocess.run([vklm, "tokenizer", "train", "-o", tok, "--vocab-size", "300", "--special",
                    "<|endoftext|>", text], check=True, capture_output=True)
    subprocess.run([vklm, "train", "--text", text, "-t", tok, "--arch", "gpt2", "--layers", "4",
                    "--heads", "4", "--kv-heads", "4", "--embd", "256", "--ffn", "1024", "--ctx",
                    "512", "--steps", "2", "-b", "2", "-T", "32", "--out", d, "--quiet",
                    "--no-plot", "--val-every", "0", "--ckpt-every", "2"], check=True,
                   capture_output=True)
    return d


def stream(port, body, out, i):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    toks, first = 0, None
    for line in r:
        if line.startswith(b"data: {"):
            ev = json.loads(line[6:])
            if first is None:
                first = time.time()
            if ev.get("usage"):
                toks = ev["usage"]["completion_tokens"]
    out[i] = (toks, first)


def run(vklm, model, slots, tokens, ctx):
    p = subprocess.Popen([vklm, "serve", "-m", model, "--port", "0", "-np", str(slots), "-c",
                          str(ctx)], stderr=subprocess.PIPE, text=True)
    port = None
    for line in p.stderr:
        m = re.search(r"listening on http://[^:]+:(\d+)", line)
        if m:
            port = int(m.group(1))
        if "ready:" in line:
            break
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
    try:
        warm = {}
        stream(port, {"prompt": "the cat", "max_tokens": 8, "stream": True}, warm, 0)
        out = {}
        ths = [threading.Thread(target=stream, args=(port, {
            "prompt": f"the dog {i} sat", "max_tokens": tokens, "temperature": 1, "seed": i,
            "ignore_eos": True, "stream": True}, out, i)) for i in range(slots)]
        t0 = time.time()
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        dt = time.time() - t0
        total = sum(v[0] for v in out.values())
        return total, dt
    finally:
        p.terminate()
        p.wait(30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("vklm")
    ap.add_argument("-m", "--model")
    ap.add_argument("--slots", default="1,2,4,8,16")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("-c", "--ctx", type=int, default=256)
    a = ap.parse_args()
    tmp = None
    model = a.model
    if not model:
        tmp = tempfile.mkdtemp(prefix="vklm_bench_serve_")
        model = make_model(a.vklm, tmp)
    try:
        dev = subprocess.run([a.vklm, "devices"], capture_output=True, text=True).stdout
        name = next((ln.strip() for ln in dev.splitlines() if "*" in ln), dev.strip()[:80])
        print(f"device: {name}\nmodel: {model}, {a.tokens} new tokens per client\n")
        print("| slots = clients | tokens | seconds | aggregate tokens/s | per client tokens/s | vs 1 client |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        base = None
        for s in [int(x) for x in a.slots.split(",")]:
            total, dt = run(a.vklm, model, s, a.tokens, a.ctx)
            rate = total / dt
            base = base or rate
            print(f"| {s} | {total} | {dt:.2f} | {rate:.1f} | {rate / s:.1f} | {rate / base:.2f}x |",
                  flush=True)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
