"""Running a sentence-transformers model's transformer under ONNX Runtime, optionally int8-quantized.

sentence-transformers has its own ONNX backend, but it needs optimum-onnx, whose releases require
transformers < 4.58 while sentence-transformers 5+ requires transformers >= 5: the two cannot be
installed together. So this module does the same three steps with the libraries directly: export the
model's transformer with `torch.onnx.export`, quantize it with onnxruntime's dynamic quantization,
and put an ONNX Runtime session where the PyTorch transformer was. Tokenizing, pooling and
normalizing stay sentence-transformers' own, so any model whose first module is a Hugging Face
transformer works, whatever its pooling.

The export is made once per model and kind and kept in `$QA_CACHE_DIR/embedders/` (default
`~/.cache/qa/embedders/`). It is written to a temporary folder and renamed into place, checked
against the PyTorch model's vectors before that rename, and the model file's sha256 is checked on
every load; a damaged export is made again. A lock file serializes processes that need the same export.

Quantization: weights int8 per output channel, stored unsigned (asymmetric), activations
quantized on the fly; only MatMul (the linear layers), so embeddings and layer norms stay float.
Unsigned weights because on CPUs without VNNI (AVX2, AVX-512 without VNNI) ONNX Runtime's
signed-weight kernel can saturate; one recipe everywhere keeps an index's vectors the same on
every machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError
from .files import fsync, locked, sha256_file, write_atomic
from .folders import cache_dir

log = logging.getLogger(__name__)

RECIPE = 1                   # bump when the export below changes, so old exports are not reused
MODEL_FILE = "model.onnx"
MANIFEST = "export.json"
OPSET = 17
# The export is refused unless its vectors match PyTorch's at least this well (cosine, worst probe).
# fp32 differs only by rounding; int8 measured 0.985-0.99 at worst on news text for all-MiniLM-L6-v2.
MIN_AGREEMENT = {False: 0.9999, True: 0.97}
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

# Texts embedded by both the PyTorch and the ONNX model to check an export: short and long, with
# numbers, names and a passage longer than the model's window.
PROBES = (
    "Hungary's prime minister met the Russian president in Beijing on Tuesday.",
    "Oil deliveries through the pipeline resumed after a two-day halt, the operator said.",
    "What did the ambassador say about the security concerns?",
    "The central bank raised its main interest rate by 0.25 percentage points to 4.5%, the highest in 15 years, "
    "and signalled that further increases were possible if inflation did not slow in the coming months.",
    "Farmers brought in a record wheat harvest. " * 60,
)


def cache_root() -> Path:
    """Where exports live: `embedders` in the cache folder (`$QA_CACHE_DIR`, else ~/.cache/qa/: folders.py)."""
    return cache_dir() / "embedders"


def kind(quantize: bool) -> str:
    return "onnx-int8" if quantize else "onnx"


def source_key(model_path: Path) -> str:
    """A fingerprint of a model folder (file names, sizes, modification times) and of this recipe.

    Cheap enough for every load (no weights are read), and changes when the model is replaced.
    """
    digest = hashlib.sha256(f"recipe {RECIPE}\n".encode())
    for path in sorted(p for p in model_path.rglob("*") if p.is_file()):
        rel = path.relative_to(model_path)
        if rel.parts[0] in ("onnx", "openvino", ".git"):
            continue
        stat = path.stat()
        digest.update(f"{rel.as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def export_folder(model_path: Path, label: str, quantize: bool, root: Path | None = None) -> Path:
    """The cache folder for this model and kind, e.g. `all-MiniLM-L6-v2-3f9a0c1d2e-onnx-int8`."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(label.rstrip("/\\")).name).strip("-.") or "model"
    return (root or cache_root()) / f"{slug}-{source_key(model_path)[:10]}-{kind(quantize)}"


def problem(folder: Path, key: str) -> str | None:
    """Why the export in `folder` cannot be used, or None when it can."""
    if not folder.exists():
        return "missing"
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        expected_sha = manifest["sha256"]
        if manifest.get("recipe") != RECIPE or manifest.get("source_key") != key:
            return "made by another version or from another model"
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"its {MANIFEST} is missing or unreadable ({type(e).__name__})"
    model = folder / MODEL_FILE
    try:
        if sha256_file(model) != expected_sha:
            return f"{MODEL_FILE} does not match its checksum"
    except OSError as e:
        return f"{MODEL_FILE} is unreadable ({e.strerror})"
    return None


@contextlib.contextmanager
def _locked(lock_path: Path, what: str) -> Iterator[None]:
    """An exclusive lock between processes and threads, saying so when another holder makes us wait."""
    with locked(lock_path, wait=0) as held:
        if held:
            yield
            return
    log.warning("waiting for another process that is preparing %s", what)
    with locked(lock_path):
        yield


def _discard(folder: Path) -> None:
    """Remove a folder by first renaming it, so no reader ever sees it half deleted."""
    trash = folder.with_name(f".{folder.name}.{os.getpid()}.trash")
    try:
        os.replace(folder, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


Exporter = Callable[[Any, Path, bool], dict]


def ensure_export(model, model_path: Path, label: str, quantize: bool, *, root: Path | None = None,
                  progress: bool = True, exporter: Exporter | None = None, redo: str | None = None) -> Path:
    """The path of a checked ONNX file for `model` (a loaded SentenceTransformer), exporting it if needed.

    `exporter(model, folder, quantize)` writes MODEL_FILE into `folder` and returns facts for the
    manifest; tests pass a fake one. `redo` (a reason) replaces an export that passed its checks.
    """
    exporter = exporter or export
    folder = export_folder(model_path, label, quantize, root)
    key = source_key(model_path)
    if redo is None and problem(folder, key) is None:
        return folder / MODEL_FILE
    folder.parent.mkdir(parents=True, exist_ok=True)
    what = f"the {kind(quantize)} copy of {label}"
    with _locked(folder.with_name(folder.name + ".lock"), what):
        reason = redo or problem(folder, key)
        if reason is None:                      # another process made it while we waited
            return folder / MODEL_FILE
        if reason != "missing":
            log.warning("the export at %s cannot be used (%s); making it again", folder, reason)
            _discard(folder)
        for stale in folder.parent.glob(f".{folder.name}.*.tmp"):   # left by an export that was killed
            shutil.rmtree(stale, ignore_errors=True)
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        tmp.mkdir()
        try:
            log.info("preparing %s in %s (once)", what, folder)
            started = time.perf_counter()
            facts = _run_export(exporter, model, tmp, quantize, what, progress)
            manifest = {"recipe": RECIPE, "source": str(model_path), "source_key": key, "label": label,
                        "kind": kind(quantize), "sha256": sha256_file(tmp / MODEL_FILE),
                        "seconds": round(time.perf_counter() - started, 2), **facts}
            write_atomic(tmp / MANIFEST, json.dumps(manifest, indent=1).encode("utf-8"))
            try:
                os.rename(tmp, folder)
            except OSError:                     # a process without the lock got there first
                if problem(folder, key) is not None:
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    log.info("%s is ready (%s)", what, folder)
    return folder / MODEL_FILE


def _run_export(exporter: Exporter, model, folder: Path, quantize: bool, what: str, progress: bool) -> dict:
    from tqdm import tqdm

    with tqdm(total=1, desc=f"Preparing {what} (once)", bar_format="{desc}: {elapsed}",
              disable=not progress) as bar:
        facts = exporter(model, folder, quantize)
        bar.update(1)
    return facts


def transformer_module(model):
    """The model's first module, if it is the Hugging Face transformer this module knows how to export."""
    try:
        from sentence_transformers.sentence_transformer.modules import Transformer
    except ImportError:
        raise ModelError("the onnx embedding backends need sentence-transformers 6 or later "
                         "(pip install -U sentence-transformers), or use QA_EMBED_BACKEND=torch") from None

    first = model[0] if len(model) else None
    text = getattr(first, "modality_config", {}).get("text", {}) if first is not None else {}
    if not isinstance(first, Transformer) or text.get("method") != "forward" or \
            text.get("method_output_name") not in ("last_hidden_state", ("last_hidden_state",)):
        raise ModelError(
            f"this model's first module ({type(first).__name__}) is not a plain Hugging Face text transformer, "
            "so it cannot run under ONNX Runtime; use the torch embedding backend (QA_EMBED_BACKEND=torch)")
    return first


def export(model, folder: Path, quantize: bool) -> dict:
    """Export `model`'s transformer to `folder/model.onnx` (int8 if `quantize`) and check it against PyTorch.

    Leaves `model` as it was. Raises ModelError when the export's vectors disagree with PyTorch's.
    """
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    transformer = transformer_module(model)
    hf_model = transformer.model
    features = transformer.tokenizer(list(PROBES[:2]), padding=True, truncation=True, return_tensors="pt")
    accepted = getattr(transformer, "model_forward_params", None)   # None: the forward takes **kwargs
    names = [n for n in _INPUTS if n in features and (accepted is None or n in accepted)]
    reference = model.encode(list(PROBES), normalize_embeddings=True, convert_to_numpy=True,
                             show_progress_bar=False)

    class LastHiddenState(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = hf_model

        def forward(self, *inputs):
            return self.model(**dict(zip(names, inputs)), return_dict=True).last_hidden_state

    fp32 = folder / ("fp32.onnx" if quantize else MODEL_FILE)
    attention = getattr(hf_model.config, "_attn_implementation", None)
    try:
        # Eager attention traces to plain MatMul/Softmax, which ONNX Runtime fuses and quantizes well.
        with contextlib.suppress(Exception):
            hf_model.set_attn_implementation("eager")
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                LastHiddenState().eval(), tuple(features[n] for n in names), str(fp32), dynamo=False,
                opset_version=OPSET, input_names=names, output_names=["last_hidden_state"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]})
    except Exception as e:  # noqa: BLE001 - the TorchScript tracer fails in many ways on unusual models
        raise ModelError(f"cannot export this model to ONNX ({type(e).__name__}: {e}); "
                         "use the torch embedding backend (QA_EMBED_BACKEND=torch)") from None
    finally:
        if attention:
            with contextlib.suppress(Exception):
                hf_model.set_attn_implementation(attention)
    if quantize:
        root_logger = logging.getLogger()
        level = root_logger.level
        root_logger.setLevel(logging.ERROR)   # onnxruntime logs a "consider pre-processing" warning on the root
        try:
            quantize_dynamic(fp32, folder / MODEL_FILE, weight_type=QuantType.QUInt8, per_channel=True,
                             op_types_to_quantize=["MatMul"], extra_options={"WeightSymmetric": False})
        finally:
            root_logger.setLevel(level)
        fp32.unlink()
    fsync(folder / MODEL_FILE)

    with attached(model, folder / MODEL_FILE):
        vectors = model.encode(list(PROBES), normalize_embeddings=True, convert_to_numpy=True,
                               show_progress_bar=False)
    cosines = np.sum(vectors * reference, axis=1)
    if float(cosines.min()) < MIN_AGREEMENT[quantize]:
        raise ModelError(
            f"the {kind(quantize)} export of this model does not reproduce its vectors (cosine "
            f"{cosines.min():.3f} on a probe text, {MIN_AGREEMENT[quantize]} needed); "
            "use the torch embedding backend (QA_EMBED_BACKEND=torch)")
    import onnxruntime
    import transformers

    return {"inputs": names, "probe_cosine_min": round(float(cosines.min()), 5),
            "probe_cosine_mean": round(float(cosines.mean()), 5),
            "quantization": "dynamic int8: MatMul weights uint8 per channel, activations uint8" if quantize
            else None,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "onnxruntime": onnxruntime.__version__}}


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:      # not on Linux
        return os.cpu_count() or 1


def session(onnx_file: Path):
    """A one-thread ONNX Runtime session: `onnx_model` parallelizes over texts instead."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])


def onnx_model(onnx_file: Path, config, threads: int | None = None):
    """A torch module that answers like a Hugging Face transformer's forward, computed by ONNX Runtime.

    Each text of a batch runs on its own, without its padding, and `threads` texts (default: one per
    core) run at once. On a 2-core AVX2 machine this was 1.4x faster per CPU-second than running the
    padded batch (the activations of one text stay in cache) and scales to both cores without the
    synchronization of intra-op threads. It also makes a text's vector independent of the texts it is
    batched with, which int8 needs: dynamic quantization scales activations by the largest value in
    the whole input, so in a batch the neighbours would change each other's vectors.
    """
    import torch

    workers = max(1, threads or cores())

    class OnnxTransformer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.session = session(onnx_file)
            self.config = config
            self.inputs = [i.name for i in self.session.get_inputs()]
            self.onnx_file = onnx_file
            self.pool = ThreadPoolExecutor(workers, thread_name_prefix="onnx") if workers > 1 else None

        @property
        def device(self) -> torch.device:
            return torch.device("cpu")

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **_ignored):
            ids = input_ids.cpu().numpy().astype(np.int64, copy=False)
            mask = (np.ones_like(ids) if attention_mask is None
                    else attention_mask.cpu().numpy().astype(np.int64, copy=False))
            given = {"input_ids": ids, "attention_mask": mask,
                     "token_type_ids": np.zeros_like(ids) if token_type_ids is None
                     else token_type_ids.cpu().numpy().astype(np.int64, copy=False)}
            keep = mask.astype(bool)            # each text's own tokens, wherever the padding was

            def run(row: int) -> np.ndarray:
                feed = {name: given[name][row:row + 1, keep[row]] for name in self.inputs}
                return self.session.run(["last_hidden_state"], feed)[0][0]

            rows = list(map(run, range(len(ids))) if self.pool is None or len(ids) == 1
                        else self.pool.map(run, range(len(ids))))
            hidden = np.zeros((*ids.shape, rows[0].shape[-1]), dtype=np.float32)
            for row, states in enumerate(rows):
                hidden[row, keep[row]] = states
            return {"last_hidden_state": torch.from_numpy(hidden)}

    return OnnxTransformer()


@contextlib.contextmanager
def attached(model, onnx_file: Path) -> Iterator[None]:
    """Run `model` on `onnx_file` for the duration of the block, then put its PyTorch transformer back."""
    transformer = transformer_module(model)
    original = transformer.model
    transformer.model = onnx_model(onnx_file, original.config)
    try:
        yield
    finally:
        transformer.model = original


def use_onnx(model, model_path: Path, label: str, quantize: bool, progress: bool = True,
             threads: int | None = None) -> Path:
    """Make `model` (a loaded SentenceTransformer) compute with its ONNX export from now on."""
    try:
        import onnx  # noqa: F401 - needed by the exporter and the quantizer
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ModelError(f"the {kind(quantize)} embedding backend needs onnxruntime and onnx: "
                         "install them with `pip install -e '.[onnx]'`, or use QA_EMBED_BACKEND=torch") from None
    transformer = transformer_module(model)
    onnx_file = ensure_export(model, model_path, label, quantize, progress=progress)
    try:
        transformer.model = onnx_model(onnx_file, transformer.model.config, threads)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own untyped errors for a bad file
        onnx_file = ensure_export(model, model_path, label, quantize, progress=progress,
                                  redo=f"onnxruntime cannot load it: {e}")
        transformer.model = onnx_model(onnx_file, transformer.model.config, threads)
    return onnx_file
