"""The `qa` command: clean messages and exit codes, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qa import ModelError, cli
from qa.models import PACKAGED_MODELS, resolve_model


@pytest.fixture(autouse=True)
def fake_embedder(monkeypatch, embedder):
    monkeypatch.setattr(cli, "default_embedder", lambda: embedder)


def test_ingest_of_an_archive_with_a_field_mapping(tmp_path, capsys):
    import json

    archive = tmp_path / "export.jsonl"
    archive.write_text(json.dumps({"body": "date 2025-07-01 The harbour reopened on Tuesday after the storm.",
                                   "headline": "Harbour reopens", "link": "https://example.com/h"}) + "\n")
    argv = ["ingest", str(archive), "--index", str(tmp_path / "ix"), "--text-field", "body"]
    assert cli.main(argv) == 0
    assert "1 added" in capsys.readouterr().out
    assert cli.main(["index-info", "--index", str(tmp_path / "ix")]) == 0
    assert "2025-07-01" in (out := capsys.readouterr().out) and "(https://example.com/h)" in out
    assert cli.main(["ingest", str(archive), "--index", str(tmp_path / "ix"), "--text-field", " "]) == 2
    assert "--text-field needs a field name" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/feed.xml"])
def test_ingest_refuses_urls_other_than_http(tmp_path, url, capsys):
    assert cli.main(["ingest", url, "--index", str(tmp_path / "ix")]) == 2
    assert "only http:// and https://" in capsys.readouterr().err


def test_ingest_then_info(tmp_path, articles_dir, capsys):
    assert cli.main(["ingest", str(articles_dir), "--index", str(tmp_path / "ix")]) == 0
    out = capsys.readouterr().out
    assert "4 added" in out and "0 rejected" in out
    assert cli.main(["index-info", "--index", str(tmp_path / "ix")]) == 0
    out = capsys.readouterr().out
    assert "4 articles" in out and "Mayor wins second term" in out
    assert "Search: exact" in out


def test_info_names_the_approximate_search_and_its_recall(tmp_path, articles_dir, capsys, monkeypatch):
    monkeypatch.setenv("QA_ANN_THRESHOLD", "3")
    assert cli.main(["ingest", str(articles_dir), "--index", str(tmp_path / "ix")]) == 0
    assert cli.main(["index-info", "--index", str(tmp_path / "ix")]) == 0
    out = capsys.readouterr().out
    assert "Search: approximate (IVF" in out and "recall@10" in out


def test_rejected_files_are_listed(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "good.txt").write_text("A headline\n\nThe council approved the new budget on Monday.")
    (tmp_path / "in" / "empty.txt").write_text("   ")
    assert cli.main(["ingest", str(tmp_path / "in"), "--index", str(tmp_path / "ix")]) == 0
    out = capsys.readouterr().out
    assert "1 added" in out and "1 rejected" in out and "empty.txt" in out


@pytest.mark.parametrize("argv, message", [
    (["index-info"], "no index"),
    (["ask", "Anything?"], "no index"),
    (["ingest", "/no/such/folder"], "/no/such/folder"),
])
def test_errors_are_one_line_messages(tmp_path, capsys, argv, message):
    assert cli.main(argv + ["--index", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qa: ") and message in err.lower() and "Traceback" not in err


def test_a_missing_or_wrong_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        resolve_model(tmp_path / "nope.gguf")
    (tmp_path / "notes.gguf").write_text("not a model")
    with pytest.raises(ModelError, match="not a GGUF"):
        resolve_model(tmp_path / "notes.gguf")


def test_a_packaged_model_that_is_not_installed_says_how_to_install(monkeypatch, tmp_path):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelError, match=r"pip install -e '\.\[model-"):
        resolve_model(next(iter(PACKAGED_MODELS)), cache_dir=tmp_path)


def test_a_corrupted_model_part_fails_the_checksum(tmp_path, monkeypatch):
    from qa.models import PackagedModel, assemble

    for i in (1, 2):
        pkg = tmp_path / "site" / f"fakepart{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part0{i}.bin").write_bytes(b"GGUF" if i == 1 else b"rest")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    model = PackagedModel("fake", ("fakepart1", "fakepart2"), ("data/part01.bin", "data/part02.bin"),
                          sha256="0" * 64, extra="model-fake")
    with pytest.raises(ModelError, match="sha256"):
        assemble(model, tmp_path / "cache", progress=False)
    assert not list((tmp_path / "cache").glob("*.gguf")), "no half-checked file is left to be used"
    assert not list((tmp_path / "cache").iterdir()), "nor its temporary file"

    import hashlib
    good = PackagedModel("fake", model.packages, model.files, hashlib.sha256(b"GGUFrest").hexdigest(), "x")
    path = assemble(good, tmp_path / "cache", progress=False)
    assert path.read_bytes() == b"GGUFrest"
    assert assemble(good, tmp_path / "cache", progress=False) == path


def test_output_cut_short_by_a_pipe_is_not_an_error(tmp_path, articles_dir):
    """`qa index-info | head -1`: when the reader has gone, qa stops quietly, with no traceback."""
    import subprocess
    import sys

    assert cli.main(["ingest", str(articles_dir), "--index", str(tmp_path / "ix")]) == 0
    script = ("import sys; from qa import cli; from fakes import HashEmbedder; "
              "cli.default_embedder = HashEmbedder; sys.exit(cli.main(sys.argv[1:]))")
    tests = str(Path(__file__).resolve().parent)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        run = subprocess.run([sys.executable, "-c", script, "index-info", "--index", str(tmp_path / "ix")],
                             stdout=write_end, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": tests + os.pathsep + os.environ.get("PYTHONPATH", "")})
    finally:
        os.close(write_end)
    assert run.returncode == 0 and run.stderr == ""
