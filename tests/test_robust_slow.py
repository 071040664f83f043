"""Odd questions against the real tokenizer and model (slow: the 0.5B model, about a minute).

Under the 2,000-character limit a question can still need more tokens than the 2,048-token context
window holds (rare Chinese characters, flag emoji: up to two tokens a character; everyday Chinese is
about 0.65 token a character and fits, with fewer passages): the user gets an InputError, never the
model's context overflow. Questions in other languages get an answer or a refusal, never an error.
"""

from __future__ import annotations

import pytest

from index import default_embedder, ingest
from qa import Answer, Assistant, InputError
from qa.llm import ContextOverflowError

pytestmark = pytest.mark.slow

MODEL = "qwen2.5-coder-0.5b-instruct-q4_k_m"


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    from conftest import SAMPLE_ARTICLES

    index_dir = tmp_path_factory.mktemp("index")
    ingest([SAMPLE_ARTICLES], index_dir, default_embedder(), progress=False)
    try:
        return Assistant.load(index_dir, model=MODEL, progress=False)
    except Exception as e:  # noqa: BLE001 - the 0.5B model is an optional extra
        pytest.skip(f"the {MODEL} model is not installed ({e})")


@pytest.mark.parametrize("question", [
    "龘靐齉爩鱻麤龗灪" * 225,                   # 1,800 characters, 3,375 tokens
    "Why did they meet? " + "🇭🇺🇷🇺" * 480,    # 1,939 characters, 1,927 tokens
], ids=["rare Chinese characters", "flag emoji"])
def test_a_question_too_long_for_the_context_window_is_an_input_error(bot, question):
    assert len(question) <= bot.settings.max_question_chars
    with pytest.raises(InputError, match="too long for the model") as caught:
        bot.ask(question)
    assert not isinstance(caught.value, ContextOverflowError)


@pytest.mark.parametrize("question", [
    "欧尔班和普京在哪个城市会面？",
    "في أي مدينة التقى أوربان وبوتين؟",
    "В каком городе встретились Орбан и Путин?",
], ids=["Chinese", "Arabic", "Russian"])
def test_questions_in_other_languages_get_an_answer_or_a_refusal(bot, question):
    answer = bot.ask(question)
    assert isinstance(answer, Answer) and answer.text
    assert answer.refused or answer.citations
