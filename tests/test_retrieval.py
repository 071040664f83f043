"""Fusion, duplicate collapsing, follow-up queries, and the sentence-level search of bench/retrieval.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fakes import ARTICLES, HashEmbedder, indexed_store
from index import Passage
from qa.retrieval import collapse_duplicates, fuse, retrieve, standalone_query, topic_shares

ROOT = Path(__file__).resolve().parent.parent


def p(pid: str, text: str = "", doc: str = "a", start: int = 0) -> Passage:
    return Passage(id=pid, doc_id=doc, source=f"{doc}.txt", title="", date=None, text=text,
                   start=start, end=start + len(text))


def test_fusion_rewards_passages_both_searches_found():
    dense = [p("x"), p("both"), p("y")]
    keyword = [p("z"), p("both")]
    fused = fuse([dense, keyword])
    assert fused[0].id == "both"
    assert {f.id for f in fused} == {"x", "y", "z", "both"}


def test_the_same_story_in_two_articles_is_shown_once():
    wire = "Oil deliveries through the Druzhba pipeline resumed on Saturday after a two-day halt."
    kept = collapse_duplicates([
        p("a:0", wire, doc="a"),
        p("b:3", "Reuters: " + wire, doc="b"),
        p("c:1", "Grain prices fell for the third month in a row.", doc="c"),
    ])
    assert [k.id for k in kept] == ["a:0", "c:1"]


def test_overlapping_chunks_of_one_article_are_collapsed():
    text = "word " * 40
    kept = collapse_duplicates([p("a:0", text, start=0), p("a:1", text, start=10), p("a:5", text, start=500)])
    assert [k.id for k in kept] == ["a:0", "a:5"]


def test_follow_up_questions_carry_the_previous_turn():
    history = [("Who is the US ambassador to Hungary?", "David Pressman [1].")]
    query = standalone_query("What did he say about the security concerns?", history)
    assert "David Pressman" in query and "security concerns" in query
    assert standalone_query("What did he say?", []) == "What did he say?"


def test_retrieve_finds_the_article_by_meaning_or_words(store):
    top = retrieve(store, "Which pipeline brings Russian crude to Slovakia?", k=2)
    assert top[0].source.endswith("pipeline.txt")
    assert len({x.id for x in top}) == len(top)


def test_an_article_s_share_of_the_question_is_its_rare_words_more_than_its_common_ones(store):
    """`topic_shares`: how much of what the question asks each article read holds (idf-weighted)."""
    found = retrieve(store, "Which pumping station on the Druzhba pipeline was repaired?", k=4)
    shares = topic_shares(store, "Which pumping station on the Druzhba pipeline was repaired?", found)
    by_file = {p.source.rsplit("/", 1)[-1]: shares[p.doc_id] for p in found}
    assert by_file["pipeline.txt"] == max(by_file.values()) > 0.9
    assert all(share < 0.5 for name, share in by_file.items() if name != "pipeline.txt")
    assert topic_shares(store, "Xylophone zeppelins?", found) == dict.fromkeys(shares, 0.0)  # no term the index holds


def test_the_benchmark_s_sentence_vectors_find_a_passage_by_one_sentence_and_are_kept(tmp_path):
    """bench/retrieval.py --sentence-vectors: sentence-level dense search, measured there (bench/RESULTS.md)."""
    bench = _bench()
    embedder = HashEmbedder()
    store = indexed_store(tmp_path, embedder, ARTICLES)
    vectors = bench.SentenceVectors(store, tmp_path / "cache")
    assert "Engineers repaired a damaged pumping station near the border." in vectors.sentences
    search = bench.by_sentence(lambda s: vectors)
    found = search["sentences:dense"](store, "engineers repaired damaged pumping station", 2)
    assert found[0].source.endswith("pipeline.txt") and "repaired" in found[0].text
    assert len(search["+sentences:dense"](store, "engineers repaired damaged pumping station", 2)) == 2
    before = embedder.embedded
    again = bench.SentenceVectors(store, tmp_path / "cache")  # the vectors come from the cache, not the embedder
    assert again.sentences == vectors.sentences and embedder.embedded == before


def _bench():
    spec = importlib.util.spec_from_file_location("bench_retrieval", ROOT / "bench" / "retrieval.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_the_benchmark_counts_a_question_nothing_answers_as_a_miss_at_any_depth():
    """hit@k at k of 100 and more (`bench/retrieval.py --ks`) reads a pool's ceiling: a question whose
    evidence no passage found bears is a miss there too, not a hit at the rank standing for "none"."""
    from qa.evaluation import Question

    def passage(n: int, text: str) -> Passage:
        return Passage(f"d{n}:0", f"d{n}", f"/a/{n}.txt", "t", None, text, 0, len(text))

    bench = _bench()
    question = Question("q", "Where?", (), ("Peru",), (), ("in Peru",), ("7.txt",), True)
    found = [passage(n, "a city found in Peru" if n == 7 else "nothing here") for n in range(150)]
    assert bench.first_hit(found, question) == 7
    assert bench.first_hit(found[:7] + found[8:], question) == float("inf")
    first = {"hit": 7, "miss": bench.first_hit(found[:7], question)}
    assert bench.hits_at(first, {"hit", "miss"}, (4, 8, 100, 200)) == {4: 0, 8: 1, 100: 1, 200: 1}


def test_a_name_no_kept_passage_holds_brings_in_the_best_passage_that_does():
    """Passages that all name Orban and Putin outrank, in both searches, the one that names the Estonian
    the question asks about; it takes the place of the lowest-ranked passage whose names others hold."""
    from qa.matching import cover_names, names

    def _cover_names(ranked, question, k):   # as `retrieve` calls it
        return cover_names(ranked, ranked[:k], names(question), lambda x: f"{x.title}\n{x.text}", size=k, most=2)

    ranked = [p(f"m{i}", f"Orban met Putin in Beijing, report number {i}.") for i in range(6)]
    ranked += [p("kallas", "Estonian Prime Minister Kaja Kallas called the exchange very unpleasant."),
               p("late", "The Estonian government summoned the ambassador.")]
    question = "Which Estonian leader spoke out against Orban's meeting with Putin?"
    assert [x.id for x in _cover_names(ranked, question, 4)] == ["m0", "m1", "m2", "kallas"]
    assert [x.id for x in _cover_names(ranked, "What did Orban and Putin discuss?", 4)] == ["m0", "m1", "m2", "m3"]
    only = [p("a", "Orban spoke."), p("b", "Putin spoke."), p("c", "Estonian leaders spoke.")]
    assert [x.id for x in _cover_names(only, question, 2)] == ["a", "b"]   # each kept passage is a name's only one
