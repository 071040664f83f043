"""Where the project keeps its files on this machine: the cache folder and the index folder.

platformdirs picks the platform's folders; on Linux (and other XDG systems) that is
`$XDG_CACHE_HOME/qa` or `~/.cache/qa`, and `$XDG_DATA_HOME/qa` or `~/.local/share/qa`. Set
QA_CACHE_DIR or QA_INDEX_DIR to put them elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "qa"


def cache_dir() -> Path:
    """Models assembled from their packages, ONNX exports, evaluation indexes: `$QA_CACHE_DIR`, else the
    user's cache folder for qa (Linux: `~/.cache/qa`)."""
    if os.environ.get("QA_CACHE_DIR"):
        return Path(os.environ["QA_CACHE_DIR"]).expanduser()
    from platformdirs import user_cache_path

    return user_cache_path(APP, appauthor=False)


def index_dir() -> Path:
    """The default index: `$QA_INDEX_DIR`, else `index` in the user's data folder for qa (Linux:
    `~/.local/share/qa/index`)."""
    if os.environ.get("QA_INDEX_DIR"):
        return Path(os.environ["QA_INDEX_DIR"]).expanduser()
    from platformdirs import user_data_path

    return user_data_path(APP, appauthor=False) / "index"
