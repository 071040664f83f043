"""A Word document (.docx) to article text: its paragraphs in reading order, and its title.

python-docx reads the body's paragraphs (headings, text and list items, in order); tables, headers,
footers, comments and tracked deletions are left out, since they are rarely the story. The title is
the document's own (File > Properties), else its first paragraph styled Title or Heading 1, else the
article's first line as for a text file. No date is taken from the file's properties: they say when
the document was made, not when the article was published (the dateline or header's date is used).
What this leaves out: the old binary .doc format (save it as .docx) and text inside images.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

from .errors import RejectedFile

MAX_UNPACKED = 200_000_000   # bytes a .docx may unpack to: more is a zip bomb, not an article


def docx_text(data: bytes, reject: Callable[[str], RejectedFile]) -> tuple[str, str | None, None]:
    """Text and title of a .docx file's bytes."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            if sum(info.file_size for info in package.infolist()) > MAX_UNPACKED:
                raise reject(f"unpacks to over {MAX_UNPACKED / 1e6:g} MB: not an article")
    except zipfile.BadZipFile:
        raise reject("not a Word document (.docx files are zip packages); an old .doc: save it as .docx") from None
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
        paragraphs = [(p.style.name if p.style is not None else "", p.text.strip()) for p in document.paragraphs]
        title = (document.core_properties.title or "").strip() or None
    except Exception as e:  # noqa: BLE001 - python-docx raises many kinds on a damaged package
        raise reject(f"not a readable Word document ({type(e).__name__}: {e})") from None
    paragraphs = [(style, text) for style, text in paragraphs if text]
    if title is None:
        title = next((text for style, text in paragraphs if style in ("Title", "Heading 1")), None)
    return "\n\n".join(text for _, text in paragraphs), title, None
