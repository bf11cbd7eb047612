"""Shared by the `vklm serve` tests (not a test itself): a tiny trained model, cached in the build
tree so that the serve tests train it once (a file lock keeps parallel ctest runs apart), and a
running server on a free loopback port that is stopped (SIGTERM, then SIGKILL) however the test
ends."""
import fcntl
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

ANIMALS = ["cat", "dog", "bird", "fox", "cow", "owl"]


def tiny_model(vklm):
    """A directory with checkpoint.bin + tokenizer.json: gpt2-tiny with 4096 positions, trained
    briefly on windows of 32 tokens of a small text (greedy replies are words of it; long replies
    run on, for tests that stop them). Trained again when the binary is newer."""
    build = os.path.dirname(os.path.dirname(os.path.abspath(vklm)))
    out = os.path.join(build, "serve-test-model")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, ".lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        ckpt = os.path.join(out, "checkpoint.bin")
        recipe = os.path.join(out, "recipe.txt")
        train = ["--model", "gpt2-tiny", "--ctx", "4096", "--steps", "80", "--lr", "3e-3", "-b", "4",
                 "-T", "32"]
        try:
            with open(recipe) as f:
                same = f.read() == " ".join(train)
        except OSError:
            same = False
        if same and os.path.exists(ckpt) and os.path.getmtime(ckpt) >= os.path.getmtime(vklm):
            return out
        for f in os.listdir(out):  # a stale model from an older binary: train anew
            if f.endswith((".bin", ".jsonl", ".json", ".log")):
                os.remove(os.path.join(out, f))
        text = os.path.join(out, "text.txt")
        lines = []
        for i in range(300):
            a, b = ANIMALS[i % 6], ANIMALS[(i * 5 + 1) % 6]
            lines.append(f"the {a} sat with the {b} and the {a} was happy number {i % 17}. "
                         f"caf\u00e9 \u00fcber na\u00efve \u65e5\u672c {i % 5}")
        with open(text, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        tok = os.path.join(out, "tokenizer.json")
        subprocess.run([vklm, "tokenizer", "train", "-o", tok, "--vocab-size", "300",
                        "--special", "<|endoftext|>", text], check=True, capture_output=True)
        subprocess.run([vklm, "train", "--text", text, "-t", tok, *train, "--out", out,
                        "--quiet", "--no-plot", "--val-every", "0", "--ckpt-every", "80"],
                       check=True, capture_output=True)
        with open(recipe, "w") as f:
            f.write(" ".join(train))
        return out


class Server:
    """`vklm serve -m MODEL --port 0 ...` on 127.0.0.1; .url, .port, .proc, .log()."""

    def __init__(self, vklm, model, *args, ready=True, timeout=120):
        self.logpath = os.path.join(model, f"serve-{os.getpid()}-{time.monotonic_ns()}.log")
        self.logf = open(self.logpath, "wb")
        self.proc = subprocess.Popen([vklm, "serve", "-m", model, "--port", "0", *args],
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        self.port = None
        t0 = time.time()
        while time.time() - t0 < timeout:
            log = self.log()
            m = re.search(r"listening on http://[^:]+:(\d+)", log)
            if m and not self.port:
                self.port = int(m.group(1))
                self.url = f"http://127.0.0.1:{self.port}"
            if self.proc.poll() is not None:
                raise RuntimeError("vklm serve exited: " + log[-2000:])
            if self.port and (not ready or "ready:" in log):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("vklm serve did not start: " + self.log()[-2000:])

    def log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stops the server; returns its exit code (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.logf.close()
                return None
        self.logf.close()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, etype, *exc):
        self.stop()
        if etype is None:  # the log is kept when the test failed
            os.remove(self.logpath)

    def get(self, path, headers=None, timeout=30):
        req = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def post(self, path, body, headers=None, timeout=60):
        data = body if isinstance(body, bytes) else body.encode()
        req = urllib.request.Request(self.url + path, data=data,
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()


class Checks:
    def __init__(self):
        self.failures = 0
        self.checks = 0

    def __call__(self, ok, what):
        self.checks += 1
        print(("  ok   " if ok else "  FAIL ") + what, flush=True)
        if not ok:
            self.failures += 1

    def done(self, name):
        print(f"{name}: {self.checks - self.failures} passed, {self.failures} failed")
        sys.exit(1 if self.failures else 0)
