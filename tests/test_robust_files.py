"""Bad files through `ingest`, `qa ingest` and uploads: a typed rejection or a no-op, and the index
unchanged (passage count, content hash, files on disk) whenever nothing valid was added."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import threading
import tracemalloc
from pathlib import Path

import pytest

from crashing import index_state
from fakes import HashEmbedder, write_article
from index import InputError, RejectedFile, Store, ingest, iter_files, load_file
from qa import cli

BAD = {
    "zero bytes": ("empty.txt", b"", "empty file"),
    "binary renamed .txt": ("photo.txt", bytes.fromhex("89504e470d0a1a0a0000000d49484452") + os.urandom(4000),
                            "binary"),
    "NUL bytes": ("nul.txt", b"Oil deliveries resumed on Saturday.\x00\x00\x00 More text.", "NUL bytes"),
    "NUL bytes in HTML": ("page.html", b"<html><body><p>News\x00</p></body></html>", "NUL bytes"),
    "control characters": ("ctrl.txt", bytes(range(1, 9)) * 200 + b"ab", "non-printable"),
}
LEGACY = {  # text in a legacy encoding, and the encoding
    "French Latin-1": ("Ça a commencé à Noël, où les élèves étaient déjà là. Le café du village a rouvert.", "latin-1"),
    "French Windows-1252": ("« Nous ne laisserons personne de côté », a-t-il déclaré ; l’œuvre coûte 5 €.", "cp1252"),
    "Italian Latin-1": ("Il sindaco ha detto che la città è pronta: più autobus e perché no.", "latin-1"),
    "Portuguese Latin-1": ("A votação na Assembleia terminou às três horas; o ministro não comentou a decisão.",
                           "latin-1"),
    "German Latin-1": ("Die Straße in München wird für den Verkehr gesperrt, sagte der Bürgermeister.", "latin-1"),
    "Spanish Latin-1": ("El niño pidió más información sobre la reunión del año pasado en Córdoba.", "latin-1"),
    "Russian Windows-1251": ("Поставки нефти по нефтепроводу Дружба в Венгрию возобновились в субботу.", "cp1251"),
    "Greek Windows-1253": ("Οι παραδόσεις πετρελαίου ξανάρχισαν το Σάββατο μετά από διακοπή δύο ημερών.", "cp1253"),
    "Polish Windows-1250": ("Dostawy ropy rurociągiem Przyjaźń do Węgier zostały wznowione w sobotę.", "cp1250"),
    "Czech Windows-1250": ("Dodávky ropy ropovodem Družba do Maďarska byly obnoveny v sobotu po dvoudenní "
                           "přestávce, uvedl provozovatel.", "cp1250"),
    "Turkish Windows-1254": ("Druzhba boru hattı üzerinden Macaristan'a petrol sevkiyatı iki günlük aranın "
                             "ardından cumartesi günü yeniden başladı.", "cp1254"),
}


def snapshot(index_dir: Path) -> tuple[int, str, dict[str, str]]:
    """Passage count, content hash, and the bytes of every file in the index folder."""
    state = index_state(index_dir, HashEmbedder())
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in index_dir.iterdir() if p.is_file()}
    return len(state.passages), state.digest, files


@pytest.fixture
def index_dir(tmp_path, articles_dir) -> Path:
    ingest([articles_dir], tmp_path / "index", HashEmbedder(), progress=False)
    return tmp_path / "index"


def run(paths, index_dir):
    return ingest(paths, index_dir, HashEmbedder(), progress=False)


@pytest.mark.parametrize("name, content, reason", BAD.values(), ids=BAD.keys())
def test_a_bad_file_is_rejected_and_the_index_is_unchanged(tmp_path, index_dir, name, content, reason):
    before = snapshot(index_dir)
    report = run([write_article(tmp_path / "new", name, content)], index_dir)
    assert [reason in r.reason for r in report.rejected] == [True] and report.added == 0
    assert snapshot(index_dir) == before


@pytest.mark.parametrize("text, encoding", LEGACY.values(), ids=LEGACY.keys())
def test_legacy_encodings_are_decoded_to_the_right_letters(tmp_path, text, encoding):
    assert load_file(write_article(tmp_path, "article.txt", text.encode(encoding))).text == text


def test_a_latin1_article_is_indexed_with_its_accents(tmp_path, index_dir):
    text = "Le café rouvre\n\nLe café du village a rouvert, au grand plaisir des habitués. Déjà cent clients."
    report = run([write_article(tmp_path / "new", "cafe.txt", text.encode("latin-1"))], index_dir)
    assert report.added == 1
    store = Store.open(index_dir, HashEmbedder())
    assert store.document(store.document_for(str((tmp_path / "new" / "cafe.txt").resolve())).doc_id).text == text


def test_a_50_mb_file_is_rejected_from_its_size_without_being_read(tmp_path, index_dir):
    big = tmp_path / "new" / "huge.txt"
    big.parent.mkdir()
    with open(big, "wb") as f:  # sparse: 50 MB on paper, nothing on the disk
        f.truncate(50_000_000)
    before = snapshot(index_dir)
    tracemalloc.start()
    try:
        with pytest.raises(RejectedFile, match=r"50\.0 MB is over the 20 MB limit .*QA_MAX_FILE_MB"):
            load_file(big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"{peak:,} bytes allocated to reject it"
    report = run([big], index_dir)
    assert "over the 20 MB limit" in report.rejected[0].reason and snapshot(index_dir) == before


def test_the_size_limit_is_configurable(tmp_path, monkeypatch):
    path = write_article(tmp_path, "article.txt", "A headline\n\n" + "The council met on Monday. " * 100)
    monkeypatch.setenv("QA_MAX_FILE_MB", "0.001")
    with pytest.raises(RejectedFile, match=r"over the 0\.001 MB limit"):
        load_file(path)
    monkeypatch.setenv("QA_MAX_FILE_MB", "60")
    assert load_file(path).title == "A headline"
    monkeypatch.setenv("QA_MAX_FILE_MB", "lots")
    with pytest.raises(InputError, match="QA_MAX_FILE_MB must be a number"):
        load_file(path)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
def test_a_file_longer_than_its_stated_size_is_never_read_past_the_limit(tmp_path):
    # /proc files say they hold 0 bytes and hold more: like a file that grows while it is read.
    link = tmp_path / "status.txt"
    link.symlink_to("/proc/self/status")
    with pytest.raises(RejectedFile, match="grew while being read"):
        load_file(link, max_bytes=100)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_a_named_pipe_or_a_device_is_refused_at_once(tmp_path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    result = {}
    reader = threading.Thread(target=lambda: result.update(error=_rejection(fifo)), daemon=True)
    reader.start()
    reader.join(timeout=20)
    if reader.is_alive():  # unblock the reader before failing
        with open(fifo, "wb"):
            pass
        pytest.fail("load_file waited for a writer on a named pipe")
    assert "not a regular file" in result["error"]
    zero = tmp_path / "zero.txt"
    zero.symlink_to("/dev/zero")
    assert "not a regular file" in _rejection(zero)


def _rejection(path: Path) -> str:
    try:
        load_file(path)
    except RejectedFile as e:
        return e.reason
    return "accepted"


def test_the_longest_file_name_the_system_allows_is_indexed(tmp_path, index_dir):
    names = ["a" * 251 + ".txt", "é" * 125 + "a.txt"]  # 255 bytes each, the most one name may have
    assert [len(n.encode()) for n in names] == [255, 255]
    folder = tmp_path / "new"
    for n, name in enumerate(names):
        write_article(folder, name, f"Article {n} about tulips\n\nThe tulip fields in the polder opened on day {n}.")
    report = run([folder], index_dir)
    assert report.added == 2 and not report.rejected
    sources = {Path(d.source).name for d in Store.open(index_dir, HashEmbedder()).documents()}
    assert set(names) <= sources


@pytest.mark.parametrize("length", [256, 5000])
def test_a_name_the_system_refuses_is_an_input_error_and_changes_nothing(tmp_path, index_dir, capsys, length):
    path = tmp_path / ("n" * (length - 4) + ".txt")
    before = snapshot(index_dir)
    with pytest.raises(InputError, match="File name too long"):
        run([path], index_dir)
    assert cli.main(["ingest", str(path), "--index", str(index_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qa: ") and "File name too long" in err and "Traceback" not in err
    assert len(err) < 400, "the message shortens a name of thousands of characters"
    assert snapshot(index_dir) == before


def test_the_same_file_again_is_a_no_op(articles_dir, index_dir):
    before = snapshot(index_dir)
    report = run([articles_dir / "summit.txt"], index_dir)
    assert (report.unchanged, report.added, report.duplicates) == (1, 0, 0)
    assert snapshot(index_dir) == before, "nothing was written"


def test_an_exact_copy_under_another_name_adds_no_passage(tmp_path, articles_dir, index_dir):
    before = index_state(index_dir, HashEmbedder())
    copy = tmp_path / "elsewhere" / "summit-copy.txt"
    copy.parent.mkdir()
    shutil.copyfile(articles_dir / "summit.txt", copy)
    report = run([copy], index_dir)
    assert (report.duplicates, report.added, report.chunks_embedded) == (1, 0, 0)
    after = index_state(index_dir, HashEmbedder())
    assert (after.passages, after.vectors, after.texts) == (before.passages, before.vectors, before.texts)
    assert [d.also_at for d in after.documents if d.also_at] == [(str(copy.resolve()),)]


def test_a_link_out_of_the_folder_is_not_followed(tmp_path, index_dir, caplog):
    secret = write_article(tmp_path / "private", "diary.txt", "My diary\n\nPasswords and other private things.")
    folder = tmp_path / "shared"
    write_article(folder, "real.txt", "Bridge opens\n\nThe new bridge over the river opened on Friday morning.")
    (folder / "diary.txt").symlink_to(secret)
    (folder / "private").symlink_to(secret.parent, target_is_directory=True)
    (folder / "loop.txt").symlink_to(folder / "loop.txt")
    (folder / "dangling.txt").symlink_to(tmp_path / "nowhere.txt")
    (folder / "inside.txt").symlink_to(folder / "real.txt")  # inside the folder: fine, and the same file
    with caplog.at_level(logging.WARNING, logger="index.loading"):
        assert [p.name for p in iter_files([folder])] == ["inside.txt"]
    assert "outside" in caplog.text and "leads nowhere" in caplog.text
    report = run([folder], index_dir)
    assert report.added == 1 and not report.rejected
    docs = Store.open(index_dir, HashEmbedder()).documents()
    assert not any("diary" in d.source or "diary" in d.title.lower() for d in docs)
    assert run([folder / "diary.txt"], index_dir).added == 1, "named explicitly, a link is followed"


def test_an_upload_never_writes_outside_the_uploads_folder(tmp_path):
    from ui import uploads

    folder = tmp_path / "uploads"
    folder.mkdir()
    outside = write_article(tmp_path, "important.txt", "do not overwrite")
    (folder / "notes.txt").symlink_to(outside)
    incoming = write_article(tmp_path / "gradio-tmp", "notes.txt", "Uploaded\n\nAn uploaded article about bridges.")
    odd = write_article(tmp_path / "gradio-tmp", "..\\..\\evil.txt", "Odd name\n\nA file whose name has dots.")
    kept = uploads.keep([incoming, odd], folder)
    assert outside.read_text() == "do not overwrite"
    assert not (folder / "notes.txt").is_symlink() and "bridges" in (folder / "notes.txt").read_text()
    assert all(p.resolve().parent == folder.resolve() for p in kept)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in kept)  # no temporary file left
    for name in ["..", "..."]:
        with pytest.raises(InputError, match="give the file a name"):
            uploads.keep([str(tmp_path / "x") + "/" + name], folder)


def test_bad_uploads_are_listed_and_leave_the_index_unchanged(tmp_path, articles_dir, index_dir):
    from fakes import FakeGenerator
    from qa import Assistant, Settings
    from ui import uploads

    bot = Assistant(Store.open(index_dir, HashEmbedder()), FakeGenerator(), Settings(index_dir=index_dir))
    files = [write_article(tmp_path / "incoming", name, content) for name, content, _ in BAD.values()]
    before = snapshot(index_dir)
    report = uploads.add(bot, files, tmp_path / "uploads", progress=False)
    assert len(report.rejected) == len(BAD) and report.added == 0
    assert snapshot(index_dir) == before and len(bot.store) == before[0]


def test_qa_ingest_lists_every_rejection_and_changes_nothing(tmp_path, index_dir, capsys, monkeypatch):
    monkeypatch.setattr(cli, "default_embedder", HashEmbedder)
    folder = tmp_path / "bad"
    for name, content, _ in BAD.values():
        write_article(folder, name, content)
    before = snapshot(index_dir)
    assert cli.main(["ingest", str(folder), "--index", str(index_dir)]) == 0
    out = capsys.readouterr().out
    assert f"0 added" in out and f"{len(BAD)} rejected" in out and out.count("  rejected ") == len(BAD)
    assert snapshot(index_dir) == before


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_an_index_folder_that_cannot_be_written_is_a_clear_error(tmp_path, articles_dir, monkeypatch):
    from index import IndexWriteError

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    index_dir = tmp_path / "index"
    ingest([articles_dir], index_dir, HashEmbedder(), progress=False)
    before = snapshot(index_dir)
    write_article(articles_dir, "new.txt", "New article\n\nThe harbour reopened after the storm on Sunday.")
    import faiss

    monkeypatch.setattr(faiss, "write_index", full)
    with pytest.raises(IndexWriteError, match="No space left on device.*free some disk space"):
        run([articles_dir], index_dir)
    monkeypatch.undo()
    assert snapshot(index_dir) == before, "what the failed save wrote is gone, the old index is intact"
