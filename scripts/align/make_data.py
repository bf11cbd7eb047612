#!/usr/bin/env python3
"""Writes the quickstart's synthetic instruction set (written for vklm, free to ship):
  instructions.jsonl  SFT examples {"prompt", "completion"}: short questions with one-word answers
  questions.jsonl     the same questions {"prompt", "answer"}, twice each: what `vklm rank`
                      samples answers to (the simulated rater ranks answers holding "answer"
                      first) and what `vklm sft --eval-answers` scores by exact match
Run from anywhere: python3 scripts/align/make_data.py (the files are committed beside it)."""
import json
import os

FACTS = [
    ("What is the opposite of hot?", "cold"), ("What is the opposite of up?", "down"),
    ("What is the opposite of day?", "night"), ("What is the opposite of big?", "small"),
    ("What is the opposite of fast?", "slow"), ("What is the opposite of wet?", "dry"),
    ("What is the opposite of open?", "closed"), ("What is the opposite of old?", "young"),
    ("What color is grass?", "green"), ("What color is the sky?", "blue"),
    ("What color is snow?", "white"), ("What color is coal?", "black"),
    ("What color is a banana?", "yellow"), ("What color is blood?", "red"),
    ("What does a cow say?", "moo"), ("What does a dog say?", "woof"),
    ("What does a cat say?", "meow"), ("What does a duck say?", "quack"),
    ("What number comes after one?", "two"), ("What number comes after two?", "three"),
    ("What number comes after three?", "four"), ("What number comes after four?", "five"),
    ("What number comes after five?", "six"), ("What number comes after six?", "seven"),
    ("Which animal has a trunk?", "elephant"), ("Which animal has stripes?", "zebra"),
    ("Which bird cannot fly?", "penguin"), ("Which animal says hiss?", "snake"),
    ("What do bees make?", "honey"), ("What do cows give?", "milk"),
    ("What falls from clouds?", "rain"), ("What shines at night?", "moon"),
]


def prompt(q):
    return "Question: %s\nAnswer:" % q


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "instructions.jsonl"), "w") as f:
        for q, a in FACTS:
            f.write(json.dumps({"prompt": prompt(q), "completion": " " + a}) + "\n")
    with open(os.path.join(here, "questions.jsonl"), "w") as f:
        for _ in range(2):
            for q, a in FACTS:
                f.write(json.dumps({"prompt": prompt(q), "answer": a}) + "\n")


if __name__ == "__main__":
    main()
