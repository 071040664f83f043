"""Damaged and half-written indexes: a clear error naming the file, the damaged index moved aside
(never deleted), never a silently different index; leftovers of interrupted saves ignored and removed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from crashing import index_files, index_state
from fakes import FakeGenerator, HashEmbedder, write_articles
from index import CorruptIndexError, IndexMismatchError, Store, ingest
from index import disk as disk_module
from index.disk import LOCK_FILES, manifest_checksum, save_lock
from qa import cli

FILES = ["manifest.json", "vectors-*.faiss", "passages-*.sqlite"]


@pytest.fixture
def index_dir(tmp_path, articles_dir) -> Path:
    ingest([articles_dir], tmp_path / "index", HashEmbedder(), progress=False)
    return tmp_path / "index"


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "zero bytes":
        path.write_bytes(b"")
    elif how.startswith("bit flipped at "):
        at = int(len(data) * float(how.rsplit(" ", 1)[1]))
        path.write_bytes(data[:at] + bytes([data[at] ^ 0x04]) + data[at + 1:])
    elif how == "deleted":
        path.unlink()


def broken_folders(index_dir: Path) -> list[Path]:
    return sorted(p for p in index_dir.iterdir() if p.is_dir() and p.name.startswith("broken-"))


DAMAGES = ["truncated", "zero bytes", "bit flipped at 0.1", "bit flipped at 0.5", "bit flipped at 0.99", "deleted"]


# No manifest is no index at all (IndexNotFoundError, in test_store.py), so that one is left out.
@pytest.mark.parametrize("pattern, how", [(p, h) for p in FILES for h in DAMAGES
                                          if (p, h) != ("manifest.json", "deleted")])
def test_a_damaged_file_is_named_and_the_index_moved_aside(index_dir, pattern, how):
    (path,) = index_dir.glob(pattern)
    originals = {p.name for p in index_dir.iterdir() if p.name not in LOCK_FILES}
    damage(path, how)
    damaged = {p.name: p.read_bytes() for p in index_dir.iterdir() if p.name not in LOCK_FILES}
    with pytest.raises(CorruptIndexError) as caught:
        Store.open(index_dir, HashEmbedder())
    (moved,) = broken_folders(index_dir)
    message = str(caught.value)
    assert str(path) in message and f"moved to {moved}" in message and "qa ingest PATH" in message
    left = [p.name for p in index_dir.iterdir() if p.name not in LOCK_FILES]  # the lock files stay
    assert left == [moved.name], "nothing of the index is left in place"
    assert {p.name: p.read_bytes() for p in moved.iterdir()} == damaged, "moved as it was, nothing deleted"
    assert set(damaged) == originals - ({path.name} if how == "deleted" else set())


def test_every_single_bit_flip_in_the_manifest_is_caught_or_harmless(tmp_path):
    """Each byte of the manifest gets one bit flipped (bit 0..7 in turn): the index must then refuse to
    load or load exactly as it was (a flip in the name of the "checksum" key leaves the content whole).
    The check itself (`Store._load`), without moving anything aside, so the flips take seconds."""
    articles = write_articles(tmp_path / "articles", {"a.txt": "Bridge opens\n\nThe new bridge opened on Friday.",
                                                      "b.txt": "Harbour reopens\n\nThe harbour reopened on Sunday."})
    index_dir = tmp_path / "index"
    ingest([articles], index_dir, HashEmbedder(), progress=False)
    expected = index_state(index_dir, HashEmbedder())
    manifest = (index_dir / "manifest.json").read_bytes()
    outcomes = Counter()
    for at in range(len(manifest)):
        flipped = manifest[:at] + bytes([manifest[at] ^ (1 << at % 8)]) + manifest[at + 1:]
        (index_dir / "manifest.json").write_bytes(flipped)
        try:
            Store._load(index_dir, HashEmbedder())  # noqa: SLF001
            state = index_state(index_dir, HashEmbedder())
            outcomes["loaded, same content" if state == expected else "LOADED, DIFFERENT CONTENT"] += 1
        except CorruptIndexError as e:
            kind = "checksum" if "checksum" in str(e) else "not JSON" if "JSON" in str(e) else str(e)
            outcomes[f"refused ({kind})"] += 1
        except IndexMismatchError:
            outcomes["LOADED AS ANOTHER VERSION"] += 1
    print(f"\n{len(manifest)} bit flips in manifest.json: {dict(outcomes)}")
    assert sum(outcomes.values()) == len(manifest)
    assert set(outcomes) <= {"loaded, same content", "refused (checksum)", "refused (not JSON)"}, outcomes
    assert outcomes["refused (checksum)"] > len(manifest) // 2


def test_a_valid_looking_manifest_with_a_changed_title_or_count_is_caught(index_dir):
    path = index_dir / "manifest.json"
    text = path.read_text(encoding="utf-8")
    manifest = json.loads(text)
    doc = next(iter(manifest["documents"].values()))
    for old, new in [(f'"title": "{doc["title"]}"', f'"title": "{doc["title"][::-1]}"'),
                     (f'"passages": {manifest["passages"]}', f'"passages": {manifest["passages"] + 1}')]:
        assert old in text
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        with pytest.raises(CorruptIndexError, match="manifest.json was altered .*checksum"):
            Store.open(index_dir, HashEmbedder())
        (moved,) = broken_folders(index_dir)
        for f in moved.iterdir():
            os.replace(f, index_dir / f.name)
        moved.rmdir()


def test_a_manifest_naming_a_path_outside_the_index_is_refused(index_dir, tmp_path):
    path = index_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    (name, digest), *rest = manifest["files"].items()
    outside = tmp_path / "elsewhere.faiss"
    outside.write_bytes((index_dir / name).read_bytes())
    manifest["files"] = {"../elsewhere.faiss": digest, **dict(rest)}
    manifest["checksum"] = manifest_checksum(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(CorruptIndexError, match="names files that are not index files"):
        Store.open(index_dir, HashEmbedder())


def test_an_old_manifest_without_its_own_checksum_still_loads(index_dir):
    path = index_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["checksum"]
    path.write_text(json.dumps(manifest))
    before = index_state(index_dir, HashEmbedder())
    Store.open(index_dir, HashEmbedder()).save()
    assert "checksum" in json.loads(path.read_text()) and index_state(index_dir, HashEmbedder()) == before


def test_a_file_that_cannot_be_read_is_reported_but_not_moved(index_dir, monkeypatch):
    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(disk_module, "sha256_file", denied)
    with pytest.raises(CorruptIndexError, match="cannot be read .*Permission denied.*permissions"):
        Store.open(index_dir, HashEmbedder())
    assert broken_folders(index_dir) == []


def test_when_moving_aside_fails_the_message_says_how_to_rebuild(index_dir, monkeypatch):
    damage(next(index_dir.glob("vectors-*.faiss")), "truncated")
    real_replace = os.replace

    def refuse(src, dst):
        if "broken-" in str(dst):
            raise PermissionError(13, "Permission denied")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(CorruptIndexError, match="could not be moved aside .*--rebuild"):
        Store.open(index_dir, HashEmbedder())


def test_an_index_that_a_save_switches_while_it_opens_is_not_taken_for_damaged(index_dir, articles_dir,
                                                                               monkeypatch):
    """Another process saves (new generation, old files deleted) between our reading the manifest and
    the data files: the open looks again under the writer lock and gets the new index."""
    other = Store.open(index_dir, HashEmbedder())
    other.remove_document(other.documents()[0].doc_id)
    real_sha = disk_module.sha256_file
    raced = []

    def racing(path):
        if not raced:
            raced.append(path)
            other.save()  # deletes the generation this open is reading
        return real_sha(path)

    monkeypatch.setattr(disk_module, "sha256_file", racing)
    opened = Store.open(index_dir, HashEmbedder())
    assert raced and opened.generation == 2 and len(opened.documents()) == 3
    assert broken_folders(index_dir) == []


def test_a_damaged_looking_index_is_left_alone_while_a_save_holds_the_lock(index_dir, monkeypatch):
    damage(next(index_dir.glob("passages-*.sqlite")), "truncated")
    monkeypatch.setattr(disk_module, "LOCK_WAIT", 0.2)
    with save_lock(index_dir) as locked:
        assert locked
        with pytest.raises(CorruptIndexError, match="another process has been saving"):
            Store.open(index_dir, HashEmbedder())
    assert broken_folders(index_dir) == []
    with pytest.raises(CorruptIndexError, match="moved to"):
        Store.open(index_dir, HashEmbedder())


# -- what the commands say, and what happens next ---------------------------------------------------


def test_qa_ask_on_a_damaged_index_is_one_line_and_exit_status_2(tmp_path, articles_dir):
    """As a user runs it: the real `qa` in a subprocess, the index built under the packaged embedder's
    name (by a fake with its name and dimension, so no model is loaded anywhere)."""
    from index.embedding import DEFAULT_MODEL_NAME

    index_dir = tmp_path / "index"
    ingest([articles_dir], index_dir, HashEmbedder(dim=384, name=DEFAULT_MODEL_NAME), progress=False)
    damage(next(index_dir.glob("vectors-*.faiss")), "bit flipped at 0.5")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent.parent),
                                                        os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "qa.cli", "ask", "Who won?", "--index", str(index_dir)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("qa: the index file ") and "vectors-000001.faiss" in line and "moved to" in line
    assert "Traceback" not in done.stderr and done.stdout == ""


@pytest.mark.parametrize("command", ["ask", "serve", "index-info"])
def test_every_command_says_what_to_do_and_the_next_ingest_rebuilds(tmp_path, articles_dir, monkeypatch,
                                                                    capsys, command):
    from qa import assistant

    monkeypatch.setattr(cli, "default_embedder", HashEmbedder)
    monkeypatch.setattr(assistant, "default_embedder", HashEmbedder)
    monkeypatch.setattr(assistant, "shared_generator", lambda settings, progress=True: FakeGenerator())
    index_dir = tmp_path / "index"
    ingest([articles_dir], index_dir, HashEmbedder(), progress=False)
    before = index_state(index_dir, HashEmbedder())
    damage(next(index_dir.glob("passages-*.sqlite")), "zero bytes")

    argv = {"ask": ["ask", "Who won the election?"], "serve": ["serve"], "index-info": ["index-info"]}[command]
    assert cli.main([*argv, "--index", str(index_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qa: the index file ") and "passages-000001.sqlite" in err and "moved to" in err
    assert "Traceback" not in err and err.count("\n") == 1

    assert cli.main(["ingest", str(articles_dir), "--index", str(index_dir)]) == 0
    assert "4 added" in capsys.readouterr().out
    assert index_state(index_dir, HashEmbedder()) == before
    (moved,) = broken_folders(index_dir)
    assert sorted(p.name for p in moved.iterdir() if not p.name.startswith("keyword-")) == [
        "manifest.json", "passages-000001.sqlite", "vectors-000001.faiss"]


# -- leftovers of interrupted saves -------------------------------------------------------------------

LEFTOVERS = {
    "manifest.json.tmp": b'{"format_version": 1, "half": ',
    "vectors-000042.faiss": b"half a faiss file",
    "passages-000042.sqlite": b"SQLite format 3\x00half",
    "passages-000042.sqlite-journal": b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7" + bytes(500),
    "passages-000001.sqlite-journal": b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7" + bytes(500),  # beside the live file
    "passages-000001.sqlite-wal": b"garbage",
    "vectors-000001.faiss.tmp": b"garbage",
}


def plant_leftovers(index_dir: Path) -> None:
    for name, data in LEFTOVERS.items():
        (index_dir / name).write_bytes(data)
    (index_dir / "notes.txt").write_text("the user's own file")
    (index_dir / "broken-20240101-000000").mkdir(exist_ok=True)


def test_leftovers_are_ignored_on_load_and_removed_by_the_open(index_dir):
    before = index_state(index_dir, HashEmbedder())
    named = index_files(index_dir)
    plant_leftovers(index_dir)
    assert index_state(index_dir, HashEmbedder()) == before
    assert index_files(index_dir) == sorted([*named, "notes.txt", "broken-20240101-000000"])


def test_leftovers_stay_while_a_save_runs_and_go_with_the_next_open_or_save(index_dir):
    before = index_state(index_dir, HashEmbedder())
    plant_leftovers(index_dir)
    with save_lock(index_dir) as locked:  # as if another process were saving: its files are not leftovers
        assert locked
        assert index_state(index_dir, HashEmbedder()) == before
        assert set(LEFTOVERS) <= set(index_files(index_dir))
    store = Store.open(index_dir, HashEmbedder())
    assert not set(LEFTOVERS) & set(index_files(index_dir))
    plant_leftovers(index_dir)
    store.save()
    keyword = [f"keyword-000043.{part}" for part in ("data.npy", "indices.npy", "indptr.npy", "params.json",
                                                      "vocab.json")]
    assert index_files(index_dir) == sorted(["broken-20240101-000000", "manifest.json", "notes.txt",
                                             "passages-000043.sqlite", "vectors-000043.faiss", *keyword])
    assert index_state(index_dir, HashEmbedder()) == before


def test_a_failed_save_removes_what_it_wrote(index_dir, monkeypatch):
    store = Store.open(index_dir, HashEmbedder())
    files = index_files(index_dir)
    store.remove_document(store.documents()[0].doc_id)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(disk_module.json, "dumps", interrupted)  # after both data files are written
    with pytest.raises(KeyboardInterrupt):
        store.save()
    assert index_files(index_dir) == files
