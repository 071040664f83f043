"""`qa eval`'s judge (qa/evaluation.py) and the replay of recorded replies (bench/replay.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from fakes import ARTICLES, FakeGenerator, HashEmbedder, best_sentence, indexed_store
from index import InputError
from qa import Assistant, Settings, evaluation
from qa.answer import Answer, Citation
from qa.evaluation import Question, judge, load_questions, score, summarize

ROOT = Path(__file__).resolve().parent.parent


def question(**fields) -> Question:
    base = dict(id="q", question="Where did they meet?", conversation=("Where did they meet?",), expect_any=(),
                expect_all=(), evidence_any=(), sources=(), answerable=True)
    return Question(**{**base, **fields})


def citation(n: int, source: str, text: str, doc: str | None = None) -> Citation:
    return Citation(n=n, passage_id=f"p{n}", doc_id=doc or source, source=f"/articles/{source}", title="t",
                    date=None, text=text, start=0, end=len(text), quote_start=0, quote_end=len(text), score=0.0)


def test_question_files_are_read_with_every_field_and_a_bad_line_is_an_input_error(tmp_path):
    path = tmp_path / "set.jsonl"
    rows = [{"id": "a", "question": "Who spoke?", "expect_any": ["Kallas"], "evidence_any": ["Kallas said"],
             "sources": ["x.txt"]},
            {"id": "b", "question": "What did he add?", "conversation": ["Who spoke?", "What did he add?"],
             "expect_all": [["gas"], ["oil", "crude"]], "min_sources": 2},
            {"id": "c", "question": "What was the temperature?", "answerable": False}]
    path.write_text("\n".join(map(json.dumps, rows)) + "\n\n")
    a, b, c = load_questions(path)
    assert (a.expect_any, a.conversation, a.answerable, a.min_sources) == (("Kallas",), ("Who spoke?",), True, 0)
    assert (b.expect_all, b.conversation[0], b.min_sources) == ((("gas",), ("oil", "crude")), "Who spoke?", 2)
    assert not c.answerable
    path.write_text(json.dumps(rows[0]) + "\n{not json\n")
    with pytest.raises(InputError, match="line 2"):
        load_questions(path)


def test_an_answer_is_correct_when_it_holds_an_expected_string_in_any_case_and_accent():
    q = question(expect_any=("Orbán",))
    assert judge(q, Answer(q.question, "VIKTOR ORBAN met him [1].")) == (True, None)
    assert judge(q, Answer(q.question, "Someone else met him [1].")) == (False, None)
    assert judge(q, Answer(q.question, "Orban? The articles don't say.", refused=True)) == (False, None)
    assert judge(question(answerable=False), Answer(q.question, "Anything [1].")) == (False, None)


def test_a_several_fact_answer_needs_every_group_and_its_recall_counts_the_groups_held():
    q = question(expect_all=(("gas",), ("oil", "crude"), ("nuclear",)))
    assert judge(q, Answer(q.question, "Gas and crude [1].")) == (False, pytest.approx(2 / 3))
    assert judge(q, Answer(q.question, "Gas, oil and nuclear fuel [1].")) == (True, 1.0)


def test_citations_support_an_answer_only_from_a_source_article_holding_the_evidence():
    q = question(expect_any=("Beijing",), evidence_any=("in Beijing",), sources=("a.txt", "b.txt"), min_sources=2)
    answer = Answer(q.question, "In Beijing [1][2][3].", citations=(
        citation(1, "a.txt", "They met in Beijing."),          # supports
        citation(2, "c.txt", "They met in Beijing."),          # not a source article
        citation(3, "b.txt", "The talks lasted two hours.")))  # a source, without the evidence
    result = score(q, answer)
    assert (result.correct, result.supporting, result.articles) == (True, 1, 1)
    both = score(q, Answer(q.question, "In Beijing [1][2].", citations=(
        citation(1, "a.txt", "They met in Beijing."), citation(2, "b.txt", "Talks in Beijing ended."))))
    summary = summarize([result, both, score(question(answerable=False), Answer("?", "No.", refused=True))])
    assert summary["citation_precision"] == {"n": 3, "of": 5, "rate": 0.6}
    assert summary["citation_coverage"]["n"] == 2
    assert summary["multi_source"] == {"n": 1, "of": 2, "rate": 0.5}
    assert summary["unanswerable_refused"]["n"] == 1 and summary["answerable_refused"]["n"] == 0


def test_halves_are_the_even_and_odd_positions_of_the_file():
    right = Answer("?", "Beijing [1].")
    results = [score(question(id=str(i), expect_any=("Beijing" if i % 2 else "Vienna",)), right) for i in range(6)]
    halves = evaluation.by_half(results)
    assert [halves[h]["answer_accuracy"]["n"] for h in ("all", "even", "odd")] == [3, 0, 3]


@pytest.fixture
def replay():
    spec = importlib.util.spec_from_file_location("replay", ROOT / "bench" / "replay.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recorded_replies_checked_again_score_as_the_live_run(tmp_path, replay):
    rows = [{"question": "Where did heads of government meet for the forum?", "expect_any": ["Beijing"],
             "evidence_any": ["Beijing"], "sources": ["summit.txt"]},
            {"question": "Why did oil deliveries resume after the halt?", "expect_any": ["repaired"],
             "evidence_any": ["repaired"], "sources": ["pipeline.txt"]},
            {"question": "How much did grain prices fall in percent?", "answerable": False}]
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(map(json.dumps, rows)))
    store = indexed_store(tmp_path, HashEmbedder(), ARTICLES)
    bot = Assistant(store, FakeGenerator(reply=best_sentence), Settings(index_dir=tmp_path / "ix", passages=4))
    live = evaluation.by_half(evaluation.run(bot, load_questions(path)))
    records = replay.record(bot, [path])
    assert len(records) == 3 and all("reply" in r for r in records)
    for r in records:  # the figures come from the replies checked again, not from the answers kept
        r["answer"] = Answer(r["asked"], "", refused=True)
    again = replay.rescore(records)[str(path)]
    for figure in replay.FIGURES:
        assert again["all"][figure] == live["all"][figure], figure
    assert again["all"]["answer_accuracy"]["n"] >= 1  # the fake model quotes the best sentence
    # Leaving a check out runs the rest of the pipeline; a name that is not a check is refused.
    assert replay.rescore(records, ["supported"])[str(path)]["all"]["questions"] == 3
    with pytest.raises(SystemExit, match="no check named"):
        replay.rescore(records, ["no_such_check"])


def test_what_is_refused_unasked_the_checks_would_refuse_whatever_the_model_replied(tmp_path, replay):
    """`grounding.could_answer` only saves asking the model: a recording with every question put to it
    (`replay.py record --ask-all`) scores as the live run, where those questions were refused unasked."""
    from qa import grounding

    rows = [{"question": "Where did heads of government meet for the forum?", "expect_any": ["Beijing"],
             "evidence_any": ["Beijing"], "sources": ["summit.txt"]},
            {"question": "What did Zelenskyy tell the forum in Beijing?", "expect_any": ["Beijing"],
             "evidence_any": ["Beijing"], "sources": ["summit.txt"]}]
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(map(json.dumps, rows)))
    store = indexed_store(tmp_path, HashEmbedder(), ARTICLES)
    bot = Assistant(store, FakeGenerator(reply=best_sentence), Settings(index_dir=tmp_path / "ix", passages=4))
    live = evaluation.summarize(evaluation.run(bot, load_questions(path)))
    records = replay.record(bot, [path], ask_all=True)
    assert all("reply" in r for r in records)
    assert any(not grounding.could_answer(r["asked"], r["sentences"], r["passages"]) for r in records)
    again = replay.rescore(records)[str(path)]["all"]
    for figure in replay.FIGURES:
        assert again[figure] == live[figure], figure


@pytest.mark.parametrize("name", ["new-questions-a.jsonl", "new-questions-b.jsonl"])
def test_the_shipped_new_questions_are_about_the_sample_articles_and_say_where_their_answers_are(name):
    """`qa eval data/eval/heldout` asks them against the sample articles: each answerable question's
    evidence and expected answers are in an article it names, a near miss names none."""
    path = ROOT / "data" / "eval" / "heldout" / name
    assert evaluation.corpus_of(path).resolve() == (ROOT / "data" / "articles").resolve()
    questions = load_questions(path)
    assert len(questions) >= 30 and sum(not q.answerable for q in questions) >= 5
    for q in questions:
        texts = [(ROOT / "data" / "articles" / source).read_text(encoding="utf-8") for source in q.sources]
        if not q.answerable:
            assert not texts and not q.evidence_any, q.id
            continue
        assert texts and all(evaluation._has(" ".join(texts), [e]) for e in q.evidence_any), q.id
        assert all(evaluation._has(" ".join(texts), group) for group in [q.expect_any, *q.expect_all] if group), q.id


def test_a_kept_eval_index_is_brought_up_to_date_when_the_articles_are_read_differently(tmp_path, monkeypatch):
    from index import Store, ingest, loading

    (tmp_path / "sets" / "s").mkdir(parents=True)
    questions = tmp_path / "sets" / "s" / "q.jsonl"
    questions.write_text(json.dumps({"id": "a", "question": "Who won?"}) + "\n")
    (tmp_path / "sets" / "corpus").mkdir()
    (tmp_path / "sets" / "corpus" / "vote.txt").write_text(
        "Mayor wins\n\nEDITION 7\n\nThe mayor of the river town won a second term on Sunday, the commission said.")
    embedder = HashEmbedder()

    def build(articles, into):
        ingest([articles], into, embedder, progress=False)

    def text(index):
        [doc] = Store.open(index, embedder).documents()
        return Store.open(index, embedder).document(doc.doc_id).text

    index = evaluation.prepare(questions, tmp_path / "cache", build)
    assert "EDITION 7" in text(index)
    embedded = embedder.embedded
    assert evaluation.prepare(questions, tmp_path / "cache", build) == index
    assert embedder.embedded == embedded, "nothing changed: nothing embedded again"

    clean = loading.clean_article  # a newer loader that strips the edition line
    monkeypatch.setattr(loading, "clean_article", lambda raw: clean(raw.replace("EDITION 7\n", "")))
    assert evaluation.prepare(questions, tmp_path / "cache", build) == index
    assert "EDITION 7" not in text(index) and embedder.embedded > embedded
