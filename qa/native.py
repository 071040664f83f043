"""Keeping llama.cpp alive on the user's CPU, or saying in one line why it cannot be.

Two things have killed the native library on machines other than the one it was built on:

- On CPUs with AMX (Intel Sapphire Rapids and later: AWS m7i, GCP C3/C4), llama.cpp repacks the
  weights into its AMX buffer type and the first matrix product segfaults (ggml-org/llama.cpp#20824).
  Weight repacking ("extra buffer types", `use_extra_bufts`) is therefore off where the CPU reports
  AMX, and on elsewhere, where it is safe (and on AVX2 it makes prompts faster: `bench/repack.py`).
  `QA_REPACK=on|off` overrides the choice.
- A library compiled for another CPU dies with an illegal instruction. `make install` compiles for a
  named CPU level (x86-64-v3), not `-march=native`; for anything still unforeseen, `check()` loads
  the model and runs one matrix product in a child process before the first use, once per (model file,
  library build, CPU flags, repack setting), so the user reads what to change instead of
  "Segmentation fault".

`python -m qa.native server ARGS` starts llama-cpp-python's OpenAI-compatible server with the same
repacking choice (for `QA_LLM_URL`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from index.errors import ModelError

log = logging.getLogger(__name__)

AMX_FLAGS = frozenset({"amx_tile", "amx_int8", "amx_bf16", "amx_fp16", "amx_complex"})
CHECK_TIMEOUT = 600  # seconds: loading a large model from a cold disk is slow, a hang is not a pass
_params_lock = threading.Lock()


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags as Linux names them (`avx2`, `avx512f`, `amx_tile` ...); empty elsewhere."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def repack_weights(setting: str | None = None) -> bool:
    """Whether llama.cpp may repack the weights: only if `QA_REPACK=on`.

    Off by default on every CPU: on a CPU with AMX the repacked path crashed on every answer, and on
    this project's AVX2 CPU prompts are read 15-20% faster without it (`bench/repack.py`; generation is
    about 8% slower, and an answer's time goes mostly to reading the prompt). `auto` is kept as a
    setting: off, and always off where the CPU has AMX.
    """
    setting = (setting if setting is not None else os.environ.get("QA_REPACK", "auto")).strip().lower()
    if setting in ("on", "1", "yes", "true"):
        return True
    if setting in ("off", "0", "no", "false"):
        return False
    if setting not in ("", "auto"):
        raise ModelError(f"QA_REPACK must be on, off or auto, not {setting!r}")
    return False


@contextlib.contextmanager
def model_params(repack: bool) -> Iterator[None]:
    """While inside, models that llama-cpp-python loads get `use_extra_bufts = repack`.

    `Llama` takes its model parameters from `llama_model_default_params()` and offers no argument for
    this one, so the default itself is wrapped for the duration of the load.
    """
    import llama_cpp.llama_cpp as native

    with _params_lock:
        original = native.llama_model_default_params

        def defaults():
            params = original()
            params.use_extra_bufts = repack
            return params

        native.llama_model_default_params = defaults
        try:
            yield
        finally:
            native.llama_model_default_params = original


def load_llama(path: str | os.PathLike, *, repack: bool | None = None, **kwargs):
    """A `llama_cpp.Llama` for the GGUF at `path`, with weight repacking chosen for this CPU."""
    from llama_cpp import Llama

    with model_params(repack_weights() if repack is None else repack):
        return Llama(model_path=str(path), **kwargs)


def _library_stamp() -> list:
    """Version, and size and time of each native library file: a rebuilt library is a new build."""
    import llama_cpp

    folder = Path(llama_cpp.__file__).parent / "lib"
    files = sorted(folder.glob("*.so*")) + sorted(folder.glob("*.dylib")) + sorted(folder.glob("*.dll"))
    return [llama_cpp.__version__] + [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def _check_key(path: Path, repack: bool) -> str:
    stat = path.stat()
    facts = [str(path.resolve()), stat.st_size, stat.st_mtime_ns, _library_stamp(), sorted(cpu_flags()), repack]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()


def check(path: str | os.PathLike, repack: bool, cache_dir: Path | None = None,
          command: Sequence[str] | None = None) -> None:
    """Raise `ModelError` saying what to change if the model crashes llama.cpp on this CPU.

    The first use of a (model, library build, CPU, repack) combination runs the model in a child
    process; a pass is remembered in `cache_dir`, so later starts cost nothing. `QA_NATIVE_CHECK=off`
    skips it. `command` replaces the child's command line (tests).
    """
    if os.environ.get("QA_NATIVE_CHECK", "on").lower() in ("off", "0", "no"):
        return
    from .models import default_cache_dir

    path = Path(path)
    record = (cache_dir or default_cache_dir()) / "native-checks.json"
    key = _check_key(path, repack)
    try:
        passed = json.loads(record.read_text())
    except (OSError, ValueError):
        passed = {}
    if isinstance(passed, dict) and key in passed:
        return

    log.info("first use of %s on this CPU: checking it in a child process", path.name)
    command = list(command or [sys.executable, "-m", "qa.native", "probe", str(path),
                               "--repack", "on" if repack else "off"])
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CHECK_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ModelError(f"the model {path.name} did not answer a 2-token test within {CHECK_TIMEOUT} s on this "
                         "CPU; set QA_NATIVE_CHECK=off to skip the test") from None
    if done.returncode != 0:
        raise ModelError(_crash_message(path, repack, done.returncode, done.stderr))

    passed = passed if isinstance(passed, dict) else {}
    passed[key] = {"model": path.name, "repack": repack}
    try:
        from index.files import write_atomic

        record.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(record, json.dumps(passed, indent=1).encode())
    except OSError as e:  # a read-only cache costs a child process per start, nothing more
        log.warning("could not remember the model check in %s: %s", record, e)


def _crash_message(path: Path, repack: bool, status: int, stderr: str) -> str:
    if status > 0:
        last = next((line for line in reversed(stderr.splitlines()) if line.strip()), "no message")
        return f"the model {path.name} could not run on this machine: {last}"
    try:
        name = signal.Signals(-status).name
    except ValueError:
        name = f"signal {-status}"
    where = f"llama.cpp died with {name} running {path.name} on this CPU"
    if name == "SIGILL":
        return (f"{where}: the llama-cpp-python library was compiled for another processor. "
                "Rebuild it on this machine: `make clean install`")
    if repack:
        return f"{where} with weight repacking on. Set QA_REPACK=off and try again"
    return (f"{where}, with weight repacking already off. Rebuild llama-cpp-python here (`make clean install`); "
            "if it still dies, use another model (QA_MODEL) or a model server (QA_LLM_URL)")


def _probe(path: str, repack: bool) -> int:
    """The child's side of `check`: load the model and let it process a prompt and write two tokens."""
    llm = load_llama(path, repack=repack, n_ctx=256, n_threads=os.cpu_count(), verbose=False)
    llm.create_completion("The capital of France is", max_tokens=2, temperature=0.0)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["probe"] and len(argv) >= 2:
        repack = repack_weights(setting=argv[argv.index("--repack") + 1] if "--repack" in argv else None)
        try:
            return _probe(argv[1], repack)
        except (ValueError, RuntimeError) as e:
            print(f"could not load or run the model: {e}", file=sys.stderr)
            return 1
    if argv[:1] == ["server"]:
        from llama_cpp.server.__main__ import main as serve

        repack = repack_weights()
        print(f"weight repacking {'on' if repack else 'off'} (QA_REPACK)", file=sys.stderr)
        with model_params(repack):
            sys.argv = ["llama_cpp.server", *argv[1:]]
            serve()
        return 0
    print("usage: python -m qa.native probe MODEL [--repack on|off] | server [llama_cpp.server options]",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
