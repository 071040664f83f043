"""The cache and index folders: the QA_* variables first, else the user's folders, which on Linux are
where earlier versions kept them (so an existing index and the assembled models are found)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from index import folders
from qa.config import Settings
from qa.models import default_cache_dir


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("QA_CACHE_DIR", "QA_INDEX_DIR", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_variables_come_first(clean_env, tmp_path):
    clean_env.setenv("QA_CACHE_DIR", str(tmp_path / "cache"))
    clean_env.setenv("QA_INDEX_DIR", str(tmp_path / "index"))
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    assert folders.cache_dir() == default_cache_dir() == tmp_path / "cache"
    assert folders.index_dir() == Settings.from_env().index_dir == tmp_path / "index"


def test_a_tilde_in_a_variable_is_the_home_folder(clean_env):
    clean_env.setenv("QA_CACHE_DIR", "~/qa-cache")
    assert folders.cache_dir() == Path.home() / "qa-cache"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the XDG folders of Linux")
def test_linux_defaults_are_the_folders_of_earlier_versions(clean_env, tmp_path):
    assert folders.cache_dir() == Path.home() / ".cache" / "qa"
    assert folders.index_dir() == Path.home() / ".local" / "share" / "qa" / "index"
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    clean_env.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    assert folders.cache_dir() == tmp_path / "xdg-cache" / "qa"
    assert folders.index_dir() == tmp_path / "xdg-data" / "qa" / "index"
