"""Answering questions about news articles, with a checked citation for every claim.

    from qa import Assistant
    bot = Assistant.load()                      # the index in QA_INDEX_DIR, the packaged chat model
    answer = bot.ask("Who met Putin in Beijing?")
    print(answer.text, answer.citations)       # answer.sentences: each sentence with its citation numbers
"""

from index.errors import (CorruptIndexError, IndexMismatchError, IndexNotFoundError, IndexWriteError, InputError,
                          ModelError, QAError)
from index.filters import SearchFilter

from .answer import Answer, AnswerSentence, Citation, Evidence, Quote, Searched, Timings
from .assistant import Assistant, ask
from .config import Settings

__all__ = [
    "Answer", "AnswerSentence", "Assistant", "Citation", "CorruptIndexError", "Evidence", "IndexMismatchError",
    "IndexNotFoundError", "IndexWriteError", "InputError", "ModelError", "QAError", "Quote", "SearchFilter", "Searched",
    "Settings", "Timings", "ask",
]
