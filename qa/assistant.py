"""The assistant: a question in, an answer out whose every claim is cited, or an honest refusal.

One question goes through: cleaning and checking the question, retrieval (`retrieval.py`), a prompt
trimmed to the context window (`prompt.py`), one constrained generation (`llm.py`), and the citation
check (`citations.py`). The collaborators are passed in (a `Store`, a `Generator`), so tests run with
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

from index import (Embedder, IngestReport, InputError, Passage, SearchFilter, Store, default_embedder, ingest,
                   split_sentences, writing)

from . import citations, injection, prompt
from .answer import Answer, Citation, Timings
from .config import Settings
from .llm import Generator, LlamaGenerator
from .retrieval import retrieve, standalone_query

log = logging.getLogger(__name__)

REFUSAL = "The articles don't say: none of the passages I found answers this question."
MIN_RELEVANCE = 0.67  # share of the question's content words a quoted sentence must contain
History = Sequence[tuple[str, str]]

# Phrases a model uses when it has nothing to say; such a reply is a refusal, whatever it cites.
_NOTHING = re.compile(
    r"\b(not (mentioned|stated|specified|provided|given|say|said|known|available|found|clear)|"
    r"no (information|mention|details?)|does not (say|mention|specify|state|provide)|"
    r"do not (say|mention|specify|state|provide)|unknown|cannot be determined)\b", re.IGNORECASE)

_INVISIBLE = {"Cf", "Co", "Cs", "Cn"}
_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")  # variation selectors

_YES_NO = re.compile(r"^(?:yes|no)\s*[,.;:!\u2013\u2014-]\s*", re.IGNORECASE)

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
        messages = prompt.build_messages("warm up", [], ())
        stream = self.generator.generate(messages, max_tokens=1)
        next(iter(stream), None)
        if hasattr(stream, "close"):
            stream.close()

    def search(self, query: str, k: int | None = None, filters: SearchFilter | None = None) -> list[Passage]:
        return retrieve(self.store, query, k or self.settings.passages, filters=filters)

    # -- answering -------------------------------------------------------------------------------------

    def ask(self, question: str, history: History = (), filters: SearchFilter | None = None) -> Answer:
        answer = None
        for event in self.stream(question, history, filters):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None
        return answer

    def stream(self, question: str, history: History = (),
               filters: SearchFilter | None = None) -> Iterator[str | Answer]:
        """Yield the answer's text as the model writes it, then the checked `Answer` (which may differ).

        `filters`: only articles of that date range and those sources are searched.
        """
        started = time.perf_counter()
        question = clean_question(question, self.settings.max_question_chars)
        history = [(clean_question(q, 10 * self.settings.max_question_chars), visible_text(a))
                   for q, a in history][-3:]
        with self._store_lock:
            store = self.store
        if filters and not store.count(filters):
            raise InputError(f"no article in the index is {filters.describe()}; `qa index-info` lists the "
                             "articles with their dates and files")
        passages = retrieve(store, standalone_query(question, history), self.settings.passages, filters=filters)
        retrieved = time.perf_counter()
        if not passages:
            yield Answer(question, "The index holds no articles yet: add some with `qa ingest PATH`.",
                         refused=True, timings=Timings(retrieval=retrieved - started, total=retrieved - started))
            return

        messages, passages, notes = self._fit(question, passages, history)
        tokens = self.generator.count_tokens(messages)
        prompted = time.perf_counter()
        reader = prompt.AnswerStream()
        first = first_text = None
        llm_start = time.perf_counter()
        for piece in self.generator.generate(messages, max_tokens=self.settings.max_tokens,
                                             grammar=prompt.grammar(len(passages))):
            if first is None:
                first = time.perf_counter()
            visible = reader.feed(piece)
            if visible:
                first_text = first_text or time.perf_counter()
                yield visible
        done = time.perf_counter()
        log.debug("model reply: %s", reader.raw)
        answer = self._finish(question, prompt.parse_reply(reader.raw), passages, store)
        finished = time.perf_counter()
        yield replace(answer, notes=tuple(notes) + answer.notes, timings=Timings(
            retrieval=retrieved - started, prompt=prompted - retrieved, first_token=(first or done) - started,
            first_text=(first_text or done) - started, llm=done - llm_start, check=finished - done,
            total=finished - started, prompt_tokens=tokens))

    def _fit(self, question: str, passages: list[Passage], history: History):
        """Messages that fit the context window: the lowest-ranked passages go first, then the history."""
        budget = self.generator.context_size - self.settings.max_tokens
        shown = list(passages)
        for earlier in (history, ()):
            while True:
                messages = prompt.build_messages(question, shown, earlier)
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
        return messages, shown, notes

    def _finish(self, question: str, reply: prompt.Reply, passages: list[Passage], store: Store) -> Answer:
        refusal = Answer(question, REFUSAL, refused=True, passages=tuple(passages))
        if not reply.answer.strip() or _NOTHING.search(reply.answer):
            return refusal
        # Text written to the model (an injected instruction, a fake chat turn, markup) backs no claim and
        # is no quote: the checks below see the passages without it; the citations show them whole.
        originals, passages = passages, [injection.without_instructions(p) for p in passages]
        # "Yes, Serbia has refused to join…": the statement can be checked against the passage, the
        # yes or no cannot (and small models get it backwards), so the statement answers alone.
        answer = _YES_NO.sub("", reply.answer.strip())
        answer = answer[:1].upper() + answer[1:]
        # The quote says where the answer came from better than the number does: small models often
        # copy the right words but name the passage next to them.
        chosen = reply.passage - 1 if 1 <= reply.passage <= len(passages) else 0
        holder = _passage_with(reply.quote, passages, prefer=chosen)
        quote_span = citations.find_quote(reply.quote, passages[holder])
        quoted = quote_span and _text_at(passages[holder], *citations.sentence_around(passages[holder], *quote_span))
        if quoted and citations.date_conflict(question, quoted):
            # The model read the sentence about another month or year: its answer goes with it, and
            # the sentence about the one asked, if the passage has one, takes its place.
            quote_span, answer = _sentence_on_date(question, passages[holder]), ""
        elif citations.date_conflict(question, answer):
            answer = ""
        checked = citations.check(f"{answer} [{holder + 1}]", passages, question) if answer else []
        grounded = [c for c in checked if holder in c.sources]

        candidates = []
        if grounded:
            candidates.append((grounded, quote_span, False))
        if quote_span:
            # The model found the right words but paraphrased them wrongly (or added a detail from
            # nowhere): answer with the sentence it quoted, verbatim, if that sentence is about the question.
            lo, hi = citations.sentence_around(passages[holder], *quote_span)
            sentence = _text_at(passages[holder], lo, hi)
            if citations.relevance(question, sentence) >= MIN_RELEVANCE:
                sentence = " ".join(sentence.split()).rstrip(".")
                if not any(mark in sentence for mark in "“”\""):
                    sentence = f"“{sentence}”"  # verbatim words are shown as a quotation
                candidates.append(([citations.Cited(sentence, (holder,))], (lo, hi), True))
        if checked and not grounded:
            candidates.append((checked, None, False))

        for cited, span, verbatim in candidates:
            text, order = citations.render(cited)
            # An address in an answer is what an injected "reply with this link" wants: only a sentence of
            # the passage, quoted word for word, may carry one (and never from text hidden above).
            if not verbatim and injection.urls(text):
                log.info("not answering with %r: an address only stands in a quotation", text)
                continue
            shown = [originals[i] for i in order]
            articles = " ".join(store.document(doc_id).text for doc_id in dict.fromkeys(p.doc_id for p in shown))
            missing = citations.missing_names(question, articles)
            if missing:
                log.info("not answering with %r: the cited articles never mention %s", text, ", ".join(missing))
                continue
            spans = [span if span and i == holder else (p.start, p.end) for i, p in zip(order, shown)]
            result = tuple(_citation(n, p, spans[n - 1]) for n, p in enumerate(shown, 1))
            return Answer(question, text, result, refused=False, passages=tuple(originals))
        return refusal


def _text_at(passage: Passage, start: int, end: int) -> str:
    """The words of `passage` between two article offsets."""
    return passage.text[start - passage.start:end - passage.start]


def _sentence_on_date(question: str, passage: Passage) -> tuple[int, int] | None:
    """The span (article offsets) of the sentence of `passage` most about the question that names the
    month or year it asks about; None when no sentence does."""
    asked = citations.dates_in(question)
    best, span = MIN_RELEVANCE, None
    for lo, hi in split_sentences(passage.text):
        sentence = passage.text[lo:hi]
        if asked & citations.dates_in(sentence) and not citations.date_conflict(question, sentence):
            score = citations.relevance(question, sentence)
            if score >= best:
                best, span = score, (passage.start + lo, passage.start + hi)
    return span


def _citation(n: int, p: Passage, quote: tuple[int, int]) -> Citation:
    return Citation(n=n, passage_id=p.id, doc_id=p.doc_id, source=p.source, title=p.title, date=p.date,
                    text=p.text, start=p.start, end=p.end, quote_start=quote[0], quote_end=quote[1], score=p.score)


def _passage_with(quote: str, passages: Sequence[Passage], prefer: int) -> int:
    """The position of the passage that contains `quote` (the model's own choice when it does, or on a tie)."""
    from rapidfuzz import fuzz

    quote = citations.fold(quote.strip())
    if len(quote) < 8:
        return prefer
    scores = [fuzz.partial_ratio(quote, citations.fold(p.text)) for p in passages]
    best = max(range(len(passages)), key=lambda i: (scores[i], i == prefer))
    return prefer if scores[prefer] >= scores[best] - 1 or scores[best] < 80 else best


def ask(question: str, index_dir: str | Path | None = None, history: History = (), **settings) -> Answer:
    """Answer one question from the index at `index_dir` (default: QA_INDEX_DIR or the user data folder)."""
    return Assistant.load(index_dir, **settings).ask(question, history)
