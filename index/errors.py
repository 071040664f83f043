"""The error types of the whole project.

Everything the user can cause or fix is a `QAError`; its message says what went wrong and what to do
next. The CLI and the UI show these messages as they are, never a traceback. `qa` re-exports them.
"""


class QAError(Exception):
    """Base class for errors whose message is meant for the user."""


class InputError(QAError):
    """A question, file or setting that cannot be used as given."""


class RejectedFile(InputError):
    """A file that cannot be indexed (binary, empty, undecodable, too large, ...)."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class IndexNotFoundError(QAError):
    """No index exists where one was expected."""


class IndexMismatchError(QAError):
    """An index built with another embedder or an unknown format version."""


class CorruptIndexError(QAError):
    """An index whose files are missing, truncated or altered."""


class ModelError(QAError):
    """A model (embedder or LLM) that is missing, broken or cannot be loaded."""


class IndexWriteError(QAError):
    """An index that cannot be saved (no space left, no permission)."""
