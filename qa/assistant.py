"""The assistant: a question in, an answer out whose every claim is cited, or an honest refusal.

One question goes through: cleaning and checking the question, retrieval (`retrieval.py`), the
retrieved passages shown as numbered sentences in a prompt trimmed to the context window
(`prompt.py`), one constrained generation that picks the evidence and then writes the answer
(`llm.py`), and the checks of every answer sentence against the sentences it cites (`grounding.py`). The collaborators are passed in (a `Store`, a `Generator`), so tests run with
fakes and the CLI, the UI and the Python API share one loaded model per process.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from index import Embedder, IngestReport, InputError, Passage, SearchFilter, Store, default_embedder, ingest, writing
from index.embedding import DEFAULT_MODEL_NAME

from . import grounding, prompt
from .answer import Answer, AnswerSentence, Citation, Evidence, Quote, Searched, Timings
from .config import Settings
from .llm import Generator, LlamaGenerator, Message
from .retrieval import retrieve, standalone_query, topic_shares

log = logging.getLogger(__name__)

REFUSAL = "The articles don't say: none of the passages I found answers this question."
History = Sequence[tuple[str, str]]

_INVISIBLE = {"Cf", "Co", "Cs", "Cn"}
_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")  # variation selectors

_generators: dict[tuple, Generator] = {}
_generators_lock = threading.Lock()


def shared_generator(settings: Settings, progress: bool = True) -> Generator:
    """One loaded model per (model, context, threads) per process, or one connection per LLM server URL."""
    if settings.llm_url:
        return _remote_generator(settings)
    key = (settings.model, settings.context_size, settings.threads)
    with _generators_lock:
        if key not in _generators:
            _generators[key] = LlamaGenerator(settings.model, context_size=settings.context_size,
                                              threads=settings.threads, progress=progress)
        return _generators[key]


def visible_text(text: str) -> str:
    """`text` without the characters a reader cannot see, with control characters and line breaks as spaces.

    Gone: format characters (Cf: bidirectional overrides and isolates, zero-width characters, the tag
    characters U+E0000-E007F), private-use, surrogate and unassigned code points, and variation
    selectors. None carries meaning in a question, and each can smuggle instructions or data past a
    human reader to the model.
    """
    kept = []
    for c in text:
        category = unicodedata.category(c)
        if category in _INVISIBLE or _SELECTORS.match(c) or 0xE0000 <= ord(c) <= 0xE007F:
            continue
        kept.append(" " if category in ("Cc", "Zl", "Zp") else c)
    return "".join(kept)


def _remote_generator(settings: Settings) -> Generator:
    from .remote import RemoteGenerator  # httpx only when a server is used

    key = ("remote", settings.llm_url, settings.llm_model, settings.llm_key, settings.context_size)
    with _generators_lock:
        if key not in _generators:
            _generators[key] = RemoteGenerator(settings.llm_url, model=settings.llm_model,
                                               api_key=settings.llm_key, context_size=settings.context_size)
        return _generators[key]


def clean_question(question: str, limit: int) -> str:
    """The question without invisible and control characters; an InputError when nothing usable is left."""
    if not isinstance(question, str):
        raise InputError("the question must be text")
    if len(question) > 100 * limit:  # not worth cleaning character by character first
        raise InputError(f"the question is {len(question):,} characters long; the limit is {limit:,}. "
                         "Ask something shorter.")
    kept = re.sub(r"\s+", " ", visible_text(question)).strip()
    if not kept:
        raise InputError("the question is empty: type a question about the articles")
    if len(kept) > limit:
        raise InputError(f"the question is {len(kept):,} characters long; the limit is {limit:,}. "
                         "Ask something shorter.")
    if not re.search(r"\w", kept):
        raise InputError("the question has no words in it: type a question about the articles")
    return kept


class Assistant:
    def __init__(self, store: Store, generator: Generator, settings: Settings | None = None):
        self.store = store
        self.generator = generator
        self.settings = settings or Settings.from_env()
        self.check = checked_answer  # the model's reply to a checked answer; a bench or a test may wrap it
        self._store_lock = threading.Lock()

    @classmethod
    def load(cls, index_dir: str | Path | None = None, *, model: str | None = None,
             embedder: Embedder | None = None, generator: Generator | None = None,
             progress: bool = True, **settings) -> Assistant:
        """Open an existing index and the chat model (the packaged default unless `model` is given)."""
        config = Settings.from_env(index_dir=index_dir, model=model, **settings)
        store = Store.open(config.index_dir, embedder or default_embedder())
        return cls(store, generator or shared_generator(config, progress), config)

    @classmethod
    def from_documents(cls, paths: Iterable[str | Path], index_dir: str | Path | None = None,
                       **kwargs) -> Assistant:
        """Index `paths` (files or folders) into `index_dir`, then open the assistant on it."""
        config = Settings.from_env(index_dir=index_dir)
        embedder = kwargs.get("embedder") or default_embedder()
        ingest(list(paths), config.index_dir, embedder, progress=kwargs.get("progress", True))
        return cls.load(config.index_dir, embedder=embedder, **{k: v for k, v in kwargs.items() if k != "embedder"})

    # -- the index -------------------------------------------------------------------------------------

    def add(self, paths: Iterable[str | Path], progress: bool = False) -> IngestReport:
        """Ingest more articles; questions asked meanwhile see the old index, then the new one.

        The index is reloaded and swapped in while this writer still holds the index's lock, so that
        no other writer can delete the files being loaded, and two adds cannot swap in out of order.
        """
        with writing(self.store.index_dir):
            report = ingest(list(paths), self.store.index_dir, self.store.embedder, progress=progress)
            if report.added or report.updated or report.removed:
                fresh = Store.open(self.store.index_dir, self.store.embedder)
                with self._store_lock:
                    self.store = fresh
        return report

    def warm_up(self) -> None:
        """Load the embedder and put the fixed system prompt in the model's KV cache, before the first user."""
        self.store.search("warm up", 1)
        messages = prompt.build_messages("warm up", [], [])
        stream = self.generator.generate(messages, max_tokens=1)
        next(iter(stream), None)
        if hasattr(stream, "close"):
            stream.close()

    def search(self, query: str, k: int | None = None, filters: SearchFilter | None = None) -> list[Passage]:
        return retrieve(self.store, query, k or self.settings.passages, filters=filters)

    # -- answering -------------------------------------------------------------------------------------

    def ask(self, question: str, history: History = (), filters: SearchFilter | None = None, *,
            passages: int | None = None) -> Answer:
        """Answer `question` (after the (question, answer) turns of `history`) from `passages` passages of
        the articles that pass `filters`."""
        answer = None
        for event in self.stream(question, history, filters, passages=passages):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None
        return answer

    def stream(self, question: str, history: History = (), filters: SearchFilter | None = None, *,
               passages: int | None = None) -> Iterator[str | Searched | Evidence | Answer]:
        """Yield what a reader can be shown as it happens: the articles being read (`Searched`), the sentences
        the model picked (`Evidence`), the answer's text as the model writes it (str), and last the checked
        `Answer`, which may differ from the text streamed. `filters`: only articles of that date range and
        those sources are searched."""
        started = time.perf_counter()
        question = clean_question(question, self.settings.max_question_chars)
        history = [(clean_question(q, 10 * self.settings.max_question_chars), visible_text(a))
                   for q, a in history][-3:]
        k = replace(self.settings, passages=passages).checked().passages if passages else self.settings.passages
        with self._store_lock:
            store = self.store
        if filters and not store.count(filters):
            raise InputError(f"no article in the index is {filters.describe()}; `qa index-info` lists the "
                             "articles with their dates and files")
        query = standalone_query(question, history)
        found = retrieve(store, query, k, filters=filters)
        retrieved = time.perf_counter()
        if not found:
            yield Answer(question, "The index holds no articles yet: add some with `qa ingest PATH`.",
                         refused=True, timings=Timings(retrieval=retrieved - started, total=retrieved - started))
            return
        yield Searched(tuple(dict.fromkeys(p.title for p in found)))

        messages, shown, sentences, notes = self._fit(question, found, history, store.embedder.embed, query)
        if not store.embedder.name.startswith(DEFAULT_MODEL_NAME):
            # `grounding.near_the_question` was measured on this embedder's cosines; another's are on
            # another scale, so the sentences' scores are not used.
            sentences = [replace(s, score=None) for s in sentences]
        checked = grounding.checked_question(question, history[-1][0] if history else None)
        if sentences and sentences[0].score is not None:
            shares = topic_shares(store, checked, shown)
            sentences = [replace(s, topic=shares.get(shown[s.passage].doc_id)) for s in sentences]
        tokens = self.generator.count_tokens(messages)
        prompted = time.perf_counter()
        if not grounding.could_answer(checked, sentences, shown):
            # The shown sentences cannot answer this question whatever the model picks (none near enough
            # to it, or a name it asks about in none of them): the refusal comes now, not in 10-20 s.
            log.debug("no answer from the shown sentences could pass the checks: the model is not asked")
            yield Answer(question, REFUSAL, refused=True, passages=tuple(shown), notes=tuple(notes), timings=Timings(
                retrieval=retrieved - started, prompt=prompted - retrieved, first_token=0.0,
                first_text=prompted - started, evidence=prompted - started, total=prompted - started,
                prompt_tokens=tokens))
            return
        reader = prompt.ReplyStream()
        first = first_text = picked = None
        llm_start = time.perf_counter()
        for piece in self._reply(messages, sentences):
            first = first or time.perf_counter()
            ids, text = reader.feed(piece)
            if ids is not None:
                picked = time.perf_counter()
                quotes = _quotes(ids, sentences, shown)
                if quotes:
                    first_text = first_text or picked
                    yield Evidence(quotes)
            if text:
                first_text = first_text or time.perf_counter()
                yield text
        done = time.perf_counter()
        log.debug("model reply: %s", reader.raw)
        answer = replace(self.check(checked, prompt.parse_reply(reader.raw), shown, sentences), question=question)
        finished = time.perf_counter()
        yield replace(answer, notes=tuple(notes) + answer.notes, timings=Timings(
            retrieval=retrieved - started, prompt=prompted - retrieved, first_token=(first or done) - started,
            first_text=(first_text or finished) - started, evidence=(picked or done) - started,
            llm=done - llm_start, check=finished - done, total=finished - started, prompt_tokens=tokens))

    def _reply(self, messages: list[Message], sentences: list[prompt.Sentence]) -> Iterator[str]:
        """The model's reply, a piece at a time. When a line of it is copying a shown sentence, the rest of
        that sentence but its last word is given rather than generated (`prompt.copy_ahead`), and the model
        goes on from there, if its generator can go on from a reply (`continues_replies`). A line that
        starts repeating itself ends the reply (`prompt.unlooped`; the checks cut the repeat)."""
        raw, left = "", self.settings.max_tokens
        grammar = prompt.grammar_for(sentences)
        continues = getattr(self.generator, "continues_replies", False)
        while left > 0:
            stream = self.generator.generate(messages, max_tokens=left, grammar=grammar,
                                             **({"reply": raw} if raw else {}))
            rest = None
            try:
                for piece in stream:
                    left -= 1
                    raw += piece
                    yield piece
                    line = prompt.last_line(raw)
                    if " " in piece and prompt.unlooped(line) != line:
                        return  # the model is repeating itself: nothing more worth waiting for
                    if continues and (rest := prompt.copy_ahead(raw, sentences)):
                        break
            finally:
                if hasattr(stream, "close"):
                    stream.close()
            if rest is None:
                return
            raw += rest
            yield rest
            grammar = prompt.grammar_for(sentences, after=len(prompt.parse_reply(raw).lines))

    def _fit(self, question: str, passages: list[Passage], history: History, embed, context: str | None = None):
        """Messages that fit the context window, showing the sentences of `passages` most about the question
        (or about `context`, the question as the conversation means it): the lowest-ranked passages go
        first, then the history."""
        budget = self.generator.context_size - self.settings.max_tokens
        shown = list(passages)
        vectors: dict[str, object] = {}  # each sentence embedded once, however often the prompt shrinks

        def embed_once(texts: list[str]) -> np.ndarray:
            missing = [t for t in dict.fromkeys(texts) if t not in vectors]
            if missing:
                vectors.update(zip(missing, embed(missing)))
            return np.stack([vectors[t] for t in texts])

        for earlier in (history, ()):
            while True:
                sentences = prompt.choose_sentences(question, prompt.number_sentences(shown), embed_once,
                                                    context=context)
                messages = prompt.build_messages(question, shown, sentences, earlier)
                fits = self.generator.count_tokens(messages) <= budget
                if fits or len(shown) == 1:
                    break
                shown.pop()
            if fits:
                break
        if not fits:  # the question alone fills the window: refuse it rather than overflow the model
            raise InputError(f"the question is too long for the model: with one passage the prompt needs "
                             f"{self.generator.count_tokens(messages):,} tokens and {budget:,} are available. "
                             "Ask something shorter.")
        notes = []
        if len(shown) < len(passages):
            notes.append(f"{len(passages) - len(shown)} lower-ranked passage(s) left out to fit the context window")
        return messages, shown, sentences, notes


def checked_answer(question: str, reply: prompt.Reply, passages: Sequence[Passage],
                   sentences: Sequence[prompt.Sentence], steps: Sequence[grounding.Step] = grounding.STEPS) -> Answer:
    """The claims of the model's `reply` that pass the checks (`steps`), as an answer with numbered
    citations, or a refusal. `passages` and `sentences` are what the model was shown."""
    claims = grounding.ground(reply, question, sentences, passages, steps)
    if not claims:
        return Answer(question, REFUSAL, refused=True, passages=tuple(passages))
    by_id = {s.id: s for s in sentences}
    numbers: dict[int, int] = {}   # sentence id -> citation number, in order of first use
    for claim in claims:
        for i in claim.ids:
            numbers.setdefault(i, len(numbers) + 1)
    citations = tuple(_citation(n, passages[by_id[i].passage], by_id[i]) for i, n in numbers.items())
    structured = tuple(AnswerSentence(_as_shown(c), tuple(numbers[i] for i in c.ids), c.quoted) for c in claims)
    return Answer(question, render(structured), citations, sentences=structured, refused=False,
                  passages=tuple(passages))


def render(sentences: Sequence[AnswerSentence]) -> str:
    """The answer as text: each sentence followed by its citation markers, before its final stop."""
    out = []
    for s in sentences:
        body = s.text.rstrip()
        end = body[-1] if body[-1:] in (".", "!", "?") else "."
        body = body.rstrip(".!?").rstrip()
        out.append(f"{body} {''.join(f'[{n}]' for n in s.citations)}{end}")
    return " ".join(out)


def _as_shown(claim: grounding.Claim) -> str:
    """A verbatim sentence is shown as a quotation."""
    if not claim.quoted or any(mark in claim.text for mark in "“”\""):
        return claim.text
    return f"“{claim.text.rstrip('.')}”"


def _quotes(ids: Sequence[int], sentences: Sequence[prompt.Sentence], passages: Sequence[Passage]) -> tuple[Quote, ...]:
    by_id = {s.id: s for s in sentences}
    out = []
    for i in ids:
        if i in by_id:
            p = passages[by_id[i].passage]
            out.append(Quote(p.title, p.source, p.date, by_id[i].text))
    return tuple(out)


def _citation(n: int, p: Passage, sentence: prompt.Sentence) -> Citation:
    return Citation(n=n, passage_id=p.id, doc_id=p.doc_id, source=p.source, title=p.title, date=p.date,
                    text=p.text, start=p.start, end=p.end, quote_start=sentence.start, quote_end=sentence.end,
                    score=p.score)


def ask(question: str, index_dir: str | Path | None = None, history: History = (), **settings) -> Answer:
    """Answer one question from the index at `index_dir` (default: QA_INDEX_DIR or the user data folder)."""
    return Assistant.load(index_dir, **settings).ask(question, history)
