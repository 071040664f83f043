"""The browser app: a chat whose answers stream in with their sources, uploads, settings, and an API.

`build_app(bot)` lays out the page and wires it to `chat.py` (answering), `render.py` (all HTML),
`uploads.py` and `export.py`; `serve(bot)` starts it, for this machine only unless told otherwise.
Questions (from the page or the API) share one queue slot, as the model answers one at a time; adding
articles has a slot of its own, so an upload does not wait for an answer and the next question sees it.

What reaches the server is bounded: 16 requests wait at most (the next is told the app is busy), a
request body is 1 MB at most (uploads: 10 MB a file, 64 MB a request), and refused by its declared
size before it is read. Serving beyond this machine needs a password, or an explicit `no_auth`.

Chat messages are our own escaped HTML (`render.py`), shown with Markdown rendering off and Gradio's
HTML sanitizer on; the chat's copy buttons would copy that HTML, so "Copy answer" copies Markdown.
This is the one module that imports Gradio.
"""

# No `from __future__ import annotations`: gr.api reads the endpoint's type hints at run time.

import hashlib
import ipaddress
import logging
import shutil
import sys
import tempfile
import weakref
from pathlib import Path

import gradio as gr
from starlette.middleware import Middleware
from starlette.middleware.body_limit import RequestBodyLimitMiddleware

from qa import Assistant, InputError, QAError, SearchFilter

from . import chat, export, render, uploads

log = logging.getLogger(__name__)

CSS = Path(__file__).with_name("style.css").read_text(encoding="utf-8")
MAX_UPLOAD = "10mb"      # per file; the loader's own limit is higher
MAX_UPLOAD_REQUEST = 64 * 2**20   # bytes of one upload, all its files together
MAX_REQUEST = 2**20      # bytes of any other request body: a question is 2,000 characters at most
UPLOAD_PATH = "/gradio_api/upload"
QUEUE_SIZE = 16          # requests waiting beyond this are turned away with a message
MAX_PASSAGES = 10        # the slider's end; more rarely fit the model's context window
COPY_JS = "(text) => { if (text) { navigator.clipboard.writeText(text); } return []; }"
PLACEHOLDER = ("Ask a question about the indexed articles. Every answer cites its sources: "
               "click a number like [1] to see the passage it comes from.")


def build_app(bot: Assistant, uploads_dir: str | Path | None = None) -> gr.Blocks:
    """The page for `bot`; uploads are kept in `uploads_dir` (default: `uploads` beside the index)."""
    uploads_dir = Path(uploads_dir) if uploads_dir else uploads.default_folder(bot)
    exports = Path(tempfile.mkdtemp(prefix="qa-export-"))

    def take(question, conversation):
        """Move the question out of the text box at once (so a second click cannot send it again) and
        show it, unless an answer is still being made: then it shows when its turn comes."""
        question = (question or "").strip()
        if not question:
            return "", gr.skip(), gr.skip()
        conversation.sent = question
        if conversation.pending:
            return question, "", gr.skip()
        return question, "", chat.messages([*conversation.exchanges, chat.waiting(question)])

    def respond(question, passages, since, until, sources, conversation):
        if not question:
            yield gr.skip()
            return
        yield from chat.respond(bot, question, conversation, passages, since, until, sources)

    def finished(conversation):
        """The export file and the text the copy button copies, for the conversation so far."""
        turns = conversation.answered()
        if not turns:
            return gr.DownloadButton(value=None, interactive=False), ""
        text = export.conversation_markdown(turns, bot.generator.name)
        folder = exports / hashlib.sha256(text.encode()).hexdigest()[:16]
        folder.mkdir(exist_ok=True)
        path = folder / "news-qa-conversation.md"
        path.write_text(text, encoding="utf-8")
        return gr.DownloadButton(value=str(path), interactive=True), export.answer_markdown(turns[-1][1])

    def turned_away(question, typed, conversation):
        """After a full queue turned the question away (it never began, and was not stopped or cleared):
        the question back in the box, unless the user typed another meanwhile, and the chat as it was."""
        if not question or conversation.sent != question:
            return gr.skip(), gr.skip()
        conversation.sent = None
        return typed or question, conversation.messages()

    def stop(conversation):
        conversation.stop()
        return conversation.messages()

    def clear(conversation):
        conversation.clear()
        return [], gr.DownloadButton(value=None, interactive=False), ""

    def add_articles(files, progress=gr.Progress(track_tqdm=True)):
        if not files:
            return gr.skip(), gr.skip(), gr.skip()
        progress(0, desc=f"Indexing {len(files)} file(s)…")
        try:
            report = uploads.add(bot, files, uploads_dir)
        except QAError as e:
            return render.message_html(str(e), "qa-error"), gr.skip(), None
        except Exception:  # the user gets a message, the log gets the traceback
            log.exception("adding %s failed", files)
            failed = "Adding the files failed (the server log has the details)."
            return render.message_html(failed, "qa-error"), gr.skip(), None
        return render.ingest_html(report), library(), None

    def library():
        return render.documents_html(bot.store.documents())

    def ask_api(question: str, passages: int = 0, since: str = "", until: str = "", sources: str = "") -> dict:
        """Answer a question from the indexed articles. `passages`: how many the model reads (0: the
        server's setting); `since`, `until`: a date range (2025-07-04, 2025-07 or 2025); `sources`:
        comma-separated parts of file paths. Returns {"text", "refused", "citations": [{"n", "title",
        "date", "source", "passage", "quote", ...}], "searched", "notes", ...}; the text's [n] markers
        name the citations."""
        try:
            filters = SearchFilter.parse(since, until, sources)
            answer = bot.ask(question, filters=filters, passages=int(passages) if passages else None)
        except QAError as e:
            raise gr.Error(str(e), print_exception=False) from None
        return export.answer_record(answer)

    with gr.Blocks(title="News QA", analytics_enabled=False, delete_cache=(3600, 6 * 3600)) as app:
        conversation = gr.State(chat.Conversation())  # one per session
        # With a model server (QA_LLM_URL), questions and passages go to it: say so rather than "this machine".
        where = (f"The model answers from {bot.generator.url}" if getattr(bot.generator, "url", None)
                 else "Everything runs on this machine")
        gr.HTML(f'<div class="qa-header"><h1>News QA</h1><p>Answers come from your articles only, each claim '
                f'with its source. {render.escape(where)} ({render.escape(bot.generator.name)}).</p></div>',
                elem_id="qa-header")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=420):
                chatbot = gr.Chatbot(
                    label="Conversation", elem_id="qa-chat", height="66vh", layout="bubble",
                    render_markdown=False, sanitize_html=True, latex_delimiters=[], allow_tags=False,
                    buttons=[], feedback_options=None, placeholder=PLACEHOLDER, autoscroll=True)
                with gr.Row(equal_height=True):
                    question = gr.Textbox(placeholder="Ask about the articles…", show_label=False, scale=6,
                                          max_length=bot.settings.max_question_chars, autofocus=True,
                                          elem_id="qa-question")
                    ask_btn = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="qa-ask")
                with gr.Row():
                    stop_btn = gr.Button("Stop", variant="stop", size="sm", elem_id="qa-stop")
                    clear_btn = gr.Button("Clear conversation", size="sm", elem_id="qa-clear")
                    copy_btn = gr.Button("Copy answer", size="sm", elem_id="qa-copy")
                    export_btn = gr.DownloadButton("Export as Markdown", size="sm", interactive=False,
                                                   elem_id="qa-export")
                asked = gr.Textbox(visible=False)        # the question on its way from the box to the model
                last_answer = gr.Textbox(visible=False)  # what "Copy answer" copies
            with gr.Column(scale=2, min_width=320):
                with gr.Accordion("Settings", open=True):
                    passages = gr.Slider(1, MAX_PASSAGES, value=min(bot.settings.passages, MAX_PASSAGES), step=1,
                                         label="Passages per question",
                                         info="How many passages the model reads before answering.",
                                         elem_id="qa-passages")
                    gr.Textbox(bot.generator.name, label="Model", interactive=False, elem_id="qa-model")
                with gr.Accordion("Search only", open=False):
                    with gr.Row():
                        since = gr.Textbox(label="From", placeholder="2025-07-01", elem_id="qa-since")
                        until = gr.Textbox(label="To", placeholder="2025-07", elem_id="qa-until")
                    sources = gr.Textbox(label="Sources", placeholder="reuters, politics/",
                                         info="Parts of file paths, separated by commas.", elem_id="qa-sources")
                with gr.Accordion("Add articles", open=True):
                    files = gr.File(file_count="multiple", file_types=uploads.FILE_TYPES, elem_id="qa-upload",
                                    label="Drop .txt, .md or .html files (10 MB each at most)")
                    upload_report = gr.HTML(elem_id="qa-upload-report")
                with gr.Accordion("Indexed articles", open=True):
                    documents = gr.HTML(library(), elem_id="qa-library")

        # The question travels by value from `take` to `respond`, so each click answers its own question;
        # "multiple" lets a question asked right after Stop wait for the model rather than be dropped.
        answering = dict(fn=respond, inputs=[asked, passages, since, until, sources, conversation], outputs=[chatbot],
                         concurrency_id="model", trigger_mode="multiple", show_progress="minimal",
                         api_visibility="private")
        asked_events = [trigger(take, [question, conversation], [asked, question, chatbot], queue=False,
                                api_visibility="private").then(**answering)
                        for trigger in (ask_btn.click, question.submit)]
        for event in asked_events:
            event.then(finished, [conversation], [export_btn, last_answer], api_visibility="private")
            # Turned away by a full queue: the question goes back in the box, to be sent again.
            event.failure(turned_away, [asked, question, conversation], [question, chatbot], queue=False,
                          api_visibility="private")
        stop_btn.click(stop, [conversation], [chatbot], cancels=asked_events, queue=False, api_visibility="private")
        for clearing in (clear_btn.click, chatbot.clear):  # the button, and the chat's own bin icon
            clearing(clear, [conversation], [chatbot, export_btn, last_answer], cancels=asked_events, queue=False,
                     api_visibility="private")
        copy_btn.click(None, [last_answer], None, js=COPY_JS, api_visibility="private")
        files.upload(add_articles, [files], [upload_report, documents, files], concurrency_id="index",
                     api_visibility="private")
        app.load(library, None, documents, api_visibility="private", queue=False)
        gr.api(ask_api, api_name="ask", concurrency_id="model")

    app.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    weakref.finalize(app, shutil.rmtree, exports, ignore_errors=True)
    return app


def serve(bot: Assistant, host: str = "127.0.0.1", port: int = 7860, auth=None, *, no_auth: bool = False,
          block: bool = True, uploads_dir: str | Path | None = None) -> gr.Blocks:
    """Start the app on `host`:`port` and print its address; with `block`, run until Ctrl-C.

    `auth` is Gradio's: a (user, password) pair, a list of them, or a function of the two. A `host`
    other than this machine's loopback needs `auth`, or `no_auth=True` to let anyone who can reach
    the port in (a QAError otherwise, before anything is loaded). Returns the running app (call
    `.close()` to stop it when `block` is False).
    """
    check_exposure(host, auth, no_auth)
    app = build_app(bot, uploads_dir)
    bot.warm_up()  # so the first question does not also pay for loading the embedder and the system prompt
    try:
        _, url, _ = app.launch(
            server_name=host, server_port=port, auth=auth, prevent_thread_lock=True, quiet=True,
            max_file_size=MAX_UPLOAD, css=CSS, share=False, inbrowser=False, ssr_mode=False,
            mcp_server=False, enable_monitoring=False, run_history=False, show_error=False,
            footer_links=["api", "settings"], app_kwargs={"middleware": [Middleware(BodyLimits)]})
    except OSError as e:
        raise QAError(f"cannot serve on {host}:{port}: {e}. Is another server using the port? "
                      "Choose another with --port.") from None
    # The one line a user needs, printed rather than logged: it is what `qa serve` answers with.
    print(f"News QA is running at {url} with {len(bot.store.documents())} articles and the model "
          f"{bot.generator.name}{' (password required)' if auth else ''}. Press Ctrl-C to stop.", flush=True)
    if not _is_loopback(host):
        if auth:
            print(f"Listening on {host}: other machines that can reach this one can use the app with the "
                  "password. Plain HTTP does not encrypt it: use a network you trust.", file=sys.stderr, flush=True)
        else:
            print(f"WARNING: listening on {host} without a password: anyone who can reach port {port} of this "
                  "machine can read the articles and add files.", file=sys.stderr, flush=True)
    if block:
        app.block_thread()
    return app


def check_exposure(host: str, auth, no_auth: bool = False) -> None:
    """A QAError when `host` lets other machines in without a password and `no_auth` does not say so."""
    if auth or no_auth or _is_loopback(host):
        return
    raise QAError(f"refusing to serve on {host} without a password: anyone who can reach this machine could "
                  "read the articles and add files. Set one with --auth USER:PASSWORD (or QA_AUTH=USER:PASSWORD), "
                  "or add --no-auth if everyone on that network may use the app.")


def parse_auth(text: str) -> tuple[str, str]:
    """`USER:PASSWORD` (from --auth or QA_AUTH) as Gradio's (user, password) pair; the password may hold ':'."""
    user, colon, password = text.partition(":")
    if not colon or not user.strip() or not password:
        raise InputError("the password must be given as USER:PASSWORD, both parts non-empty")
    return user.strip(), password


class BodyLimits:
    """ASGI middleware: request bodies over their limit get 413 Content Too Large.

    A body whose Content-Length is over the limit is refused before a byte of it is read; one sent
    without a length is refused as soon as it passes the limit (the server drops the rest unkept).
    Without this, Gradio's API reads a JSON body of any size into memory, and queues it, before the
    question is found too long. Gradio itself checks each uploaded file against MAX_UPLOAD.
    """

    def __init__(self, app):
        self.app = app
        self.uploads = RequestBodyLimitMiddleware(app, MAX_UPLOAD_REQUEST)
        self.others = RequestBodyLimitMiddleware(app, MAX_REQUEST)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif scope["path"].rstrip("/").endswith(UPLOAD_PATH):
            await self.uploads(scope, receive, send)
        else:
            await self.others(scope, receive, send)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
