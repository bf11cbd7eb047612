"""`vklm chat` end to end: a byte-level BPE tokenizer with ChatML special tokens and a tiny GPT-2
trained on a small text (as test_generate_cli.py makes them), then a conversation driven through
a real pseudo-terminal as a person would type it (the "> " prompt, a streamed reply, a second
turn, /help, /reset giving the first reply again under greedy decoding, /quit, Ctrl-D), and
piped stdin (no prompt printed), the templates (built-ins and a Jinja file by --chat-template, a
chat_template.jinja or tokenizer_config.json beside the model, templates that raise or do not
parse), --system, and a small context forcing the oldest turns out.
Every wait is bounded. Usage: test_chat_cli.py vklm"""
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

vklm = sys.argv[1]
failures = 0
checks = 0
T_START = time.time()


def check(ok, what):
    global failures, checks
    checks += 1
    print(("  ok   " if ok else "  FAIL ") + what, flush=True)
    if not ok:
        failures += 1


def run(*args, inp=None, timeout=120):
    return subprocess.run([vklm, *args], input=inp, capture_output=True, text=True,
                          errors="replace", timeout=timeout)


PROMPT = re.compile(r"(^|\n)> $")


class Term:
    """vklm chat on a pseudo-terminal (stdin, stdout and stderr all on it)."""

    def __init__(self, args):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                os.execv(vklm, [vklm, *args])
            finally:
                os._exit(127)
        self.buf = ""
        self.status = None

    def read_until(self, pred, timeout):
        """Reads until pred(text read since the mark) holds; returns that text or None."""
        end = time.time() + timeout
        while not pred(self.buf):
            left = end - time.time()
            if left <= 0:
                return None
            r, _, _ = select.select([self.fd], [], [], min(left, 0.5))
            if r:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    return self.buf if pred(self.buf) else None
                if not data:
                    return None
                self.buf += data.decode("utf-8", "replace").replace("\r\n", "\n")
        return self.buf

    def prompt(self, timeout=30):
        """Text up to the next "> " prompt (consumed), or None."""
        got = self.read_until(lambda b: PROMPT.search(b) is not None, timeout)
        if got is None:
            return None
        self.buf = ""
        return got[: PROMPT.search(got).start()]

    def send(self, s):
        try:
            os.write(self.fd, s.encode())
        except OSError:  # the child is gone: the next read reports it
            pass

    def wait(self, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            self.read_until(lambda b: False, 0.2)  # drain
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(st)
                return self.status
        return None

    def close(self):
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
        try:
            os.close(self.fd)
        except OSError:
            pass


def reply_of(text, typed):
    """The reply in a chunk read after typing `typed`: what follows the echoed line."""
    i = text.find(typed + "\n")
    return text[i + len(typed) + 1:] if i >= 0 else text


tmp = tempfile.mkdtemp(prefix="vklm_chat_")
try:
    text = os.path.join(tmp, "text.txt")
    lines = []
    animals = ["cat", "dog", "bird", "fox", "cow", "owl"]
    for i in range(200):
        a, b = animals[i % 6], animals[(i * 5 + 1) % 6]
        lines.append(f"<|im_start|>user\nthe {a}<|im_end|>\n<|im_start|>assistant\n"
                     f"the {a} sat with the {b}.<|im_end|>")
    with open(text, "w") as f:
        f.write("\n".join(lines) + "\n")
    out = os.path.join(tmp, "run")
    os.makedirs(out)
    tok = os.path.join(out, "tokenizer.json")
    r = run("tokenizer", "train", "-o", tok, "--vocab-size", "300", "--special", "<|endoftext|>",
            "--special", "<|im_start|>", "--special", "<|im_end|>", text)
    check(r.returncode == 0 and os.path.exists(tok), "tokenizer trained: " + r.stderr.strip()[-200:])
    r = run("train", "--text", text, "-t", tok, "--model", "gpt2-tiny", "--steps", "80", "--lr",
            "3e-3", "-b", "4", "-T", "32", "--out", out, "--quiet", "--no-plot", "--val-every", "0",
            "--ckpt-every", "80")
    ckpt = os.path.join(out, "checkpoint.bin")
    check(r.returncode == 0 and os.path.exists(ckpt), "tiny model trained: " + r.stderr.strip()[-300:])
    print(f"  (setup {time.time() - T_START:.1f} s)", flush=True)

    # ---- a person at a terminal ----
    t = Term(["chat", "-m", ckpt, "-n", "10", "--temp", "0"])
    try:
        first = t.prompt()
        check(first is not None and "template chatml" in first,
              f"the prompt appears on a terminal, ChatML by default: {(first or t.buf)[-200:]!r}")
        t.send("/help\n")
        got = t.prompt()
        check(got is not None and "/reset" in got and "/quit" in got, "/help lists the commands")
        t.send("the cat\n")
        got = t.prompt()
        r1 = reply_of(got or "", "the cat").strip()
        check(got is not None and len(r1) > 0, f"a reply streams and the prompt returns: {r1!r}")
        t.send("the dog\n")
        got = t.prompt()
        r2 = reply_of(got or "", "the dog").strip()
        check(got is not None and len(r2) > 0, f"a second turn: {r2!r}")
        t.send("/reset\n")
        got = t.prompt()
        check(got is not None and "cleared" in got, "/reset clears the conversation")
        t.send("the cat\n")
        got = t.prompt()
        r3 = reply_of(got or "", "the cat").strip()
        check(got is not None and r3 == r1,
              f"after /reset the first message gets the first reply again (greedy): {r3!r}")
        t.send("/quit\n")
        st = t.wait()
        check(st == 0, f"/quit exits with status 0 (got {st})")
    finally:
        t.close()

    t = Term(["chat", "-m", ckpt, "-n", "4", "--temp", "0.8", "--seed", "3"])
    try:
        ok = t.prompt() is not None
        t.send("the owl\n")
        ok = ok and t.prompt() is not None
        t.send("\x04")  # Ctrl-D at the start of a line: end of input
        st = t.wait()
        check(ok and st == 0, f"sampling run, then Ctrl-D exits with status 0 (got {st})")
    finally:
        t.close()

    # ---- piped stdin: no prompt ----
    r = run("chat", "-m", ckpt, "-n", "10", "--temp", "0", inp="the cat\nthe dog\n")
    outl = r.stdout.strip("\n").split("\n")
    check(r.returncode == 0 and "> " not in r.stdout and "<|im_" not in r.stdout and len(outl) == 2,
          f"piped stdin: two replies, no prompt: {r.stdout!r} {r.stderr.strip()[-200:]}")
    rp = run("chat", "-m", ckpt, "-n", "10", "--temp", "0", inp="the cat\n")
    check(rp.returncode == 0 and rp.stdout.strip() == r1,
          f"the piped reply equals the terminal's: {rp.stdout.strip()!r}")

    # the second turn, answered from the KV cache (only the new text prefilled), equals
    # `vklm generate` over the whole ChatML conversation prefilled at once
    if len(outl) == 2:
        conv = (f"<|im_start|>user\nthe cat<|im_end|>\n<|im_start|>assistant\n{outl[0]}<|im_end|>\n"
                "<|im_start|>user\nthe dog<|im_end|>\n<|im_start|>assistant\n")
        g = run("generate", "-m", ckpt, "-p", conv, "-n", "10", "--temp", "0", "--no-echo",
                "--stop", "<|im_end|>", "--stop", "<|im_start|>")
        check(g.returncode == 0 and g.stdout.strip() == outl[1].strip(),
              f"turn 2 from the cache equals a full prefill: {g.stdout.strip()!r} vs {outl[1]!r}")

    # ---- templates and the system prompt ----
    for k in ("plain", "llama3", "chatml"):
        r = run("chat", "-m", ckpt, "-n", "4", "--temp", "0", "--chat-template", k,
                "--system", "you are a cat", inp="the fox\n")
        # (the tiny tokenizer spells Llama 3's header markers in bytes: that message may not fit)
        check(r.returncode == 0 and f"template {k} (from --chat-template)" in r.stderr
              and (k == "llama3" or len(r.stdout.strip()) > 0),
              f"--chat-template {k} with --system: {r.stderr.strip()[-160:]}")
    r = run("chat", "-m", ckpt, "--chat-template", "jinja", inp="")
    check(r.returncode == 2, "an unknown --chat-template is a usage error")
    r = run("chat", inp="")
    check(r.returncode == 2, "missing -m is a usage error")
    side = os.path.join(tmp, "side")
    os.makedirs(side)
    shutil.copy(ckpt, side)
    shutil.copy(tok, side)
    with open(os.path.join(side, "chat_template.jinja"), "w") as f:
        f.write("{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n"
                "{{ m.content }}<|eot_id|>{% endfor %}")
    r = run("chat", "-m", side, "-n", "4", "--temp", "0", inp="the cow\n")
    check(r.returncode == 0 and "template jinja (from chat_template.jinja)" in r.stderr,
          f"a chat_template.jinja beside the model is used: {r.stderr.strip()[-160:]}")

    side2 = os.path.join(tmp, "side2")
    os.makedirs(side2)
    shutil.copy(ckpt, side2)
    shutil.copy(tok, side2)
    with open(os.path.join(side2, "tokenizer_config.json"), "w") as f:
        f.write('{"chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\\n'
                '{{ m.content }}<|im_end|>\\n{% endfor %}", "model_max_length": 64}')
    r = run("chat", "-m", side2, "-n", "4", "--temp", "0", inp="the cow\n")
    check(r.returncode == 0 and "template jinja (from tokenizer_config.json)" in r.stderr,
          f"a tokenizer_config.json chat_template is used: {r.stderr.strip()[-160:]}")

    # ---- a Jinja file as --chat-template, and templates that raise ----
    chatml = ("{% for m in messages %}{% if 'forbidden' in m.content %}"
              "{{ raise_exception('no forbidden words') }}{% endif %}{% if m.role == 'system' and "
              "'strict' in m.content %}{{ raise_exception('System role not supported') }}{% endif %}"
              "{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}"
              "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    tfile = os.path.join(tmp, "mine.jinja")
    with open(tfile, "w") as f:
        f.write(chatml)
    r = run("chat", "-m", ckpt, "-n", "10", "--temp", "0", "--chat-template", tfile,
            inp="the cat\n")
    check(r.returncode == 0 and "template jinja (from --chat-template)" in r.stderr
          and r.stdout.strip() == r1,
          f"--chat-template FILE executes that template (same reply as ChatML): {r.stdout!r}")
    r = run("chat", "-m", ckpt, "-n", "10", "--temp", "0", "--chat-template", tfile,
            inp="a forbidden cat\nthe cat\n")
    check(r.returncode == 0 and "no forbidden words" in r.stderr and "not sent" in r.stderr
          and r.stdout.strip() == r1,
          f"a message the template raises on is not sent, the next is answered: "
          f"{r.stderr.strip()[-200:]!r} {r.stdout!r}")
    r = run("chat", "-m", ckpt, "--chat-template", tfile, "--system", "be strict", inp="the cat\n")
    check(r.returncode == 1 and "System role not supported" in r.stderr,
          f"a system prompt the template refuses stops chat at start: {r.stderr.strip()[-200:]!r}")
    with open(tfile, "w") as f:
        f.write("{% for m in messages %}{{ m.content | frobnicate }}{% endfor %}")
    r = run("chat", "-m", ckpt, "--chat-template", tfile, inp="the cat\n")
    check(r.returncode == 1 and "line 1:" in r.stderr and "frobnicate" in r.stderr,
          f"a template that does not parse is reported with its line: {r.stderr.strip()[-200:]!r}")

    # ---- a small context: the oldest turns are dropped, the conversation goes on ----
    msgs = "".join(f"the {a} and the {b}\n" for a, b in zip(animals, animals[1:] + animals[:1]))
    r = run("chat", "-m", ckpt, "-c", "40", "-n", "8", "--temp", "0", "--system", "be brief",
            inp=msgs)
    check(r.returncode == 0 and "dropped" in r.stderr and len(r.stdout.strip("\n").split("\n")) == 6,
          f"-c 40: oldest turns dropped, every message answered: {r.stderr.strip()[-240:]}")
    r = run("chat", "-m", ckpt, "-c", "16", "-n", "4", "--temp", "0",
            inp=" ".join(["the cat sat"] * 20) + "\nthe cat\n")
    check(r.returncode == 0 and "too long" in r.stderr and len(r.stdout.strip()) > 0,
          f"a message longer than the context is refused, the next answered: {r.stderr.strip()[-200:]}")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

print(f"test_chat_cli: {checks} checks, {failures} failed ({time.time() - T_START:.1f} s)")
sys.exit(1 if failures else 0)
