"""Chunking: exact offsets, whole sentences, word limits, paragraph breaks and overlap."""

from __future__ import annotations

import random
import re

import pytest

from index import ChunkingParams, Document, chunk_document, load_file, split_sentences
from index.chunking import paragraphs

PARAMS = ChunkingParams()


def doc_of(text: str) -> Document:
    return Document(doc_id="d" * 16, source="mem.txt", title="t", date=None, text=text, sha256="0" * 64)


def words(text: str) -> int:
    return len(text.split())


def _random_text(seed: int) -> str:
    rng = random.Random(seed)
    vocab = "the oil Mr. pipeline U.S. talks 3.5 percent “quoted” Orbán said, e.g. café — (Reuters) Putin's".split()
    paragraphs_ = []
    for _ in range(rng.randint(1, 8)):
        sentences = []
        for _ in range(rng.randint(1, 6)):
            n = rng.choice([1, 3, 8, 15, 30, 95])
            sentences.append(" ".join(rng.choice(vocab) for _ in range(n)).capitalize() + rng.choice([".", "!", "?", ""]))
        paragraphs_.append(rng.choice([" ", "  ", "\t"]).join(sentences))
    return rng.choice(["", "  ", "\n"]) + rng.choice(["\n\n", "\n", "\n \n\n"]).join(paragraphs_) + rng.choice(["", "\n"])


ODD_TEXTS = {
    "one word": "Hello",
    "no punctuation": "a b c d e f g " * 30,
    "one huge sentence": " ".join(f"w{i}" for i in range(500)) + ".",
    "abbreviations": "Mr. Smith went to Washington D.C. on Jan. 5. He met the U.S. envoy at 5 p.m. It rained.",
    "many blank lines": "\n\n\nFirst.\n\n\n\n   \n\nSecond line here.\n\n\n",
    "tabs and odd spaces": "Tabs\there.\u00a0Non-breaking space. Ideographic\u3000space too.",
    "quotes and ellipses": '“Is it over?” she asked… "Yes." It is... finished!!! Really?!',
    "hard wrapped": ("This paragraph was wrapped by an old editor at seventy characters or so\n"
                     "and so the line breaks fall in the middle of sentences, which must not\n"
                     "count as paragraph breaks. A second sentence follows here.\n\nNew paragraph."),
    "emoji and scripts": "Привет мир. 你好，世界。 Emoji 🎉 here. Ελληνικά κείμενα εδώ.",
}


def check_chunks(text: str, params: ChunkingParams = PARAMS) -> list:
    doc = doc_of(text)
    chunks = chunk_document(doc, params)
    spans = split_sentences(text)
    sentence_starts, sentence_ends = {s for s, _ in spans}, {e for _, e in spans}
    for i, c in enumerate(chunks):
        assert c.index == i and c.doc_id == doc.doc_id
        assert c.text == text[c.start:c.end] == c.text.strip() and c.text
        assert words(c.text) <= params.max_words
        # Chunks start and end on sentence boundaries, or inside a sentence too long for one chunk.
        assert c.start in sentence_starts or text[c.start - 1].isspace()
        assert c.end in sentence_ends or text[c.end].isspace()
    for a, b in zip(chunks, chunks[1:]):
        assert a.start < b.start and a.end < b.end, "chunks go forward and none contains another"
        if b.start < a.end:  # overlap: whole trailing sentences of the previous chunk
            assert words(text[b.start:a.end]) <= params.overlap_words
            assert b.start in sentence_starts
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(ch.isspace() for i, ch in enumerate(text) if i not in covered), "no text is lost"
    return chunks


@pytest.mark.parametrize("name", ["000_ca59ae6da1aa856b.txt", "001_f06e6a34230dbb8f.txt", "002_3ffedc4987192e79.txt",
                                  "003_b0f1806591561c29.txt", "004_374a4539e936311e.txt"])
def test_sample_articles(sample_corpus, name):
    chunks = check_chunks(load_file(sample_corpus / name).text)
    assert len(chunks) >= 5


@pytest.mark.parametrize("text", ODD_TEXTS.values(), ids=ODD_TEXTS.keys())
def test_odd_texts(text):
    check_chunks(text)


@pytest.mark.parametrize("seed", range(25))
def test_random_texts(seed):
    text = _random_text(seed)
    check_chunks(text)
    check_chunks(text, ChunkingParams(max_words=30, overlap_words=10, min_words=5))
    check_chunks(text, ChunkingParams(max_words=10, overlap_words=0, min_words=0))


def test_sentence_spans_are_exact():
    text = ODD_TEXTS["abbreviations"] + "\n\n" + ODD_TEXTS["quotes and ellipses"] + "\n" + _random_text(3)
    spans = split_sentences(text)
    assert [text[s:e] for s, e in spans][:3] == ["Mr. Smith went to Washington D.C. on Jan. 5.",
                                                  "He met the U.S. envoy at 5 p.m.", "It rained."]
    for (s, e), (s2, _) in zip(spans, spans[1:]):
        assert text[s:e] == text[s:e].strip() and e <= s2 and text[e:s2].strip() == ""


def test_a_line_break_is_a_paragraph_but_hard_wrapping_is_not():
    assert len(paragraphs("Headline\nFirst line of the body.\nSecond line.")) == 3
    assert len(paragraphs(ODD_TEXTS["hard wrapped"])) == 2
    assert len(split_sentences(ODD_TEXTS["hard wrapped"])) == 3


def test_a_paragraph_break_closes_a_chunk_once_it_has_min_words():
    para = " ".join(["Alpha beta gamma delta epsilon."] * 6)  # 30 words, over min_words
    text = f"{para}\n\n{para}\n\n{para}"
    chunks = check_chunks(text, ChunkingParams(overlap_words=0))
    assert [c.text for c in chunks] == [para] * 3
    # With overlap, the next chunk also starts with the last sentences of the previous paragraph.
    chunks = check_chunks(text)
    assert [c.end for c in chunks] == [len(para), 2 * len(para) + 2, len(text)]
    assert chunks[1].text.startswith("Alpha") and chunks[1].start < len(para)


def test_short_paragraphs_are_joined():
    text = "Headline of the story\n\nShort lead.\n\n" + "One two three four five six. " * 5
    first = chunk_document(doc_of(text))[0]
    assert first.text.startswith("Headline of the story\n\nShort lead.\n\nOne two")


def test_next_chunk_repeats_the_last_sentences_of_the_previous():
    sentences = [f"Sentence number {i} has exactly seven words." for i in range(30)]
    chunks = check_chunks(" ".join(sentences))
    assert words(chunks[0].text) <= 80
    assert chunks[1].text.startswith(sentences[9])  # 11 sentences of 7 words fit; 2 (14 words) overlap
    assert chunks[0].text.endswith(sentences[10])


def test_no_overlap_when_a_sentence_is_longer_than_the_overlap():
    sentences = [" ".join(["long"] * 30) + "." for _ in range(4)]
    chunks = check_chunks(" ".join(sentences))
    assert all(a.end < b.start for a, b in zip(chunks, chunks[1:]))


def test_a_sentence_longer_than_max_words_is_split_at_words():
    text = " ".join(f"w{i}" for i in range(200)) + "."
    chunks = check_chunks(text)
    assert [words(c.text) for c in chunks] == [80, 80, 40]
    assert chunks[1].text.startswith("w80 ")


def test_chunking_params_round_trip():
    params = ChunkingParams(max_words=60, overlap_words=10, min_words=20)
    assert ChunkingParams.from_dict(params.as_dict()) == params
    with pytest.raises(ValueError):
        ChunkingParams(max_words=10, overlap_words=10)


def test_the_one_sentence_shortcut_cuts_exactly_where_pysbd_does(sample_corpus, monkeypatch):
    """Paragraphs with no sentence punctuation before their end skip pysbd: the spans must not change.

    Checked on every paragraph of the sample articles, the odd and random texts, and random word windows of
    them (which make many paragraphs with and without inner punctuation).
    """
    from index import chunking

    rng = random.Random(7)
    texts = [load_file(p).text for p in sorted(sample_corpus.glob("*.txt"))]
    texts += list(ODD_TEXTS.values()) + [_random_text(seed) for seed in range(25)]
    paras = [text[s:e] for text in texts for s, e in paragraphs(text)]
    for para in list(paras):
        words = para.split(" ")
        for _ in range(5):
            i = rng.randrange(len(words))
            paras.append(" ".join(words[i:i + rng.randint(1, 25)]))
    skipped = sum(not chunking._MAY_CUT.search(p) for p in paras)
    assert len(paras) // 4 < skipped < len(paras)   # both ways are exercised
    shortcut = [chunking._sentences_in(p, 0, len(p)) for p in paras]
    monkeypatch.setattr(chunking, "_MAY_CUT", re.compile(""))  # always pysbd
    assert shortcut == [chunking._sentences_in(p, 0, len(p)) for p in paras]
