"""Crash safety of the index, in figures: an ingest killed (SIGKILL, from inside) during its save, and
what each kind of damage to an index file gives.

    python bench/crash_save.py [--trials 200]

Part 1: `--trials` kills spread over the save's events (see tests/crashing.py), each on a fresh copy of
an index of made-up articles, the change being one article edited, one deleted, an exact copy and
the five sample articles added. After each kill: does the index load, is it exactly the state before
or after the save, are leftovers gone after the open, does the next ingest complete the change.
Part 2: truncated, zero-byte, bit-flipped and deleted files: what `Store.open` says and does.
Prints tables; asserts nothing. Uses the hashing embedder of the tests: no model is loaded.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from crashing import crash_trials, phase  # noqa: E402
from fakes import HashEmbedder, write_article, write_articles  # noqa: E402
from index import CorruptIndexError, Store, ingest  # noqa: E402


def crash_figures(trials: int, work: Path) -> None:
    articles = write_articles(work / "articles")
    base = work / "base"
    ingest([articles], base, HashEmbedder(), progress=False)
    (articles / "harvest.md").unlink()
    write_article(articles, "pipeline.txt", (articles / "pipeline.txt").read_text() + "\n\nUpdated at noon.")
    shutil.copyfile(articles / "summit.txt", articles / "summit-copy.txt")
    shutil.copytree(ROOT / "data" / "articles", articles / "samples")

    def change(index_dir: Path) -> None:
        ingest([articles], index_dir, HashEmbedder(), prune=True, progress=False)

    started = time.perf_counter()
    run = crash_trials(base, work / "trials", change, HashEmbedder(), trials=trials)
    seconds = time.perf_counter() - started
    n = len(run.outcomes)
    equals = Counter(o.equals if o.equals in ("before", "after") else "neither" for o in run.outcomes)
    print(f"\n## {n} SIGKILLs during a save ({run.events} profile events in the save; {seconds:.0f} s)\n")
    print("| figure | value |\n|---|---|")
    print(f"| child killed by its own SIGKILL | {run.count(lambda o: o.ended == 'killed')}/{n} |")
    print(f"| index loads afterwards | {run.count(lambda o: o.loads)}/{n} |")
    print(f"| equals the state before or after | {equals['before'] + equals['after']}/{n} "
          f"({equals['before']} before, {equals['after']} after) |")
    print(f"| no leftover file after the open | {run.count(lambda o: o.loads and not o.leftovers)}/{n} |")
    print(f"| next ingest completes the change, folder clean | {run.count(lambda o: o.recovered)}/{n} |")
    by_phase: dict[str, Counter] = defaultdict(Counter)
    for o in run.outcomes:
        by_phase[phase(o.label)][o.equals if o.equals in ("before", "after") else "neither"] += 1
    print("\n| kills inside | trials | before | after | neither |\n|---|---|---|---|---|")
    for name, c in sorted(by_phase.items(), key=lambda kv: -sum(kv[1].values())):
        print(f"| {name} | {sum(c.values())} | {c['before']} | {c['after']} | {c['neither']} |")
    bad = [o for o in run.outcomes if not (o.loads and o.equals in ("before", "after") and o.recovered)]
    for o in bad[:10]:
        print(f"FAILED at event {o.at} ({o.label}): {o.ended}, {o.equals}, leftovers {o.leftovers}")


def damage_figures(work: Path) -> None:
    articles = write_articles(work / "articles-2")
    clean = work / "clean"
    ingest([articles], clean, HashEmbedder(), progress=False)
    print("\n## Damaged index files: what `Store.open` gives\n")
    print("| file | damage | result |\n|---|---|---|")
    for pattern in ["manifest.json", "vectors-*.faiss", "passages-*.sqlite"]:
        for how in ["truncated", "zero bytes", "one bit flipped", "a title changed", "deleted"]:
            if how == "a title changed" and pattern != "manifest.json":
                continue
            index_dir = work / "damaged"
            shutil.rmtree(index_dir, ignore_errors=True)
            shutil.copytree(clean, index_dir)
            (path,) = index_dir.glob(pattern)
            data = path.read_bytes()
            if how == "truncated":
                path.write_bytes(data[: len(data) // 2])
            elif how == "zero bytes":
                path.write_bytes(b"")
            elif how == "one bit flipped":
                path.write_bytes(data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 1]) + data[len(data) // 2 + 1:])
            elif how == "a title changed":
                path.write_text(path.read_text().replace('"title": "', '"title": "X', 1))
            else:
                path.unlink()
            try:
                Store.open(index_dir, HashEmbedder())
                result = "LOADED"
            except CorruptIndexError as e:
                result = f"CorruptIndexError: {e}"
            except Exception as e:  # noqa: BLE001 - the table says what it was
                result = f"{type(e).__name__}: {e}"
            print(f"| {path.name} | {how} | {str(result).replace(str(index_dir), '<index>')} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        crash_figures(args.trials, Path(tmp))
        damage_figures(Path(tmp))


if __name__ == "__main__":
    main()
