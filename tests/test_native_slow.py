"""The real model on this CPU, as a user meets it: `qa ask` in its own process, and the repacking choice
carried into the loaded model (slow: loads the packaged 1.5B model)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qa import native

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def test_qa_ask_answers_in_a_child_process(tmp_path):
    """A native crash (AMX, a library built for another CPU) would end this process with a signal."""
    from conftest import SAMPLE_ARTICLES

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "QA_INDEX_DIR": str(tmp_path / "index"), "QA_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("QA_NATIVE_CHECK", None)
    cache = Path(os.environ.get("QA_CACHE_DIR") or Path.home() / ".cache" / "qa") / "models"
    if cache.is_dir():  # reuse the assembled model rather than assembling it again in the test's cache
        (tmp_path / "cache").mkdir()
        (tmp_path / "cache" / "models").symlink_to(cache)
    run = [sys.executable, "-m", "qa.cli"]
    done = subprocess.run([*run, "ingest", str(SAMPLE_ARTICLES)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    done = subprocess.run([*run, "ask", "Which news agency reported what Putin said to Orban?"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, f"status {done.returncode}: {done.stderr[-2000:]}"
    assert "[1]" in done.stdout or "don't say" in done.stdout, done.stdout  # an answer with its source, or a refusal
    assert (tmp_path / "cache" / "native-checks.json").is_file(), "the first use was checked in a child process"


def test_on_a_cpu_with_amx_the_loaded_model_does_not_repack(monkeypatch):
    from qa.llm import LlamaGenerator
    from test_native import SAPPHIRE_RAPIDS

    read = native.cpu_flags
    monkeypatch.setattr(native, "cpu_flags", lambda cpuinfo=None: read(SAPPHIRE_RAPIDS))
    monkeypatch.setenv("QA_NATIVE_CHECK", "off")  # the fake AMX is not this CPU: the check would test nothing
    monkeypatch.delenv("QA_REPACK", raising=False)
    generator = LlamaGenerator("qwen2.5-coder-0.5b-instruct-q4_k_m", context_size=512, progress=False)
    assert generator.repack is False
    assert generator._llm.model_params.use_extra_bufts is False  # noqa: SLF001
    assert "".join(generator.generate([{"role": "user", "content": "Say yes."}], max_tokens=4)).strip()
