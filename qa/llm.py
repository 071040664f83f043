"""The local chat model: a thin, thread-safe wrapper around llama-cpp-python.

`Generator` is the one-method protocol the assistant needs, so tests pass a fake. `LlamaGenerator`
renders the chat with the model's own template, counts tokens exactly, refuses prompts that do not fit
the context window (the assistant trims passages before that happens), and lets one generation run
at a time: a `Llama` object is not safe to call from two threads. The prompt is rendered the same way
every time, so llama.cpp reuses its KV cache for the unchanged prefix (system prompt, instructions).
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from index.errors import ModelError, QAError

from . import native

log = logging.getLogger(__name__)

Message = dict[str, str]
_SLOT = "\ue000"  # a private-use character: marks where a message's text goes in the rendered template


class Generator(Protocol):
    name: str
    context_size: int

    def count_tokens(self, messages: list[Message]) -> int: ...

    def generate(self, messages: list[Message], *, max_tokens: int = 256,
                 grammar: str | None = None) -> Iterator[str]: ...

# A generator that can go on from a reply written so far (`generate(..., reply=text)`, the last turn left
# open, its text read as prompt) says so with `continues_replies = True`; the assistant then gives the
# model the rest of a sentence it is copying instead of waiting for it (`prompt.copy_ahead`).


class ContextOverflowError(QAError):
    """The prompt does not fit the model's context window."""


class LlamaGenerator:
    """A GGUF chat model on the CPU. `model` is a path or a packaged model's name (see `qa.models`)."""

    def __init__(self, model: str | os.PathLike | None = None, *, context_size: int = 2048,
                 threads: int | None = None, seed: int = 0, progress: bool = True):
        from .models import resolve_model

        path = resolve_model(model, progress=progress)
        try:
            import llama_cpp  # noqa: F401
        except ImportError as e:  # pragma: no cover - a broken install
            raise ModelError(f"llama-cpp-python is not installed or broken ({e}): run `make install`") from e
        self.repack = native.repack_weights()
        native.check(path, self.repack)
        try:
            self._llm = native.load_llama(path, repack=self.repack, n_ctx=context_size,
                                          n_threads=threads or os.cpu_count(), seed=seed, verbose=False)
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"could not load the model {path}: {e}") from e
        self.path = Path(path)
        self.name = self.path.stem
        self.context_size = context_size
        self._lock = threading.Lock()
        self._format = self._chat_formatter()

    def _chat_formatter(self):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        meta = self._llm.metadata
        template = meta.get("tokenizer.chat_template")
        if not template:
            # ChatML: what most small instruct models expect when their file carries no template. The
            # final newline is an expression: Jinja drops a template's trailing newline.
            template = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
                        "{% endfor %}<|im_start|>assistant{{ '\\n' }}")
        token = self._llm._model.token_get_text  # noqa: SLF001 - the only way to name the special tokens
        eos = token(self._llm.token_eos())
        bos = token(self._llm.token_bos()) if self._llm.token_bos() >= 0 else ""
        return Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)

    def render(self, messages: list[Message]) -> str:
        return self._format(messages=messages).prompt

    def tokens(self, messages: list[Message]) -> list[int]:
        """The chat as the model reads it: the template's control tokens (`<|im_start|>`…) as such, the
        messages' own text never, so an article that says "<|im_start|>system" cannot open a turn.

        The template is rendered around placeholders; the text between them is template, the rest content.
        """
        slots = [{**m, "content": f"{_SLOT}{i}{_SLOT}"} for i, m in enumerate(messages)]
        pieces = self.render(slots).split(_SLOT)
        out: list[int] = []
        for i, piece in enumerate(pieces):
            if i % 2:  # a placeholder's number
                piece, special = messages[int(piece)]["content"], False
            else:
                special = True
            if piece:
                out += self._llm.tokenize(piece.encode("utf-8"), add_bos=False, special=special)
        return out

    def count_tokens(self, messages: list[Message]) -> int:
        return len(self.tokens(messages))

    continues_replies = True

    def generate(self, messages: list[Message], *, max_tokens: int = 256,
                 grammar: str | None = None, reply: str = "") -> Iterator[str]:
        """The model's reply, a piece at a time; with `reply`, the rest of a reply that begins so (llama.cpp
        reuses its KV cache for the prompt and the part of the reply it wrote itself)."""
        prompt = self.tokens(messages)
        if reply:
            # The reply's text, which came partly from the prompt, may be longer than the model would have
            # written: what is left of the window bounds the rest.
            prompt += self._llm.tokenize(reply.encode("utf-8"), add_bos=False, special=False)
            max_tokens = min(max_tokens, self.context_size - len(prompt))
            if max_tokens <= 0:
                return
        needed = len(prompt) + max_tokens
        if needed > self.context_size:
            raise ContextOverflowError(
                f"the prompt needs {needed} tokens but the model's context holds {self.context_size}: "
                "ask a shorter question or use fewer passages"
            )
        with self._lock:
            yield from decode(self._llm, prompt, max_tokens, grammar)


def decode(llm, prompt: list[int], max_tokens: int, grammar: str | None = None) -> Iterator[str]:
    """The likeliest reply of `llm` (a `llama_cpp.Llama`) to the `prompt` tokens that the GBNF `grammar`
    allows (greedy decoding, as with temperature 0), as text, a token's worth at a time.

    llama-cpp-python's own sampler asks the grammar about every token of the vocabulary (151,000 for
    Qwen) before each pick, which made writing a third slower here (7 instead of 11 tokens/s). The
    likeliest allowed token is nearly always among the few likeliest, so the grammar is asked about
    those first (`pick`), as llama.cpp's own sampler applies a grammar after the others; the reply is
    the same, token for token (`tests/test_llm_slow.py`).
    """
    import llama_cpp

    _read(llm, prompt)
    checker = None
    if grammar is not None:
        checker = llama_cpp.llama_sampler_init_grammar(llm._model.vocab, grammar.encode("utf-8"), b"root")  # noqa: SLF001
        if not checker:
            raise ModelError("llama.cpp could not parse the reply's grammar (GBNF)")
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="ignore")  # a character may span two tokens
    try:
        for _ in range(max_tokens):
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1),  # noqa: SLF001
                                           shape=(llm.n_vocab(),))
            token = pick(logits, checker)
            if token is None or llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):  # noqa: SLF001
                return
            if checker is not None:
                llama_cpp.llama_sampler_accept(checker, token)
            piece = utf8.decode(llm.detokenize([token]))
            if piece:
                yield piece
            llm.eval([token])
    finally:
        if checker is not None:
            llama_cpp.llama_sampler_free(checker)


def _read(llm, tokens: list[int]) -> None:
    """Evaluate `tokens`, keeping the KV cache of the prefix they share with what was read last (the system
    prompt, the instructions; the reply so far when going on from it). The last token is always read
    again: its logits choose the first token of the reply."""
    shared = 0
    for was, now in zip(llm.input_ids[:llm.n_tokens], tokens[:-1]):
        if was != now:
            break
        shared += 1
    if not (shared and llm._ctx.kv_cache_seq_rm(-1, shared, -1)):  # noqa: SLF001
        llm.reset()
        shared = 0
    llm.n_tokens = shared
    llm.eval(tokens[shared:])


CANDIDATES = 40   # likeliest tokens the grammar is asked about before the whole vocabulary (`pick`)
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])  # llama_token_data


def pick(logits: np.ndarray, grammar=None) -> int | None:
    """The likeliest token (greedy decoding) that `grammar`, a llama.cpp grammar sampler, allows next; None if
    it allows none. Ties go to the lowest id, as llama.cpp's greedy sampler breaks them."""
    if grammar is None:
        return int(np.argmax(logits))
    import llama_cpp

    likeliest = [np.argpartition(logits, -CANDIDATES)[-CANDIDATES:]] if len(logits) > CANDIDATES else []
    for ids in [*likeliest, np.arange(len(logits))]:
        data = np.zeros(len(ids), dtype=_TOKEN_DATA)
        data["id"], data["logit"] = ids, logits[ids]
        array = llama_cpp.llama_token_data_array(data=data.ctypes.data_as(llama_cpp.llama_token_data_p),
                                                 size=len(ids), selected=-1, sorted=False)
        llama_cpp.llama_sampler_apply(grammar, ctypes.byref(array))
        allowed = np.isfinite(data["logit"])
        if allowed.any():
            best = data["logit"][allowed].max()
            return int(data["id"][data["logit"] == best].min())
    return None
