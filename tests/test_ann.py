"""Approximate search: the switch past the threshold, its recall, round trips and removals on IVF."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from fakes import HashEmbedder
from index import CorruptIndexError, Store, ingest
from index.disk import LOCK_FILES
from index.ann import VectorIndexInfo, all_vectors, ann_threshold, build_ivf, recall_at_k, remove_rows
from index.types import Chunk, Document

WORDS = [f"w{i}" for i in range(300)]


def made_up_document(rng: random.Random, number: int, passages: int = 5) -> tuple[Document, list[Chunk]]:
    """An article of `passages` paragraphs of random words, chunked by paragraph (no sentence splitting)."""
    paragraphs = [" ".join(rng.choices(WORDS, k=12)) for _ in range(passages)]
    text = "\n\n".join(paragraphs)
    doc = Document(doc_id=f"d{number:04d}", source=f"/made/up/{number:04d}.txt", title=f"Article {number}",
                   date=None, text=text, sha256=f"{number:064x}")
    chunks, start = [], 0
    for i, p in enumerate(paragraphs):
        chunks.append(Chunk(doc.doc_id, i, start, start + len(p), p))
        start += len(p) + 2
    return doc, chunks


def fill(store: Store, docs: range, seed: int = 0) -> None:
    for number in docs:
        doc, chunks = made_up_document(random.Random(seed * 100_000 + number), number)
        store.add_document(doc, chunks, store.embedder.embed([c.text for c in chunks]))


@pytest.fixture(autouse=True)
def one_faiss_thread():
    """These indexes are tiny: starting FAISS's threads costs more than they save, badly so on a busy machine."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


def manifest(store: Store) -> dict:
    return json.loads((store.index_dir / "manifest.json").read_text())


@pytest.fixture
def big(tmp_path) -> Store:
    """600 passages of random words, with approximate search from 300 passages on."""
    store = Store.create(tmp_path / "index", HashEmbedder(), ann_threshold=300)
    fill(store, range(120))
    return store


def exact_top(store: Store, query: np.ndarray, k: int) -> np.ndarray:
    scores = all_vectors(store._vectors) @ query  # noqa: SLF001 - brute force as the reference
    return np.sort(scores)[::-1][:k]


def test_search_is_exact_below_the_threshold_and_approximate_past_it(tmp_path):
    store = Store.create(tmp_path / "index", HashEmbedder(), ann_threshold=300)
    fill(store, range(50))                                   # 250 passages
    store.save()
    assert manifest(store)["vectors"] == {"kind": "flat"} and store.vector_index == VectorIndexInfo()
    fill(store, range(50, 70))                               # 350 passages: past the threshold
    assert store.vector_index.kind == "flat", "the switch happens on save"
    store.save()
    info = store.vector_index
    assert (info.kind, info.trained_on) == ("ivf", 350) and 1 < info.nlist < 350
    assert 1 <= info.nprobe <= info.nlist and info.recall_at_10 >= 0.95 and info.tuned_with > 0
    assert manifest(store)["vectors"] == info.as_dict()
    assert type(Store.open(store.index_dir, store.embedder)._vectors).__name__ == "IndexIVFFlat"  # noqa: SLF001


def test_approximate_search_finds_what_exact_search_finds(big):
    big.save()
    assert big.vector_index.kind == "ivf"
    rng = random.Random(7)
    queries = [" ".join(rng.choices(WORDS, k=12)) for _ in range(100)]
    exact = np.stack([exact_top(big, big.embedder.embed([q])[0], 10) for q in queries])
    found = np.full_like(exact, -np.inf)
    for i, q in enumerate(queries):
        scores = [p.score for p in big.search(q, 10)]
        found[i, :len(scores)] = scores
    assert recall_at_k(exact, found) >= 0.9
    # and each passage is still found by its own text, with the row's metadata
    for p in big.passages([f"d{n:04d}:{i}" for n in range(0, 120, 7) for i in range(5)]):
        assert p.id in {h.id for h in big.search(p.text, 3)}


def test_round_trip_keeps_the_approximate_index_and_its_tuning(big):
    big.save()
    queries = ["w1 w2 w3 w4", "w100 w200 w250", "w7 w77 w177 w277"]
    before = {q: big.search(q, 10) for q in queries}
    reopened = Store.open(big.index_dir, big.embedder)
    assert reopened.vector_index == big.vector_index
    assert reopened._vectors.nprobe == big.vector_index.nprobe  # noqa: SLF001
    assert {q: reopened.search(q, 10) for q in queries} == before
    files = manifest(big)["files"]
    assert set(files) == {p.name for p in big.index_dir.iterdir() if p.name not in ("manifest.json", *LOCK_FILES)}
    vectors_file = next(big.index_dir.glob("vectors-*.faiss"))
    data = vectors_file.read_bytes()
    vectors_file.write_bytes(data[:-100] + bytes(100))
    with pytest.raises(CorruptIndexError, match=vectors_file.name):
        Store.open(big.index_dir, big.embedder)


def test_remove_document_keeps_rows_aligned_on_the_approximate_index(big):
    big.save()
    gone = [f"d{n:04d}" for n in (0, 33, 34, 119)]
    for doc_id in gone:
        big.remove_document(doc_id)
    assert len(big) == 600 - 4 * 5 and big._vectors.ntotal == len(big)  # noqa: SLF001
    # every remaining passage is its own nearest vector: row i still holds chunk i's vector
    for p in big.passages([f"d{n:04d}:{i}" for n in range(1, 119, 5) for i in range(5)]):
        best = big.search(p.text, 1)[0]
        assert best.score == pytest.approx(1.0, abs=1e-5) and best.text == p.text
    assert not {p.doc_id for q in ("w1 w2", "w3 w4", "w5 w6") for p in big.search(q, 50)} & set(gone)
    big.save()
    reopened = Store.open(big.index_dir, big.embedder)
    assert len(reopened) == 580 and reopened.vector_index.kind == "ivf"
    p = reopened.passages(["d0118:3"])[0]
    assert reopened.search(p.text, 1)[0].id == "d0118:3"


def test_removing_below_the_threshold_makes_search_exact_again(big):
    big.save()
    for n in range(70):
        big.remove_document(f"d{n:04d}")
    big.save()
    assert big.vector_index.kind == "flat" and manifest(big)["vectors"] == {"kind": "flat"}
    p = big.passages(["d0100:2"])[0]
    assert big.search(p.text, 1)[0].id == "d0100:2"


def test_retrained_once_the_store_has_doubled(big):
    big.save()
    assert big.vector_index.trained_on == 600
    fill(big, range(120, 200))   # 1,000 passages: new rows go into the trained cells
    big.save()
    assert big.vector_index.trained_on == 600 and big._vectors.ntotal == 1000  # noqa: SLF001
    fill(big, range(200, 250))   # 1,250 passages: more than twice what it was trained on
    big.save()
    assert big.vector_index.trained_on == 1250 and big.vector_index.nlist >= 600 // 39


def test_ingest_past_the_threshold_builds_the_approximate_index(articles_dir, tmp_path):
    ingest([articles_dir], tmp_path / "index", HashEmbedder(), progress=False, ann_threshold=3)
    store = Store.open(tmp_path / "index", HashEmbedder())
    assert store.vector_index.kind == "ivf"
    assert store.search("Druzhba pipeline oil", 1)[0].title.startswith("Druzhba")


def test_remove_rows_renumbers_ivf_ids_like_a_flat_index():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ivf, _ = build_ivf(x)
    rows = np.array([0, 5, 6, 999, 1999, 1000])
    remove_rows(ivf, rows)
    expected = np.delete(x, rows, axis=0)
    np.testing.assert_array_equal(all_vectors(ivf), expected)
    ivf.nprobe = ivf.nlist   # every cell: the results must be exactly those of brute force
    _, ids = ivf.search(expected[[0, 994, 1993]], 1)
    assert ids[:, 0].tolist() == [0, 994, 1993]


def test_recall_counts_ties_as_hits():
    exact = np.array([[0.9, 0.8, 0.7]])
    assert recall_at_k(exact, np.array([[0.9, 0.8, 0.7]])) == 1.0
    assert recall_at_k(exact, np.array([[0.9, 0.7, 0.7]])) == 1.0     # another passage tied with the 3rd
    assert recall_at_k(exact, np.array([[0.9, 0.8, 0.6]])) == pytest.approx(2 / 3)
    assert recall_at_k(exact, np.array([[0.9, -np.inf, -np.inf]])) == pytest.approx(1 / 3)


@pytest.mark.parametrize("value, expected", [(None, 50_000), ("", 50_000), ("1000", 1000), (" 7 ", 7)])
def test_threshold_comes_from_the_environment(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("QA_ANN_THRESHOLD", raising=False)
    else:
        monkeypatch.setenv("QA_ANN_THRESHOLD", value)
    assert ann_threshold() == expected
    assert ann_threshold(5) == 5


@pytest.mark.parametrize("value", ["many", "1e5", "0", "-3"])
def test_a_bad_threshold_is_refused(monkeypatch, value):
    monkeypatch.setenv("QA_ANN_THRESHOLD", value)
    with pytest.raises(ValueError, match="QA_ANN_THRESHOLD|at least 1"):
        ann_threshold()
