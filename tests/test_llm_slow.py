"""How the local model decodes under a grammar, with the real packaged 0.5B model (slow: about a minute)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import SAMPLE_ARTICLES
from qa import prompt

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def generator():
    from qa.llm import LlamaGenerator

    return LlamaGenerator("qwen2.5-coder-0.5b-instruct-q4_k_m", context_size=1024, progress=False)


def _messages() -> tuple[list[dict[str, str]], str]:
    """A question about numbered sentences of a sample article, and the reply's grammar for them."""
    text = sorted(SAMPLE_ARTICLES.glob("*.txt"))[2].read_text(encoding="utf-8")
    sentences = [text[lo:hi].replace("\n", " ") for lo, hi in prompt.split_sentences(text)][:10]
    numbered = "\n".join(f"[{n}] {s}" for n, s in enumerate(sentences, 1))
    ask = ("Which sentences say what the leaders discussed? Answer 'Evidence: ' and their numbers, then one "
           "line per fact: '[n] the fact'.")
    return [{"role": "user", "content": f"{numbered}\n\n{ask}"}], prompt.grammar(len(sentences), numbered)


def _writing_time(pieces) -> tuple[str, float]:
    """The text of a streamed reply, and the seconds from its first piece to its last: the time spent writing,
    without the prompt's reading, which is the same for both samplers and takes most of the time."""
    text, first, last = [], None, None
    for piece in pieces:
        last = time.perf_counter()
        first = first or last
        text.append(piece)
    return "".join(text), (last - first) if first else 0.0


def test_the_grammar_asked_about_the_likeliest_tokens_gives_the_reply_and_writes_faster(generator):
    """The same reply as llama-cpp-python's sampler, which asks the grammar about every token of the
    vocabulary before each pick, written in less time. Each is timed twice and its better run kept, so that
    a pause of a shared machine does not decide (CI once saw the whole runs, prompt included, within 2%)."""
    from llama_cpp import LlamaGrammar

    messages, grammar = _messages()
    llm = generator._llm
    whole_vocabulary, likeliest_first = [], []
    for _ in range(2):
        llm.reset()
        chunks = llm.create_completion(generator.tokens(messages), max_tokens=80, temperature=0.0, stream=True,
                                       grammar=LlamaGrammar.from_string(grammar, verbose=False))
        expected, seconds = _writing_time(c["choices"][0]["text"] for c in chunks)
        whole_vocabulary.append(seconds)
        llm.reset()
        reply, seconds = _writing_time(generator.generate(messages, max_tokens=80, grammar=grammar))
        likeliest_first.append(seconds)
        assert reply == expected
    assert prompt.parse_reply(reply).evidence, reply
    assert min(likeliest_first) < 0.8 * min(whole_vocabulary), (likeliest_first, whole_vocabulary)


def test_a_token_the_grammar_allows_is_found_beyond_the_likeliest(generator):
    """When none of the likeliest tokens is allowed, the whole vocabulary is asked (`llm.pick`)."""
    import llama_cpp

    from qa.llm import CANDIDATES, pick

    llm = generator._llm
    checker = llama_cpp.llama_sampler_init_grammar(llm._model.vocab, b'root ::= "Budapest"', b"root")
    try:
        logits = np.linspace(5.0, 0.0, llm.n_vocab(), dtype=np.float32)   # the lower the id, the likelier
        starts = [t for t in range(llm.n_vocab()) if (piece := llm.detokenize([t])) and b"Budapest".startswith(piece)]
        logits[[t for t in starts if t < CANDIDATES]] = -10.0   # the allowed tokens among the likeliest made least likely
        expected = min(t for t in starts if t >= CANDIDATES)
        assert expected not in np.argsort(-logits)[:CANDIDATES]   # so only the whole vocabulary holds it
        assert pick(logits, checker) == expected
        assert pick(logits) == 0   # no grammar: the likeliest
    finally:
        llama_cpp.llama_sampler_free(checker)
