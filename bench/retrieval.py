"""Retrieval quality and speed without the chat model: hit@k of each search method and variant.

    python bench/retrieval.py --news-index DIR --sample-index DIR [--methods fused,dense] [--json F]

For every answerable question of the news-2025 set (all, and its even and odd halves by position in
the file: tune on one, check on the other) and of the two sample-corpus sets, it retrieves 20
passages with each method and reports hit@4, 6, 10 and 20 (`qa.retrieval.hit_at`: a passage from
a file in `sources` containing an `evidence_any` string), then the search latency p50/p95 per
method on the news questions (query embedding included). A follow-up question is searched as the
assistant would, with the previous turns (their answers unknown here, so left empty).

Methods: `dense` and `bm25` alone, `fused` (what the assistant uses: `qa.retrieval.retrieve` with
the default `Recipe`), `baseline` (the recipe before this work), and for each option of `Recipe`
the default with that one option flipped (`-name` when the default has it on, `+name` when off),
so that each change is measured on its own. Prints tables; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from index import Passage, Store, default_embedder  # noqa: E402
from qa.evaluation import Question, load_questions  # noqa: E402
from qa.retrieval import BASELINE, DEFAULT, hit_at, retrieve, standalone_query  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
KS = (4, 6, 10, 20)
Search = Callable[[Store, str, int], list[Passage]]


def methods() -> dict[str, Search]:
    found: dict[str, Search] = {
        "dense": lambda store, query, k: store.search(query, k),
        "bm25": lambda store, query, k: store.keyword_search(query, k),
        "baseline": lambda store, query, k: retrieve(store, query, k, recipe=BASELINE),
        "fused": lambda store, query, k: retrieve(store, query, k),
    }
    for f in fields(DEFAULT):
        value = getattr(DEFAULT, f.name)
        if isinstance(value, bool):
            flipped = replace(DEFAULT, **{f.name: not value})
            found[f"{'-' if value else '+'}{f.name}"] = (
                lambda store, query, k, recipe=flipped: retrieve(store, query, k, recipe=recipe))
    return found


def query_of(q: Question) -> str:
    return standalone_query(q.question, [(turn, "") for turn in q.conversation[:-1]])


def question_sets(news: Path | None, sample: Path | None) -> list[tuple[str, Path, list[Question]]]:
    sets = []
    if news:
        every = load_questions(EVAL / "news-2025" / "questions.jsonl")
        for name, part in (("news", every), ("news-even", every[0::2]), ("news-odd", every[1::2])):
            sets.append((name, news, [q for q in part if q.answerable]))
    if sample:
        for name in ("dev", "dev-synthesis"):
            sets.append((name, sample, [q for q in load_questions(EVAL / f"{name}.jsonl") if q.answerable]))
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--news-index", type=Path, help="an index of news-2025/corpus")
    parser.add_argument("--sample-index", type=Path, help="an index of shared/corpus (the five sample articles)")
    parser.add_argument("--methods", help="comma-separated subset of the methods (default: all)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    available = methods()
    chosen = args.methods.split(",") if args.methods else list(available)
    unknown = set(chosen) - set(available)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; there are {sorted(available)}")

    embedder = default_embedder()
    stores: dict[Path, Store] = {}
    hits: dict[str, dict[str, dict[int, int]]] = {}       # set -> method -> k -> questions hit
    sizes: dict[str, int] = {}
    latency: dict[str, list[float]] = {m: [] for m in chosen}
    for set_name, index_dir, questions in question_sets(args.news_index, args.sample_index):
        if index_dir not in stores:
            stores[index_dir] = Store.open(index_dir, embedder)
            stores[index_dir].search("warm up", 1)
            stores[index_dir].keyword_search("warm up", 1)
        store = stores[index_dir]
        sizes[set_name] = len(questions)
        for method in chosen:
            counts = dict.fromkeys(KS, 0)
            for q in questions:
                started = time.perf_counter()
                found = available[method](store, query_of(q), max(KS))
                if set_name == "news" or not args.news_index:
                    latency[method].append(time.perf_counter() - started)
                for k in KS:
                    counts[k] += hit_at(found[:k], q)
            hits.setdefault(set_name, {})[method] = counts
            print(f"{set_name:<14} {method:<22} " + "  ".join(f"@{k} {counts[k]:3d}" for k in KS), flush=True)

    print("\nhit@4 / @6 / @10 / @20 (questions with an answer-bearing passage among the first k)")
    print(f"{'method':<22}" + "".join(f"{s} (of {n})".rjust(24) for s, n in sizes.items()))
    for method in chosen:
        row = "".join(" / ".join(str(hits[s][method][k]) for k in KS).rjust(24) for s in sizes)
        print(f"{method:<22}{row}")
    print("\nsearch latency per question, ms (p50 / p95)")
    for method in chosen:
        times = sorted(latency[method])
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        print(f"  {method:<22} {1000 * statistics.median(times):7.1f} / {1000 * p95:7.1f}")
    print("\n" + " ".join(["python", *sys.argv]))
    if args.json:
        args.json.write_text(json.dumps({"sizes": sizes, "hits": hits, "passages": {str(p): len(s) for p, s in stores.items()},
                                         "latency_ms": {m: [round(1000 * t, 2) for t in v] for m, v in latency.items()}},
                                        indent=1))


if __name__ == "__main__":
    main()
