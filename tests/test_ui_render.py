"""What the page shows: the HTML of answers, sources, refusals and articles, and a conversation as it streams.

render.py is the one place where text from articles, questions and the model becomes HTML, so these
tests feed it hostile text (a <script>, an <img onerror>, Markdown images and links) and check that it
comes out as text, and that citation links, source ids and <mark> spans land exactly where they should.
"""

from __future__ import annotations

import html
from html.parser import HTMLParser

import pytest

from index import DocumentInfo, IngestReport, Passage, Rejection
from fakes import FakeGenerator, quoting, shown_sentences
from qa import Answer, Assistant, Citation, InputError
from test_ui_api import fake_bot
from ui import chat, export, render

ARTICLE = (
    "EU sanctions package stalls\n\n"
    "date 2024-02-20\n\n"
    "The new sanctions package was held up on Tuesday. Budapest blocked it over the listing of a Hungarian "
    "bank, diplomats said. Talks resume next week.\n\n"
    "Officials in Brussels expect a compromise before the summit in March, when leaders meet again."
)
HOSTILE = ("<script>alert(1)</script> ![x](http://evil.example/p.png) <img src=x onerror=alert(2)> "
           "[y](javascript:alert(3))")


def citation(n: int = 1, quote: str = "Budapest blocked it over the listing of a Hungarian bank",
             passage: str = "Budapest blocked it over the listing of a Hungarian bank, diplomats said.",
             text: str = ARTICLE, **kw) -> Citation:
    start, q = text.index(passage), text.index(quote)
    fields = dict(n=n, passage_id=f"d1:{n}", doc_id="d1", source="/data/articles/sanctions.txt",
                  title="EU sanctions package stalls", date="2024-02-20", text=passage, start=start,
                  end=start + len(passage), quote_start=q, quote_end=q + len(quote), score=0.5)
    return Citation(**{**fields, **kw})


def passage(title: str, doc_id: str, date: str | None = None) -> Passage:
    return Passage(id=f"{doc_id}:0", doc_id=doc_id, source=f"/a/{doc_id}.txt", title=title, date=date,
                   text="text", start=0, end=4)


class Parsed(HTMLParser):
    """Ids, link targets, <mark> texts, tag names and the text of an HTML fragment."""

    def __init__(self, fragment: str):
        super().__init__()
        self.ids, self.hrefs, self.marks, self.tags = [], [], [], []
        self.text = ""
        self._in_mark = False
        self.feed(fragment)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self.ids += [attrs["id"]] if "id" in attrs else []
        self.hrefs += [attrs["href"]] if "href" in attrs else []
        if tag == "mark":
            self._in_mark = True
            self.marks.append("")

    def handle_endtag(self, tag):
        if tag == "mark":
            self._in_mark = False

    def handle_data(self, data):
        self.text += data
        if self._in_mark:
            self.marks[-1] += data


# -- citation links and source ids -------------------------------------------------------------------

def test_each_marker_links_to_its_source_in_the_same_turn():
    answer = Answer("Who blocked it?", "Budapest blocked it [1]. Talks resume next week [2].",
                    (citation(1), citation(2, quote="Talks resume next week", passage="Talks resume next week.")))
    page = Parsed(render.answer_html(answer, turn=3, articles={"d1": ARTICLE}))
    assert page.hrefs == ["#src-3-1", "#src-3-2"]
    assert page.ids == ["src-3-1", "src-3-2"], "every link has its target, and nothing else has an id"


def test_source_ids_differ_between_turns():
    answer = Answer("q", "Budapest blocked it [1].", (citation(),))
    first, second = (Parsed(render.answer_html(answer, turn, {"d1": ARTICLE})) for turn in (1, 2))
    assert set(first.ids).isdisjoint(second.ids)
    assert first.hrefs == ["#src-1-1"] and second.hrefs == ["#src-2-1"]


def test_a_marker_without_a_citation_stays_plain_text():
    text = render.answer_text_html("One [1], two [7] and [x].", turn=1, citations=(citation(),))
    assert Parsed(text).hrefs == ["#src-1-1"]
    assert "&#91;7&#93;" in text


def test_a_source_shows_title_date_and_file_name():
    source = render.source_html(citation(), turn=1, article=ARTICLE)
    assert "EU sanctions package stalls" in source and "2024-02-20" in source
    assert "sanctions.txt" in source and "/data/articles" not in source


def test_a_web_source_links_to_its_article_and_nothing_else_is_a_link():
    url = "https://news.example.com/2024/02/sanctions?id=7&x=\"><script>"
    web = Parsed(render.source_html(citation(source="https://news.example.com/2024/02/sanctions"), turn=1))
    assert web.hrefs == ["https://news.example.com/2024/02/sanctions"]
    assert "news.example.com/2024/02/sanctions" in web.text
    odd = Parsed(render.source_html(citation(source=url), turn=1))
    assert odd.hrefs == [url] and "script" not in odd.tags, "an odd URL stays an inert attribute"
    for source in ("javascript:alert(1)", "/data/articles/sanctions.txt", "news.jsonl#L12"):
        assert Parsed(render.source_html(citation(source=source), turn=1)).hrefs == []


# -- the passage in its article, with the supporting words marked ------------------------------------

@pytest.mark.parametrize("quote", [
    "Budapest blocked it over the listing of a Hungarian bank",   # at the passage's start
    "diplomats said",                                              # at its end, before the full stop
    "listing of a Hungarian",                                      # inside
])
def test_the_mark_covers_exactly_the_quote(quote):
    c = citation(quote=quote)
    page = Parsed(render.source_html(c, turn=1, article=ARTICLE))
    assert page.marks == [ARTICLE[c.quote_start:c.quote_end]] == [quote]


def test_the_passage_is_shown_inside_its_article():
    start, end = ARTICLE.index("Budapest"), ARTICLE.index(" Talks")
    shown = Parsed(render.in_context(ARTICLE, start, end, start, start + 8, margin=40)).text
    before, after = shown.split(ARTICLE[start:end])
    assert before.startswith("…") and after.endswith("…"), "the article goes on beyond the margins"
    before, after = before[1:], after[:-1]
    assert 20 < len(before) <= 40 and 20 < len(after) <= 40
    assert ARTICLE[:start].endswith(before) and ARTICLE[start - len(before) - 1] == " ", "cut at a space"
    assert ARTICLE[end:].startswith(after) and ARTICLE[end + len(after)] == " "


def test_no_mark_for_an_empty_quote_and_a_quote_is_kept_inside_its_passage():
    assert "<mark>" not in render.in_context(ARTICLE, 10, 50, 30, 30)
    page = Parsed(render.in_context(ARTICLE, 10, 50, 0, 999))
    assert page.marks == [ARTICLE[10:50]]


def test_a_passage_whose_article_is_gone_is_shown_alone():
    page = Parsed(render.source_html(citation(), turn=1, article=None))
    assert page.marks == ["Budapest blocked it over the listing of a Hungarian bank"]
    assert "Talks resume" not in render.source_html(citation(), turn=1, article=None)


# -- escaping ------------------------------------------------------------------------------------------

def hostile_answer() -> tuple[Answer, str]:
    article = f"{HOSTILE} title\n\nThe mayor said {HOSTILE} at noon. The bridge opens in May."
    quote = f"The mayor said {HOSTILE} at noon"
    c = citation(quote=quote, passage=quote + ".", text=article, title=f"Mayor {HOSTILE}", doc_id="d1")
    return Answer(f"What did the mayor say? {HOSTILE}", f"The mayor said {HOSTILE} [1].", (c,)), article


def test_scripts_and_tags_from_answers_and_articles_are_shown_as_text():
    answer, article = hostile_answer()
    shown = render.answer_html(answer, turn=1, articles={"d1": article}) + render.question_html(answer.question)
    assert set(Parsed(shown).tags) <= {"div", "a", "details", "summary", "span", "blockquote", "mark"}
    assert "<script" not in shown and "<img" not in shown and "onerror=" in html.unescape(shown)
    # shown as text six times: the answer, its link's title, the source's title, the article's first
    # line and the quote (both in the context), and the question
    assert html.unescape(shown).count("<script>alert(1)</script>") == 6


def test_markdown_images_and_links_in_answers_and_articles_stay_inert():
    """Even a Markdown renderer over our HTML finds no image, no link but ours, no emphasis."""
    markdown_it = pytest.importorskip("markdown_it")
    answer, article = hostile_answer()
    shown = render.answer_html(answer, turn=1, articles={"d1": article})
    assert "![" not in shown and "](" not in shown
    rendered = markdown_it.MarkdownIt("commonmark").render(shown)
    assert "<img" not in rendered and "javascript:" not in Parsed(rendered).hrefs
    assert Parsed(rendered).hrefs == ["#src-1-1"]


def test_the_streamed_text_is_escaped_too():
    assert "<img" not in render.pending_html(render.WRITING, HOSTILE)
    assert "<img" not in render.stopped_html(HOSTILE)
    assert "<img" not in render.error_html(HOSTILE)


# -- refusals ------------------------------------------------------------------------------------------

def test_a_refusal_says_so_and_lists_the_articles_searched():
    searched = (passage("Pipeline <b>deal</b>", "a", "2024-01-02"), passage("Summit", "b"),
                passage("Pipeline <b>deal</b>", "a", "2024-01-02"))
    answer = Answer("Who?", "The articles don't say: none of the passages I found answers this question.",
                    refused=True, passages=searched)
    shown = render.answer_html(answer, turn=1)
    page = Parsed(shown)
    assert "qa-refused" in shown and "The articles don&#39;t say" in shown
    assert "Searched 3 passages from 2 articles" in shown
    assert page.hrefs == [] and page.marks == [] and "<b>" not in shown
    assert html.unescape(shown).count("Pipeline <b>deal</b>") == 1 and "Summit" in shown


def test_a_refusal_with_nothing_searched_is_just_the_message():
    answer = Answer("Who?", "The index holds no articles yet.", refused=True)
    shown = render.answer_html(answer, turn=1)
    assert shown == '<div class="qa-answer qa-refused">The index holds no articles yet.</div>'


# -- the article list and upload reports ---------------------------------------------------------------

def test_the_article_list_shows_title_date_and_passages():
    docs = [DocumentInfo("a", "/x/a.txt", "Old <i>news</i>", "2023-01-01", "h", 3),
            DocumentInfo("b", "/x/b.md", "New", "2024-05-06", "h", 5)]
    shown = render.documents_html(docs)
    assert "2 articles, 8 passages" in shown and "<i>" not in shown
    assert shown.index("New") < shown.index("Old"), "newest first"
    assert "No articles" in render.documents_html([])


def test_an_upload_report_lists_rejected_files_with_the_reason():
    report = IngestReport(added=1, rejected=(Rejection("/up/empty.txt", "empty file"),
                                             Rejection("/up/<x>.pdf", "unsupported file type .pdf")), seconds=0.2)
    shown = render.ingest_html(report)
    assert "1 added, 2 rejected" in shown
    assert "empty.txt</span>: empty file" in shown and "&lt;x&gt;.pdf" in shown and "/up/" not in shown


# -- a conversation as it streams (chat.py) --------------------------------------------------------------

@pytest.fixture
def bot(tmp_path):
    return fake_bot(tmp_path)


def last_message(chat_messages: list[dict]) -> str:
    return chat_messages[-1]["content"]


def test_an_answer_streams_in_then_shows_its_sources(bot):
    conversation = chat.Conversation()
    shown = [last_message(m) for m in chat.respond(bot, "When did the Druzhba pipeline deliveries resume?",
                                                   conversation)]
    assert render.SEARCHING in shown[0]
    writing = [h for h in shown if render.WRITING in h]
    assert len(writing) > 3, "the answer arrives piece by piece"
    assert all(len(a) <= len(b) for a, b in zip(writing, writing[1:]))
    final = conversation.exchanges[-1]
    assert not final.pending and final.answer.citations and final.html == shown[-1]
    assert Parsed(final.html).hrefs == ["#src-1-1"] and Parsed(final.html).marks
    assert render.WRITING not in final.html


def test_follow_up_questions_carry_the_conversation(bot):
    conversation = chat.Conversation()
    list(chat.respond(bot, "When did the Druzhba pipeline deliveries resume?", conversation))
    list(chat.respond(bot, "Who won the election in the river town?", conversation))
    assert "Earlier question: When did the Druzhba pipeline deliveries resume?" in bot.generator.prompts[-1]
    assert conversation.history() == [(e.question, e.answer.text) for e in conversation.exchanges]
    assert Parsed(conversation.exchanges[-1].html).ids == ["src-2-1"]
    assert [m["role"] for m in conversation.messages()] == ["user", "assistant"] * 2


def test_errors_become_messages_and_stay_out_of_the_history(bot, monkeypatch):
    conversation = chat.Conversation()
    list(chat.respond(bot, "x" * 5000, conversation))
    assert "Could not answer" in conversation.exchanges[-1].html and "2,000" in conversation.exchanges[-1].html
    assert conversation.history() == []

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")
        yield

    monkeypatch.setattr(bot, "stream", broken)
    list(chat.respond(bot, "Anything?", conversation))
    assert "something went wrong" in conversation.exchanges[-1].html
    assert "secret internals" not in conversation.exchanges[-1].html


@pytest.mark.parametrize("action", ["stop", "clear"])
def test_a_stream_winding_down_after_stop_or_clear_changes_nothing(bot, action):
    """The model stops only between two pieces: what it says after Stop or Clear must not reach the page."""
    conversation = chat.Conversation()
    stream = chat.respond(bot, "When did the Druzhba pipeline deliveries resume?", conversation)
    for _ in range(6):
        next(stream)
    assert conversation.pending
    getattr(conversation, action)()
    after = list(conversation.exchanges)
    assert list(stream) == [], "the stream ends without another word"
    assert conversation.exchanges == after and conversation.history() == []
    if action == "stop":
        assert "Stopped" in after[-1].html and not after[-1].pending
    else:
        assert after == []


def test_a_question_after_stop_is_the_next_turn(bot):
    conversation = chat.Conversation()
    stream = chat.respond(bot, "When did the Druzhba pipeline deliveries resume?", conversation)
    next(stream)
    conversation.stop()
    list(chat.respond(bot, "Who won the election in the river town?", conversation))
    first, second = conversation.exchanges
    assert "Stopped" in first.html and second.answer is not None
    assert Parsed(second.html).ids == ["src-2-1"], "ids stay unique on the page"
    assert "Earlier question" not in bot.generator.prompts[-1], "a stopped answer is not history"


def test_each_session_gets_its_own_conversation():
    import copy

    initial = chat.Conversation()
    initial.begin("q")
    assert copy.deepcopy(initial).exchanges == []


def test_passages_are_set_for_one_request_only(bot):
    generator = FakeGenerator(quoting("Druzhba"))
    asking = Assistant(bot.store, generator, bot.settings)
    asking.ask("Where do Druzhba deliveries go?", passages=1)
    asking.ask("Where do Druzhba deliveries go?")
    shown = [len({s for s in shown_sentences(messages)}) for messages, _ in generator.calls]
    assert asking.settings.passages == 4 and shown[0] < shown[1]
    with pytest.raises(InputError):
        asking.ask("Where do Druzhba deliveries go?", passages=50)


# -- export --------------------------------------------------------------------------------------------

def test_the_export_has_every_question_answer_and_source():
    answer = Answer("Who blocked it?", "Budapest blocked it [1].", (citation(),))
    refusal = Answer("Who won?", "The articles don't say.", refused=True, passages=(passage("Summit", "b"),))
    text = export.conversation_markdown([("Who blocked it?", answer), ("Who won?", refusal)], "qwen")
    assert "## 1. Who blocked it?" in text and "## 2. Who won?" in text and "qwen" in text
    assert "[1] EU sanctions package stalls, 2024-02-20 (/data/articles/sanctions.txt): " \
           "“Budapest blocked it over the listing of a Hungarian bank”" in text
    assert "Searched:\n- Summit" in text


HOSTILE_MARKDOWN = [
    "![chart](http://evil.example/pixel.png)", "[click here](javascript:alert(1))", "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>", "<http://evil.example/auto>", "[ref][evil] and\n[evil]: http://evil.example/",
    "`code` and ```fence```", "[1](http://evil.example/)",
]


@pytest.mark.parametrize("hostile", HOSTILE_MARKDOWN)
def test_the_export_renders_article_and_model_text_as_text(hostile):
    """A Markdown viewer shows a hostile title, quote, answer or question as words: no link, image, HTML or code."""
    from markdown_it import MarkdownIt

    text = f"Budapest blocked it {hostile} over the listing of a Hungarian bank"
    quoted = citation(title=f"EU sanctions {hostile}", quote=text, passage=text, text=f"Intro. {text}. More.")
    answer = Answer("q", f"Budapest blocked it {hostile} [1].", (quoted,))
    refusal = Answer("q", f"No. {hostile}", refused=True, passages=(passage(f"Summit {hostile}", "b"),))
    exported = export.conversation_markdown([(f"Why {hostile}?", answer), ("Who won?", refusal)], "qwen")
    rendered = MarkdownIt("commonmark").render(exported)
    assert not any(tag in rendered for tag in ("<a ", "<img", "<script", "<code", "<pre")), rendered
    assert "[1] EU sanctions" in exported and "[1]." in exported   # our own markers stay plain
    words = html.unescape(rendered).replace("\\", "")
    assert "alert(1)" in words or "evil.example" in words or "code" in words   # still shown, as text
