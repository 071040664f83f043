"""Articles added from the browser: kept in an uploads folder, then indexed with `Assistant.add`.

Gradio stores an upload under a temporary name that is cleaned away later, and the index knows an
article by its file's path; so each upload is first copied to `<uploads folder>/<its file name>`,
by default beside the index folder. Uploading a file of the same name again replaces the article.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from index.files import replacing
from qa import Assistant, InputError

if TYPE_CHECKING:
    from index import IngestReport

# What the file picker offers (articles, PDFs, feeds, archives); index/loading.py has the final say.
FILE_TYPES = [".txt", ".md", ".html", ".htm", ".pdf", ".docx", ".rss", ".atom", ".xml", ".jsonl", ".gz", ".csv"]


def default_folder(bot: Assistant) -> Path:
    return Path(bot.store.index_dir).parent / "uploads"


def keep(files: Sequence[str | Path], folder: Path) -> list[Path]:
    """Copy the uploaded files into `folder` under their own names; the copies' paths."""
    folder.mkdir(parents=True, exist_ok=True)
    kept = []
    for file in files:
        name = Path(file).name.lstrip(".")   # a hidden file would be skipped by `qa ingest` of the folder
        if not name:
            raise InputError(f"cannot add {Path(file).name!r}: give the file a name")
        target = folder / name
        if Path(file).resolve() != target.resolve():
            _copy_into(Path(file), target)
        kept.append(target)
    return kept


def _copy_into(source: Path, target: Path) -> None:
    """Copy `source` to `target` by way of a new file in the same folder, then a rename (`replacing`).

    The rename replaces whatever `target` is, a symbolic link included, where copying onto a link
    would write to the file it points at, which may be anywhere.
    """
    with replacing(target) as out, open(source, "rb") as src:
        shutil.copyfileobj(src, out)


def add(bot: Assistant, files: Sequence[str | Path], folder: Path, progress: bool = True) -> IngestReport:
    """Keep and index the uploaded files; questions asked afterwards search them too."""
    return bot.add(keep(files, folder), progress=progress)
