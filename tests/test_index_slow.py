"""The real thing: the packaged all-MiniLM-L6-v2 over the sample articles."""

from __future__ import annotations

from pathlib import Path

import pytest

from index import SentenceTransformerEmbedder, Store, default_embedder, ingest

pytestmark = pytest.mark.slow

SAMPLE_ARTICLES = Path(__file__).resolve().parent.parent / "data" / "articles"
QUESTION = "Which agency quoted Putin's remarks at the meeting?"


@pytest.fixture(scope="module")
def real_index(tmp_path_factory):
    index_dir = tmp_path_factory.mktemp("real") / "index"
    report = ingest([SAMPLE_ARTICLES], index_dir, default_embedder(), progress=False)
    return report, Store.open(index_dir, default_embedder())


def test_real_index_is_built(real_index):
    report, store = real_index
    assert (report.added, report.rejected) == (5, ())
    assert report.total_chunks == len(store) == report.chunks_embedded
    assert store.embedder_name == "sentence-transformers/all-MiniLM-L6-v2" and store.dim == 384


def test_every_chunk_fits_the_model(real_index):
    """All-MiniLM-L6-v2 silently truncates past 256 word pieces: no chunk may come near that."""
    _, store = real_index
    tokenizer = default_embedder().tokenizer
    pieces = [len(tokenizer(p.text)["input_ids"]) for p in store.search("Hungary", k=len(store))]
    assert len(pieces) == len(store) and max(pieces) < 256


def test_dense_search_answers_a_question(real_index):
    _, store = real_index
    hits = store.search(QUESTION, 5)
    assert any("Interfax" in h.text for h in hits)
    assert 0 < hits[-1].score <= hits[0].score <= 1.0001


def test_keyword_search_finds_a_rare_name(real_index):
    _, store = real_index
    assert "Druzhba" in store.keyword_search("Druzhba oil pipeline", 5)[0].text


def test_embeddings_are_normalized_and_batched():
    vectors = default_embedder().embed(["one text", "another text", "a third"])
    assert vectors.shape == (3, 384) and vectors.dtype.name == "float32"
    assert abs(float((vectors**2).sum(axis=1).max()) - 1.0) < 1e-4
    assert default_embedder().embed([]).shape == (0, 384)
    assert default_embedder() is default_embedder()


def test_a_wrong_model_path_says_what_is_wrong(tmp_path):
    from index import ModelError

    with pytest.raises(ModelError, match="does not exist"):
        SentenceTransformerEmbedder(tmp_path / "nowhere").embed(["x"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a sentence-transformers model"):
        SentenceTransformerEmbedder(tmp_path / "empty").embed(["x"])
