"""The on-disk store: search, round trip, manifest checks, atomic saves and corruption."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from fakes import HashEmbedder
from index import (
    ChunkingParams,
    CorruptIndexError,
    IndexMismatchError,
    IndexNotFoundError,
    KeywordIndex,
    Store,
    chunk_document,
    iter_files,
    load_file,
)
from index.disk import LOCK_FILES, manifest_checksum


def add(store: Store, path: Path) -> str:
    doc = load_file(path)
    chunks = chunk_document(doc, store.chunking)
    store.add_document(doc, chunks, store.embedder.embed([c.text for c in chunks]))
    return doc.doc_id


@pytest.fixture
def store(tmp_path, embedder, articles_dir) -> Store:
    store = Store.create(tmp_path / "index", embedder, ChunkingParams())
    for path in iter_files([articles_dir]):
        add(store, path)
    return store


def data_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in LOCK_FILES)


def generation(number: int) -> list[str]:
    """The files of one saved generation: vectors, passages and the BM25 index."""
    keyword = [f"keyword-{number:06d}.{part}" for part in ("data.npy", "indices.npy", "indptr.npy", "params.json",
                                                           "vocab.json")]
    return sorted([f"passages-{number:06d}.sqlite", f"vectors-{number:06d}.faiss", *keyword])


def test_dense_search_finds_the_article_sharing_the_words(store):
    hits = store.search("Druzhba pipeline oil deliveries to Hungary", k=3)
    assert hits[0].title == "Druzhba pipeline deliveries resume"
    assert hits[0].date == "2024-03-02" and hits[0].source.endswith("pipeline.txt")
    assert hits[0].score == pytest.approx(float(hits[0].score)) and -1.0 <= hits[0].score <= 1.0001
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].text == store.document(hits[0].doc_id).text[hits[0].start:hits[0].end]


def test_keyword_search_ranks_by_bm25_and_skips_passages_without_the_word(store):
    hits = store.keyword_search("wheat harvest", k=10)
    assert hits and all("wheat" in h.text.lower() or "harvest" in h.text.lower() for h in hits)
    assert hits[0].title == "Record wheat harvest in the plains"
    assert store.keyword_search("pipelines", 5)[0].title.startswith("Druzhba")  # stemmed


@pytest.mark.parametrize("query, k", [("", 5), ("   ", 5), ("oil", 0), ("oil", -1), ("zzzqqq unknownword", 5)])
def test_degenerate_queries_give_empty_or_short_lists(store, query, k):
    assert store.keyword_search(query, k) == []
    if not query.strip() or k <= 0:
        assert store.search(query, k) == []


def test_k_larger_than_the_corpus(store):
    assert len(store.search("oil", k=1000)) == len(store)
    assert len({p.id for p in store.search("oil", k=1000)}) == len(store)


def test_empty_store_searches_return_nothing(tmp_path, embedder):
    store = Store.create(tmp_path / "index", embedder)
    assert (store.search("anything"), store.keyword_search("anything"), len(store)) == ([], [], 0)
    store.save()
    reopened = Store.open(tmp_path / "index", embedder)
    assert reopened.search("anything") == [] and reopened.documents() == [] and reopened.generation == 1


def test_round_trip_gives_the_same_results(store, embedder):
    queries = ["Druzhba pipeline", "Belt and Road forum in Beijing", "mayor election turnout", "grain prices"]
    before = {q: store.search(q, 4) for q in queries}
    keyword_before = {q: store.keyword_search(q, 4) for q in queries}
    store.save()
    reopened = Store.open(store.index_dir, embedder)
    assert {q: reopened.search(q, 4) for q in queries} == before
    assert {q: reopened.keyword_search(q, 4) for q in queries} == keyword_before
    assert reopened.documents() == store.documents()
    assert len(reopened) == len(store) and reopened.chunking == store.chunking
    assert (reopened.embedder_name, reopened.dim, reopened.generation) == ("fake-hash-64", 64, 1)
    for info in reopened.documents():
        assert reopened.document(info.doc_id) == store.document(info.doc_id)
    assert data_files(store.index_dir) == sorted(["manifest.json", *generation(1)])


def test_passages_by_id_in_order_unknown_ids_skipped(store):
    hits = store.search("oil", 3)
    ids = [hits[2].id, "nope:0", hits[0].id]
    assert [p.id for p in store.passages(ids)] == [hits[2].id, hits[0].id]
    assert store.passages(ids)[0].text == hits[2].text


def test_manifest_records_what_built_the_index(store):
    store.save()
    manifest = json.loads((store.index_dir / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["embedder"] == {"name": "fake-hash-64", "dim": 64}
    assert manifest["chunking"] == {"max_words": 80, "overlap_words": 20, "min_words": 25}
    assert sorted(manifest["files"]) == generation(1)
    assert manifest["vectors"] == {"kind": "flat"}
    doc = next(iter(manifest["documents"].values()))
    assert set(doc) == {"source", "title", "date", "sha256", "passages", "also_at"}


def test_other_embedder_is_refused(store):
    store.save()
    with pytest.raises(IndexMismatchError, match="fake-hash-64.*--rebuild"):
        Store.open(store.index_dir, HashEmbedder(dim=32, name="other-32"))
    with pytest.raises(IndexMismatchError, match="64 dimensions"):
        Store.open(store.index_dir, HashEmbedder(dim=32))


def test_unknown_format_version_is_refused(store, embedder):
    store.save()
    path = store.index_dir / "manifest.json"
    manifest = {**json.loads(path.read_text()), "format_version": 99}
    path.write_text(json.dumps({**manifest, "checksum": manifest_checksum(manifest)}))  # not damage: a newer index
    with pytest.raises(IndexMismatchError, match="format version 99.*--rebuild"):
        Store.open(store.index_dir, embedder)


def test_no_index_says_how_to_build_one(tmp_path, embedder):
    with pytest.raises(IndexNotFoundError, match="qa ingest"):
        Store.open(tmp_path / "nowhere", embedder)


@pytest.mark.parametrize("damage", ["truncate", "flip a bit", "delete"])
@pytest.mark.parametrize("pattern", ["vectors-*.faiss", "passages-*.sqlite"])
def test_damaged_data_file_is_named(store, embedder, damage, pattern):
    store.save()
    (path,) = store.index_dir.glob(pattern)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip a bit":
        path.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    else:
        path.unlink()
    with pytest.raises(CorruptIndexError, match=f"{path.name}.*moved to .*broken-.*qa ingest"):
        Store.open(store.index_dir, embedder)


@pytest.mark.parametrize("manifest", ["{not json", "[]", '{"format_version": 1}'])
def test_garbled_manifest_is_corrupt(store, embedder, manifest):
    store.save()
    (store.index_dir / "manifest.json").write_text(manifest)
    with pytest.raises(CorruptIndexError, match="manifest.json"):
        Store.open(store.index_dir, embedder)


def test_save_replaces_the_old_generation_and_cleans_leftovers(store, embedder):
    store.save()
    folder = store.index_dir
    for leftover in ["manifest.json.tmp", ".manifest.json.4242.140000000000.tmp", "vectors-000007.faiss", "passages-000007.sqlite-journal",
                     "passages-000007.sqlite.tmp", "keyword-000007.vocab.json"]:
        (folder / leftover).write_bytes(b"left by a crash")
    (folder / "README.txt").write_text("not ours")
    store.save()
    # Past the highest generation on disk, so the crash's files are never mistaken for ours.
    assert store.generation == 8
    assert data_files(folder) == sorted(["README.txt", "manifest.json", *generation(8)])
    assert Store.open(folder, embedder).documents() == store.documents()


def test_crash_before_the_manifest_is_replaced_leaves_the_old_index(store, embedder, monkeypatch):
    store.save()
    before = store.documents()
    store.remove_document(before[0].doc_id)

    def crash(src, dst):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        store.save()
    monkeypatch.undo()
    # The failed save deleted what it had written; the old generation is untouched.
    assert data_files(store.index_dir) == sorted(["manifest.json", *generation(1)])
    reopened = Store.open(store.index_dir, embedder)
    assert reopened.documents() == before and reopened.generation == 1
    reopened.save()
    assert data_files(store.index_dir) == sorted(["manifest.json", *generation(2)])


def test_texts_survive_saves_after_reopening(store, embedder, tmp_path):
    store.save()
    reopened = Store.open(store.index_dir, embedder)
    extra = tmp_path / "extra.txt"
    extra.write_text("Extra article\n\nA brand new article about tulips in spring.")
    new_id = add(reopened, extra)
    reopened.save()
    again = Store.open(store.index_dir, embedder)
    for info in store.documents():
        assert again.document(info.doc_id).text == store.document(info.doc_id).text
    assert "tulips" in again.document(new_id).text


def test_remove_document_drops_its_passages(store):
    info = next(d for d in store.documents() if d.title.startswith("Druzhba"))
    total = len(store)
    store.remove_document(info.doc_id)
    assert len(store) == total - info.passages
    assert all(p.doc_id != info.doc_id for p in store.search("Druzhba pipeline", 100))
    assert all(p.doc_id != info.doc_id for p in store.keyword_search("Druzhba", 100))
    with pytest.raises(KeyError):
        store.remove_document(info.doc_id)
    # The rows left still match their vectors: every passage is its own best match.
    for p in store.search("oil", 100):
        assert store.search(p.text, 1)[0].score == pytest.approx(1.0, abs=1e-5)


def test_duplicate_sources_keep_a_document_alive(store):
    info = store.documents()[0]
    store.record_duplicate(info.doc_id, "/elsewhere/copy.txt")
    assert store.document_for("/elsewhere/copy.txt") == store.document_info(info.doc_id)
    assert store.remove_source(info.source) is False
    moved = store.document_info(info.doc_id)
    assert (moved.source, moved.also_at) == ("/elsewhere/copy.txt", ())
    assert store.search(store.document(info.doc_id).text[:50], 1)[0].source == "/elsewhere/copy.txt"
    assert store.remove_source("/elsewhere/copy.txt") is True
    assert store.document_info(info.doc_id) is None


def test_add_document_checks_its_input(store, articles_dir):
    doc = load_file(articles_dir / "pipeline.txt")
    chunks = chunk_document(doc)
    with pytest.raises(ValueError, match="already"):
        store.add_document(doc, chunks, np.zeros((len(chunks), 64)))
    store.remove_document(doc.doc_id)
    with pytest.raises(ValueError, match="shape"):
        store.add_document(doc, chunks, np.zeros((len(chunks), 3)))
    with pytest.raises(ValueError, match="dimensions"):
        store.search_vector(np.zeros(3), 1)


def test_the_keyword_index_is_saved_and_loaded_not_rebuilt(store, embedder, monkeypatch):
    queries = ["Druzhba pipeline", "wheat harvest", "mayor"]
    before = {q: store.keyword_search(q, 4) for q in queries}
    store.save()

    def no_rebuild(self, texts):
        raise AssertionError("the keyword index was rebuilt instead of loaded")

    monkeypatch.setattr(KeywordIndex, "build", no_rebuild)
    reopened = Store.open(store.index_dir, embedder)
    assert {q: reopened.keyword_search(q, 4) for q in queries} == before


def test_a_save_without_the_keyword_index_builds_it_on_first_use(store, embedder):
    before = store.keyword_search("grain prices", 3)
    store.save(keyword_index=False)
    assert not list(store.index_dir.glob("keyword-*"))
    assert Store.open(store.index_dir, embedder).keyword_search("grain prices", 3) == before


@pytest.mark.parametrize("part", ["vocab.json", "data.npy", "params.json"])
def test_a_damaged_keyword_file_is_named(store, embedder, part):
    store.save()
    (path,) = store.index_dir.glob(f"keyword-*.{part}")
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(CorruptIndexError, match=f"{path.name}.*qa ingest PATH"):
        Store.open(store.index_dir, embedder)
