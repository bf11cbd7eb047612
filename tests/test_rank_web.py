"""`vklm rank --web` in headless Chromium (tests/browser_util.py), used as a person would: the
page loads with the prompt and its responses, a ranking typed with the number keys and Enter
lands in the JSONL on disk, Skip and Undo (buttons) and all-bad (the b key) are recorded or taken
back, the last prompt shows the end and the server stops by itself. Rows carry their responses
(two models' answers, as `vklm eval --compare-with` writes them), so no model is needed. A
screenshot is kept (rank_web.png in the working directory). Usage: test_rank_web.py vklm"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_util import Browser  # noqa: E402

vklm = sys.argv[1]
failures = checks = 0


def check(ok, what):
    global failures, checks
    checks += 1
    print(("  ok   " if ok else "  FAIL ") + what, flush=True)
    if not ok:
        failures += 1


def lines(path):
    return [json.loads(l) for l in open(path)] if os.path.exists(path) else []


tmp = tempfile.mkdtemp(prefix="vklm_rankweb_")
proc = None
try:
    text = os.path.join(tmp, "t.txt")
    with open(text, "w") as f:
        f.write("the cat sat on the mat and the dog ran\n" * 20)
    tok = os.path.join(tmp, "tokenizer.json")
    subprocess.run([vklm, "tokenizer", "train", "-o", tok, "--vocab-size", "300", "--special",
                    "<|endoftext|>", text], check=True, capture_output=True, timeout=120)
    prompts = os.path.join(tmp, "prompts.jsonl")
    with open(prompts, "w") as f:
        f.write(json.dumps({"prompt": "Where did the cat sit?", "responses": [
            "On the mat.", "In the hat.", "It ran."], "models": ["a", "b", "c"]}) + "\n")
        f.write(json.dumps({"prompt": "What did the dog do?", "responses": [
            "It ran.", "It sat.", "Nothing."]}) + "\n")
    out = os.path.join(tmp, "ranks.jsonl")
    proc = subprocess.Popen([vklm, "rank", "--prompts", prompts, "-o", out, "-t", tok, "--web",
                             "--port", "0"], stderr=subprocess.PIPE, text=True)
    url = None
    t0 = time.time()
    while url is None and time.time() - t0 < 60:
        line = proc.stderr.readline()
        m = re.search(r"open (http://127\.0\.0\.1:\d+/)", line)
        if m:
            url = m.group(1)
        if not line and proc.poll() is not None:
            break
    check(url is not None, "vklm rank --web serves a page on loopback: %s" % url)
    with Browser() as b:
        b.goto(url)
        b.wait_for("document.querySelectorAll('#list li').length === 3")
        check(b.text("#prompt") == "Where did the cat sit?" and "1/2" in b.text("#progress"),
              "the page shows the first prompt, its 3 responses and the progress")
        for k in ("3", "1"):
            b.press(k)
        order = b.eval("[...document.querySelectorAll('#list li .n')].map(e => e.textContent).join(' ')")
        check(order == "3 1 2", "typing 3 then 1 puts response 3 first, 1 second: %s" % order)
        b.screenshot("rank_web.png")
        b.press("Enter")
        b.wait_for("document.querySelector('#prompt').textContent === 'What did the dog do?'")
        rows = lines(out)
        check(len(rows) == 1 and rows[0]["ranking"] == [2, 0, 1] and rows[0]["models"] == ["a", "b", "c"]
              and rows[0]["rater"] == "human" and not rows[0]["all_bad"],
              "Enter saves the ranking to the JSONL at once: %s" % (rows[0]["ranking"] if rows else None))
        b.click("#undo")
        b.wait_for("document.querySelector('#prompt').textContent === 'Where did the cat sit?'")
        check(len(lines(out)) == 0, "Undo takes the saved ranking back (the file is rewritten)")
        b.press("2")
        b.press("Enter")
        b.wait_for("document.querySelector('#prompt').textContent === 'What did the dog do?'")
        b.click("#skip")
        b.wait_for("!document.querySelector('#finished').hidden")
        rows = lines(out)
        check(len(rows) == 2 and rows[0]["ranking"] == [1, 0, 2] and rows[1]["skipped"],
              "a partial typed order ranks the rest in place; Skip records a skipped prompt")
        check(not b.errors, "no errors in the page's console: %s" % b.errors[:3])
        b.screenshot("rank_web_done.png")
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        pass
    check(proc.returncode == 0, "the server stops by itself once every prompt is ranked")
    # a second server on the same output: everything is done already
    r = subprocess.run([vklm, "rank", "--prompts", prompts, "-o", out, "-t", tok, "--simulate",
                        "length"], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0 and len(lines(out)) == 2, "resuming a finished file ranks nothing more")
    os.remove(out)
    r = subprocess.run([vklm, "rank", "--prompts", prompts, "-o", out, "-t", tok, "--simulate",
                        "length"], capture_output=True, text=True, timeout=60)
    rows = lines(out)
    check(r.returncode == 0 and rows[0]["ranking"] == [2, [0, 1]] and
          rows[0]["rater"] == "simulated:length",
          "the simulated 'length' rater: shorter first, equal lengths tied: %s" % (
              rows[0]["ranking"] if rows else r.stderr))
finally:
    if proc and proc.poll() is None:
        proc.kill()
    shutil.rmtree(tmp, ignore_errors=True)

print("test_rank_web: %d checks, %d failed" % (checks, failures))
sys.exit(1 if failures else 0)
