"""Many users at once, and a long run: questions in parallel, adding articles while others ask, memory.

The browser API is served from 127.0.0.1 with fake models (`test_ui_api.py`'s helpers); "the model"
is either a fake generator that records how many generations run at once, or the real
`LlamaGenerator` around a fake `llama_cpp.Llama`, so the lock that guards the real model is tested.
Latency and resident memory with the real models are measured by bench/load.py and bench/memory.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import re
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from fakes import FakeGenerator, write_article
from index import load_file, writing
from test_ui_api import best_sentence, fake_bot, running_app

gradio_client = pytest.importorskip("gradio_client")
pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")

QUESTIONS = ["When did the Druzhba pipeline deliveries resume?", "Who won the election in the river town?",
             "What did farmers bring in this summer?", "Where did heads of government meet on Tuesday?"]


class Overlap:
    """Counts the generations running at once, and the most there ever were."""

    def __init__(self) -> None:
        self.running = self.peak = self.total = 0
        self._lock = threading.Lock()

    def __enter__(self):
        with self._lock:
            self.running += 1
            self.total += 1
            self.peak = max(self.peak, self.running)

    def __exit__(self, *exc):
        with self._lock:
            self.running -= 1


@dataclass
class CountingGenerator(FakeGenerator):
    """A fake model that takes `delay` seconds per piece, counts overlapping generations, and can be held
    at its first piece until `gate` is set. It keeps no calls, so a long run does not grow it."""

    delay: float = 0.0
    overlap: Overlap = field(default_factory=Overlap)
    gate: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        self.gate.set()

    def generate(self, messages, *, max_tokens=256, grammar=None):
        text = self.reply(messages) if callable(self.reply) else str(self.reply)
        with self.overlap:
            self.started.set()
            self.gate.wait()
            for i in range(0, len(text), 16):
                time.sleep(self.delay)
                yield text[i:i + 16]


class CountingLlama:
    """Stands in for `llama_cpp.Llama` inside the real LlamaGenerator: whitespace tokens, a ChatML
    template, and replies (`complete`, in place of `qa.llm.decode`) that quote the best sentence of
    passage [1], slowly, counted by `overlap`."""

    overlap = Overlap()
    delay = 0.0005
    metadata: dict = {}
    _model = SimpleNamespace(token_get_text=lambda token: "<|im_end|>")

    def __init__(self, **kwargs):
        pass

    def tokenize(self, data: bytes, add_bos=False, special=True):
        return re.findall(rb"\s*\S+\s*", data)  # a word with its spaces: joined, the exact text again

    def token_eos(self):
        return 2

    def token_bos(self):
        return -1

    def complete(self, prompt):
        # The generator sends token ids (here: the words), never text the template could be read into.
        text = b"".join(prompt).decode()
        user = text.rsplit("<|im_start|>user\n", 1)[-1].split("<|im_end|>", 1)[0]
        text = best_sentence([{"role": "user", "content": user}])
        written = b"".join(prompt).decode().rsplit("<|im_start|>assistant", 1)[-1].lstrip("\n")  # a reply gone on
        text = text[len(written):] if written and text.startswith(written) else text
        with self.overlap:
            for i in range(0, len(text), 32):
                time.sleep(self.delay)
                yield text[i:i + 32]


@pytest.fixture
def llama_generator(monkeypatch, tmp_path):
    """The real LlamaGenerator, around a CountingLlama."""
    llama_cpp = pytest.importorskip("llama_cpp")
    import qa.llm
    import qa.models
    from qa.llm import LlamaGenerator

    monkeypatch.setattr(llama_cpp, "Llama", CountingLlama)
    monkeypatch.setenv("QA_NATIVE_CHECK", "off")  # no real model file to try in a child process
    monkeypatch.setattr(qa.models, "resolve_model", lambda model, progress=True: tmp_path / "counting.gguf")
    monkeypatch.setattr(CountingLlama, "overlap", Overlap())
    monkeypatch.setattr(qa.llm, "decode", lambda llm, prompt, max_tokens, grammar=None: llm.complete(prompt))
    return LlamaGenerator("counting")


def test_a_model_file_without_a_chat_template_gets_chatml_with_the_assistant_turn_opened(llama_generator):
    prompt = llama_generator.render([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert prompt == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_the_real_generator_runs_one_generation_at_a_time(llama_generator):
    messages = [{"role": "user", "content": "[1] The ferry sailed at noon.\n\nQuestion: When did the ferry sail?"}]

    def generate(_):
        return "".join(llama_generator.generate(messages, max_tokens=64))

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(generate, range(16)))
    assert all(r.endswith("] The ferry sailed at noon.") for r in replies)
    assert (CountingLlama.overlap.total, CountingLlama.overlap.peak) == (16, 1)


def test_sixteen_browser_clients_and_sixteen_threads_share_one_model(tmp_path, llama_generator):
    """16 questions from gradio_client and 16 from Python threads, all at once, against one app."""
    bot = fake_bot(tmp_path, generator=llama_generator)
    app, url = running_app(bot, tmp_path / "uploads")
    try:
        client = gradio_client.Client(url, verbose=False)
        before = CountingLlama.overlap.total
        with ThreadPoolExecutor(32) as pool:
            browser = [pool.submit(client.predict, QUESTIONS[i % 4], api_name="/ask") for i in range(16)]
            python = [pool.submit(bot.ask, QUESTIONS[i % 4]) for i in range(16)]
            browser, python = [f.result(timeout=120) for f in browser], [f.result(timeout=120) for f in python]
    finally:
        app.close()
    assert all(not r["refused"] and r["citations"] for r in browser)
    assert all(not a.refused and a.citations for a in python)
    assert "resumed on Saturday" in browser[0]["text"] and "resumed on Saturday" in python[0].text
    # Two generations a question: the answer copies a sentence, whose rest is given (`prompt.copy_ahead`).
    assert CountingLlama.overlap.total - before == 64
    assert CountingLlama.overlap.peak == 1


def test_past_sixteen_waiting_a_question_is_told_the_server_is_busy(tmp_path):
    """While one answer is being written, 16 questions wait; the next ones are turned away with a message,
    and every question that got in is answered."""
    generator = CountingGenerator(reply=best_sentence)
    bot = fake_bot(tmp_path, generator=generator)
    app, url = running_app(bot, tmp_path / "uploads")
    generator.gate.clear()
    try:
        client = gradio_client.Client(url, verbose=False)
        first = client.submit(QUESTIONS[0], api_name="/ask")
        assert generator.started.wait(30), "the first question never reached the model"
        waiting = [client.submit(QUESTIONS[i % 4], api_name="/ask") for i in range(16)]
        _wait_until(lambda: len(app._queue) == 16)
        turned_away = [client.submit(QUESTIONS[i % 4], api_name="/ask") for i in range(3)]
        for job in turned_away:
            with pytest.raises(gradio_client.utils.QueueError, match="Queue is full"):
                job.result(timeout=30)
        generator.gate.set()
        answers = [job.result(timeout=60) for job in [first, *waiting]]
    finally:
        generator.gate.set()
        app.close()
    assert len(answers) == 17 and all(a["citations"] for a in answers)
    assert generator.overlap.peak == 1


def _wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_questions_asked_while_articles_are_added_see_a_whole_index(tmp_path):
    """Two writers (an upload and a Python `add`) keep adding and replacing articles while four threads
    ask and search. Every passage a question gets belongs to an article version that was written, with
    the article's words at its offsets, and never two versions of one article at once; at the end the
    index holds every article added."""
    from ui import uploads

    bot = fake_bot(tmp_path, generator=CountingGenerator(reply=best_sentence))
    versions = {load_file(p).doc_id: load_file(p).text for p in (tmp_path / "articles").iterdir()}
    failures: list[str] = []
    done = threading.Event()

    def write(folder, name, text):
        path = write_article(tmp_path / folder, name, text)
        doc = load_file(path)
        versions[doc.doc_id] = doc.text
        return path

    def replace_bulletin():
        for i in range(12):
            bot.add([write("rolling", "bulletin.txt", f"Harbour bulletin {i}\n\nThe harbour crane lifted "
                                                     f"{100 + i} containers on shift {i}, the port authority said.")])

    def upload_new():  # as the page's "Add articles" does
        for i in range(12):
            upload = write("browser-cache", f"town-{i}.txt", f"Town fair {i}\n\nThe town fair number {i} "
                                                            f"sold {i * 7} pumpkins to harbour visitors.")
            uploads.add(bot, [upload], tmp_path / "uploads", progress=False)

    def ask():
        questions = ["How many containers did the harbour crane lift?", "How many pumpkins did the town fair sell?",
                     *QUESTIONS]
        n = 0
        while not done.is_set():
            question = questions[n % len(questions)]
            n += 1
            try:
                passages = bot.search(question, 6)
                answer = bot.ask(question)
            except Exception as e:  # noqa: BLE001 - any error is a failure of this test
                failures.append(f"{question}: {type(e).__name__}: {e}")
                continue
            for p in [*passages, *answer.citations]:
                if versions.get(p.doc_id, "")[p.start:p.end] != p.text:
                    failures.append(f"{question}: passage {p.doc_id}:{p.start} is not in any written article")
            bulletins = {p.doc_id for p in passages if p.source.endswith("bulletin.txt")}
            if len(bulletins) > 1:
                failures.append(f"{question}: two versions of the bulletin in one search")

    with ThreadPoolExecutor(6) as pool:
        readers = [pool.submit(ask) for _ in range(4)]
        writers = [pool.submit(replace_bulletin), pool.submit(upload_new)]
        try:
            for w in writers:
                w.result(timeout=120)
        finally:
            done.set()
        for r in readers:
            r.result(timeout=60)
    assert not failures, failures[:5]
    sources = {d.source.rsplit("/", 1)[-1] for d in bot.store.documents()}
    assert {f"town-{i}.txt" for i in range(12)} | {"bulletin.txt"} <= sources
    [bulletin] = [d for d in bot.store.documents() if d.source.endswith("bulletin.txt")]
    assert "shift 11" in bot.store.document(bulletin.doc_id).text


def test_an_ingest_in_another_process_waits_for_the_one_in_this_process(tmp_path, store):
    """`qa ingest` in a terminal while the server adds an upload: one writer at a time, across processes."""
    article = write_article(tmp_path / "more", "ferry.txt", "Ferry sails again\n\nThe ferry sailed at noon.")
    here = Path(__file__).resolve().parent
    script = ("import faiss, numpy\nfrom fakes import HashEmbedder\nfrom index import ingest\n"
              "print('ready', flush=True)\n"
              f"report = ingest([{str(article)!r}], {str(store.index_dir)!r}, HashEmbedder(), progress=False)\n"
              "print('added', report.added, flush=True)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), str(here.parent)])}
    with writing(store.index_dir):
        other = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
        try:
            assert other.stdout.readline().strip() == "ready"
            time.sleep(1.0)  # far longer than the ingest of one article takes
            assert other.poll() is None, "the other process wrote the index while this one held its lock"
        except BaseException:
            other.kill()
            raise
    out, _ = other.communicate(timeout=60)
    assert out.strip() == "added 1"


def test_many_questions_leave_no_growing_state_behind(store):
    """Python-side memory after 200 more questions is what it was after the first 50, give or take what
    the interpreter's caches hold: nothing remembers every question (keeping each answer costs ~2 KB)."""
    from qa import Assistant, Settings

    bot = Assistant(store, CountingGenerator(reply=best_sentence), Settings(index_dir=store.index_dir))

    def ask(n):
        for i in range(n):
            bot.ask(f"{QUESTIONS[i % 4]} (asked {i} times)")

    ask(30)
    tracemalloc.start()
    try:
        ask(20)
        baseline = tracemalloc.get_traced_memory()[0]
        ask(150)
        grown = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert grown < 150 * 1000, f"{grown / 150:.0f} bytes kept per question"
