"""The `qa` command: ingest, index-info, ask, chat, eval and serve.

Every `QAError` becomes a one-line message and exit status 2; no traceback reaches the terminal.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

from index import InputError, QAError, SearchFilter, Store, default_embedder, ingest

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
    from index.archives import ArchiveFields, check_fields
    from index.fetch import FetchPolicy

    s = _settings(args)
    fields = ArchiveFields(text=args.text_field, title=args.title_field, date=args.date_field, url=args.url_field)
    check_fields(fields)
    if args.fetch_timeout <= 0 or args.every <= 0:
        raise InputError("--fetch-timeout and --every must be more than 0 seconds")
    policy = FetchPolicy(enabled=args.fetch, allow_private=args.allow_private or _flag("QA_FETCH_ALLOW_PRIVATE"),
                         timeout=args.fetch_timeout)
    embedder = default_embedder()
    rebuild = args.rebuild
    while True:
        r = ingest(args.paths, s.index_dir, embedder, prune=args.prune, rebuild=rebuild, fields=fields, fetch=policy)
        print(f"Index {s.index_dir}: {r.added} added, {r.updated} updated, {r.unchanged} unchanged, "
              f"{r.removed} removed, {r.duplicates} duplicate(s), {len(r.rejected)} rejected; "
              f"{r.chunks_embedded} passages embedded, {r.total_chunks} in the index; {r.seconds:.1f} s", flush=True)
        for rejection in r.rejected:
            print(f"  rejected {rejection.source}: {rejection.reason}")
        if not args.watch:
            return 0
        rebuild = False  # once, not every round
        print(f"watching: next update in {args.every:g} s (Ctrl-C to stop)", file=sys.stderr, flush=True)
        time.sleep(args.every)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def where(source: str) -> str:
    """Where an article came from, for a citation: a web article's URL, a file's name (with its row)."""
    return source if source.startswith(("http://", "https://")) else Path(source).name


def cmd_info(args) -> int:
    s = _settings(args)
    store = Store.open(s.index_dir, default_embedder())
    docs = store.documents()
    print(f"Index {s.index_dir}: {len(docs)} articles, {len(store)} passages, embedder {store.embedder_name} "
          f"({store.dim} dimensions), chunking {store.chunking.as_dict()}")
    print(f"Search: {_search_kind(store.vector_index)}")
    for d in docs:
        print(f"  {d.date or '----------'}  {d.passages:3d} passages  {d.title[:70]}  ({where(d.source)})")
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
        lines.append(f"  [{c.n}] {c.title} ({where(c.source)}{', ' + c.date if c.date else ''})\n      “{quote}”")
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
    from .answer import Answer, Evidence, Searched

    tty = sys.stderr.isatty()

    def status(text: str) -> None:
        if tty:
            print(f"\r\033[K{text[:max(20, shutil.get_terminal_size().columns - 1)]}", end="", file=sys.stderr,
                  flush=True)

    status("searching the articles…")
    answer = None
    for event in bot.stream(question, history, filters):
        if isinstance(event, Answer):
            answer = event
        elif isinstance(event, Searched):
            status(f"reading {len(event.titles)} article(s): {'; '.join(event.titles)}")
        elif isinstance(event, Evidence):
            # The evidence is final once picked (the checks can only drop from it): shown on its own lines.
            status("")
            for q in event.quotes if tty else ():
                print(f"  from {q.title}: “{q.text}”", file=sys.stderr, flush=True)
            status("writing the answer…")
    status("")
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
    """Score every question file named (a folder: every set in it), each against its own index."""
    from . import evaluation
    from .assistant import Assistant, shared_generator
    from .models import default_cache_dir

    files = evaluation.question_files(args.paths)
    settings = _settings(args)
    embedder = default_embedder()
    generator = None
    report = {}
    for path in files:
        questions = evaluation.half(evaluation.load_questions(path), args.half)
        questions = questions[:args.limit] if args.limit else questions
        index_dir = Path(args.index) if args.index else evaluation.prepare(
            path, default_cache_dir() / "eval", lambda articles, into: ingest([articles], into, embedder))
        generator = generator or shared_generator(settings)
        bot = Assistant(Store.open(index_dir, embedder), generator, settings)
        bot.warm_up()
        print(f"== {path} ({len(questions)} questions, index {index_dir})", flush=True)

        def show(r):
            mark = "ok " if r.correct or (not r.question.answerable and r.answer.refused) else "BAD"
            t = r.answer.timings
            print(f"{mark} {r.question.id:14} shown {t.first_text:5.1f}s total {t.total:5.1f}s "
                  f"cites {len(r.answer.citations)} supp {r.supporting} | {r.answer.text[:110]}", flush=True)

        results = evaluation.run(bot, questions, on_result=None if args.quiet else show)
        summary = {"model": generator.name, "passages": settings.passages, **evaluation.by_half(results)}
        print(json.dumps(summary["all"], indent=1), flush=True)
        report[str(path)] = {"summary": summary,
                             "answers": [{"id": r.question.id, **r.answer.to_dict()} for r in results]}
    if args.output:
        Path(args.output).write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
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
        c.add_argument("--passages", type=int, help="passages retrieved, whose sentences most about the question "
                                                    "the model reads (QA_PASSAGES, default 8)")
        c.add_argument("--context", type=int, help="context window in tokens (QA_CONTEXT, default 2048)")
        c.add_argument("--threads", type=int, help="CPU threads (QA_THREADS, default: all cores)")
        c.add_argument("--llm-url", metavar="URL", help="an OpenAI-compatible chat server (llama.cpp, vLLM, "
                       "Ollama) to use instead of the local model; the prompt is sent there (QA_LLM_URL)")

    c = command("ingest", cmd_ingest, "add or update articles (files, folders, feeds, archives, URLs) in the index")
    c.add_argument("paths", nargs="+", metavar="FILE_FOLDER_OR_URL",
                   help=".txt .md .html .pdf files, RSS/Atom feeds (.rss .atom .xml), archives (.jsonl .jsonl.gz "
                   ".csv), folders of them, or http(s) URLs of feeds or article pages")
    c.add_argument("--prune", action="store_true", help="drop articles whose files no longer exist")
    c.add_argument("--rebuild", action="store_true", help="start a fresh index (for an old or broken one)")
    c.add_argument("--text-field", default="text", metavar="NAME",
                   help="archive field with the article text (default: text, content, body, article...)")
    c.add_argument("--title-field", default="title", metavar="NAME", help="archive field with the title "
                   "(default: title, headline)")
    c.add_argument("--date-field", default="date", metavar="NAME", help="archive field with the date "
                   "(default: date, published, publish_date...)")
    c.add_argument("--url-field", default="url", metavar="NAME", help="archive field with the article's URL "
                   "(default: url, link)")
    c.add_argument("--fetch", action="store_true", help="download the full article from the link of a feed "
                   "entry that holds only a summary (a URL given on the command line is always fetched)")
    c.add_argument("--allow-private", action="store_true", help="let fetching reach private and local "
                   "addresses, e.g. a feed on this network (QA_FETCH_ALLOW_PRIVATE=1)")
    c.add_argument("--fetch-timeout", type=float, default=20.0, metavar="SECONDS",
                   help="give up on one download after this long (default 20)")
    c.add_argument("--watch", action="store_true", help="keep the index current: ingest again every --every "
                   "seconds until Ctrl-C; known articles are skipped, changed ones re-embedded")
    c.add_argument("--every", type=float, default=900.0, metavar="SECONDS",
                   help="seconds between updates with --watch (default 900)")
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
    c = command("eval", cmd_eval, "score question files (JSON lines) or every set in a folder")
    c.add_argument("paths", nargs="+", metavar="FILE_OR_FOLDER",
                   help="question files, or folders of them (e.g. ../shared/eval); each is asked against an index "
                        "of its own articles, built once, unless --index is given")
    c.add_argument("--half", choices=["all", "even", "odd"], default="all",
                   help="only the questions at even or odd positions (tune on one half, check on the other)")
    c.add_argument("--limit", type=int, help="at most this many questions per file")
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
