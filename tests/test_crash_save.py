"""An ingest killed with SIGKILL at 50 points of its save leaves the index exactly as before or as after.

The harness is `crashing.py`; `bench/crash_save.py` runs more trials and prints the figures.
"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest

from crashing import crash_trials, kill_points
from fakes import HashEmbedder, write_article
from index import ingest

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "articles"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs fork and SIGKILL")


def scenario(tmp_path: Path, articles_dir: Path) -> tuple[Path, callable]:
    """An index of the four made-up articles, and a change to it: one article edited, one deleted,
    an exact copy added, one sample article added."""
    base = tmp_path / "base"
    ingest([articles_dir], base, HashEmbedder(), progress=False)
    (articles_dir / "harvest.md").unlink()
    write_article(articles_dir, "pipeline.txt", (articles_dir / "pipeline.txt").read_text() + "\n\nUpdated at noon.")
    shutil.copyfile(articles_dir / "summit.txt", articles_dir / "summit-copy.txt")
    shutil.copyfile(min(SAMPLES.glob("*.txt")), articles_dir / "sample.txt")

    def change(index_dir: Path) -> None:
        ingest([articles_dir], index_dir, HashEmbedder(), prune=True, progress=False)

    return base, change


def test_kill_points_cover_the_save_and_every_disk_call():
    labels = [f"call f{i}" for i in range(1000)]
    labels[300:306] = ["c_call posix.fsync in _fsync"] * 6
    labels[500:502] = ["c_call posix.replace in _save", "c_return posix.replace in _save"]
    points = kill_points(labels, 50)
    assert len(points) == 50 == len(set(points))
    assert {501, 502} <= set(points) and {301, 302, 303, 304, 305, 306} <= set(points)
    assert min(points) == 1 and max(points) == 1000


def test_an_ingest_killed_during_its_save_leaves_the_old_or_the_new_index(tmp_path, articles_dir):
    base, change = scenario(tmp_path, articles_dir)
    run = crash_trials(base, tmp_path / "trials", change, HashEmbedder(), trials=50)
    trials = len(run.outcomes)
    ended = Counter(o.ended for o in run.outcomes)
    equals = Counter(o.equals for o in run.outcomes)
    print(f"\n{trials} kills over {run.events} events of the save: {dict(ended)}; "
          f"loads {run.count(lambda o: o.loads)}/{trials}, equal {equals['before'] + equals['after']}/{trials} "
          f"({equals['before']} before, {equals['after']} after)")
    assert trials == 50 and ended == {"killed": 50}
    assert run.count(lambda o: o.loads) == trials, [o for o in run.outcomes if not o.loads]
    unequal = [o for o in run.outcomes if o.equals not in ("before", "after")]
    assert equals["before"] + equals["after"] == trials, unequal
    assert equals["before"] and equals["after"], "the kills should fall on both sides of the switch"
    assert run.count(lambda o: not o.leftovers) == trials, "opening removes what the killed save left"
    assert run.count(lambda o: o.recovered) == trials, "the next ingest completes the change"
