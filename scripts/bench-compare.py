#!/usr/bin/env python3
"""Lines up several benchmark cards (`vklm bench --json`, one JSON file per device) side by side.

Usage: bench-compare.py [--md] CARD.json [CARD.json ...]

One column per card (headed by its device name), one row per figure of the cards (matched by
section and name, in the order the cards first list them), and after every card but the first
its ratio against the first card. A ratio above 1 means better than the first card: for figures
where higher is better (GFLOP/s, tokens/s, MFU) it is value / first, for those where lower is
better (ms, memory, dispatches, submissions) first / value. A figure a card lacks shows "-".
The header rows give each card's driver, Vulkan version, kernel family, capabilities and where
its MFU peak came from. --md prints a Markdown table for docs/benchmarks.md; without it, aligned
columns for the terminal. Exit status 2 for a file that is not a card."""
import argparse
import json
import sys


def load(path):
    try:
        with open(path) as f:
            card = json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit("bench-compare.py: %s: %s" % (path, e))
    if not isinstance(card, dict) or not isinstance(card.get("figures"), list) \
            or not isinstance(card.get("device"), dict):
        raise SystemExit("bench-compare.py: %s: not a benchmark card (vklm bench --json)" % path)
    return card


def fmt(v):
    if v is None:
        return "-"
    if v >= 100 or v == int(v):
        return "%.0f" % v
    return "%.1f" % v if v >= 10 else "%.3g" % v


def ratio(v, first, better):
    if v is None or first is None or v == 0 or first == 0:
        return None
    return first / v if better == "lower" else v / first


def header_rows(cards):
    def caps(c):
        p = c.get("capabilities", {})
        cm = p.get("cooperative_matrix") or []
        return "subgroup %s, %s KiB shared, fp16 %s, 16-bit storage %s, coopmat %s" % (
            p.get("subgroup_size", "?"), int(p.get("shared_memory_bytes", 0)) // 1024,
            "yes" if p.get("fp16_arithmetic") else "no",
            "yes" if p.get("storage_16bit") else "no", len(cm) or "none")
    rows = [
        ("vendor:device", lambda c: "%s:%s" % (c["device"].get("vendor_id", "?"),
                                               c["device"].get("device_id", "?"))),
        ("driver", lambda c: c["device"].get("driver_info") or "%s %s" % (
            c["device"].get("driver", "?"), c["device"].get("driver_version", ""))),
        ("Vulkan", lambda c: c["device"].get("api_version", "?")),
        ("kernels", lambda c: c.get("capabilities", {}).get("kernels", "?")),
        ("capabilities", caps),
        ("GEMM rows M", lambda c: str(c.get("gemm_rows", "?"))),
        ("training", lambda c: "%s B %s x T %s" % (c.get("training", {}).get("model", "?"),
                                                   c.get("training", {}).get("B", "?"),
                                                   c.get("training", {}).get("T", "?"))),
        ("MFU peak", lambda c: "%s GFLOP/s (%s)" % (
            fmt(c.get("mfu_peak", {}).get("gflops")),
            "table" if c.get("mfu_peak", {}).get("known_device") else "measured")),
        ("date", lambda c: c.get("date", "?")),
    ]
    return [(name, [f(c) for c in cards]) for name, f in rows]


def compare(cards):
    """(columns, rows): rows of (label, [cell, ...]) with a ratio cell after every card but the
    first."""
    names = []
    for i, c in enumerate(cards):
        n = c["device"].get("name", "?")
        names.append(n if n not in names else "%s #%d" % (n, i + 1))
    cols = [names[0]]
    for n in names[1:]:
        cols += [n, "ratio"]
    keys, seen = [], set()
    for c in cards:
        for f in c["figures"]:
            k = (f.get("section"), f.get("name"))
            if k not in seen:
                seen.add(k)
                keys.append((k, f.get("unit", ""), f.get("better", "none")))
    rows = []
    for name, vals in header_rows(cards):
        cells = [vals[0]]
        for v in vals[1:]:
            cells += [v, ""]
        rows.append((name, cells))
    for (sec, name), unit, better in keys:
        vals = []
        for c in cards:
            m = [f.get("value") for f in c["figures"] if (f.get("section"), f.get("name")) == (sec, name)]
            vals.append(m[0] if m and isinstance(m[0], (int, float)) else None)
        cells = [fmt(vals[0])]
        for v in vals[1:]:
            r = ratio(v, vals[0], better)
            cells += [fmt(v), "-" if r is None else "%.2fx" % r]
        label = "%s: %s%s" % (sec, name, " (%s)" % unit if unit else "")
        rows.append((label, cells))
    return cols, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cards", nargs="+", metavar="CARD.json")
    ap.add_argument("--md", action="store_true", help="a Markdown table")
    a = ap.parse_args()
    cards = [load(p) for p in a.cards]
    cols, rows = compare(cards)
    if a.md:
        print("| figure | " + " | ".join(cols) + " |")
        print("| --- |" + " ---: |" * len(cols))
        for label, cells in rows:
            print("| " + label + " | " + " | ".join(cells) + " |")
        return
    w0 = max(len(l) for l, _ in rows)
    ws = [max([len(cols[i])] + [len(c[i]) for _, c in rows]) for i in range(len(cols))]
    print(" ".join(["%-*s" % (w0, "figure")] + ["%*s" % (w, c) for w, c in zip(ws, cols)]))
    for label, cells in rows:
        print(" ".join(["%-*s" % (w0, label)] + ["%*s" % (w, c) for w, c in zip(ws, cells)]))


if __name__ == "__main__":
    try:
        main()
    except SystemExit as e:
        if isinstance(e.code, str):  # a message: bad input, exit 2
            sys.stderr.write(e.code + "\n")
            sys.exit(2)
        raise
