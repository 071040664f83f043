"""Share of passages that still carry page furniture, before and after index/cleaning.py.

    python bench/boilerplate.py FOLDER [FOLDER...]

"Before" chunks each article's text as read (no cleaning); "after" chunks it as `load_file` makes
it. Both use the project's chunker (`chunk_document`, default parameters), no embedding. A passage
counts as boilerplate when ONE of the regexes in `RULE` matches anywhere in it. The rule is written
from what news pages carry in general (datelines, bylines and sign-offs, calls to action, share
buttons, ads, cookie notices, photo credits), independently of the cleaner's line rules: it also
matches furniture inside a paragraph, which the cleaner never cuts. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

from index import chunk_document, iter_files, load_file
from index.loading import _decode, to_document  # noqa: F401  (the "before" text is decoded the same way)
from index.types import Document

RULE = {
    "dateline": r"(?:^|\n)\s*date \d{4}-\d\d-\d\d\b|(?:^|\n)[^\n]{0,40}\b(?:CNN|\(Reuters\)|\(AP\)|\(AFP\))"
                r"(?: Business)?\s*[—–-]",
    "byline": r"(?:^|\n)\s*(?:By|Written by|Reporting by|Editing by) [A-Z][a-z]+ [A-Z]|(?:^|\n)\s*Contributing:"
              r"|(?:^|\n)\s*[-–—−‒]+\s*[A-Z][a-z]+ [A-Z][\w'-]+\s*(?:\n|$)",
    "call to action": r"(?i)\bread more\b|\bclick here\b|\bsign up for\b|\bsubscribe (?:to|now|for)\b"
                      r"|\bfollow (?:us|him|her|them|[A-Z]\w+ [A-Z]\w+) on\b|\bshare (?:this|on (?:facebook|twitter|x))\b"
                      r"|\bplay (?:the|our) [^.\n]{0,40}(?:crossword|puzzle|quick cross)",
    "advertisement": r"(?i)(?:^|\n)\s*advertisement\s*(?:\n|$)",
    "cookies": r"(?i)\bcookies?\b[^.\n]{0,80}\b(?:accept|consent|policy)\b",
    "photo credit": r"Getty Images|\bAP Photo\b|/AP\b|/AFP\b|/Reuters\b|Shutterstock|iStockphoto|\(Image credit",
    "contact": r"(?i)\b(?:reach|contact|email)\b[^.\n]{0,60}@[\w-]+\.\w+",
}
PATTERNS = {name: re.compile(p) for name, p in RULE.items()}


def raw_document(path: Path) -> Document:
    """The article as `load_file` read it before cleaning: decoded text, nothing dropped."""
    text = _decode(path.read_bytes(), lambda reason: ValueError(reason))
    return Document("raw", str(path), "", None, text, "")


def count(docs) -> tuple[int, int, Counter]:
    passages = hits = 0
    kinds: Counter = Counter()
    for doc in docs:
        for chunk in chunk_document(doc):
            passages += 1
            found = [name for name, p in PATTERNS.items() if p.search(chunk.text)]
            hits += bool(found)
            kinds.update(found)
    return passages, hits, kinds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="+")
    args = ap.parse_args()
    for folder in args.folders:
        files = [f for f in iter_files([folder]) if f.suffix == ".txt"]
        before = count(raw_document(f) for f in files)
        after = count(load_file(f) for f in files)
        print(f"{folder}: {len(files)} articles")
        for label, (passages, hits, kinds) in (("before", before), ("after", after)):
            detail = ", ".join(f"{k} {v}" for k, v in kinds.most_common())
            print(f"  {label:6} {hits:6d} of {passages:6d} passages ({hits / passages:6.2%}) with boilerplate"
                  f"{': ' + detail if detail else ''}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
