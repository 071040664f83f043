"""Settings that travel together, with their defaults and the `QA_*` environment variables that set them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from index.errors import InputError
from index.folders import index_dir as default_index_dir  # QA_INDEX_DIR, else ~/.local/share/qa/index


@dataclass(frozen=True)
class Settings:
    index_dir: Path = field(default_factory=default_index_dir)  # QA_INDEX_DIR
    model: str | None = None          # QA_MODEL: a GGUF path or a packaged model's name; None = the default
    passages: int = 8                 # QA_PASSAGES: passages retrieved per question (their best sentences are shown)
    context_size: int = 2048          # QA_CONTEXT: the model's context window, in tokens
    threads: int | None = None        # QA_THREADS: CPU threads for the model; None = all cores
    max_tokens: int = 200             # longest reply the model may write (evidence ids and up to 3 sentences)
    max_question_chars: int = 2000    # longer questions are refused with a message
    # An OpenAI-compatible chat server to use instead of the local model (qa/remote.py); None = local.
    llm_url: str | None = None        # QA_LLM_URL: e.g. http://127.0.0.1:8080 (llama-server, vLLM, Ollama)
    llm_model: str | None = None      # QA_LLM_MODEL: the model's name on that server; None = the first it lists
    llm_key: str | None = field(default=None, repr=False)  # QA_LLM_KEY: API key, if the server wants one

    _ENV = {"index_dir": "QA_INDEX_DIR", "model": "QA_MODEL", "passages": "QA_PASSAGES",
            "context_size": "QA_CONTEXT", "threads": "QA_THREADS",
            "llm_url": "QA_LLM_URL", "llm_model": "QA_LLM_MODEL", "llm_key": "QA_LLM_KEY"}

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        """Defaults, then `QA_*` variables, then the non-None keyword arguments."""
        values: dict = {}
        for f in fields(cls):
            name = cls._ENV.get(f.name)
            raw = os.environ.get(name) if name else None
            if raw:
                values[f.name] = _convert(f.name, raw, name)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        return settings.checked()

    def checked(self) -> Settings:
        if not 1 <= self.passages <= 20:
            raise InputError(f"passages must be between 1 and 20, not {self.passages}")
        if self.context_size < 512:
            raise InputError(f"the context size must be at least 512 tokens, not {self.context_size}")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"threads must be at least 1, not {self.threads}")
        return replace(self, index_dir=Path(self.index_dir).expanduser())


def _convert(name: str, raw: str, variable: str):
    if name in ("passages", "context_size", "threads"):
        try:
            return int(raw)
        except ValueError:
            raise InputError(f"{variable} must be a whole number, not {raw!r}") from None
    return Path(raw) if name == "index_dir" else raw
