"""The `qa` command: ingest, index-info, ask, chat, eval and serve.

Every `QAError` becomes a one-line message and exit status 2; no traceback reaches the terminal.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from index import QAError, SearchFilter, Store, default_embedder, ingest

from .config import Settings


def _settings(args) -> Settings:
    return Settings.from_env(index_dir=args.index, model=getattr(args, "model", None),
                             passages=getattr(args, "passages", None),
                             context_size=getattr(args, "context", None), threads=getattr(args, "threads", None),
                             llm_url=getattr(args, "llm_url", None))


def _assistant(args):
    from .assistant import Assistant

    s = _settings(args)
    return Assistant.load(s.index_dir, model=s.model, passages=s.passages, context_size=s.context_size,
                          threads=s.threads, llm_url=s.llm_url)


def cmd_ingest(args) -> int:
    s = _settings(args)
    r = ingest(args.paths, s.index_dir, default_embedder(), prune=args.prune, rebuild=args.rebuild)
    print(f"Index {s.index_dir}: {r.added} added, {r.updated} updated, {r.unchanged} unchanged, "
          f"{r.removed} removed, {r.duplicates} duplicate(s), {len(r.rejected)} rejected; "
          f"{r.chunks_embedded} passages embedded, {r.total_chunks} in the index; {r.seconds:.1f} s")
    for rejection in r.rejected:
        print(f"  rejected {rejection.source}: {rejection.reason}")
    return 0


def cmd_info(args) -> int:
    s = _settings(args)
    store = Store.open(s.index_dir, default_embedder())
    docs = store.documents()
    print(f"Index {s.index_dir}: {len(docs)} articles, {len(store)} passages, embedder {store.embedder_name} "
          f"({store.dim} dimensions), chunking {store.chunking.as_dict()}")
    print(f"Search: {_search_kind(store.vector_index)}")
    for d in docs:
        print(f"  {d.date or '----------'}  {d.passages:3d} passages  {d.title[:70]}  ({Path(d.source).name})")
    return 0


def _search_kind(info) -> str:
    """One line on how the vectors are searched: exact, or approximate with its parameters and measured recall."""
    if info.kind == "flat":
        return "exact (every passage compared)"
    recall = f", recall@10 {info.recall_at_10:.3f} measured on {info.tuned_with} held-out queries" \
        if info.recall_at_10 is not None else ""
    return f"approximate (IVF, {info.nlist} cells, {info.nprobe} searched per query{recall})"


def _format(answer) -> str:
    lines = [answer.text]
    for c in answer.citations:
        quote = " ".join(c.text[c.quote_start - c.start:c.quote_end - c.start].split())
        lines.append(f"  [{c.n}] {c.title} ({Path(c.source).name}{', ' + c.date if c.date else ''})\n      “{quote}”")
    if answer.refused and answer.passages:
        lines.append("  searched: " + "; ".join(dict.fromkeys(p.title for p in answer.passages)))
    lines += [f"  note: {note}" for note in answer.notes]
    lines.append(f"  ({answer.timings.total:.1f} s)")
    return "\n".join(lines)


def _filters(args) -> SearchFilter:
    """The --since/--until/--source options; an InputError for a date that is not one."""
    return SearchFilter.parse(args.since, args.until, args.source or ())


def _filtered_assistant(args):
    filters = _filters(args)  # a bad date fails before the model loads
    return _assistant(args), filters


def cmd_ask(args) -> int:
    from .assistant import clean_question

    clean_question(args.question, _settings(args).max_question_chars)  # a bad question fails before the model loads
    bot, filters = _filtered_assistant(args)
    if args.json:
        answer = bot.ask(args.question, filters=filters)
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        return 0
    print(_answer_with_status(bot, args.question, filters=filters))
    return 0


def _answer_with_status(bot, question: str, history=(), filters: SearchFilter | None = None) -> str:
    """Answer, showing on a terminal what is happening meanwhile.

    The streamed draft is not printed: the checked answer can differ from it (a citation replaced,
    a sentence dropped, a refusal), and a terminal cannot take back what it printed.
    """
    tty = sys.stderr.isatty()
    if tty:
        print("searching the articles…", end="", file=sys.stderr, flush=True)
    answer = None
    for n, event in enumerate(bot.stream(question, history, filters)):
        if isinstance(event, str):
            if tty and n == 0:
                print("\r\033[Kwriting the answer…", end="", file=sys.stderr, flush=True)
        else:
            answer = event
    if tty:
        print("\r\033[K", end="", file=sys.stderr, flush=True)
    return _format(answer)


def cmd_chat(args) -> int:
    bot, filters = _filtered_assistant(args)
    bot.warm_up()
    print(f"Ask about the {len(bot.store.documents())} articles in {bot.store.index_dir}. "
          "Empty line or Ctrl-D to quit, /clear to forget the conversation.")
    history: list[tuple[str, str]] = []
    while True:
        try:
            question = input("\n> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not question:
            return 0
        if question == "/clear":
            history.clear()
            continue
        try:
            text = _answer_with_status(bot, question, history, filters)
        except QAError as e:
            print(f"error: {e}")
            continue
        print(text)
        history.append((question, text.split("\n", 1)[0]))


def cmd_eval(args) -> int:
    from . import evaluation

    questions = evaluation.load_questions(args.file)
    bot = _assistant(args)
    bot.warm_up()

    def show(r):
        mark = "ok " if r.correct or (not r.question.answerable and r.answer.refused) else "BAD"
        t = r.answer.timings
        print(f"{mark} {r.question.id:8} first {t.first_token:5.1f}s total {t.total:5.1f}s "
              f"cites {len(r.answer.citations)} supp {r.supporting} | {r.answer.text[:110]}", flush=True)

    results = evaluation.run(bot, questions, on_result=None if args.quiet else show)
    summary = {"model": bot.generator.name, "passages": bot.settings.passages,
               **evaluation.summarize(results)}
    print(json.dumps(summary, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(
            {"summary": summary, "answers": [{"id": r.question.id, **r.answer.to_dict()} for r in results]},
            ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


def cmd_serve(args) -> int:
    from ui.app import check_exposure, parse_auth, serve

    text = None if args.no_auth else args.auth or os.environ.get("QA_AUTH")
    auth = parse_auth(text) if text else None
    check_exposure(args.host, auth, args.no_auth)  # before minutes of loading, not after
    serve(_assistant(args), host=args.host, port=args.port, auth=auth, no_auth=args.no_auth)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qa", description="Ask questions about your news articles, with citations.")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name, func, help_):
        c = sub.add_parser(name, help=help_)
        c.add_argument("--index", metavar="DIR", help="index folder (default: QA_INDEX_DIR or ~/.local/share/qa/index)")
        c.set_defaults(func=func)
        return c

    def model_options(c):
        c.add_argument("--model", help="GGUF file or packaged model name (QA_MODEL)")
        c.add_argument("--passages", type=int, help="passages shown to the model (QA_PASSAGES, default 4)")
        c.add_argument("--context", type=int, help="context window in tokens (QA_CONTEXT, default 2048)")
        c.add_argument("--threads", type=int, help="CPU threads (QA_THREADS, default: all cores)")
        c.add_argument("--llm-url", metavar="URL", help="an OpenAI-compatible chat server (llama.cpp, vLLM, "
                       "Ollama) to use instead of the local model; the prompt is sent there (QA_LLM_URL)")

    c = command("ingest", cmd_ingest, "add or update articles (files or folders) in the index")
    c.add_argument("paths", nargs="+")
    c.add_argument("--prune", action="store_true", help="drop articles whose files no longer exist")
    c.add_argument("--rebuild", action="store_true", help="start a fresh index (for an old or broken one)")
    command("index-info", cmd_info, "show what an index holds")
    def filter_options(c):
        c.add_argument("--since", metavar="DATE", help="only articles dated from DATE on (2025-07-04, 2025-07 or 2025)")
        c.add_argument("--until", metavar="DATE", help="only articles dated up to DATE (a month or year: all of it)")
        c.add_argument("--source", metavar="TEXT", action="append",
                       help="only articles whose file path contains TEXT (a site, folder or file name); repeatable")

    c = command("ask", cmd_ask, "answer one question")
    c.add_argument("question")
    c.add_argument("--json", action="store_true", help="print the answer, citations and timings as JSON")
    model_options(c)
    filter_options(c)
    c = command("chat", cmd_chat, "a conversation in the terminal")
    model_options(c)
    filter_options(c)
    c = command("eval", cmd_eval, "score a question file (JSON lines)")
    c.add_argument("file")
    c.add_argument("--output", metavar="FILE", help="also write every answer and the summary as JSON")
    c.add_argument("--quiet", action="store_true", help="print the summary only")
    model_options(c)
    c = command("serve", cmd_serve, "start the browser app")
    c.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; others need --auth or --no-auth)")
    c.add_argument("--port", type=int, default=7860)
    access = c.add_mutually_exclusive_group()
    access.add_argument("--auth", metavar="USER:PASSWORD",
                        help="ask for this user name and password (QA_AUTH, which keeps it out of the process list)")
    access.add_argument("--no-auth", action="store_true",
                        help="let anyone who can reach --host use the app without a password")
    model_options(c)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except QAError as e:
        print(f"qa: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qa: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `qa index-info | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush is quiet
        return 0


if __name__ == "__main__":
    sys.exit(main())
