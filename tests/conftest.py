from __future__ import annotations

from pathlib import Path

import pytest

from fakes import HashEmbedder, write_articles

SAMPLE_ARTICLES = Path(__file__).resolve().parent.parent / "data" / "articles"


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def articles_dir(tmp_path: Path) -> Path:
    """Four tiny made-up articles (.txt, .md, .html) in a fresh folder."""
    return write_articles(tmp_path / "articles")


@pytest.fixture
def sample_corpus() -> Path:
    """The real sample articles shipped in data/articles."""
    assert SAMPLE_ARTICLES.is_dir(), f"sample articles missing at {SAMPLE_ARTICLES}"
    return SAMPLE_ARTICLES


@pytest.fixture
def store(tmp_path: Path, articles_dir: Path, embedder: HashEmbedder):
    """An index of the made-up articles, built with the fake embedder."""
    from index import Store, ingest

    ingest([articles_dir], tmp_path / "index", embedder, progress=False)
    return Store.open(tmp_path / "index", embedder)
