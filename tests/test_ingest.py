"""Ingest: first build, updates, pruning, duplicates, rebuilds and every kind of bad input."""

from __future__ import annotations

import shutil

import pytest

from fakes import HashEmbedder, write_article
from index import ChunkingParams, CorruptIndexError, IndexMismatchError, IndexNotFoundError, InputError, Store, ingest


@pytest.fixture
def index_dir(tmp_path):
    return tmp_path / "index"


def run(articles, index_dir, embedder, **kwargs):
    embedder.calls.clear()
    return ingest([articles], index_dir, embedder, progress=False, **kwargs)


def test_first_ingest_indexes_every_article(articles_dir, index_dir, embedder):
    report = run(articles_dir, index_dir, embedder, batch_size=3)
    assert (report.added, report.unchanged, report.rejected) == (4, 0, ())
    assert report.chunks_embedded == report.total_chunks == embedder.embedded > 0
    assert max(embedder.calls) <= 3, "embedding is batched"
    assert report.seconds >= report.embed_seconds > 0
    store = Store.open(index_dir, embedder)
    assert len(store) == report.total_chunks and store.generation == 1
    assert {d.title for d in store.documents()} >= {"Mayor wins second term", "Record wheat harvest in the plains"}
    assert all(d.source.startswith("/") for d in store.documents()), "sources are absolute paths"


def test_reingest_of_unchanged_files_embeds_and_writes_nothing(articles_dir, index_dir, embedder):
    run(articles_dir, index_dir, embedder)
    manifest = (index_dir / "manifest.json").stat()
    report = run(articles_dir, index_dir, embedder)
    assert (report.unchanged, report.added, report.chunks_embedded, embedder.calls) == (4, 0, 0, [])
    assert (index_dir / "manifest.json").stat().st_mtime_ns == manifest.st_mtime_ns
    assert Store.open(index_dir, embedder).generation == 1


def test_changed_file_is_reembedded_and_its_old_passages_go(articles_dir, index_dir, embedder):
    run(articles_dir, index_dir, embedder)
    write_article(articles_dir, "summit.txt", "Summit cancelled\n\nThe forum was called off because of a storm.")
    report = run(articles_dir, index_dir, embedder)
    assert (report.updated, report.unchanged, report.added) == (1, 3, 0)
    assert report.chunks_embedded == 1 == embedder.embedded
    store = Store.open(index_dir, embedder)
    assert store.keyword_search("railways loans", 5) == []
    assert store.keyword_search("storm", 1)[0].title == "Summit cancelled"
    assert len(store.documents()) == 4


def test_prune_drops_documents_whose_file_is_gone(articles_dir, index_dir, embedder):
    run(articles_dir, index_dir, embedder)
    (articles_dir / "harvest.md").unlink()
    assert run(articles_dir, index_dir, embedder).removed == 0
    assert len(Store.open(index_dir, embedder).documents()) == 4, "without prune, nothing is dropped"
    report = run(articles_dir, index_dir, embedder, prune=True)
    assert (report.removed, report.unchanged) == (1, 3)
    store = Store.open(index_dir, embedder)
    assert len(store.documents()) == 3 and store.keyword_search("wheat", 5) == []


def test_duplicate_under_another_name_is_indexed_once(articles_dir, index_dir, embedder):
    run(articles_dir, index_dir, embedder)
    total = len(Store.open(index_dir, embedder))
    shutil.copy(articles_dir / "pipeline.txt", articles_dir / "pipeline-copy.txt")
    report = run(articles_dir, index_dir, embedder)
    assert (report.duplicates, report.added, report.chunks_embedded) == (1, 0, 0)
    store = Store.open(index_dir, embedder)
    assert len(store) == total
    (info,) = [d for d in store.documents() if d.also_at]
    assert info.source.endswith("pipeline.txt") and info.also_at[0].endswith("pipeline-copy.txt")
    assert run(articles_dir, index_dir, embedder).unchanged == 5


def test_duplicates_within_one_ingest(tmp_path, index_dir, embedder):
    for name in ("a.txt", "b.txt", "c.md"):
        write_article(tmp_path / "in", name, "Same story\n\nThe very same text in three files.")
    report = run(tmp_path / "in", index_dir, embedder)
    assert (report.added, report.duplicates, report.total_chunks) == (1, 2, 1)


def test_moved_file_is_not_reembedded(articles_dir, index_dir, embedder):
    run(articles_dir, index_dir, embedder)
    (articles_dir / "summit.txt").rename(articles_dir / "forum.txt")
    report = run(articles_dir, index_dir, embedder, prune=True)
    assert (report.chunks_embedded, report.removed, report.duplicates) == (0, 0, 1)
    sources = [d.source for d in Store.open(index_dir, embedder).documents()]
    assert any(s.endswith("forum.txt") for s in sources) and not any(s.endswith("summit.txt") for s in sources)


def test_changing_the_original_keeps_its_duplicate(articles_dir, index_dir, embedder):
    shutil.copy(articles_dir / "pipeline.txt", articles_dir / "copy.txt")
    run(articles_dir, index_dir, embedder)
    write_article(articles_dir, "copy.txt", "Changed copy\n\nNow a different story about tulips.")
    report = run(articles_dir, index_dir, embedder)
    assert (report.updated, report.chunks_embedded) == (1, 1)
    store = Store.open(index_dir, embedder)
    druzhba = store.keyword_search("Druzhba", 1)[0]
    assert druzhba.source.endswith("pipeline.txt") and store.keyword_search("tulips", 1)[0].source.endswith("copy.txt")


BAD = {
    "zero bytes": ("empty.txt", b"", "empty"),
    "whitespace only": ("blank.txt", b" \n\n\t ", "whitespace"),
    "binary renamed .txt": ("photo.txt", bytes(range(256)) * 4, "binary"),
    "NUL bytes": ("nul.txt", b"Almost text\x00", "NUL"),
    "too large": ("huge.txt", b"word " * (4 * 1024 * 1024 + 1), "limit"),
}


@pytest.mark.parametrize("name, content, reason", BAD.values(), ids=BAD.keys())
def test_bad_file_is_reported_and_the_rest_indexed(articles_dir, index_dir, embedder, name, content, reason):
    write_article(articles_dir, name, content)
    report = run(articles_dir, index_dir, embedder)
    (rejection,) = report.rejected
    assert rejection.source.endswith(name) and reason in rejection.reason
    assert report.added == 4


@pytest.mark.parametrize("name, content, reason", BAD.values(), ids=BAD.keys())
def test_bad_file_alone_leaves_the_index_unchanged(articles_dir, tmp_path, index_dir, embedder, name, content, reason):
    run(articles_dir, index_dir, embedder)
    report = run(write_article(tmp_path / "bad", name, content), index_dir, embedder)
    assert len(report.rejected) == 1 and report.added == 0
    store = Store.open(index_dir, embedder)
    assert (store.generation, len(store.documents())) == (1, 4)


def test_latin1_file_is_indexed_with_its_accents(tmp_path, index_dir, embedder):
    text = "Le café rouvre\n\nLe café du village a rouvert ses portes ce matin, au grand plaisir des habitués."
    write_article(tmp_path / "in", "cafe.txt", text.encode("latin-1"))
    assert run(tmp_path / "in", index_dir, embedder).added == 1
    assert "café" in Store.open(index_dir, embedder).keyword_search("village", 1)[0].text


def test_unsupported_extensions_in_a_folder_are_ignored(articles_dir, index_dir, embedder):
    write_article(articles_dir, "scan.xlsx", b"PK\x03\x04")
    write_article(articles_dir, ".notes.txt", "hidden")
    report = run(articles_dir, index_dir, embedder)
    assert (report.added, report.rejected) == (4, ())


@pytest.mark.parametrize("paths, message", [
    ([], "no files or folders"),
    (["missing"], "no such file or folder"),
    (["empty-folder"], "no .txt"),
    (["only-xlsx"], "no .txt"),
])
def test_nothing_to_ingest_is_an_input_error(tmp_path, index_dir, embedder, paths, message):
    (tmp_path / "empty-folder").mkdir()
    write_article(tmp_path / "only-xlsx", "a.xlsx", b"PK")
    with pytest.raises(InputError, match=message):
        ingest([tmp_path / p for p in paths], index_dir, embedder, progress=False)
    assert not index_dir.exists()


def test_a_missing_path_among_good_ones_is_an_error(articles_dir, tmp_path, index_dir, embedder):
    with pytest.raises(InputError, match="nope"):
        ingest([articles_dir, tmp_path / "nope"], index_dir, embedder, progress=False)


def test_explicit_unsupported_file_is_rejected_not_ignored(articles_dir, index_dir, embedder):
    pdf = write_article(articles_dir, "scan.xlsx", b"PK\x03\x04")
    report = ingest([articles_dir / "pipeline.txt", pdf], index_dir, embedder, progress=False)
    assert report.added == 1 and "unsupported" in report.rejected[0].reason


def test_rebuild_replaces_an_index_of_another_embedder(articles_dir, index_dir, embedder):
    run(articles_dir, index_dir, HashEmbedder(dim=32, name="old-32"))
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        run(articles_dir, index_dir, embedder)
    report = run(articles_dir, index_dir, embedder, rebuild=True)
    assert report.added == 4
    store = Store.open(index_dir, embedder)
    assert store.embedder_name == "fake-hash-64" and store.generation == 2
    assert sorted(p.name for p in index_dir.iterdir() if not p.name.startswith("keyword-")) == [
        "manifest.json", "passages-000002.sqlite", "save.lock", "vectors-000002.faiss", "write.lock"]


def test_rebuild_replaces_a_corrupt_index(articles_dir, index_dir, embedder):
    run(articles_dir, index_dir, embedder)
    next(index_dir.glob("*.faiss")).write_bytes(b"garbage")
    with pytest.raises(CorruptIndexError):
        run(articles_dir, index_dir, embedder)
    assert run(articles_dir, index_dir, embedder, rebuild=True).added == 4
    assert len(Store.open(index_dir, embedder).documents()) == 4


def test_chunking_of_an_existing_index_cannot_change_without_rebuild(articles_dir, index_dir, embedder):
    small = ChunkingParams(max_words=30, overlap_words=5, min_words=10)
    run(articles_dir, index_dir, embedder, chunking=small)
    assert Store.open(index_dir, embedder).chunking == small
    assert run(articles_dir, index_dir, embedder).unchanged == 4  # None: the index's own parameters
    with pytest.raises(IndexMismatchError, match="rebuild"):
        run(articles_dir, index_dir, embedder, chunking=ChunkingParams())
    run(articles_dir, index_dir, embedder, chunking=ChunkingParams(), rebuild=True)
    assert Store.open(index_dir, embedder).chunking == ChunkingParams()


def test_sample_corpus(sample_corpus, index_dir, embedder):
    report = run(sample_corpus, index_dir, embedder)
    assert (report.added, report.rejected) == (5, ())
    store = Store.open(index_dir, embedder)
    assert "Druzhba" in store.keyword_search("Druzhba pipeline", 1)[0].text


# -- streaming, checkpoints and resuming ------------------------------------------------------------

class StopsAfter(HashEmbedder):
    """Embeds `calls_ok` batches, then fails with `error`, as a Ctrl-C or a crash would."""

    def __init__(self, calls_ok: int, error: BaseException):
        super().__init__()
        self.calls_ok, self.error = calls_ok, error

    def embed(self, texts):
        if len(self.calls) >= self.calls_ok:
            raise self.error
        return super().embed(texts)


def many_articles(folder, count=12):
    """`count` one-passage articles, each about its own animal."""
    for i in range(count):
        write_article(folder, f"{i:02d}.txt", f"Story {i}\n\nThe zoo welcomed animal{i} on day {i}, keepers said.")
    return folder


def saved_passages(index_dir, embedder):
    try:
        return len(Store.open(index_dir, embedder))
    except IndexNotFoundError:
        return 0


@pytest.mark.parametrize("error, saved", [
    (KeyboardInterrupt(), 6),                   # Ctrl-C: the three finished groups are saved first
    (RuntimeError("power cut"), 4),             # a crash (or kill): only the last checkpoint, at 4 passages
])
def test_an_interrupted_ingest_resumes_without_reembedding(tmp_path, index_dir, error, saved):
    corpus = many_articles(tmp_path / "in")
    stopping = StopsAfter(3, error)  # groups of 2 one-passage files, one batch each: 3 groups, then the error
    with pytest.raises(type(error)):
        ingest([corpus], index_dir, stopping, progress=False, group_chunks=2,
               checkpoint_seconds=float("inf"), checkpoint_chunks=4)
    assert stopping.embedded == 6
    assert saved_passages(index_dir, stopping) == saved
    embedder = HashEmbedder()
    report = run(corpus, index_dir, embedder)
    assert (report.unchanged, report.added) == (saved, 12 - saved)
    assert report.chunks_embedded == embedder.embedded == 12 - saved
    resumed = Store.open(index_dir, embedder)
    one_go = tmp_path / "one-go"
    run(corpus, one_go, HashEmbedder())
    assert resumed.documents() == Store.open(one_go, embedder).documents()
    assert resumed.has_keyword_index and resumed.keyword_search("animal5", 1)[0].title == "Story 5"
    for p in resumed.passages([f"{d.doc_id}:0" for d in resumed.documents()]):
        assert resumed.search(p.text, 1)[0].score == pytest.approx(1.0, abs=1e-5)


def test_checkpoints_save_as_the_ingest_goes(tmp_path, index_dir, embedder, monkeypatch):
    generations = []
    save = Store.save

    def counting_save(store, keyword_index=True):
        save(store, keyword_index)
        generations.append((store.generation, len(store), keyword_index))

    monkeypatch.setattr(Store, "save", counting_save)
    report = ingest([many_articles(tmp_path / "in")], index_dir, embedder, progress=False, group_chunks=2,
                    checkpoint_seconds=float("inf"), checkpoint_chunks=4)
    # the BM25 index, rebuilt whole each time, is saved only at the end
    assert generations == [(1, 4, False), (2, 8, False), (3, 12, True)]
    assert max(embedder.calls) <= 2 and report.total_chunks == 12


def test_without_checkpoints_due_the_index_is_saved_once(tmp_path, index_dir, embedder, monkeypatch):
    saves = []
    monkeypatch.setattr(Store, "save", lambda store, keyword_index=True: saves.append(len(store)))
    ingest([many_articles(tmp_path / "in")], index_dir, embedder, progress=False, group_chunks=2)
    assert saves == [12]


def test_an_index_saved_without_its_keyword_index_gets_it_from_the_next_ingest(articles_dir, index_dir, embedder):
    run(articles_dir, index_dir, embedder)
    Store.open(index_dir, embedder).save(keyword_index=False)   # as a checkpoint before a crash leaves it
    assert not Store.open(index_dir, embedder).has_keyword_index
    report = run(articles_dir, index_dir, embedder)
    assert (report.unchanged, report.chunks_embedded) == (4, 0)
    assert Store.open(index_dir, embedder).has_keyword_index
