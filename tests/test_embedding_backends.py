"""Choosing the embedding backend, the names an index records, and the cache of ONNX exports.

The exports here are fakes (a few bytes written by a stand-in exporter): what is tested is when an
export is made, reused, refused or made again. The real export is in test_embedding_onnx_slow.py.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from fakes import HashEmbedder
from index import IndexMismatchError, InputError, ModelError, SentenceTransformerEmbedder, Store, ingest
from index import onnx_backend
from index.embedding import DEFAULT_MODEL_NAME, default_embedder, embedding_backend

# -- choosing a backend ------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "env", "expected"), [
    (None, None, "torch"),
    (None, "onnx-int8", "onnx-int8"),
    (None, " ONNX ", "onnx"),
    ("torch", "onnx-int8", "torch"),         # the argument wins over the environment
    ("onnx-int8", None, "onnx-int8"),
    (None, "", "torch"),
])
def test_backend_comes_from_argument_then_environment(monkeypatch, given, env, expected):
    if env is None:
        monkeypatch.delenv("QA_EMBED_BACKEND", raising=False)
    else:
        monkeypatch.setenv("QA_EMBED_BACKEND", env)
    assert embedding_backend(given) == expected


@pytest.mark.parametrize(("given", "env", "named"), [
    ("int8", None, "the embedding backend 'int8'"),
    (None, "openvino", "QA_EMBED_BACKEND 'openvino'"),
])
def test_unknown_backend_is_refused_with_the_choices(monkeypatch, given, env, named):
    monkeypatch.delenv("QA_EMBED_BACKEND", raising=False)
    if env:
        monkeypatch.setenv("QA_EMBED_BACKEND", env)
    with pytest.raises(InputError, match="torch, onnx, onnx-int8") as e:
        SentenceTransformerEmbedder(backend=given)
    assert named in str(e.value)


def test_default_embedder_follows_the_environment(monkeypatch):
    monkeypatch.setenv("QA_EMBED_BACKEND", "onnx-int8")
    default_embedder.cache_clear()
    try:
        assert default_embedder().name == DEFAULT_MODEL_NAME + "@onnx-int8"
        assert default_embedder() is default_embedder()
    finally:
        default_embedder.cache_clear()


def test_int8_has_its_own_name_and_fp32_onnx_shares_torchs(tmp_path):
    folder = tmp_path / "my-model"
    assert SentenceTransformerEmbedder(backend="torch").name == DEFAULT_MODEL_NAME
    assert SentenceTransformerEmbedder(backend="onnx").name == DEFAULT_MODEL_NAME
    assert SentenceTransformerEmbedder(backend="onnx-int8").name == DEFAULT_MODEL_NAME + "@onnx-int8"
    assert SentenceTransformerEmbedder(folder, backend="onnx-int8").name == f"{folder}@onnx-int8"


def test_onnx_backends_run_on_the_cpu_only():
    with pytest.raises(InputError, match="CPU only"):
        SentenceTransformerEmbedder(backend="onnx-int8", device="cuda")


def test_onnx_backend_needs_a_local_model_folder():
    """A hub name has no folder to export from: refused before anything is downloaded or exported."""
    embedder = SentenceTransformerEmbedder("someone/some-model", backend="onnx-int8")
    with pytest.raises(ModelError):
        embedder.embed(["x"])


@dataclass
class NamedEmbedder(HashEmbedder):
    """Vectors of the real model's shape, recorded under the real model's name."""

    dim: int = 384
    name: str = DEFAULT_MODEL_NAME


def test_an_index_built_with_torch_refuses_the_int8_embedder(tmp_path, articles_dir):
    ingest([articles_dir], tmp_path / "index", NamedEmbedder(), progress=False)
    with pytest.raises(IndexMismatchError) as e:
        Store.open(tmp_path / "index", SentenceTransformerEmbedder(backend="onnx-int8"))
    message = str(e.value)
    assert f"'{DEFAULT_MODEL_NAME}'" in message and f"'{DEFAULT_MODEL_NAME}@onnx-int8'" in message
    assert "--rebuild" in message
    # fp32 ONNX computes the same vectors as torch: it opens the same index (nothing is loaded to check).
    assert len(Store.open(tmp_path / "index", SentenceTransformerEmbedder(backend="onnx"))) > 0


def test_an_index_built_with_int8_refuses_torch(tmp_path, articles_dir):
    ingest([articles_dir], tmp_path / "index", NamedEmbedder(name=DEFAULT_MODEL_NAME + "@onnx-int8"),
           progress=False)
    with pytest.raises(IndexMismatchError, match="@onnx-int8"):
        Store.open(tmp_path / "index", SentenceTransformerEmbedder(backend="torch"))


# -- the export cache, with a fake exporter ----------------------------------------------------------


class FakeExporter:
    """Writes a small stand-in model file and counts its calls; `fail` makes it raise halfway."""

    def __init__(self, fail: bool = False, delay: float = 0.0):
        self.calls = 0
        self.fail = fail
        self.delay = delay

    def __call__(self, model, folder: Path, quantize: bool) -> dict:
        self.calls += 1
        (folder / onnx_backend.MODEL_FILE).write_bytes(b"onnx " * 1000 + bytes([quantize]))
        time.sleep(self.delay)
        if self.fail:
            raise ModelError("the export broke")
        return {"probe_cosine_min": 0.99}


@pytest.fixture
def model_dir(tmp_path) -> Path:
    folder = tmp_path / "models" / "tiny-model"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"hidden_size": 8}')
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    return folder


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "cache" / "embedders"


def export(model_dir: Path, root: Path, exporter, quantize: bool = True, **kwargs) -> Path:
    return onnx_backend.ensure_export(None, model_dir, "org/tiny-model", quantize, root=root, progress=False,
                                      exporter=exporter, **kwargs)


def test_cache_folder_honours_qa_cache_dir_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "qa-cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert onnx_backend.cache_root() == tmp_path / "qa-cache" / "embedders"
    monkeypatch.delenv("QA_CACHE_DIR")
    assert onnx_backend.cache_root() == tmp_path / "xdg" / "qa" / "embedders"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert onnx_backend.cache_root() == Path.home() / ".cache" / "qa" / "embedders"


def test_export_is_made_once_then_reused(model_dir, root):
    exporter = FakeExporter()
    first = export(model_dir, root, exporter)
    again = export(model_dir, root, exporter)
    assert first == again and first.is_file() and exporter.calls == 1
    assert first.parent.name.startswith("tiny-model-") and first.parent.name.endswith("-onnx-int8")
    manifest = json.loads((first.parent / onnx_backend.MANIFEST).read_text())
    assert manifest["source"] == str(model_dir) and manifest["kind"] == "onnx-int8"
    assert manifest["probe_cosine_min"] == 0.99
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []    # no temporary folders left


def test_int8_and_fp32_exports_live_apart(model_dir, root):
    exporter = FakeExporter()
    assert export(model_dir, root, exporter, quantize=True) != export(model_dir, root, exporter, quantize=False)
    assert exporter.calls == 2


def test_a_replaced_model_gets_a_new_export(model_dir, root):
    exporter = FakeExporter()
    first = export(model_dir, root, exporter)
    (model_dir / "model.safetensors").write_bytes(b"\1" * 65)
    second = export(model_dir, root, exporter)
    assert second != first and exporter.calls == 2


def damage_model(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def damage_manifest(path: Path) -> None:
    (path.parent / onnx_backend.MANIFEST).write_text("{ not json")


def remove_manifest(path: Path) -> None:
    (path.parent / onnx_backend.MANIFEST).unlink()


def remove_model(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize("damage", [damage_model, damage_manifest, remove_manifest, remove_model])
def test_a_damaged_export_is_made_again_with_a_message(model_dir, root, caplog, damage):
    exporter = FakeExporter()
    path = export(model_dir, root, exporter)
    damage(path)
    with caplog.at_level(logging.WARNING, logger="index.onnx_backend"):
        again = export(model_dir, root, exporter)
    assert again == path and exporter.calls == 2
    assert onnx_backend.problem(path.parent, onnx_backend.source_key(model_dir)) is None
    assert any("cannot be used" in r.getMessage() and str(path.parent) in r.getMessage() for r in caplog.records)


def test_a_failed_export_leaves_nothing_behind(model_dir, root):
    with pytest.raises(ModelError, match="the export broke"):
        export(model_dir, root, FakeExporter(fail=True))
    assert [p for p in root.iterdir() if not p.name.endswith(".lock")] == []
    exporter = FakeExporter()
    assert export(model_dir, root, exporter).is_file() and exporter.calls == 1


def test_leftovers_of_a_killed_export_are_cleared(model_dir, root):
    folder = onnx_backend.export_folder(model_dir, "org/tiny-model", True, root)
    root.mkdir(parents=True)
    stale = root / f".{folder.name}.99999.tmp"
    stale.mkdir()
    (stale / onnx_backend.MODEL_FILE).write_bytes(b"half")
    folder.mkdir()                                    # an export folder without its manifest
    (folder / onnx_backend.MODEL_FILE).write_bytes(b"half")
    exporter = FakeExporter()
    path = export(model_dir, root, exporter)
    assert exporter.calls == 1 and path.read_bytes().startswith(b"onnx ")
    assert not stale.exists()


def test_redo_replaces_an_export_that_passed_its_checks(model_dir, root, caplog):
    exporter = FakeExporter()
    export(model_dir, root, exporter)
    with caplog.at_level(logging.WARNING, logger="index.onnx_backend"):
        export(model_dir, root, exporter, redo="onnxruntime cannot load it")
    assert exporter.calls == 2 and "onnxruntime cannot load it" in caplog.text


def _export_in_child(model_dir: str, root: str, calls_file: str, delay: float) -> str:
    class Counting(FakeExporter):
        def __call__(self, model, folder, quantize):
            with open(calls_file, "a") as f:
                f.write(f"{os.getpid()}\n")
            return super().__call__(model, folder, quantize)

    return str(export(Path(model_dir), Path(root), Counting(delay=delay)))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_processes_starting_together_export_once(model_dir, root, tmp_path):
    calls = tmp_path / "calls.txt"
    with multiprocessing.get_context("fork").Pool(3) as pool:
        paths = pool.starmap(_export_in_child, [(str(model_dir), str(root), str(calls), 0.5)] * 3)
    assert len(set(paths)) == 1 and Path(paths[0]).is_file()
    assert len(calls.read_text().split()) == 1


def test_source_key_ignores_exports_kept_inside_the_model_folder(model_dir):
    key = onnx_backend.source_key(model_dir)
    (model_dir / "onnx").mkdir()
    (model_dir / "onnx" / "model.onnx").write_bytes(b"x")
    assert onnx_backend.source_key(model_dir) == key


def test_missing_onnxruntime_is_a_model_error_saying_what_to_install(monkeypatch, model_dir):
    import builtins

    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name.split(".")[0] in ("onnx", "onnxruntime"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    with pytest.raises(ModelError, match=r"pip install -e '\.\[onnx\]'"):
        onnx_backend.use_onnx(None, model_dir, "org/tiny-model", quantize=True)

