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
so that each change is measured on its own; and query rewriting (`rewritten`: the question's
keywords, pseudo-relevance feedback, Rocchio, and with `--hyde` the chat model's guess at an
answering sentence) and, with `--sentence-vectors CACHE`, dense search over every sentence instead of
every passage (`by_sentence`), none of which the assistant uses. With `--news-corpus` (the unpacked archive) the news
questions whose answer an article states in a passage about the question are scored apart as
`news-findable` (`findable`). Prints tables; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import fields, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from index import Passage, Store, default_embedder, split_sentences  # noqa: E402
from index.keyword import tokenize  # noqa: E402
from qa import matching  # noqa: E402
from qa.evaluation import Question, load_questions  # noqa: E402
from qa.retrieval import (BASELINE, DEFAULT, _sentences, collapse_duplicates, fuse, hit_at,  # noqa: E402
                          retrieve, standalone_query)

EVAL = ROOT.parent / "shared" / "eval"
KS = (4, 6, 10, 20)
FINDABLE = 0.3  # share of a question's weighted terms around the answer in its article (`findable`)
Search = Callable[[Store, str, int], list[Passage]]


def methods() -> dict[str, Search]:
    found: dict[str, Search] = {
        "dense": lambda store, query, k: store.search(query, k),
        "bm25": lambda store, query, k: store.keyword_search(query, k),
        "baseline": lambda store, query, k: retrieve(store, query, k, recipe=BASELINE),
        "fused": lambda store, query, k: retrieve(store, query, k),
    }
    for candidates in (20, 50, 100):
        if candidates != DEFAULT.candidates:
            wider = replace(DEFAULT, candidates=candidates)
            found[f"candidates={candidates}"] = lambda store, query, k, recipe=wider: retrieve(store, query, k,
                                                                                            recipe=recipe)
    everything = replace(DEFAULT, **{f.name: True for f in fields(DEFAULT) if isinstance(getattr(DEFAULT, f.name), bool)})
    found["all"] = lambda store, query, k: retrieve(store, query, k, recipe=everything)
    for f in fields(DEFAULT):
        value = getattr(DEFAULT, f.name)
        if isinstance(value, bool):
            flipped = replace(DEFAULT, **{f.name: not value})
            found[f"{'-' if value else '+'}{f.name}"] = (
                lambda store, query, k, recipe=flipped: retrieve(store, query, k, recipe=recipe))
    found.update(rewritten())
    return found


def default_rankings(store: Store, query: str) -> list[list[Passage]]:
    """The two rankings the assistant fuses by default: dense, and BM25 with the index's spellings of names."""
    return [store.search(query, DEFAULT.candidates),
            store.keyword_search(query, DEFAULT.candidates, fuzzy_names=True)]


def rewritten(writer: Callable[[str], str] | None = None) -> dict[str, Search]:
    """Query rewriting, each as one more ranking fused with the default two (dense, BM25 with names):
    `rewrite:keywords` a dense search for the question's words without its stop words ("which", "of");
    `rewrite:expand` BM25 with the question and the 8 words that weigh most (count × idf) in the first
    3 passages found (pseudo-relevance feedback, as RM3); `rewrite:rocchio` a dense search with the
    question's vector moved toward the mean of the first 3 passages'; with `writer` (the chat model),
    `rewrite:hyde` a dense search for a sentence the model writes as an answering article might (HyDE)."""

    def keywords(store: Store, query: str, top: list[Passage]) -> list[Passage]:
        words = [w for w in query.split() if matching.fold(w).strip("?,.'’\"“”") not in matching.STOP_WORDS]
        return store.search(" ".join(words), DEFAULT.candidates)

    def expand(store: Store, query: str, top: list[Passage]) -> list[Passage]:
        asked = set(store.query_terms(query, True))
        counts = Counter(t for p in top for t in tokenize([p.text])[0])
        idf = store.query_terms(" ".join(counts))
        weight = sorted(((counts[t] * idf[t], t) for t in idf if t not in asked), reverse=True)
        return store.keyword_search(" ".join([query, *(t for _, t in weight[:8])]), DEFAULT.candidates, fuzzy_names=True)

    def rocchio(store: Store, query: str, top: list[Passage]) -> list[Passage]:
        vectors = store.embedder.embed([query, *(p.text for p in top)])
        moved = vectors[0] + vectors[1:].mean(axis=0)
        return store.search_vector(moved / np.linalg.norm(moved), DEFAULT.candidates)

    def hyde(store: Store, query: str, top: list[Passage]) -> list[Passage]:
        return store.search(writer(query), DEFAULT.candidates)

    def fused_with(extra: Callable[[Store, str, list[Passage]], list[Passage]]) -> Search:
        def search(store: Store, query: str, k: int) -> list[Passage]:
            rankings = default_rankings(store, query)
            top = collapse_duplicates(fuse(rankings))[:3]   # the first 3 passages found, for feedback
            return collapse_duplicates(fuse([*rankings, extra(store, query, top)]))[:k]
        return search

    found = {"rewrite:keywords": fused_with(keywords), "rewrite:expand": fused_with(expand),
             "rewrite:rocchio": fused_with(rocchio)}
    if writer:
        found["rewrite:hyde"] = fused_with(hyde)
    return found


class SentenceVectors:
    """Every distinct sentence (4 words or more) of every passage of a store, embedded: a sentence-level
    dense index beside the passage-level one, which the assistant does not have. Building it costs an
    ingest's embedding again (news-2025: 119,673 sentences, 21 min on 2 cores), so the vectors are kept
    in `cache` (one file per index generation and embedder) for the next run."""

    def __init__(self, store: Store, cache: Path):
        import faiss
        from tqdm import tqdm

        ids = [f"{d.doc_id}:{i}" for d in store.documents() for i in range(d.passages)]
        self.store, self.rows = store, {}  # rows: sentence -> the passage ids holding it
        for p in store.passages(ids):
            for sentence in _sentences(p.text):
                sentence = " ".join(sentence.split())
                if len(sentence.split()) >= 4:
                    self.rows.setdefault(sentence, []).append(p.id)
        self.sentences = list(self.rows)
        key = f"{store.index_dir.name}-{store.generation}-{store.embedder_name.replace('/', '_')}-{len(self.sentences)}"
        path = cache / f"sentence-vectors-{key}.npy"
        if path.is_file():
            vectors = np.load(path)
        else:
            batch = 1024
            vectors = np.concatenate([store.embedder.embed(self.sentences[i:i + batch])
                                      for i in tqdm(range(0, len(self.sentences), batch), unit="batch",
                                                    desc=f"embedding {len(self.sentences)} sentences")])
            cache.mkdir(parents=True, exist_ok=True)
            np.save(path, vectors.astype(np.float32))
        self.index = faiss.IndexFlatIP(vectors.shape[1])
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def nearest(self, query: str, depth: int = 200) -> list[tuple[str, float]]:
        """(passage id, cosine of its sentence) for the `depth` sentences nearest `query`, nearest first."""
        vector = np.asarray(self.store.embedder.embed([query]), dtype=np.float32)
        scores, found = self.index.search(vector, depth)
        return [(pid, float(score)) for score, i in zip(scores[0], found[0]) if i >= 0
                for pid in self.rows[self.sentences[i]]]


def by_sentence(vectors: Callable[[Store], SentenceVectors]) -> dict[str, Search]:
    """Matching at the sentence level: `sentences:dense` ranks passages by their nearest sentence alone;
    `+sentences:dense` fuses that ranking with the default two (dense, BM25 with names); `max-sentence`
    ranks by the better of a passage's own cosine and its best sentence's, fused with BM25."""

    def ranking(store: Store, query: str, k: int) -> list[Passage]:
        return store.passages(list(dict.fromkeys(pid for pid, _ in vectors(store).nearest(query)))[:k])

    def fused(store: Store, query: str, k: int) -> list[Passage]:
        rankings = [*default_rankings(store, query), ranking(store, query, DEFAULT.candidates)]
        return collapse_duplicates(fuse(rankings))[:k]

    def best_of(store: Store, query: str, k: int) -> list[Passage]:
        best: dict[str, float] = {}
        for pid, score in [*vectors(store).nearest(query), *((p.id, p.score) for p in store.search(query, 40))]:
            best[pid] = max(best.get(pid, -1.0), score)
        dense = store.passages(sorted(best, key=lambda pid: -best[pid])[:DEFAULT.candidates])
        keyword = store.keyword_search(query, DEFAULT.candidates, fuzzy_names=True)
        return collapse_duplicates(fuse([dense, keyword]))[:k]

    return {"sentences:dense": ranking, "+sentences:dense": fused, "max-sentence": best_of}


class TitleVectors:
    """Each passage's vector moved toward its article's headline, normalize(passage + w * title): the
    headline as a field of the dense search, as embedding "headline. passage" would make it (a
    "contextual chunk header") without embedding the archive again. The assistant does not have it."""

    def __init__(self, store: Store):
        from index import ann

        self.passages = ann.all_vectors(store._vectors)  # noqa: SLF001
        docs = [store._chunks[row].doc_id for row in range(len(store))]  # noqa: SLF001
        titles = {d.doc_id: d.title or "" for d in store.documents()}
        ordered = sorted(titles)
        vectors = np.asarray(store.embedder.embed([titles[d] for d in ordered]), dtype=np.float32)
        vectors[[not titles[d].strip() for d in ordered]] = 0.0   # no headline: the passage alone
        self.titles = vectors[np.searchsorted(ordered, docs)]
        self.store, self.mixed = store, {}

    def ranking(self, query: str, weight: float, k: int) -> list[Passage]:
        if weight not in self.mixed:
            mixed = self.passages + weight * self.titles
            self.mixed[weight] = mixed / np.linalg.norm(mixed, axis=1, keepdims=True)
        scores = self.mixed[weight] @ np.asarray(self.store.embedder.embed([query])[0], dtype=np.float32)
        rows = np.argsort(-scores)[:k]
        return [self.store._passage(int(r), float(scores[r])) for r in rows]  # noqa: SLF001


class _Searching:
    """A store whose dense search is another ranking: `retrieve` run unchanged around it."""

    def __init__(self, store: Store, search: Callable[..., list[Passage]]):
        self._store, self.search = store, search

    def __len__(self) -> int:
        return len(self._store)

    def __getattr__(self, name: str):
        return getattr(self._store, name)


def by_title(vectors: Callable[[Store], TitleVectors],
             weights: tuple[float, ...] = (0.25, 0.5, 1.0)) -> dict[str, Search]:
    """`titled:w`: the assistant's retrieval (`retrieve`, default recipe) with the dense search over the
    passages' vectors moved toward their headline's by w (`TitleVectors`)."""

    def method(weight: float) -> Search:
        def search(store: Store, query: str, k: int) -> list[Passage]:
            def dense(text: str, n: int, filters=None) -> list[Passage]:
                return vectors(store).ranking(text, weight, n)
            return retrieve(_Searching(store, dense), query, k)
        return search

    return {f"titled:{w}": method(w) for w in weights}


def hyde_writer(model: str) -> Callable[[str], str]:
    """The chat model's guess at a sentence of an article answering the question (one generation, ~5 s
    here), remembered per question."""
    from qa.llm import LlamaGenerator

    generator = LlamaGenerator(model or None, progress=False)
    ask = ("Write one sentence that a news article answering this question would contain. "
           "Use the names and words such an article would use. Question: {}")

    @lru_cache(maxsize=None)
    def write(question: str) -> str:
        reply = "".join(generator.generate([{"role": "user", "content": ask.format(question)}], max_tokens=48))
        return reply.strip().split("\n")[0] or question
    return write


class CachedEmbedder:
    """The real embedder, remembering each query's vector: every method embeds the same questions."""

    def __init__(self, embedder):
        self.embedder, self.name, self.dim = embedder, embedder.name, embedder.dim
        self.cache: dict[str, object] = {}

    def embed(self, texts: list[str]):
        import numpy as np

        missing = [t for t in texts if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.embedder.embed(missing)))
        return np.stack([self.cache[t] for t in texts])


def first_hit(found: list[Passage], q: Question) -> float:
    """The rank (from 0) of the first answer-bearing passage of `found`; infinity when none bears it."""
    return next((i for i, passage in enumerate(found) if hit_at([passage], q)), math.inf)


def hits_at(first: dict[str, float], ids: set[str], ks: tuple[int, ...]) -> dict[int, int]:
    """For each k, how many of the questions `ids` have an answer-bearing passage among the first k."""
    return {k: sum(first[i] < k for i in ids if i in first) for k in ks}


def depths(text: str) -> tuple[int, ...]:
    """`--ks`: "4,20,50" -> (4, 20, 50); a ValueError, which argparse reports, for anything else."""
    return tuple(sorted(int(k) for k in text.split(",")))


def query_of(q: Question) -> str:
    return standalone_query(q.question, [(turn, "") for turn in q.conversation[:-1]])


def question_sets(news: Path | None, sample: Path | None) -> list[tuple[str, Path, list[Question]]]:
    """(name, index, answerable questions); the news halves are scored from the news set's results."""
    sets = []
    if news:
        sets.append(("news", news, [q for q in load_questions(EVAL / "news-2025" / "questions.jsonl")]))
    if sample:
        for name in ("dev", "dev-synthesis"):
            sets.append((name, sample, load_questions(EVAL / f"{name}.jsonl")))
        for path in sorted((ROOT / "data" / "eval" / "heldout").glob("*.jsonl")):   # the new questions, A and B
            sets.append((path.stem.replace("new-questions-", "new-"), sample, load_questions(path)))
    return sets


def halves(questions: list[Question]) -> dict[str, set[str]]:
    """The ids of the even and odd questions by position in the file (before dropping unanswerable ones)."""
    return {"news-even": {q.id for q in questions[0::2]}, "news-odd": {q.id for q in questions[1::2]}}


def findable(store: Store, q: Question, corpus: Path, share: float = FINDABLE) -> bool:
    """Whether an article of `corpus` says the answer in a passage about the question: a sentence holding
    an `evidence_any` string whose window (it and its neighbours) holds `share` of the question's terms,
    idf-weighted. The news-2025 `sources` list every article containing the answer's words, often in
    another story ("Peru" in an article on Venezuela); a question without such a window cannot be
    answered from the archive, however good the search."""
    weights = store.query_terms(q.question, True)
    total = sum(weights.values()) or 1.0
    needles = [e.lower() for e in q.evidence_any]
    for name in q.sources:
        path = corpus / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        sentences = [text[a:b] for a, b in split_sentences(text)]
        for i, sentence in enumerate(sentences):
            if any(n in sentence.lower() for n in needles):
                terms = set(tokenize([" ".join(sentences[max(0, i - 1):i + 2])])[0])
                if sum(w for t, w in weights.items() if t in terms) / total >= share:
                    return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--news-index", type=Path, help="an index of news-2025/corpus")
    parser.add_argument("--sample-index", type=Path, help="an index of shared/corpus (the five sample articles)")
    parser.add_argument("--methods", help="comma-separated subset of the methods (default: all)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--news-corpus", type=Path,
                        help="the unpacked news-2025 corpus: also report the questions whose answer an article "
                             "states in a passage about the question (news-findable)")
    parser.add_argument("--hyde", nargs="?", const="", metavar="MODEL",
                        help="also measure rewrite:hyde, the chat model (default: the packaged one) writing the "
                             "query (slow: one generation a question)")
    parser.add_argument("--sentence-vectors", type=Path, metavar="CACHE",
                        help="also measure sentence-level dense search (sentences:dense, +sentences:dense, "
                             "max-sentence), keeping the sentence vectors in this folder (slow the first time: "
                             "an ingest's embedding again)")
    parser.add_argument("--title-vectors", action="store_true",
                        help="also measure the dense search with each passage's vector moved toward its "
                             "headline's (titled:0.25, titled:0.5, titled:1.0)")
    parser.add_argument("--ks", type=depths, default=KS, metavar="K,K,...",
                        help="the k of hit@k, comma-separated (default: 4,6,10,20); a larger k reads "
                             "what any final ranking of that many passages could at best find")
    parser.add_argument("--indexed-only", action="store_true",
                        help="skip questions none of whose sources is in the index (for a partial index)")
    args = parser.parse_args()
    ks = args.ks
    available = methods()
    if args.hyde is not None:
        available.update(rewritten(hyde_writer(args.hyde)))
    # One of each per store (one store per index), built (or read from the cache) when first asked.
    if args.sentence_vectors:
        sentence_vectors = lru_cache(maxsize=None)(lambda store: SentenceVectors(store, args.sentence_vectors))
        available.update(by_sentence(sentence_vectors))
    if args.title_vectors:
        available.update(by_title(lru_cache(maxsize=None)(TitleVectors)))
    chosen = args.methods.split(",") if args.methods else list(available)
    unknown = set(chosen) - set(available)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; there are {sorted(available)}")

    embedder = CachedEmbedder(default_embedder())
    stores: dict[Path, Store] = {}
    hits: dict[str, dict[str, dict[int, int]]] = {}       # set -> method -> k -> questions hit
    sizes: dict[str, int] = {}
    latency: dict[str, list[float]] = {m: [] for m in chosen}
    for set_name, index_dir, every in question_sets(args.news_index, args.sample_index):
        if index_dir not in stores:
            stores[index_dir] = Store.open(index_dir, embedder)
            stores[index_dir].search("warm up", 1)
            stores[index_dir].keyword_search("warm up", 1)
        store = stores[index_dir]
        questions = [q for q in every if q.answerable]
        if args.indexed_only:
            indexed = {Path(d.source).name for d in store.documents()}
            questions = [q for q in questions if indexed & set(q.sources)]
        parts = {set_name: {q.id for q in questions}, **(halves(every) if set_name == "news" else {})}
        if set_name == "news" and args.news_corpus:
            parts["news-findable"] = {q.id for q in questions if findable(store, q, args.news_corpus)}
        for part, ids in parts.items():
            sizes[part] = len(ids & {q.id for q in questions})
        for method in chosen:
            first: dict[str, float] = {}  # question id -> rank of the first answer-bearing passage (inf: none)
            for q in questions:
                if set_name == "news" or not args.news_index:
                    embedder.cache.pop(query_of(q), None)  # the latency includes embedding the query
                started = time.perf_counter()
                found = available[method](store, query_of(q), max(ks))
                if set_name == "news" or not args.news_index:
                    latency[method].append(time.perf_counter() - started)
                first[q.id] = first_hit(found, q)
            for part, ids in parts.items():
                counts = hits_at(first, ids, ks)
                hits.setdefault(part, {})[method] = counts
                print(f"{part:<14} {method:<22} " + "  ".join(f"@{k} {counts[k]:3d}" for k in ks), flush=True)

    print("\nhit" + " / ".join(f"@{k}" for k in ks) + " (questions with an answer-bearing passage among the first k)")
    print(f"{'method':<22}" + "".join(f"{s} (of {n})".rjust(24) for s, n in sizes.items()))
    for method in chosen:
        row = "".join(" / ".join(str(hits[s][method][k]) for k in ks).rjust(24) for s in sizes)
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
